package faults

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

// worldLabel selects a world's Release for its controllers only
// (--watch-label-selector), so that worlds can run side by side.
const worldLabel = "faults.airlock.dev/world"

// world is one iteration of one case: a namespace, a Release, its
// artifact versions in the shared registry behind the world's own registry
// proxy, the world's controller processes, and the invariants' record.
type world struct {
	t   *testing.T
	s   *suite
	ctx context.Context
	ns  string
	dir string
	reg *HTTPProxy

	mu         sync.Mutex
	versions   []*version
	baseline   int // index in versions of the last version seen Ready; -1 before
	violations []string
	violated   map[string]bool
	events     []apiEvent
	ctrls      []*controller
	applyHook  func(c *controller, name string)
	snapshots  int
}

// version is one artifact pushed in a world. Its objects are ConfigMaps
// named <label>-<i>, each with data.version=<label>, and the shared
// ConfigMap "marker" with the same data.
type version struct {
	label  string
	signed bool
	digest string
	layer  string
	size   int64
	names  []string
}

// apiEvent is a request a controller process sent: an apply, or a Lease
// write the API server accepted.
type apiEvent struct {
	proc   string
	lease  bool
	object string
}

func (s *suite) newWorld(t *testing.T) *world {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &world{t: t, s: s, ctx: ctx, ns: s.env.Namespace(t), dir: t.TempDir(), baseline: -1}
	reg, err := StartHTTP(HTTPOptions{Target: mustURL("http://" + s.reg.Addr)})
	if err != nil {
		t.Fatal(err)
	}
	w.reg = reg
	w.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cosign-keys", Namespace: w.ns}, Data: map[string][]byte{"release.pub": s.pub}})

	// The invariants are checked on a snapshot of the namespace every 50ms
	// for as long as the world lives, not only at the end.
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				w.checkSnapshot(ctx)
			}
		}
	}()
	// Cleanups run last-in first-out: this one runs after the controllers
	// have stopped.
	t.Cleanup(func() {
		cancel()
		<-done
		_ = reg.Close()
		w.checkSnapshot(context.Background())
		w.checkLeadership()
		w.mu.Lock()
		defer w.mu.Unlock()
		s.count(len(w.violations))
		for _, v := range w.violations {
			t.Errorf("VIOLATION: %s", v)
		}
		if t.Failed() {
			for _, c := range w.ctrls {
				t.Log(c.logTail())
			}
		}
		t.Logf("%d snapshots checked, %d applies and Lease writes recorded", w.snapshots, len(w.events))
	})
	return w
}

// violate records a violation once per key (one bad object, one pruned
// version, one process applying out of turn), however many snapshots see it.
func (w *world) violate(key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.violated == nil {
		w.violated = map[string]bool{}
	}
	if !w.violated[key] {
		w.violated[key] = true
		w.violations = append(w.violations, msg)
	}
}

func (w *world) record(e apiEvent) {
	w.mu.Lock()
	w.events = append(w.events, e)
	w.mu.Unlock()
}

// onApply runs the case's hook for each apply a controller sends.
func (w *world) onApply(c *controller, name string) {
	w.mu.Lock()
	h := w.applyHook
	w.mu.Unlock()
	if h != nil {
		h(c, name)
	}
}

func (w *world) setApplyHook(h func(c *controller, name string)) {
	w.mu.Lock()
	w.applyHook = h
	w.mu.Unlock()
}

// checkSnapshot reads the namespace's ConfigMaps in one list and checks
// that every one of them carries a signed version's data, and that the
// last version seen Ready is still whole unless a later signed version is
// whole (then it may have been pruned, after that version's apply).
func (w *world) checkSnapshot(ctx context.Context) {
	var list corev1.ConfigMapList
	if err := w.s.env.Client.List(ctx, &list, client.InNamespace(w.ns)); err != nil {
		return // the world is ending; the last check runs without a deadline
	}
	w.mu.Lock()
	versions := slices.Clone(w.versions)
	baseline := w.baseline
	w.snapshots++
	w.mu.Unlock()
	byLabel := map[string]*version{}
	for _, v := range versions {
		byLabel[v.label] = v
	}
	present := map[string]string{}
	for _, cm := range list.Items {
		label, ok := cm.Data["version"]
		if !ok {
			continue
		}
		present[cm.Name] = label
		if v := byLabel[label]; v == nil || !v.signed {
			w.violate("unverified "+cm.Name, "ConfigMap %s/%s carries data of %q, which is not a signed version (its digest %s): unverified content reached the cluster",
				w.ns, cm.Name, label, digestOf(v))
		}
	}
	if baseline < 0 {
		return
	}
	var missing []string
	for i, v := range versions[baseline:] {
		m := v.missing(present)
		if len(m) == 0 && v.signed {
			return
		}
		if i == 0 {
			missing = m
		}
	}
	w.violate("pruned "+versions[baseline].label, "objects of %s (last seen Ready) are missing or changed and no later signed version is whole: %s: something was pruned or overwritten after a failed pull, verify or apply",
		versions[baseline].label, strings.Join(missing, ", "))
}

