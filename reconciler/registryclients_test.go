package reconciler_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/reconciler"
)

// requestLog records the registry requests a test's controller makes.
type requestLog struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (l *requestLog) observe(r *http.Request) {
	l.mu.Lock()
	l.reqs = append(l.reqs, r.Clone(r.Context()))
	l.mu.Unlock()
}

func (l *requestLog) since(i int) []*http.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*http.Request{}, l.reqs[i:]...)
}

func (l *requestLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

// traffic is what the controller asked of the registry for one new digest.
type traffic struct {
	connections   int64 // new TCP connections
	requests      int   // HTTP requests
	anonymous     int   // requests without an Authorization header (auth handshakes)
	manifestReads int   // GETs of the artifact's manifest
}

// newDigestTraffic runs one Release of a new signed digest, with a pull
// Secret, against a registry that refuses anonymous access, and counts the
// controller's registry traffic from the Release's creation until it is Ready.
func newDigestTraffic(tb testing.TB) traffic {
	log := &requestLog{}
	h := newHarness(tb, harnessOptions{private: true, observe: log.observe})
	h.pullSecret("registry", h.user, h.password)
	d := h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", nil)})

	conns, first := h.reg.Connections(), log.len()
	h.release("app", "v1", func(r *v1alpha1.Release) { r.Spec.SecretRef = &v1alpha1.LocalObjectReference{Name: "registry"} })
	h.readyAt("app", d)

	t := traffic{connections: h.reg.Connections() - conns}
	manifest := "/v2/" + h.ns + "/app/manifests/" + d
	for _, r := range log.since(first) {
		t.requests++
		if r.Header.Get("Authorization") == "" {
			t.anonymous++
		}
		if r.Method == http.MethodGet && r.URL.Path == manifest {
			t.manifestReads++
		}
	}
	return t
}

// TestNewDigestOneConnection: resolve, verify and pull of a new digest share
// one registry client: one connection, one auth handshake, and the
// artifact's manifest read once (verify's copy is the one pulled).
func TestNewDigestOneConnection(t *testing.T) {
	got := newDigestTraffic(t)
	t.Logf("new digest: %d connections, %d requests (%d without credentials), %d reads of the artifact manifest",
		got.connections, got.requests, got.anonymous, got.manifestReads)
	if got.connections != 1 {
		t.Errorf("the controller opened %d connections to the registry for one new digest, want 1", got.connections)
	}
	if got.manifestReads != 1 {
		t.Errorf("the controller read the artifact manifest %d times, want 1", got.manifestReads)
	}
	if got.anonymous > 1 {
		t.Errorf("the controller made %d requests without credentials (auth handshakes), want at most 1", got.anonymous)
	}
}

// BenchmarkNewDigestRegistryTraffic reports the registry traffic of one new
// digest (resolve + verify + pull) with a pull Secret:
//
//	go test ./reconciler -run '^$' -bench NewDigestRegistryTraffic -benchtime 1x
func BenchmarkNewDigestRegistryTraffic(b *testing.B) {
	for range b.N {
		got := newDigestTraffic(b)
		b.ReportMetric(float64(got.connections), "conns/digest")
		b.ReportMetric(float64(got.requests), "requests/digest")
		b.ReportMetric(float64(got.anonymous), "auth-handshakes/digest")
		b.ReportMetric(float64(got.manifestReads), "manifest-reads/digest")
	}
}

// failsOnRegistryAccess waits until the Release fails to reach the registry
// with its own credentials (RegistryAuthFailed, or ArtifactNotFound when the
// registry hides what it does not let the caller see), and checks that it
// never applied anything.
func (h *harness) failsOnRegistryAccess(name string) {
	h.t.Helper()
	rel := h.eventually(name, "Ready=False RegistryAuthFailed or ArtifactNotFound", 30*time.Second, func(rel *v1alpha1.Release) bool {
		c := condition(rel, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse &&
			(c.Reason == v1alpha1.ReasonRegistryAuthFailed || c.Reason == v1alpha1.ReasonArtifactNotFound)
	})
	if rel.Status.LastAppliedDigest != "" {
		h.t.Errorf("Release %s applied %s without access to the registry", name, rel.Status.LastAppliedDigest)
	}
}

// TestControllerIgnoresCredsEnvironment: AIRLOCK_REGISTRY_CREDS in the
// controller's environment is not a credential of any Release. Each Release
// uses its own secretRef, and one without goes anonymous.
func TestControllerIgnoresCredsEnvironment(t *testing.T) {
	t.Setenv("AIRLOCK_REGISTRY_CREDS", "owner:s3cret")
	h := newHarness(t, harnessOptions{private: true})
	h.pullSecret("right", h.user, h.password)
	h.pullSecret("wrong", h.user, "not-the-password")
	d := h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", nil)})

	h.release("own", "v1", func(r *v1alpha1.Release) { r.Spec.SecretRef = &v1alpha1.LocalObjectReference{Name: "right"} })
	h.release("anonymous", "v1", nil)
	h.release("wrong", "v1", func(r *v1alpha1.Release) { r.Spec.SecretRef = &v1alpha1.LocalObjectReference{Name: "wrong"} })
	h.readyAt("own", d)
	h.failsOnRegistryAccess("anonymous")
	h.failsOnRegistryAccess("wrong")
}

// TestCacheNeverCrossesCredentials: a Release pinned to a digest that another
// Release pulled into the cache gets it only when its own registry, with its
// own credentials, serves that digest.
func TestCacheNeverCrossesCredentials(t *testing.T) {
	h := newHarness(t, harnessOptions{private: true, allowUnsigned: true})
	h.pullSecret("tenant-a", h.user, h.password)
	d := h.push("v1", "v1", map[string]string{"private.yaml": configMapYAML("private", map[string]string{"secret": "of tenant a"})}, nil)
	h.release("a", "v1", func(r *v1alpha1.Release) {
		r.Spec.Verify = nil
		r.Spec.SecretRef = &v1alpha1.LocalObjectReference{Name: "tenant-a"}
	})
	h.readyAt("a", d)

	h.release("b", "", func(r *v1alpha1.Release) {
		r.Spec.Verify = nil
		r.Spec.Ref = v1alpha1.ArtifactRef{Digest: d}
	})
	h.failsOnRegistryAccess("b")
}

// TestCacheRequiresManifest: the cache serves a digest only with a manifest
// that hashes to it.
func TestCacheRequiresManifest(t *testing.T) {
	c, err := reconciler.NewCache(filepath.Join(t.TempDir(), "cache"), 2)
	if err != nil {
		t.Fatal(err)
	}
	manifest := []byte(`{"schemaVersion":2}`)
	d := digest.FromBytes(manifest).String()
	pull := func(ctx context.Context, dir string) (*artifact.PullResult, error) {
		return &artifact.PullResult{Digest: d}, os.MkdirAll(dir, 0o700)
	}
	for name, m := range map[string][]byte{"no manifest": nil, "another manifest": []byte(`{"schemaVersion":2 }`)} {
		if _, err := c.Get(context.Background(), d, m, pull); !errors.Is(err, reconciler.ErrNoManifestProof) {
			t.Errorf("%s: got %v, want ErrNoManifestProof", name, err)
		}
	}
	a, err := c.Get(context.Background(), d, manifest, pull)
	if err != nil {
		t.Fatalf("with the digest's manifest: %v", err)
	}
	a.Release()
}
