package reconciler

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"airlock.dev/airlock/api/v1alpha1"
)

func TestHealthExprCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		exprs []v1alpha1.HealthCheckExpr
		want  []string // every part the error names
	}{
		{name: "syntax error in current",
			exprs: []v1alpha1.HealthCheckExpr{{APIVersion: "example.com/v1", Kind: "Gauge", Current: "self.status.phase == 'Ready"}},
			want:  []string{"spec.healthCheckExprs[0].current", `"self.status.phase == 'Ready"`, "Syntax error", "fix the expression"}},
		{name: "not a bool",
			exprs: []v1alpha1.HealthCheckExpr{{APIVersion: "example.com/v1", Kind: "Gauge", Current: "1 + 2"}},
			want:  []string{"spec.healthCheckExprs[0].current", `"1 + 2"`, "returns int, not a bool"}},
		{name: "unknown variable in failed, of the second entry",
			exprs: []v1alpha1.HealthCheckExpr{
				{APIVersion: "example.com/v1", Kind: "Gauge", Current: "true"},
				{APIVersion: "example.com/v1", Kind: "Dial", Current: "true", Failed: "status.phase == 'Failed'"}},
			want: []string{"spec.healthCheckExprs[1].failed", `"status.phase == 'Failed'"`, "undeclared reference to 'status'"}},
		{name: "current missing",
			exprs: []v1alpha1.HealthCheckExpr{{APIVersion: "example.com/v1", Kind: "Gauge", Failed: "false"}},
			want:  []string{"spec.healthCheckExprs[0].current", "is required"}},
		{name: "two entries for one kind",
			exprs: []v1alpha1.HealthCheckExpr{
				{APIVersion: "example.com/v1", Kind: "Gauge", Current: "true"},
				{APIVersion: "example.com/v1", Kind: "Gauge", Current: "false"}},
			want: []string{"spec.healthCheckExprs[1]", "a second entry for example.com/v1 Gauge"}},
		{name: "every bad expression is named",
			exprs: []v1alpha1.HealthCheckExpr{{APIVersion: "example.com/v1", Kind: "Gauge", Current: "self.(", InProgress: "'x'"}},
			want:  []string{"spec.healthCheckExprs[0].current", "spec.healthCheckExprs[0].inProgress", "returns string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c healthExprCache
			_, err := c.compileHealthChecks(tc.exprs)
			if err == nil {
				t.Fatal("compiled; want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if reason, stalled := classify(err, v1alpha1.ReasonUnhealthy); reason != v1alpha1.ReasonInvalidSpec || !stalled {
				t.Errorf("classify = %s, stalled %v; want %s, stalled", reason, stalled, v1alpha1.ReasonInvalidSpec)
			}
		})
	}
}

func gauge(generation int64, status map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Gauge",
		"metadata": map[string]any{"name": "g", "namespace": "ns", "generation": generation},
	}}
	if status != nil {
		u.Object["status"] = status
	}
	return u
}

func TestHealthExprEvaluate(t *testing.T) {
	var c healthExprCache
	checks, err := c.compileHealthChecks([]v1alpha1.HealthCheckExpr{{
		APIVersion: "example.com/v1", Kind: "Gauge",
		Current:    "self.status.phase == 'Ready'",
		InProgress: "self.status.phase == 'Starting'",
		Failed:     "self.status.phase == 'Failed' || self.status.?reason.orValue('') == 'Broken'",
	}})
	if err != nil {
		t.Fatal(err)
	}
	hc := checks[[2]string{"example.com/v1", "Gauge"}]
	for _, tc := range []struct {
		name    string
		obj     *unstructured.Unstructured
		want    status.Status
		message string
	}{
		{"current", gauge(1, map[string]any{"phase": "Ready"}), status.CurrentStatus, `current "self.status.phase == 'Ready'" is true`},
		{"failed", gauge(1, map[string]any{"phase": "Failed"}), status.FailedStatus, "spec.healthCheckExprs[0].failed"},
		{"failed before current", gauge(1, map[string]any{"phase": "Ready", "reason": "Broken"}), status.FailedStatus, "failed"},
		{"in progress", gauge(1, map[string]any{"phase": "Starting"}), status.InProgressStatus, "inProgress"},
		{"none true", gauge(1, map[string]any{"phase": "Other"}), status.InProgressStatus, "is not true yet"},
		{"no status yet", gauge(1, nil), status.InProgressStatus, "no such key: status"},
		{"observed generation behind", gauge(2, map[string]any{"phase": "Ready", "observedGeneration": int64(1)}), status.InProgressStatus, "observedGeneration 1 is behind generation 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := hc.evaluate(context.Background(), tc.obj)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.want || !strings.Contains(res.Message, tc.message) {
				t.Errorf("got %s %q; want %s, a message with %q", res.Status, res.Message, tc.want, tc.message)
			}
		})
	}
}

