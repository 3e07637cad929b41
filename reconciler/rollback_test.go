package reconciler_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"airlock.dev/airlock/api/v1alpha1"
)

var deploymentGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}

// deploymentYAML is a Deployment that never becomes Current on envtest,
// which runs no controllers: the failing digest of the rollback tests.
func deploymentYAML(name string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + name + `
spec:
  replicas: 1
  selector:
    matchLabels: {app: ` + name + `}
  template:
    metadata:
      labels: {app: ` + name + `}
    spec:
      containers:
      - name: app
        image: registry.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000
`
}

func rollbackRelease(r *v1alpha1.Release) {
	r.Spec.Timeout = &metav1.Duration{Duration: 3 * time.Second}
	r.Spec.Rollback = &v1alpha1.RollbackSpec{OnFailure: true}
}

func (h *harness) exists(gvk schema.GroupVersionKind, name string) bool {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, u) == nil
}

func TestRollbackOnFailedHealth(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	v1 := h.pushSigned("stable", "v1", map[string]string{"a.yaml": configMapYAML("a", map[string]string{"k": "1"})})
	h.release("app", "stable", rollbackRelease)
	h.readyAt("app", v1)

	v2 := h.pushSigned("stable", "v2", map[string]string{
		"a.yaml":      configMapYAML("a", map[string]string{"k": "2"}),
		"deploy.yaml": deploymentYAML("web"),
	})
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "1"} })
	rel := h.failsWith("app", v1alpha1.ReasonRolledBack)

	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{v1 + " (v1)", v2 + " (v2)", "--retry"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message %q does not name %q", msg, want)
		}
	}
	if rel.Status.LastAppliedDigest != v1 || rel.Status.FailedDigest != v2 {
		t.Errorf("lastApplied %s failedDigest %s, want %s and %s", rel.Status.LastAppliedDigest, rel.Status.FailedDigest, v1, v2)
	}
	if got := h.mustConfigMap("a").Data["k"]; got != "1" {
		t.Errorf("ConfigMap a k = %q, want v1's 1", got)
	}
	h.eventuallyGone(deploymentGVK, h.ns, "web")
	hist := rel.Status.History
	if len(hist) != 3 || hist[0].Digest != v1 || hist[0].RollbackOf != v2 || hist[0].Health != v1alpha1.HealthHealthy ||
		hist[1].Digest != v2 || !hist[1].RolledBack || hist[1].Health != v1alpha1.HealthUnhealthy || hist[2].Digest != v1 {
		t.Errorf("history = %+v, want v1 (rollback of v2), v2 (rolled back, Unhealthy), v1", hist)
	}
	h.waitEvent(v1alpha1.ReasonRolledBack, v2)
	if got := counter(t, h.metrics.Rollbacks, map[string]string{"namespace": h.ns, "name": "app", "result": "success"}); got != 1 {
		t.Errorf("airlock_rollbacks_total{result=success} = %v, want 1", got)
	}

	// The tag still points at v2: later reconciles do not apply it again.
	reconciles := counter(t, h.metrics.ReconcileDuration, nil)
	h.update("app", func(r *v1alpha1.Release) { r.Annotations["reconcile.airlock.dev/requestedAt"] = "2" })
	deadline := time.Now().Add(10 * time.Second)
	for counter(t, h.metrics.ReconcileDuration, nil) == reconciles {
		if time.Now().After(deadline) {
			t.Fatal("no reconcile after the annotation changed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rel = h.get("app")
	if rel.Status.LastAppliedDigest != v1 || len(rel.Status.History) != 3 || readyReason(rel) != v1alpha1.ReasonRolledBack {
		t.Errorf("after more reconciles: lastApplied %s, history %d entries, Ready %s; want v1 still, 3 entries, RolledBack",
			rel.Status.LastAppliedDigest, len(rel.Status.History), readyReason(rel))
	}
	if h.exists(deploymentGVK, "web") {
		t.Error("the failed digest's Deployment was applied again without --retry")
	}

	// A spec change while v2 is held: v1 is applied again with the new spec,
	// still as the rollback of v2, and v2 is not.
	h.update("app", func(r *v1alpha1.Release) { r.Spec.RetryInterval = &metav1.Duration{Duration: 3 * time.Second} })
	rel = h.eventually("app", "v1 applied again with the new spec", 30*time.Second, func(r *v1alpha1.Release) bool {
		return r.Status.LastAppliedGeneration == r.Generation && r.Status.ObservedGeneration == r.Generation
	})
	if rel.Status.LastAppliedDigest != v1 || readyReason(rel) != v1alpha1.ReasonRolledBack || len(rel.Status.History) != 3 || rel.Status.History[0].RollbackOf != v2 {
		t.Errorf("after a spec change: lastApplied %s, Ready %s, history %+v; want v1, RolledBack, v1 as the rollback of v2",
			rel.Status.LastAppliedDigest, readyReason(rel), rel.Status.History)
	}
	if h.exists(deploymentGVK, "web") {
		t.Error("the failed digest's Deployment was applied again after a spec change")
	}

	// A person asks: v2 is applied again, fails again, and is rolled back again.
	h.update("app", func(r *v1alpha1.Release) { r.Annotations[v1alpha1.RetryRequestAnnotation] = "now" })
	rel = h.eventually("app", "a second rollback after --retry", 30*time.Second, func(r *v1alpha1.Release) bool {
		return r.Status.LastHandledRetryAt == "now" && len(r.Status.History) == 5 && readyReason(r) == v1alpha1.ReasonRolledBack
	})
	if rel.Status.History[1].Digest != v2 || !rel.Status.History[1].RolledBack {
		t.Errorf("history = %+v, want v2 applied and rolled back again", rel.Status.History)
	}
	if got := counter(t, h.metrics.Rollbacks, map[string]string{"namespace": h.ns, "name": "app", "result": "success"}); got != 2 {
		t.Errorf("airlock_rollbacks_total{result=success} = %v, want 2", got)
	}
}

func TestRollbackTargetNoLongerTrusted(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	v1 := h.pushSigned("stable", "v1", map[string]string{"a.yaml": configMapYAML("a", map[string]string{"k": "1"})})
	h.release("app", "stable", rollbackRelease)
	h.readyAt("app", v1)

	// The key that signed v1 is replaced; v2 is signed by the new key only.
	replaced := h.replaceKeys()
	v2 := h.push("stable", "v2", map[string]string{
		"a.yaml":      configMapYAML("a", map[string]string{"k": "2"}),
		"deploy.yaml": deploymentYAML("web"),
	}, nil)
	h.sign(v2, replaced)
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "1"} })

	rel := h.failsWith("app", v1alpha1.ReasonRollbackFailed)
	if c := condition(rel, v1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonRollbackFailed {
		t.Errorf("Stalled = %+v, want True RollbackFailed", c)
	}
	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{"failed at verify", "spec.timeout", "Deployment", v1, v2} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message %q does not name %q", msg, want)
		}
	}
	if rel.Status.LastAppliedDigest != v2 || rel.Status.FailedDigest != v2 {
		t.Errorf("lastApplied %s failedDigest %s, want both %s", rel.Status.LastAppliedDigest, rel.Status.FailedDigest, v2)
	}
	if !h.exists(deploymentGVK, "web") {
		t.Error("the Deployment was deleted after a failed rollback")
	}
	if got := h.mustConfigMap("a").Data["k"]; got != "2" {
		t.Errorf("ConfigMap a k = %q, want v2's 2 left in place", got)
	}
	if got := counter(t, h.metrics.Rollbacks, map[string]string{"namespace": h.ns, "name": "app", "result": "failure"}); got != 1 {
		t.Errorf("airlock_rollbacks_total{result=failure} = %v, want 1", got)
	}
}

func readyReason(rel *v1alpha1.Release) string {
	if c := condition(rel, v1alpha1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}
