package ui

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/audit"
)

// benchRelease is a Release as the controller leaves it after some life:
// a full history (with a rollback), 20 applied objects and two signers.
func benchRelease(i int, now time.Time) audit.Release {
	d := fmt.Sprintf("sha256:%064x", i+1)
	at := metav1.NewTime(now.Add(-time.Duration(i) * time.Minute))
	r := audit.Release{Release: v1alpha1.Release{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%04d", i), Namespace: fmt.Sprintf("team-%02d", i%20), CreationTimestamp: at},
		Spec:       v1alpha1.ReleaseSpec{URL: "oci://registry.example/team/app", Interval: metav1.Duration{Duration: 5 * time.Minute}},
		Status: v1alpha1.ReleaseStatus{
			Conditions:        []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSucceeded, Message: "applied 1.4.2 (" + d[7:19] + "): 20 objects, healthy"}},
			LastAppliedDigest: d, LastAppliedVersion: "1.4.2",
			LastAppliedRevision: "main@sha1:4f2a9c0d1e7b3a5c6d8e9f0a1b2c3d4e5f6a7b8c", LastAppliedSource: "https://git.example/team/app",
			Signers:          []v1alpha1.Signer{{Name: "ci", Fingerprint: fmt.Sprintf("%064x", 7)}, {Name: "release-manager", Fingerprint: fmt.Sprintf("%064x", 8)}},
			DriftCorrections: 2,
		},
	}}
	for j := range 20 {
		r.Status.Inventory = append(r.Status.Inventory, v1alpha1.ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: r.Namespace, Name: fmt.Sprintf("component-%02d", j)})
	}
	for j := range v1alpha1.HistoryLimit {
		h := v1alpha1.HistoryEntry{Digest: fmt.Sprintf("sha256:%064x", 1000*i+j), AppliedAt: at, Revision: "main@sha1:4f2a9c0d", Version: "1.4.2", Signers: []string{"ci", "release-manager"}, Health: v1alpha1.HealthHealthy}
		if j == 1 {
			h.RolledBack, h.Health = true, "Unhealthy"
		}
		r.Status.History = append(r.Status.History, h)
	}
	return r
}

func benchServer(b *testing.B) *server {
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	return &server{opts: Options{Refresh: 30 * time.Second, Now: func() time.Time { return now }}}
}

// BenchmarkListPage renders the Releases list, from Releases already read,
// and reports the page's weight in bytes (the stylesheet, fetched once and
// cached, is BenchmarkStylesheet's).
func BenchmarkListPage(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("releases=%d", n), func(b *testing.B) {
			s := benchServer(b)
			now := s.opts.Now()
			rels := make([]audit.Release, n)
			for i := range rels {
				rels[i] = benchRelease(i, now)
			}
			var size int
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				s.render(w, 200, listView(s.listData("", rels)))
				size = w.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/page")
		})
	}
}

// BenchmarkReleasePage renders one Release's page: the chain, 20 applied
// objects, a full history with a rollback, and 30 events.
func BenchmarkReleasePage(b *testing.B) {
	s := benchServer(b)
	now := s.opts.Now()
	rel := benchRelease(1, now)
	var evs []audit.Event
	for i := range 30 {
		evs = append(evs, audit.Event{Type: "Normal", Reason: v1alpha1.ReasonSucceeded, Message: "applied 1.4.2 (000000000002): 20 objects, healthy", Count: int32(i + 1), Time: now})
	}
	var size int
	b.ReportAllocs()
	for b.Loop() {
		p := s.releaseData(&rel)
		p.Events, p.Drift = evs, driftEvents(evs)
		w := httptest.NewRecorder()
		s.render(w, 200, releaseView(p))
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/page")
}

// BenchmarkStylesheet reports the weight of the one stylesheet.
func BenchmarkStylesheet(b *testing.B) {
	css, err := files.ReadFile("static/style.css")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		_ = len(css)
	}
	b.ReportMetric(float64(len(css)), "bytes")
}
