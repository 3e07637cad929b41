package reconciler_test

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"airlock.dev/airlock/api/v1alpha1"
)

// BenchmarkLocalClusterRollback measures, on the local cluster, the time from
// the apply of a digest whose Pods crash to its rollback being Healthy, with
// spec.timeout 30s: the timeout, then the re-apply of the last Healthy
// digest and its rollout. Each iteration pushes a new crashing digest.
//
//	go test ./reconciler -run '^$' -bench BenchmarkLocalClusterRollback -benchtime 2x
func BenchmarkLocalClusterRollback(b *testing.B) {
	h := newHarness(b, harnessOptions{cluster: true})
	v1 := h.pushSigned("stable", "v1", webFiles("v1", "registry.example/web:v1"))
	h.release("app", "stable", clusterRelease(30*time.Second, true))
	h.readyOnCluster("app", v1)
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		bad := h.pushSigned("stable", fmt.Sprintf("bad-%d", i), webFiles(fmt.Sprintf("bad-%d", i), "registry.example/web:crash"))
		h.update("app", func(r *v1alpha1.Release) {
			r.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: fmt.Sprint(i)}
		})
		h.eventually("app", "the crashing digest applied", clusterWait, func(r *v1alpha1.Release) bool {
			return r.Status.LastAppliedDigest == bad
		})
		applied := time.Now()
		h.eventually("app", "rolled back to v1, Healthy", clusterWait, func(r *v1alpha1.Release) bool {
			c := condition(r, v1alpha1.ConditionHealthy)
			return r.Status.FailedDigest == bad && r.Status.LastAppliedDigest == v1 && readyReason(r) == v1alpha1.ReasonRolledBack &&
				c != nil && c.Status == metav1.ConditionTrue
		})
		total += time.Since(applied)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-apply-to-rolled-back/op")
}
