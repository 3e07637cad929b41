package reconciler_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"airlock.dev/airlock/api/v1alpha1"
)

// gaugeCRD is a custom resource with a status subresource whose health only
// a health check expression can judge: kstatus calls a Gauge without
// conditions Current as soon as it exists.
const gaugeCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gauges.health.airlock.dev
spec:
  group: health.airlock.dev
  names: {kind: Gauge, plural: gauges, singular: gauge, listKind: GaugeList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

var gaugeGVK = schema.GroupVersionKind{Group: "health.airlock.dev", Version: "v1", Kind: "Gauge"}

func TestHealthCheckExprs(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	t.Cleanup(func() {
		_ = h.env.Client.Delete(h.ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": map[string]any{"name": "gauges.health.airlock.dev"}}})
	})
	cr := "apiVersion: health.airlock.dev/v1\nkind: Gauge\nmetadata:\n  name: g\nspec:\n  size: 3\n"
	d := h.pushSigned("v1", "v1", map[string]string{"crd.yaml": gaugeCRD, "gauge.yaml": cr})
	const (
		current = "has(self.status) && self.status.phase == 'Ready'"
		failed  = "has(self.status) && self.status.phase == 'Failed'"
	)
	h.release("app", "v1", func(r *v1alpha1.Release) {
		r.Spec.Timeout = &metav1.Duration{Duration: 2 * time.Minute}
		r.Spec.HealthCheckExprs = []v1alpha1.HealthCheckExpr{{APIVersion: "health.airlock.dev/v1", Kind: "Gauge", Current: current, Failed: failed}}
	})

	// Applied, but not Ready while current is false.
	rel := h.eventually("app", "Progressing on the Gauge", 30*time.Second, func(r *v1alpha1.Release) bool {
		c := condition(r, v1alpha1.ConditionReady)
		return r.Status.LastAppliedDigest == d && c != nil && c.Reason == v1alpha1.ReasonProgressing
	})
	if c := condition(rel, v1alpha1.ConditionReady); c.Status != metav1.ConditionUnknown || !strings.Contains(c.Message, "Gauge "+h.ns+"/g") || !strings.Contains(c.Message, current) {
		t.Errorf("Ready = %s: %s; want Unknown, naming the Gauge and the current expression", c.Status, c.Message)
	}
	if len(rel.Status.Unhealthy) != 1 || !strings.HasPrefix(rel.Status.Unhealthy[0], "Gauge "+h.ns+"/g: InProgress") {
		t.Errorf("status.unhealthy = %q; want the Gauge, in progress", rel.Status.Unhealthy)
	}

	setGaugePhase := func(phase string) {
		t.Helper()
		g := &unstructured.Unstructured{}
		g.SetGroupVersionKind(gaugeGVK)
		if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "g"}, g); err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedField(g.Object, phase, "status", "phase"); err != nil {
			t.Fatal(err)
		}
		if err := h.env.Client.Status().Update(h.ctx, g); err != nil {
			t.Fatalf("set the Gauge's status.phase to %s: %v", phase, err)
		}
	}

	// current holds: Ready.
	setGaugePhase("Ready")
	rel = h.readyAt("app", d)
	if len(rel.Status.Unhealthy) != 0 {
		t.Errorf("status.unhealthy = %q on a healthy Release; want none", rel.Status.Unhealthy)
	}

	// failed holds: the next reconcile fails health at once, naming the
	// expression, without waiting for spec.timeout.
	setGaugePhase("Failed")
	h.update("app", func(r *v1alpha1.Release) {
		if r.Annotations == nil {
			r.Annotations = map[string]string{}
		}
		r.Annotations[v1alpha1.ReconcileRequestAnnotation] = "failed"
	})
	rel = h.failsWith("app", v1alpha1.ReasonUnhealthy)
	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{"Gauge " + h.ns + "/g: Failed", "spec.healthCheckExprs[0].failed", failed} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message %q does not name %q", msg, want)
		}
	}
}

