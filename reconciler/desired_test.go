package reconciler_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/reconciler"
)

// TestDriftCorrectedFromEvictedArtifact: the controller keeps a hash of a
// Release's objects, not the objects. A drift check rebuilds them from the
// artifact cache; when the cache has evicted the artifact (here: a cache
// bounded to 1 byte keeps nothing it does not use), the drift check pulls
// it again by digest through the Release's registry and still corrects the
// drift.
func TestDriftCorrectedFromEvictedArtifact(t *testing.T) {
	log := &requestLog{}
	h := newHarness(t, harnessOptions{observe: log.observe, cacheMaxBytes: 1})
	d := h.pushSigned("v1", "v1", map[string]string{
		"a.yaml": configMapYAML("a", map[string]string{"k": "1"}),
		"b.yaml": configMapYAML("b", map[string]string{"k": "1"}),
	})
	h.release("app", "v1", nil)
	h.readyAt("app", d)
	if got := h.rec.Cache.Bytes(); got != 0 {
		t.Fatalf("the artifact cache holds %d bytes after the apply, want 0 (bounded to 1 byte)", got)
	}

	first := log.len()
	cm := h.mustConfigMap("a")
	cm.Data["k"] = "changed by hand"
	if err := h.env.Client.Update(h.ctx, cm); err != nil {
		t.Fatal(err)
	}
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: "1"} })
	rel := h.eventually("app", "one drift correction", 20*time.Second, func(r *v1alpha1.Release) bool { return r.Status.DriftCorrections == 1 })
	if got := h.mustConfigMap("a").Data["k"]; got != "1" {
		t.Errorf("ConfigMap a k = %q after drift correction, want 1", got)
	}
	if rel.Status.LastAppliedDigest != d {
		t.Errorf("lastAppliedDigest = %s, want %s", rel.Status.LastAppliedDigest, d)
	}
	blobs := 0
	for _, r := range log.since(first) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/"+h.ns+"/app/blobs/") {
			blobs++
		}
	}
	if blobs == 0 {
		t.Errorf("the drift check read no blob of the evicted artifact: the objects did not come from the artifact")
	}
}

// TestCacheBoundedInBytes: the artifact cache evicts the least recently used
// artifact not in use once its extracted bytes exceed MaxBytes.
func TestCacheBoundedInBytes(t *testing.T) {
	c, err := reconciler.NewCache(filepath.Join(t.TempDir(), "cache"), 8)
	if err != nil {
		t.Fatal(err)
	}
	c.MaxBytes = 1500
	get := func(name string) (*reconciler.CachedArtifact, string) {
		manifest := []byte(`{"schemaVersion":2,"name":"` + name + `"}`)
		d := digest.FromBytes(manifest).String()
		a, err := c.Get(context.Background(), d, manifest, func(ctx context.Context, dir string) (*artifact.PullResult, error) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, err
			}
			return &artifact.PullResult{Digest: d}, os.WriteFile(filepath.Join(dir, "a.yaml"), make([]byte, 1000), 0o600)
		})
		if err != nil {
			t.Fatal(err)
		}
		return a, a.Dir
	}
	a1, dir1 := get("one")
	a2, dir2 := get("two")
	if got := c.Bytes(); got != 2000 {
		t.Errorf("with two artifacts in use: %d bytes, want 2000 (in use, so kept above the bound)", got)
	}
	a1.Release()
	if _, err := os.Stat(dir1); !os.IsNotExist(err) {
		t.Errorf("the first artifact, released, is still on disk above the bound: %v", err)
	}
	a2.Release()
	if _, err := os.Stat(dir2); err != nil {
		t.Errorf("the second artifact, within the bound: %v", err)
	}
	if got := c.Bytes(); got != 1000 {
		t.Errorf("cache holds %d bytes, want 1000", got)
	}
}
