package reconciler

import (
	"fmt"
	"runtime"
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

// TestConditionSeriesMemoryPerRelease: the condition series of 1,000
// Releases, each with its 5 conditions, take less than 512 bytes of heap
// per Release. A GaugeVec took about 3.5 KiB per Release (5 series of
// label pairs, hashes and gauges), a tenth of the controller's live heap.
func TestConditionSeriesMemoryPerRelease(t *testing.T) {
	const n = 1000
	keys := make([]types.NamespacedName, n)
	for i := range keys {
		keys[i] = types.NamespacedName{Namespace: fmt.Sprintf("team-%04d", i), Name: "app"}
	}
	conds := []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}, {Type: "Reconciling", Status: metav1.ConditionFalse},
		{Type: "Stalled", Status: metav1.ConditionFalse}, {Type: "Verified", Status: metav1.ConditionTrue}, {Type: "Healthy", Status: metav1.ConditionUnknown}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := NewMetrics(prometheus.NewRegistry())
	for _, k := range keys {
		m.recordConditions(k, conds)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perRelease := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	runtime.KeepAlive(m)
	if perRelease > 512 {
		t.Errorf("condition series take %d bytes of heap per Release, want at most 512", perRelease)
	}
}
