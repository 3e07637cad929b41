package faults

import (
	"net/http"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"

	"airlock.dev/airlock/api/v1alpha1"
)

const (
	// smallObjects is the size of the registry cases' versions.
	smallObjects = 3
	// largeObjects makes an apply long enough to be cut in the middle.
	largeObjects = 60
	// cutAfter is the apply, counted from one, that a mid-apply fault follows.
	cutAfter = 15
	// timeout is spec.timeout in every case but the slow registry's.
	timeout = 30 * time.Second
	// converge bounds the wait for Ready; a killed leader's Lease takes 15s
	// to expire before another process may lead.
	converge = 60 * time.Second
)

// registryFault is a fault of the registry proxy for a case, built once the
// world's new version (next) and an unsigned one (bad) exist.
type registryFault func(w *world, next, bad *version) Fault

func registryCases() []faultCase {
	blob := func(w *world, v *version) func(*http.Request) bool {
		p := w.path("blobs/" + v.layer)
		return func(r *http.Request) bool { return r.Method == http.MethodGet && r.URL.Path == p }
	}
	cases := []struct {
		name    string
		timeout time.Duration
		fault   registryFault
	}{
		{"registry-5xx-manifest", timeout, func(w *world, next, _ *version) Fault {
			p := w.path("manifests/")
			return Fault{Name: "503 on manifests", Kind: Status, Code: http.StatusServiceUnavailable,
				Match: func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, p) }}
		}},
		{"registry-5xx-blob", timeout, func(w *world, next, _ *version) Fault {
			return Fault{Name: "500 on the layer", Kind: Status, Code: http.StatusInternalServerError, Match: blob(w, next)}
		}},
		{"registry-reset-mid-body", timeout, func(w *world, next, _ *version) Fault {
			return Fault{Name: "reset mid-layer", Kind: Reset, N: next.size / 2, Match: blob(w, next)}
		}},
		{"registry-truncated-blob", timeout, func(w *world, next, _ *version) Fault {
			return Fault{Name: "truncated layer", Kind: Truncate, N: next.size / 2, Match: blob(w, next)}
		}},
		{"registry-corrupted-blob", timeout, func(w *world, next, _ *version) Fault {
			return Fault{Name: "flipped byte in the layer", Kind: Corrupt, N: next.size / 2, Match: blob(w, next)}
		}},
		{"registry-substituted-blob", timeout, func(w *world, next, bad *version) Fault {
			// A well-formed layer of an unsigned artifact served under the
			// signed layer's digest: only a digest check stops it.
			return Fault{Name: "unsigned layer under the signed digest", Kind: Replace, Body: w.blob(bad.layer), Match: blob(w, next)}
		}},
		{"registry-slow-past-timeout", 3 * time.Second, func(w *world, next, _ *version) Fault {
			return Fault{Name: "layer held past spec.timeout", Kind: Delay, Delay: 20 * time.Second, Match: blob(w, next)}
		}},
	}
	var out []faultCase
	for _, c := range cases {
		out = append(out, faultCase{name: c.name, run: func(w *world) { registryCase(w, c.timeout, c.fault) }})
	}
	out = append(out, faultCase{name: "registry-tag-moved-mid-reconcile", run: tagMoved})
	return out
}

// registryCase: v1 is Ready; v2 is pushed and the fault switched on; the
// Release must fail on v2 with v1 whole, then converge on v2 once the fault
// ends.
func registryCase(w *world, timeout time.Duration, fault registryFault) {
	w.startController("a")
	v1 := w.push("v1", smallObjects, true)
	w.release(timeout)
	w.waitReady(v1, converge)

	v2 := w.pack("v2", smallObjects, true)
	bad := w.pack("bad3", smallObjects, false)
	f := w.reg.Inject(fault(w, v2, bad))
	w.tagLive(v2)
	w.reconcileNow()
	w.waitFailing("", v1, converge)
	// Let the controller retry into the fault (backoff 200ms, 400ms, ...).
	w.until("a second attempt into the fault", converge, func() bool { return f.Hits() >= 2 })
	rel := w.waitFailing("", v1, converge)
	w.t.Logf("during the fault (%d hits): %s", f.Hits(), describe(rel))
	f.Remove()

	w.waitReady(v2, converge)
}

// tagMoved: the controller resolves "live" to signed v2; before its answer
// reaches the controller, "live" moves to unsigned v3. The controller must
// apply v2 (the digest it verified), refuse v3 on the next reconcile with
// v2 whole, and converge on signed v4.
func tagMoved(w *world) {
	w.startController("a")
	v1 := w.push("v1", smallObjects, true)
	w.release(timeout)
	w.waitReady(v1, converge)

	v2 := w.pack("v2", smallObjects, true)
	bad := w.pack("bad3", smallObjects, false)
	var once sync.Once
	moved := make(chan struct{})
	live := w.path("manifests/live")
	remove := w.reg.AddHook(Hook{
		Match: func(r *http.Request) bool { return r.URL.Path == live },
		After: func(r *http.Request, resp *http.Response) {
			if resp.Header.Get("Docker-Content-Digest") != v2.digest {
				return
			}
			once.Do(func() {
				w.tagLive(bad)
				close(moved)
			})
		},
	})
	defer remove()
	w.tagLive(v2)
	w.reconcileNow()
	w.waitReady(v2, converge)
	select {
	case <-moved:
	default:
		w.t.Fatal("the tag was not moved while the controller resolved it: the case tested nothing")
	}

	w.reconcileNow()
	rel := w.waitFailing(bad.digest, v2, converge)
	if r := condReason(rel); r != v1alpha1.ReasonVerificationFailed {
		w.t.Errorf("unsigned %s: Ready reason %s, want %s", bad.digest, r, v1alpha1.ReasonVerificationFailed)
	}
	v4 := w.push("v4", smallObjects, true)
	w.waitReady(v4, converge)
}