func digestOf(v *version) string {
	if v == nil {
		return "unknown"
	}
	return v.digest
}

// missing lists the version's objects that are absent or carry other data.
func (v *version) missing(present map[string]string) []string {
	var m []string
	for _, n := range v.names {
		if present[n] != v.label {
			m = append(m, n)
		}
	}
	return m
}

// checkLeadership checks that every apply came from the process that last
// wrote the Lease: no two controllers applied at once, and none applied
// before it led.
func (w *world) checkLeadership() {
	w.mu.Lock()
	events := slices.Clone(w.events)
	w.mu.Unlock()
	leader := ""
	for _, e := range events {
		if e.lease {
			leader = e.proc
			continue
		}
		if e.proc != leader {
			w.violate("out of turn "+e.proc, "controller %s applied ConfigMap %s while the Lease was last written by %q: two controllers applied at once", e.proc, e.object, leader)
		}
	}
}

// appliesBy counts the applies each process sent.
func (w *world) appliesBy() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := map[string]int{}
	for _, e := range w.events {
		if !e.lease {
			n[e.proc]++
		}
	}
	return n
}

func (w *world) create(obj client.Object) {
	w.t.Helper()
	if err := w.s.env.Client.Create(w.ctx, obj); err != nil {
		w.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func (w *world) remote() artifact.RemoteOptions {
	return artifact.RemoteOptions{PlainHTTPInsecure: true, Keychain: emptyKeychain{}}
}

// repo is the world's repository in the registry, as the test reaches it
// (directly) and as the controller does (through the proxy).
func (w *world) repo() string         { return w.ns + "/app" }
func (w *world) directURL() string    { return "oci://" + w.s.reg.Addr + "/" + w.repo() }
func (w *world) releaseURL() string   { return "oci://" + w.reg.Addr + "/" + w.repo() }
func (w *world) path(p string) string { return "/v2/" + w.repo() + "/" + p }

// push packs n ConfigMaps of a new version, pushes it under its own tag,
// signs it (or not) and only then moves the "live" tag to it, so that
// "live" never names a signed version before its signature exists.
func (w *world) push(label string, n int, signed bool) *version {
	w.t.Helper()
	v := w.pack(label, n, signed)
	w.tagLive(v)
	return v
}

// pack pushes and signs a version without moving "live".
func (w *world) pack(label string, n int, signed bool) *version {
	w.t.Helper()
	v := &version{label: label, signed: signed}
	// Known before it exists anywhere, so a snapshot can judge it.
	w.mu.Lock()
	w.versions = append(w.versions, v)
	w.mu.Unlock()
	dir := filepath.Join(w.dir, "src", label)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	cm := func(name string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  version: %q\n", name, label)
	}
	for i := range n {
		name := fmt.Sprintf("%s-%d", label, i)
		v.names = append(v.names, name)
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(cm(name)), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "marker.yaml"), []byte(cm("marker")), 0o644); err != nil {
		w.t.Fatal(err)
	}
	ref, err := artifact.ParseReference(w.directURL() + ":" + label)
	if err != nil {
		w.t.Fatal(err)
	}
	res, err := artifact.Push(w.ctx, ref, dir, artifact.PushOptions{Remote: w.remote(), Source: "https://git.example.com/faults", Revision: label})
	if err != nil {
		w.t.Fatalf("push %s: %v", label, err)
	}
	v.digest, v.layer, v.size = res.Digest, res.LayerDigest, res.LayerSize
	if signed {
		if _, err := verify.Sign(w.ctx, res.Ref, w.s.key, nil, w.remote()); err != nil {
			w.t.Fatalf("sign %s: %v", label, err)
		}
	}
	return v
}

// tagLive points the "live" tag at v.
func (w *world) tagLive(v *version) {
	w.t.Helper()
	ref, err := artifact.ParseReference(w.directURL() + "@" + v.digest)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := artifact.Tag(w.ctx, ref, []string{"live"}, w.remote()); err != nil {
		w.t.Fatalf("tag %s as live: %v", v.label, err)
	}
}

// blob reads a blob of the world's repository straight from the registry.
func (w *world) blob(digest string) []byte {
	w.t.Helper()
	resp, err := http.Get("http://" + w.s.reg.Addr + w.path("blobs/"+digest))
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		w.t.Fatalf("read blob %s: %s %v", digest, resp.Status, err)
	}
	return b
}

