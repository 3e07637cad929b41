package registry_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry/remote"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/internal/registrytest"
)

// blobFile is where the filesystem storage keeps a blob's bytes.
func blobFile(storage, dgst string) string {
	hex := strings.TrimPrefix(dgst, "sha256:")
	return filepath.Join(storage, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// TestGarbageCollectDeletesOverwrittenArtifact: an artifact whose tag was
// pushed over is untagged; gc --delete-untagged removes its manifest and
// layer from the disk, and the artifact now under the tag still pulls.
func TestGarbageCollectDeletesOverwrittenArtifact(t *testing.T) {
	ctx := context.Background()
	storage := t.TempDir()
	reg := registrytest.NewWithOptions(t, registry.Options{StorageDir: storage})
	old := pushApp(t, reg.Addr, "demo/app:v1", "kind: ConfigMap # one\n")
	cur := pushApp(t, reg.Addr, "demo/app:v1", "kind: ConfigMap # two\n")
	if old.Digest == cur.Digest || old.LayerDigest == cur.LayerDigest {
		t.Fatal("the two pushes have the same content")
	}
	oldLayer, oldManifest := blobFile(storage, old.LayerDigest), blobFile(storage, old.Digest)
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}

	// Without --delete-untagged the old manifest stays, and with it its layer.
	res, err := registry.GarbageCollect(ctx, storage, registry.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Blobs) != 0 || len(res.Manifests) != 0 || !exists(t, oldLayer) {
		t.Fatalf("gc without delete-untagged deleted %+v", res)
	}

	wantManifests := []registry.GCManifest{{Repository: "demo/app", Digest: digest.Digest(old.Digest)}}
	wantBlobs := map[digest.Digest]bool{digest.Digest(old.Digest): true, digest.Digest(old.LayerDigest): true}
	check := func(res *registry.GCResult, dryRun bool) {
		t.Helper()
		if diff := cmp.Diff(wantManifests, res.Manifests); diff != "" {
			t.Errorf("manifests (-want +got):\n%s", diff)
		}
		var sum int64
		got := map[digest.Digest]bool{}
		for _, b := range res.Blobs {
			got[b.Digest] = true
			if b.Size <= 0 {
				t.Errorf("blob %s: size %d", b.Digest, b.Size)
			}
			sum += b.Size
		}
		if diff := cmp.Diff(wantBlobs, got); diff != "" {
			t.Errorf("blobs (-want +got):\n%s", diff)
		}
		if res.Links == 0 {
			t.Errorf("no tag entry or layer link of the old artifact removed")
		}
		if res.Bytes != sum || res.Bytes < old.LayerSize || res.DryRun != dryRun {
			t.Errorf("bytes %d (blobs sum %d, old layer %d), dry run %v", res.Bytes, sum, old.LayerSize, res.DryRun)
		}
	}

	// A dry run reports exactly what the real run deletes, and deletes nothing.
	res, err = registry.GarbageCollect(ctx, storage, registry.GCOptions{DryRun: true, DeleteUntagged: true})
	if err != nil {
		t.Fatal(err)
	}
	check(res, true)
	if !exists(t, oldLayer) || !exists(t, oldManifest) {
		t.Fatal("the dry run deleted blobs")
	}

	res, err = registry.GarbageCollect(ctx, storage, registry.GCOptions{DeleteUntagged: true})
	if err != nil {
		t.Fatal(err)
	}
	check(res, false)
	if exists(t, oldLayer) || exists(t, oldManifest) {
		t.Fatal("the old artifact's layer or manifest is still on disk")
	}
	if !exists(t, blobFile(storage, cur.LayerDigest)) || !exists(t, blobFile(storage, cur.Digest)) {
		t.Fatal("gc deleted the tagged artifact's blobs")
	}

	// Serve the same storage again: the tag pulls, the old digest is gone.
	reg = registrytest.NewWithOptions(t, registry.Options{StorageDir: storage})
	ref, err := artifact.ParseReference("oci://" + reg.Addr + "/demo/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	pulled, err := artifact.Pull(ctx, ref, out, artifact.PullOptions{Remote: plainHTTP})
	if err != nil {
		t.Fatalf("pull after gc: %v", err)
	}
	if pulled.Digest != cur.Digest {
		t.Fatalf("pulled %s, want %s", pulled.Digest, cur.Digest)
	}
	if b, err := os.ReadFile(filepath.Join(out, "app.yaml")); err != nil || string(b) != "kind: ConfigMap # two\n" {
		t.Fatalf("pulled app.yaml = %q, %v", b, err)
	}
	if _, err := artifact.Pull(ctx, ref.WithDigest(old.Digest), filepath.Join(t.TempDir(), "old"), artifact.PullOptions{Remote: plainHTTP}); err == nil {
		t.Fatal("the collected artifact still pulls by digest")
	}
}

// TestGarbageCollectRefusesWhileServing: the collector is not safe
// alongside pushes, so it refuses storage a registry serves, naming the
// lock and its holder; a second registry on the same storage is refused too.
func TestGarbageCollectRefusesWhileServing(t *testing.T) {
	ctx := context.Background()
	storage := t.TempDir()
	reg := registrytest.NewWithOptions(t, registry.Options{StorageDir: storage})
	pushApp(t, reg.Addr, "demo/app:v1", "kind: ConfigMap\n")

	lock := filepath.Join(storage, registry.LockFileName)
	_, err := registry.GarbageCollect(ctx, storage, registry.GCOptions{DeleteUntagged: true})
	if !errors.Is(err, registry.ErrStorageLocked) || !strings.Contains(err.Error(), lock) || !strings.Contains(err.Error(), "process "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("gc on served storage: %v, want ErrStorageLocked naming %s and this process", err, lock)
	}
	if _, err := registry.Start(ctx, "127.0.0.1:0", registry.Options{StorageDir: storage}); !errors.Is(err, registry.ErrStorageLocked) {
		t.Fatalf("a second registry on the same storage: %v, want ErrStorageLocked", err)
	}

	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.GarbageCollect(ctx, storage, registry.GCOptions{DeleteUntagged: true}); err != nil {
		t.Fatalf("gc once the registry stopped: %v", err)
	}
}

func TestGarbageCollectNeedsRegistryStorage(t *testing.T) {
	ctx := context.Background()
	for name, dir := range map[string]string{
		"missing": filepath.Join(t.TempDir(), "nope"),
		"empty":   t.TempDir(),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := registry.GarbageCollect(ctx, dir, registry.GCOptions{}); err == nil || !strings.Contains(err.Error(), dir) {
				t.Fatalf("gc of %s: %v, want an error naming it", dir, err)
			}
		})
	}
}