func condReason(rel *v1alpha1.Release) string {
	for _, c := range rel.Status.Conditions {
		if c.Type == v1alpha1.ConditionReady {
			return c.Reason
		}
	}
	return ""
}

func apiserverCases() []faultCase {
	return []faultCase{
		{"apiserver-resets-mid-apply", func(w *world) {
			midApply(w, 1, func(c *controller) {
				// Every open connection reset, and each new one reset as it
				// arrives, for 2s.
				c.tcp.ResetNew(true)
				c.tcp.ResetAll()
				go func() {
					time.Sleep(2 * time.Second)
					c.tcp.ResetNew(false)
				}()
			})
		}},
		{"apiserver-restart-mid-apply", func(w *world) {
			midApply(w, 1, func(c *controller) {
				// Everything dropped, connections refused for 2s.
				c.tcp.Refuse()
				go func() {
					time.Sleep(2 * time.Second)
					if err := c.tcp.Accept(); err != nil {
						w.t.Error(err)
					}
				}()
			})
		}},
		{"apiserver-5xx-mid-apply", func(w *world) {
			midApply(w, 1, func(c *controller) {
				f := c.api.Inject(Fault{Name: "503 on applies", Kind: Status, Code: http.StatusServiceUnavailable,
					Match: func(r *http.Request) bool { _, ok := w.applied(r); return ok }})
				go func() {
					time.Sleep(2 * time.Second)
					f.Remove()
				}()
			})
		}},
		{"controller-sigkill-mid-apply", func(w *world) {
			midApply(w, 1, func(c *controller) { c.kill() })
		}},
		{"leader-killed-mid-apply", func(w *world) {
			// The leader stays dead, so the other process must take over.
			midApply(w, 2, func(c *controller) { c.crash() })
			for proc, n := range w.appliesBy() {
				if strings.HasPrefix(proc, "b#") && n > 0 {
					return
				}
			}
			w.t.Errorf("controller b never applied after the leader died: applies per process %v", w.appliesBy())
		}},
	}
}

// midApply: v1 (largeObjects ConfigMaps) is Ready; v2 is pushed, and after
// the controller's cutAfter-th apply of v2 the fault strikes the
// controller that sent it. The Release must converge on v2 with v1 whole
// until v2 is. With two controllers, the second starts once the first
// leads; it must not apply before the first dies.
func midApply(w *world, controllers int, fault func(*controller)) {
	a := w.startController("a")
	w.until("controller a to take the Lease", converge, func() bool { return leads(w, a) })
	for i := 1; i < controllers; i++ {
		w.startController(string(rune('a' + i)))
	}
	v1 := w.push("v1", largeObjects, true)
	w.release(timeout)
	w.waitReady(v1, converge)
	if controllers > 1 {
		for proc, n := range w.appliesBy() {
			if !strings.HasPrefix(proc, "a#") {
				w.violate("out of turn "+proc, "controller %s applied %d objects while a led", proc, n)
			}
		}
	}
	holder := leaseHolder(w)

	var (
		mu     sync.Mutex
		count  int
		struck = make(chan string, 1)
	)
	w.setApplyHook(func(c *controller, name string) {
		if !strings.HasPrefix(name, "v2-") {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		count++
		if count == cutAfter {
			inst := c.instance()
			fault(c)
			struck <- inst
		}
	})
	v2 := w.push("v2", largeObjects, true)
	w.reconcileNow()
	var victim string
	w.until("the fault in the middle of v2's apply", converge, func() bool {
		select {
		case victim = <-struck:
			return true
		default:
			return false
		}
	})
	w.waitReady(v2, converge)
	w.t.Logf("fault struck %s after %d applies of v2; applies per process: %v; Lease holder %s → %s",
		victim, cutAfter, w.appliesBy(), holder, leaseHolder(w))
	if controllers > 1 && leaseHolder(w) == holder {
		w.t.Errorf("the Lease is still held by %s after its holder was killed", holder)
	}
}

// leads reports whether c's current process has written the Lease.
func leads(w *world, c *controller) bool {
	inst := c.instance()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.events {
		if e.lease && e.proc == inst {
			return true
		}
	}
	return false
}

func leaseHolder(w *world) string {
	w.t.Helper()
	var l coordinationv1.Lease
	key := types.NamespacedName{Namespace: w.ns, Name: leaseName}
	if err := w.s.env.Client.Get(w.ctx, key, &l); err != nil {
		w.t.Fatalf("get the leader election Lease %s: %v", key, err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// leaseName is the leader election Lease of a world's controllers
// (--leader-election-id).
const leaseName = "airlock-controller.delivery.airlock.dev"