// The README's example: optional fields read an object without status.
func TestHealthExprOptionalFields(t *testing.T) {
	var c healthExprCache
	checks, err := c.compileHealthChecks([]v1alpha1.HealthCheckExpr{{APIVersion: "example.com/v1", Kind: "Gauge",
		Current: "self.?status.?phase.orValue('') == 'Ready'", Failed: "self.?status.?phase.orValue('') == 'Failed'"}})
	if err != nil {
		t.Fatal(err)
	}
	hc := checks[[2]string{"example.com/v1", "Gauge"}]
	for _, tc := range []struct {
		obj  *unstructured.Unstructured
		want status.Status
	}{{gauge(1, nil), status.InProgressStatus}, {gauge(1, map[string]any{"phase": "Ready"}), status.CurrentStatus}, {gauge(1, map[string]any{"phase": "Failed"}), status.FailedStatus}} {
		res, err := hc.evaluate(context.Background(), tc.obj)
		if err != nil || res.Status != tc.want || strings.Contains(res.Message, "no such key") {
			t.Errorf("status %v: got %v, %v; want %s without an evaluation error", tc.obj.Object["status"], res, err, tc.want)
		}
	}
}

func TestHealthExprCostLimit(t *testing.T) {
	var c healthExprCache
	// Nested comprehensions over a large list: far over the cost limit.
	checks, err := c.compileHealthChecks([]v1alpha1.HealthCheckExpr{{
		APIVersion: "example.com/v1", Kind: "Gauge",
		Current: "self.status.items.all(a, self.status.items.all(b, self.status.items.all(c, a + b + c >= 0)))",
	}})
	if err != nil {
		t.Fatal(err)
	}
	items := make([]any, 200)
	for i := range items {
		items[i] = int64(i)
	}
	_, err = checks[[2]string{"example.com/v1", "Gauge"}].evaluate(context.Background(), gauge(1, map[string]any{"items": items}))
	var se *SpecError
	if !errors.As(err, &se) || se.Field != "spec.healthCheckExprs[0].current" || !strings.Contains(err.Error(), "cost limit") {
		t.Fatalf("err = %v; want a SpecError on spec.healthCheckExprs[0].current over the cost limit", err)
	}
}

func TestPodProblem(t *testing.T) {
	waiting := func(reason, msg string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: "app", RestartCount: 4,
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}
	}
	for _, tc := range []struct {
		name string
		pod  corev1.PodStatus
		want string
	}{
		{"crash loop", corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{waiting("CrashLoopBackOff", "back-off 40s")}},
			"CrashLoopBackOff (container app, last exit 1 Error, 4 restarts)"},
		{"image pull", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "app",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "reg/app:v3"`}}}}},
			`ImagePullBackOff (container app): Back-off pulling image "reg/app:v3"`},
		{"unschedulable", corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/2 nodes are available: 2 Insufficient cpu."}}},
			"Unschedulable: 0/2 nodes are available: 2 Insufficient cpu."},
		{"oom killed", corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "app",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}},
			"OOMKilled (container app, exit 137)"},
		{"not ready", corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady", Message: "containers with unready status: [app]"}}},
			"not ready ContainersNotReady: containers with unready status: [app]"},
		{"evicted", corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "The node was low on resource: memory."},
			"Failed Evicted: The node was low on resource: memory."},
		{"creating", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "app",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}, "Pending"},
		{"ready", corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1"}, Status: tc.pod}
			if got := podProblem(p); got != tc.want {
				t.Errorf("podProblem = %q, want %q", got, tc.want)
			}
		})
	}
}