// TestGarbageCollectKeepsReferrers: distribution has no referrers API, so
// clients list an artifact's OCI 1.1 referrers (signatures, SBOMs) in a
// tagged index (the referrers tag schema); --delete-untagged keeps them.
func TestGarbageCollectKeepsReferrers(t *testing.T) {
	ctx := context.Background()
	storage := t.TempDir()
	reg := registrytest.NewWithOptions(t, registry.Options{StorageDir: storage})
	res := pushApp(t, reg.Addr, "demo/app:v1", "kind: ConfigMap\n")
	repo, err := remote.NewRepository(reg.Addr + "/demo/app")
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	subject, err := repo.Resolve(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	referrer, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.example.sbom", oras.PackManifestOptions{
		Subject:             &subject,
		ManifestAnnotations: map[string]string{ocispec.AnnotationCreated: "2026-01-01T00:00:00Z"},
	})
	if err != nil {
		t.Fatalf("push a referrer of %s: %v", res.Digest, err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}

	gc, err := registry.GarbageCollect(ctx, storage, registry.GCOptions{DeleteUntagged: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(gc.Manifests) != 0 || len(gc.Blobs) != 0 {
		t.Fatalf("gc deleted %+v, want nothing", gc)
	}
	if !exists(t, blobFile(storage, referrer.Digest.String())) {
		t.Fatal("the referrer's manifest is gone from disk")
	}

	reg = registrytest.NewWithOptions(t, registry.Options{StorageDir: storage})
	repo, err = remote.NewRepository(reg.Addr + "/demo/app")
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	var found []digest.Digest
	if err := repo.Referrers(ctx, subject, "", func(page []ocispec.Descriptor) error {
		for _, d := range page {
			found = append(found, d.Digest)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]digest.Digest{referrer.Digest}, found); diff != "" {
		t.Fatalf("referrers after gc (-want +got):\n%s", diff)
	}
	if _, err := repo.Resolve(ctx, referrer.Digest.String()); err != nil {
		t.Fatalf("resolve the referrer after gc: %v", err)
	}
}