// release creates the world's Release of the "live" tag.
func (w *world) release(timeout time.Duration) {
	w.t.Helper()
	w.create(&v1alpha1.Release{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: w.ns, Labels: map[string]string{worldLabel: w.ns}},
		Spec: v1alpha1.ReleaseSpec{
			URL:           w.releaseURL(),
			Ref:           v1alpha1.ArtifactRef{Tag: "live"},
			Interval:      metav1.Duration{Duration: time.Hour},
			RetryInterval: &metav1.Duration{Duration: 2 * time.Second},
			Timeout:       &metav1.Duration{Duration: timeout},
			Insecure:      true,
			Verify:        &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "cosign-keys"}},
		},
	})
}

// reconcileNow asks the controller for a reconcile (the Release's interval
// is an hour, so nothing else starts one).
func (w *world) reconcileNow() {
	w.t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.ReconcileRequestAnnotation, strconv.FormatInt(time.Now().UnixNano(), 10))
	rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: w.ns}}
	if err := w.s.env.Client.Patch(w.ctx, rel, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		w.t.Fatalf("request a reconcile of Release %s/app: %v", w.ns, err)
	}
}

func (w *world) get() *v1alpha1.Release {
	w.t.Helper()
	rel := &v1alpha1.Release{}
	if err := w.s.env.Client.Get(w.ctx, types.NamespacedName{Namespace: w.ns, Name: "app"}, rel); err != nil {
		w.t.Fatalf("get Release %s/app: %v", w.ns, err)
	}
	return rel
}

// waitFor polls the Release until cond holds, for at most timeout.
func (w *world) waitFor(what string, timeout time.Duration, cond func(*v1alpha1.Release) bool) *v1alpha1.Release {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rel := w.get()
		if cond(rel) {
			return rel
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("Release %s/app: timed out after %s waiting for %s; status:\n%s", w.ns, timeout, what, describe(rel))
		}
		w.stopOnViolation(what)
		time.Sleep(100 * time.Millisecond)
	}
}

// stopOnViolation ends the case at the first violation (the world's
// cleanup reports it) instead of waiting for a state that may never come.
func (w *world) stopOnViolation(what string) {
	w.t.Helper()
	w.mu.Lock()
	n := len(w.violations)
	w.mu.Unlock()
	if n > 0 {
		w.t.Fatalf("stopped waiting for %s: an invariant was violated", what)
	}
}

// until polls cond (not the Release) for at most timeout.
func (w *world) until(what string, timeout time.Duration, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out after %s waiting for %s; Release status:\n%s", timeout, what, describe(w.get()))
		}
		w.stopOnViolation(what)
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReady waits until v is applied and Ready, then holds v as the
// version that must stay whole until a later signed one is.
func (w *world) waitReady(v *version, timeout time.Duration) {
	w.t.Helper()
	w.waitFor("Ready=True on "+v.label+" ("+v.digest+")", timeout, func(rel *v1alpha1.Release) bool {
		return ready(rel) && rel.Status.LastAppliedDigest == v.digest && rel.Status.ObservedGeneration == rel.Generation
	})
	w.mu.Lock()
	w.baseline = slices.Index(w.versions, v)
	w.mu.Unlock()
}

// waitFailing waits until the Release reports a failure of attempt (the
// digest it resolved; "" for any) while still holding applied.
func (w *world) waitFailing(attempt string, applied *version, timeout time.Duration) *v1alpha1.Release {
	w.t.Helper()
	return w.waitFor("Ready=False with "+applied.label+" still applied", timeout, func(rel *v1alpha1.Release) bool {
		c := meta.FindStatusCondition(rel.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && rel.Status.LastAppliedDigest == applied.digest &&
			(attempt == "" || rel.Status.LastAttemptedDigest == attempt)
	})
}

func ready(rel *v1alpha1.Release) bool {
	return meta.IsStatusConditionTrue(rel.Status.Conditions, v1alpha1.ConditionReady)
}

func describe(rel *v1alpha1.Release) string {
	var b strings.Builder
	for _, c := range rel.Status.Conditions {
		fmt.Fprintf(&b, "  %s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
	}
	fmt.Fprintf(&b, "  lastAttempted=%s lastApplied=%s inventory=%d", rel.Status.LastAttemptedDigest, rel.Status.LastAppliedDigest, len(rel.Status.Inventory))
	return b.String()
}

// emptyKeychain keeps the tests away from the machine's docker config.
type emptyKeychain struct{}

func (emptyKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.Anonymous, nil
}
