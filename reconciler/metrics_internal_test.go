package reconciler

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestConditionSeriesPerRelease: a Release has one condition series per
// condition it has, for its current status, and no series at 0 for the
// other statuses (15 series per Release took a quarter of the heap at
// 1,000 Releases).
func TestConditionSeriesPerRelease(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	series := func() map[string]float64 {
		t.Helper()
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, f := range fams {
			if f.GetName() != "airlock_release_condition" {
				continue
			}
			for _, s := range f.GetMetric() {
				l := map[string]string{}
				for _, p := range s.GetLabel() {
					l[p.GetName()] = p.GetValue()
				}
				out[l["type"]+"="+l["status"]] = s.GetGauge().GetValue()
			}
		}
		return out
	}
	key := types.NamespacedName{Namespace: "apps", Name: "web"}
	m.recordConditions(key, []metav1.Condition{{Type: "Ready", Status: metav1.ConditionUnknown}, {Type: "Verified", Status: metav1.ConditionTrue}})
	if got := series(); len(got) != 2 || got["Ready=Unknown"] != 1 || got["Verified=True"] != 1 {
		t.Errorf("series for a Release with 2 conditions: %v, want Ready=Unknown and Verified=True at 1", got)
	}
	m.recordConditions(key, []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}, {Type: "Verified", Status: metav1.ConditionTrue}})
	if got := series(); len(got) != 2 || got["Ready=True"] != 1 || got["Verified=True"] != 1 {
		t.Errorf("series after Ready changed: %v, want Ready=True and Verified=True at 1", got)
	}
	m.forget(key)
	if got := series(); len(got) != 0 {
		t.Errorf("series after the Release was deleted: %v, want none", got)
	}
}
