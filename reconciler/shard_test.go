package reconciler_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/labels"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/reconciler"
)

// reconciledBy names the Releases a controller has reconciled: those with
// a series of airlock_release_condition in its own metrics.
func reconciledBy(t *testing.T, m *reconciler.Metrics) map[string]bool {
	t.Helper()
	ch := make(chan prometheus.Metric, 256)
	go func() { m.Condition.Collect(ch); close(ch) }()
	names := map[string]bool{}
	for metric := range ch {
		var pb dto.Metric
		if err := metric.Write(&pb); err != nil {
			t.Fatal(err)
		}
		for _, l := range pb.GetLabel() {
			if l.GetName() == "name" {
				names[l.GetValue()] = true
			}
		}
	}
	return names
}

// TestShardsSplitReleases: two controllers on one API server, with
// --watch-label-selector shard=a and shard=b, reconcile each its own
// Releases and none of the other's; a Release in no shard is left alone.
func TestShardsSplitReleases(t *testing.T) {
	shard := func(s string) labels.Selector { return labels.SelectorFromSet(labels.Set{"shard": s}) }
	h := newHarness(t, harnessOptions{shard: shard("a")})
	_, metricsB := h.startController(harnessOptions{shard: shard("b")})
	metricsA := h.metrics

	digest := h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("cm", map[string]string{"k": "1"})})
	want := map[string]map[string]bool{"a": {}, "b": {}}
	for i := 0; i < 6; i++ {
		s := []string{"a", "b"}[i%2]
		name := fmt.Sprintf("app-%s-%d", s, i)
		want[s][name] = true
		h.release(name, "v1", func(r *v1alpha1.Release) {
			r.Labels = map[string]string{"shard": s}
			r.Spec.NamePrefix = name + "-"
		})
	}
	h.release("unsharded", "v1", func(r *v1alpha1.Release) { r.Spec.NamePrefix = "unsharded-" })
	for _, names := range want {
		for name := range names {
			h.readyAt(name, digest)
		}
	}
	// Give a wrong shard time to act on a Release it should not see.
	time.Sleep(time.Second)

	for s, m := range map[string]*reconciler.Metrics{"a": metricsA, "b": metricsB} {
		got := reconciledBy(t, m)
		for name := range got {
			if !want[s][name] {
				t.Errorf("shard %s reconciled Release %s, which is not in it", s, name)
			}
		}
		for name := range want[s] {
			if !got[name] {
				t.Errorf("shard %s did not record Release %s", s, name)
			}
		}
	}
	if rel := h.get("unsharded"); len(rel.Status.Conditions) != 0 || len(rel.Finalizers) != 0 {
		t.Errorf("the Release in no shard was reconciled: finalizers %v, conditions:\n%s", rel.Finalizers, describe(rel))
	}
}
