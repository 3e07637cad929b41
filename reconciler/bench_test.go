package reconciler_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"airlock.dev/airlock/api/v1alpha1"
)

// BenchmarkColdStart100 creates 100 signed Releases of 10 ConfigMaps each
// against the envtest API server and reports how long until all are Ready,
// what a no-op reconcile costs, and the process' memory. Run it with
//
//	go test ./reconciler -run '^$' -bench ColdStart100 -benchtime 1x
//
// The memory figure is the whole test process: the controller, but also the
// embedded registry and the test's own clients.
func BenchmarkColdStart100(b *testing.B) {
	const releases, objects = 100, 10
	for range b.N {
		b.StopTimer()
		h := newHarness(b, harnessOptions{concurrent: 4})
		digests := make([]string, releases)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		for i := range releases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				files := map[string]string{}
				for j := range objects {
					files[fmt.Sprintf("cm-%d.yaml", j)] = configMapYAML(fmt.Sprintf("r%d-cm%d", i, j), map[string]string{"release": strconv.Itoa(i)})
				}
				digests[i] = h.pushSigned(fmt.Sprintf("r%d", i), "v1", files)
			}()
		}
		wg.Wait()
		b.StartTimer()
		start := time.Now()
		for i := range releases {
			h.release(fmt.Sprintf("r%d", i), fmt.Sprintf("r%d", i), nil)
		}
		for {
			var list v1alpha1.ReleaseList
			if err := h.env.Client.List(h.ctx, &list); err != nil {
				b.Fatal(err)
			}
			ready := 0
			for _, rel := range list.Items {
				if rel.Namespace != h.ns {
					continue
				}
				if c := condition(&rel, v1alpha1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue {
					ready++
				}
			}
			if ready == releases {
				break
			}
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("%d of %d Releases Ready after 5m", ready, releases)
			}
			time.Sleep(100 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()

		// A no-op reconcile of every Release: registry requests and writes.
		reconciles := counter(b, h.metrics.ReconcileDuration, nil)
		requests := h.reg.Requests()
		writes := counter(b, h.metrics.APIWrites, map[string]string{"dry_run": "false"})
		for i := range releases {
			h.update(fmt.Sprintf("r%d", i), func(r *v1alpha1.Release) {
				r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "bench"}
			})
		}
		deadline := time.Now().Add(time.Minute)
		for counter(b, h.metrics.ReconcileDuration, nil) < reconciles+releases {
			if time.Now().After(deadline) {
				b.Fatal("no-op reconciles did not finish")
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // let stray retries show up
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		b.ReportMetric(elapsed.Seconds(), "s-all-ready")
		b.ReportMetric(float64(h.reg.Requests()-requests)/releases, "registry-req/noop")
		b.ReportMetric((counter(b, h.metrics.APIWrites, map[string]string{"dry_run": "false"})-writes)/releases, "writes/noop")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(rssMiB(), "process-rss-MiB")
	}
}

func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