func TestHealthCheckExprDoesNotCompile(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d := h.pushSigned("v1", "v1", map[string]string{"cm.yaml": configMapYAML("cfg", map[string]string{"k": "v"})})
	const bad = "self.status.phase = 'Ready'"
	h.release("app", "v1", func(r *v1alpha1.Release) {
		r.Spec.HealthCheckExprs = []v1alpha1.HealthCheckExpr{{APIVersion: "v1", Kind: "ConfigMap", Current: bad}}
	})
	rel := h.failsWith("app", v1alpha1.ReasonInvalidSpec)
	st := condition(rel, v1alpha1.ConditionStalled)
	if st == nil || st.Status != metav1.ConditionTrue || !strings.Contains(st.Message, "spec.healthCheckExprs[0].current") || !strings.Contains(st.Message, bad) {
		t.Fatalf("Stalled = %+v; want True, naming spec.healthCheckExprs[0].current and %q", st, bad)
	}
	if _, found := h.configMap("cfg"); found || rel.Status.LastAppliedDigest != "" {
		t.Errorf("a Release whose health check does not compile applied %s", d)
	}

	// Fixed: applied and judged by the expression.
	h.update("app", func(r *v1alpha1.Release) { r.Spec.HealthCheckExprs[0].Current = "self.data.k == 'v'" })
	h.readyAt("app", d)
}

// TestUnhealthyWorkloadNamesItsPods: a Deployment that does not become
// available names its failing Pods and why, in the Ready message and in
// status.unhealthy. envtest runs no controllers: the test plays the
// kubelet and the scheduler by writing the Pods' status.
func TestUnhealthyWorkloadNamesItsPods(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	deploy := `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: registry.example/web:v3}]
`
	d := h.pushSigned("v1", "v1", map[string]string{"deploy.yaml": deploy})

	pod := func(name string, labels map[string]string, st corev1.PodStatus) {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns, Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/web:v3"}}, AutomountServiceAccountToken: ptr.To(false)}}
		h.create(p)
		p.Status = st
		if err := h.env.Client.Status().Update(h.ctx, p); err != nil {
			t.Fatalf("set the status of Pod %s: %v", name, err)
		}
	}
	web := map[string]string{"app": "web"}
	pod("web-7c9f-crash", web, corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "app", RestartCount: 5, Image: "registry.example/web:v3",
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 2m40s restarting failed container"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}},
	}}})
	pod("web-7c9f-pending", web, corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/2 nodes are available: 2 Insufficient memory.",
	}}})
	// Another workload's Pod in the namespace is not named.
	pod("other-1", map[string]string{"app": "other"}, corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable"}}})

	h.release("app", "v1", func(r *v1alpha1.Release) { r.Spec.Timeout = &metav1.Duration{Duration: 3 * time.Second} })
	rel := h.failsWith("app", v1alpha1.ReasonUnhealthy)
	if rel.Status.LastAppliedDigest != d {
		t.Fatalf("lastAppliedDigest = %s, want %s", rel.Status.LastAppliedDigest, d)
	}
	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{
		"Deployment " + h.ns + "/web: InProgress",
		"Pod web-7c9f-crash: CrashLoopBackOff (container app, last exit 2 Error, 5 restarts)",
		"Pod web-7c9f-pending: Unschedulable: 0/2 nodes are available: 2 Insufficient memory.",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message does not name %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "other-1") {
		t.Errorf("Ready message names another workload's Pod:\n%s", msg)
	}
	if u := rel.Status.Unhealthy; len(u) != 3 || !strings.HasPrefix(u[0], "Deployment "+h.ns+"/web") || !strings.HasPrefix(u[1], "Pod web-7c9f-") {
		t.Errorf("status.unhealthy = %q; want the Deployment, then its two Pods", u)
	}
}
