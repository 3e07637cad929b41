package reconciler_test

// Scenarios on the local cluster (envtestenv.StartCluster): real Deployments
// whose ReplicaSets kube-controller-manager makes and whose Pods kwok runs.
// An image tagged "crash" crashes (CrashLoopBackOff) and one tagged
// "unready" runs but never becomes ready (hack/cluster/stages). The waits
// are generous deadlines for a loaded 2-core machine, never timings.

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/internal/envtestenv"
	"airlock.dev/airlock/internal/localcluster"
)

// clusterWait bounds every wait on the local cluster: a failure guard only.
const clusterWait = 3 * time.Minute

// webYAML is the Deployment web, two replicas of image; minReadySeconds
// keeps a rollout in progress for that long after its Pods are ready.
func webYAML(image string, minReadySeconds int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  minReadySeconds: %d
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: %s
`, minReadySeconds, image)
}

// webFiles is an artifact of the Deployment web running image and a
// ConfigMap named for the version.
func webFiles(version, image string) map[string]string {
	return map[string]string{
		"web.yaml":    webYAML(image, 0),
		"config.yaml": configMapYAML("config", map[string]string{"version": version}),
	}
}

// clusterRelease is a Release with timeout and, when rollback is set,
// spec.rollback.onFailure.
func clusterRelease(timeout time.Duration, rollback bool) func(*v1alpha1.Release) {
	return func(r *v1alpha1.Release) {
		r.Spec.Timeout = &metav1.Duration{Duration: timeout}
		if rollback {
			r.Spec.Rollback = &v1alpha1.RollbackSpec{OnFailure: true}
		}
	}
}

// readyOnCluster waits until the Release is Ready with digest applied.
func (h *harness) readyOnCluster(name, digest string) *v1alpha1.Release {
	h.t.Helper()
	return h.eventually(name, "Ready with "+digest, clusterWait, func(rel *v1alpha1.Release) bool {
		c := condition(rel, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue && rel.Status.LastAppliedDigest == digest &&
			rel.Status.ObservedGeneration == rel.Generation
	})
}

// failsOnCluster waits until Ready is False with reason.
func (h *harness) failsOnCluster(name, reason string) *v1alpha1.Release {
	h.t.Helper()
	return h.eventually(name, "Ready=False "+reason, clusterWait, func(rel *v1alpha1.Release) bool {
		c := condition(rel, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == reason
	})
}

// requestReconcile sets the reconcile request annotation to v and waits
// until the controller has handled it, as `airlock reconcile release` does.
func (h *harness) requestReconcile(name, v string) *v1alpha1.Release {
	h.t.Helper()
	h.update(name, func(r *v1alpha1.Release) {
		if r.Annotations == nil {
			r.Annotations = map[string]string{}
		}
		r.Annotations[v1alpha1.ReconcileRequestAnnotation] = v
	})
	return h.eventually(name, "the reconcile request "+v+" handled", clusterWait, func(rel *v1alpha1.Release) bool {
		return rel.Status.LastHandledReconcileAt == v
	})
}

// waitCluster polls cond until it holds; on the deadline it fails with
// cond's last description of what it saw.
func (h *harness) waitCluster(what string, cond func() (bool, string)) {
	h.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s; saw: %s", clusterWait, what, saw)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// newClusterHarness is newHarness on the local cluster; when the test
// fails it logs the Deployment web, its ReplicaSets and every Pod.
func newClusterHarness(t *testing.T) *harness {
	h := newHarness(t, harnessOptions{cluster: true})
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var b strings.Builder
		d := &appsv1.Deployment{}
		if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "web"}, d); err == nil {
			fmt.Fprintf(&b, "Deployment web: generation %d, status %+v\n", d.Generation, d.Status)
		}
		fmt.Fprintf(&b, "%s\n", describeReplicaSets(h.webReplicaSets()))
		var pods corev1.PodList
		if err := h.env.Client.List(h.ctx, &pods, client.InNamespace(h.ns)); err == nil {
			for _, p := range pods.Items {
				fmt.Fprintf(&b, "Pod %s: %s deleting=%v node=%q conditions %+v\n", p.Name, p.Status.Phase, p.DeletionTimestamp != nil, p.Spec.NodeName, p.Status.Conditions)
			}
		}
		var nodes corev1.NodeList
		if err := h.env.Client.List(h.ctx, &nodes); err == nil {
			for _, n := range nodes.Items {
				fmt.Fprintf(&b, "Node %s: taints %v conditions %+v\n", n.Name, n.Spec.Taints, n.Status.Conditions)
			}
		}
		if log, err := os.ReadFile(envtestenv.ClusterLogs()["kube-controller-manager"]); err == nil {
			for _, l := range strings.Split(string(log), "\n") {
				if strings.Contains(l, "ode") {
					fmt.Fprintf(&b, "kube-controller-manager: %s\n", l)
				}
			}
		}
		t.Logf("the local cluster at the failure:\n%s", b.String())
	})
	return h
}

// deployment reads the Deployment name of the test's namespace.
func (h *harness) deployment(name string) *appsv1.Deployment {
	h.t.Helper()
	d := &appsv1.Deployment{}
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, d); err != nil {
		h.t.Fatalf("get Deployment %s/%s: %v", h.ns, name, err)
	}
	return d
}

// replicaSet is one of the ReplicaSets of the Deployment web and its Pods
// that are not being deleted.
type replicaSet struct {
	rs   appsv1.ReplicaSet
	pods []corev1.Pod
}

func (r replicaSet) image() string { return r.rs.Spec.Template.Spec.Containers[0].Image }

func (r replicaSet) String() string {
	var pods []string
	for _, p := range r.pods {
		pods = append(pods, fmt.Sprintf("%s %s ready=%v", p.Name, p.Status.Phase, localcluster.PodReady(&p)))
	}
	return fmt.Sprintf("ReplicaSet %s (%s): spec.replicas %d, ready %d, pods [%s]",
		r.rs.Name, r.image(), *r.rs.Spec.Replicas, r.rs.Status.ReadyReplicas, strings.Join(pods, ", "))
}

// running is true when the ReplicaSet wants n replicas and has n Pods, all
// Running and Ready.
func (r replicaSet) running(n int32) bool {
	if *r.rs.Spec.Replicas != n || r.rs.Status.ReadyReplicas != n || len(r.pods) != int(n) {
		return false
	}
	for _, p := range r.pods {
		if p.Status.Phase != corev1.PodRunning || !localcluster.PodReady(&p) {
			return false
		}
	}
	return true
}

// webReplicaSets returns the ReplicaSets of the Deployment web by image.
func (h *harness) webReplicaSets() map[string]replicaSet {
	h.t.Helper()
	var rss appsv1.ReplicaSetList
	if err := h.env.Client.List(h.ctx, &rss, client.InNamespace(h.ns), client.MatchingLabels{"app": "web"}); err != nil {
		h.t.Fatal(err)
	}
	var pods corev1.PodList
	if err := h.env.Client.List(h.ctx, &pods, client.InNamespace(h.ns), client.MatchingLabels{"app": "web"}); err != nil {
		h.t.Fatal(err)
	}
	out := map[string]replicaSet{}
	for _, rs := range rss.Items {
		r := replicaSet{rs: rs}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && metav1.IsControlledBy(&p, &rs) {
				r.pods = append(r.pods, p)
			}
		}
		out[r.image()] = r
	}
	return out
}

func describeReplicaSets(rss map[string]replicaSet) string {
	var lines []string
	for _, r := range rss {
		lines = append(lines, r.String())
	}
	sort.Strings(lines)
	return strings.Join(lines, "; ")
}

// waitRunning waits until the ReplicaSet of image runs n Pods, Running and
// Ready, and the Deployment's other ReplicaSets want none; it returns them.
func (h *harness) waitRunning(image string, n int32) map[string]replicaSet {
	h.t.Helper()
	var rss map[string]replicaSet
	h.waitCluster(fmt.Sprintf("%d Pods of %s Running and Ready, and no other ReplicaSet of web active", n, image), func() (bool, string) {
		rss = h.webReplicaSets()
		ok := rss[image].running(n)
		for img, r := range rss {
			ok = ok && (img == image || (*r.rs.Spec.Replicas == 0 && len(r.pods) == 0))
		}
		return ok, describeReplicaSets(rss)
	})
	return rss
}

// A new image rolls out: a new ReplicaSet replaces the old one's Pods, and
// the Release is Ready only once the rollout is complete.
func TestLocalClusterRolloutSucceeds(t *testing.T) {
	h := newClusterHarness(t)
	v1 := h.pushSigned("stable", "v1", webFiles("v1", "registry.example/web:v1"))
	h.release("app", "stable", clusterRelease(2*time.Minute, true))
	h.readyOnCluster("app", v1)
	before := h.waitRunning("registry.example/web:v1", 2)

	// v2 changes the image, and keeps its rollout in progress for 5 s after
	// its Pods are ready: the health check right after the apply cannot see
	// it complete.
	files := webFiles("v2", "registry.example/web:v2")
	files["web.yaml"] = webYAML("registry.example/web:v2", 5)
	v2 := h.pushSigned("stable", "v2", files)
	h.requestReconcile("app", "1")
	rel := h.readyOnCluster("app", v2)

	// Ready came only after the rollout: the controller reported it in progress first.
	h.waitEvent(v1alpha1.ReasonProgressing, "(v2)")
	d := h.deployment("web")
	if d.Status.ObservedGeneration != d.Generation || d.Status.UpdatedReplicas != 2 || d.Status.AvailableReplicas != 2 || d.Status.Replicas != 2 {
		t.Errorf("Deployment web when the Release is Ready: %+v, want the rollout complete: 2 replicas, all updated and available", d.Status)
	}
	after := h.waitRunning("registry.example/web:v2", 2)
	if after["registry.example/web:v2"].rs.Name == before["registry.example/web:v1"].rs.Name {
		t.Errorf("v2 runs in v1's ReplicaSet %s, want a new ReplicaSet", before["registry.example/web:v1"].rs.Name)
	}
	if old := after["registry.example/web:v1"]; old.rs.Name != before["registry.example/web:v1"].rs.Name || *old.rs.Spec.Replicas != 0 {
		t.Errorf("v1's ReplicaSet after the rollout: %s, want %s kept with 0 replicas", old, before["registry.example/web:v1"].rs.Name)
	}
	if got := h.mustConfigMap("config").Data["version"]; got != "v2" {
		t.Errorf("ConfigMap config version = %q, want v2", got)
	}
	if c := condition(rel, v1alpha1.ConditionHealthy); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Healthy = %+v, want True", c)
	}
	if len(rel.Status.History) != 2 || rel.Status.History[0].Health != v1alpha1.HealthHealthy || rel.Status.History[1].Health != v1alpha1.HealthHealthy {
		t.Errorf("history = %+v, want v2 and v1, both Healthy", rel.Status.History)
	}
}

// A rollout whose Pods crash is rolled back: the old Pods' ReplicaSet runs
// again, the crashing one is scaled to zero, and the failed digest is not
// applied again until a person asks.
func TestLocalClusterCrashRolledBack(t *testing.T) {
	h := newClusterHarness(t)
	v1 := h.pushSigned("stable", "v1", webFiles("v1", "registry.example/web:v1"))
	h.release("app", "stable", clusterRelease(30*time.Second, true))
	h.readyOnCluster("app", v1)
	old := h.waitRunning("registry.example/web:v1", 2)["registry.example/web:v1"].rs

	v2 := h.pushSigned("stable", "v2", webFiles("v2", "registry.example/web:crash"))
	h.requestReconcile("app", "1")
	rel := h.failsOnCluster("app", v1alpha1.ReasonRolledBack)

	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{v1 + " (v1)", v2 + " (v2)", "--retry"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message %q does not name %q", msg, want)
		}
	}
	if rel.Status.LastAppliedDigest != v1 || rel.Status.FailedDigest != v2 {
		t.Errorf("lastApplied %s failedDigest %s, want %s and %s", rel.Status.LastAppliedDigest, rel.Status.FailedDigest, v1, v2)
	}
	if c := condition(rel, v1alpha1.ConditionHealthy); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Healthy = %+v, want True: v1 is healthy again", c)
	}
	rss := h.waitRunning("registry.example/web:v1", 2)
	if again := rss["registry.example/web:v1"].rs; again.UID != old.UID {
		t.Errorf("v1 runs in ReplicaSet %s, want its old ReplicaSet %s active again", again.Name, old.Name)
	}
	crash, ok := rss["registry.example/web:crash"]
	if !ok || *crash.rs.Spec.Replicas != 0 {
		t.Errorf("the crashing ReplicaSet: %v (found %v), want it scaled to 0", crash, ok)
	}
	if got := h.mustConfigMap("config").Data["version"]; got != "v1" {
		t.Errorf("ConfigMap config version = %q, want v1", got)
	}
	h.waitEvent(v1alpha1.ReasonRolledBack, v2)

	// The tag still points at v2: another reconcile does not apply it again.
	rel = h.requestReconcile("app", "2")
	if rel.Status.LastAppliedDigest != v1 || len(rel.Status.History) != 3 || readyReason(rel) != v1alpha1.ReasonRolledBack {
		t.Errorf("after another reconcile: lastApplied %s, history %d entries, Ready %s; want v1 still, 3 entries, RolledBack",
			rel.Status.LastAppliedDigest, len(rel.Status.History), readyReason(rel))
	}
	if img := h.deployment("web").Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:v1" {
		t.Errorf("Deployment web runs %s after another reconcile, want v1's image: the failed digest was applied again", img)
	}
	if r := h.webReplicaSets()["registry.example/web:crash"]; *r.rs.Spec.Replicas != 0 {
		t.Errorf("the crashing ReplicaSet was scaled up again without --retry: %s", r)
	}

	// A person asks (airlock reconcile release app --retry): v2 is applied
	// again, crashes again and is rolled back again.
	h.update("app", func(r *v1alpha1.Release) {
		r.Annotations[v1alpha1.RetryRequestAnnotation] = "3"
		r.Annotations[v1alpha1.ReconcileRequestAnnotation] = "3"
	})
	rel = h.eventually("app", "a second rollback after --retry", clusterWait, func(r *v1alpha1.Release) bool {
		return r.Status.LastHandledRetryAt == "3" && len(r.Status.History) == 5 && readyReason(r) == v1alpha1.ReasonRolledBack
	})
	hist := rel.Status.History
	if hist[0].Digest != v1 || hist[0].RollbackOf != v2 || hist[1].Digest != v2 || !hist[1].RolledBack || hist[1].Health != v1alpha1.HealthUnhealthy {
		t.Errorf("history = %+v, want v1 applied again as the rollback of v2, after v2 applied again and rolled back", hist)
	}
	rss = h.waitRunning("registry.example/web:v1", 2)
	if again := rss["registry.example/web:v1"].rs; again.UID != old.UID {
		t.Errorf("after the second rollback v1 runs in ReplicaSet %s, want %s", again.Name, old.Name)
	}
	if got := counter(t, h.metrics.Rollbacks, map[string]string{"namespace": h.ns, "name": "app", "result": "success"}); got != 2 {
		t.Errorf("airlock_rollbacks_total{result=success} = %v, want 2", got)
	}
}

// The digest to roll back to no longer verifies (its key was removed from
// the keys Secret before the failure): the Release is Stalled, names both
// failures, and the failed digest's objects stay as they are.
func TestLocalClusterRollbackTargetNoLongerVerifies(t *testing.T) {
	h := newClusterHarness(t)
	v1 := h.pushSigned("stable", "v1", webFiles("v1", "registry.example/web:v1"))
	h.release("app", "stable", clusterRelease(30*time.Second, true))
	h.readyOnCluster("app", v1)
	h.waitRunning("registry.example/web:v1", 2)

	// The key that signed v1 is replaced; v2 is signed by the new key only.
	replaced := h.replaceKeys()
	v2 := h.push("stable", "v2", webFiles("v2", "registry.example/web:crash"), nil)
	h.sign(v2, replaced)
	h.requestReconcile("app", "1")

	rel := h.failsOnCluster("app", v1alpha1.ReasonRollbackFailed)
	if c := condition(rel, v1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonRollbackFailed {
		t.Errorf("Stalled = %+v, want True RollbackFailed", c)
	}
	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{
		v2 + " (v2)", v1 + " (v1)",
		"failed at verify",                     // the rollback's failure
		"not healthy after spec.timeout (30s)", // the rollout's failure
		"Deployment " + h.ns + "/web",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message %q does not name %q", msg, want)
		}
	}
	if rel.Status.LastAppliedDigest != v2 || rel.Status.FailedDigest != v2 {
		t.Errorf("lastApplied %s failedDigest %s, want both %s", rel.Status.LastAppliedDigest, rel.Status.FailedDigest, v2)
	}

	// Nothing deleted, nothing changed: v2's objects stay as v2 applied them.
	rel = h.requestReconcile("app", "2")
	if readyReason(rel) != v1alpha1.ReasonRollbackFailed || rel.Status.LastAppliedDigest != v2 {
		t.Errorf("after another reconcile: Ready %s, lastApplied %s; want RollbackFailed and v2 still", readyReason(rel), rel.Status.LastAppliedDigest)
	}
	for _, o := range rel.Status.Inventory {
		if !h.exists(schema.GroupVersionKind{Group: o.Group, Version: o.Version, Kind: o.Kind}, o.Name) {
			t.Errorf("%s %s of the inventory was deleted after the rollback failed", o.Kind, o.Name)
		}
	}
	if img := h.deployment("web").Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:crash" {
		t.Errorf("Deployment web runs %s, want v2's image left in place", img)
	}
	if got := h.mustConfigMap("config").Data["version"]; got != "v2" {
		t.Errorf("ConfigMap config version = %q, want v2's left in place", got)
	}
	rss := h.webReplicaSets()
	if r, ok := rss["registry.example/web:v1"]; !ok || r.rs.DeletionTimestamp != nil {
		t.Errorf("v1's ReplicaSet: %v (found %v), want it kept", r, ok)
	}
	if r, ok := rss["registry.example/web:crash"]; !ok || *r.rs.Spec.Replicas == 0 {
		t.Errorf("v2's ReplicaSet: %v (found %v), want it still wanting Pods", r, ok)
	}
}

// Pods that run but never become Ready: after spec.timeout the Release is
// Unhealthy, names the Deployment, and the old Pods keep running.
func TestLocalClusterTimeoutPodsNeverReady(t *testing.T) {
	h := newClusterHarness(t)
	stages := filepath.Join(os.Getenv(localcluster.AssetsEnv), "stages.yaml")
	if b, err := os.ReadFile(stages); err != nil || !strings.Contains(string(b), "name: airlock-pod-unready") {
		t.Fatalf("%s has no kwok stage airlock-pod-unready (%v): run hack/cluster-assets.sh again, which writes it from hack/cluster/stages", stages, err)
	}
	v1 := h.pushSigned("stable", "v1", webFiles("v1", "registry.example/web:v1"))
	h.release("app", "stable", clusterRelease(20*time.Second, false))
	h.readyOnCluster("app", v1)
	h.waitRunning("registry.example/web:v1", 2)

	v2 := h.pushSigned("stable", "v2", webFiles("v2", "registry.example/web:unready"))
	h.requestReconcile("app", "1")
	rel := h.failsOnCluster("app", v1alpha1.ReasonUnhealthy)

	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{"not healthy after spec.timeout (20s)", "Deployment " + h.ns + "/web"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message %q does not name %q", msg, want)
		}
	}
	if c := condition(rel, v1alpha1.ConditionHealthy); c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonUnhealthy {
		t.Errorf("Healthy = %+v, want False Unhealthy", c)
	}
	if rel.Status.LastAppliedDigest != v2 || rel.Status.FailedDigest != "" || rel.Status.History[0].Health != v1alpha1.HealthUnhealthy {
		t.Errorf("lastApplied %s, failedDigest %q, history %+v; want v2 applied and Unhealthy, nothing rolled back", rel.Status.LastAppliedDigest, rel.Status.FailedDigest, rel.Status.History)
	}

	// The new Pod runs, never Ready; the rolling update keeps both old Pods.
	rss := h.webReplicaSets()
	unready := rss["registry.example/web:unready"]
	if len(unready.pods) == 0 {
		t.Fatalf("no Pod of v2: %s", describeReplicaSets(rss))
	}
	for _, p := range unready.pods {
		if p.Status.Phase != corev1.PodRunning || localcluster.PodReady(&p) || len(p.Status.ContainerStatuses) != 1 || !ptr.Deref(p.Status.ContainerStatuses[0].Started, false) {
			t.Errorf("v2's Pod %s: phase %s, ready %v, containers %+v; want Running, started, not Ready", p.Name, p.Status.Phase, localcluster.PodReady(&p), p.Status.ContainerStatuses)
		}
	}
	if old := rss["registry.example/web:v1"]; !old.running(2) {
		t.Errorf("v1's Pods no longer all run: %s", old)
	}
}
