package airgap_test

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"

	"airlock.dev/airlock/airgap"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/verify"
)

// upstreamApps is an upstream registry with signed artifacts team/appN:v1,
// each with a Deployment whose image team/imgN:1.0 is a random image.
type upstreamApps struct {
	up     *registry.Server
	key    *verify.PrivateKey
	policy verify.Policy
}

func newUpstreamApps(t *testing.T) *upstreamApps {
	t.Helper()
	priv, pub, err := verify.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	u := &upstreamApps{up: registrytest.New(t)}
	if u.key, err = verify.LoadPrivateKey(priv, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	pk, err := verify.LoadPublicKey("upstream.pub", pub)
	if err != nil {
		t.Fatal(err)
	}
	u.policy = verify.Policy{Keys: []verify.PublicKey{pk}}
	return u
}

// push writes a new random image team/img<i>:1.0 of size bytes and pushes
// and signs team/app<i>:v1 using it; the image's digest changes each time.
func (u *upstreamApps) push(t *testing.T, i int, size int64) {
	t.Helper()
	ctx := context.Background()
	img, err := random.Image(size, 2)
	if err != nil {
		t.Fatal(err)
	}
	image := fmt.Sprintf("%s/team/img%d:1.0", u.up.Addr, i)
	r, _ := name.ParseReference(image, name.Insecure)
	if err := ggcrremote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	app := t.TempDir()
	deploy := fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app%d\n  namespace: default\nspec:\n  selector:\n    matchLabels: {app: a}\n  template:\n    metadata:\n      labels: {app: a}\n    spec:\n      containers:\n      - name: a\n        image: %s\n", i, image)
	if err := os.WriteFile(filepath.Join(app, "deploy.yaml"), []byte(deploy), 0o644); err != nil {
		t.Fatal(err)
	}
	ref, _ := artifact.ParseReference(u.ref(i))
	pushed, err := artifact.Push(ctx, ref, app, artifact.PushOptions{Remote: plain, Source: "s", Revision: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify.Sign(ctx, pushed.Ref, u.key, nil, plain); err != nil {
		t.Fatal(err)
	}
}

func (u *upstreamApps) ref(i int) string {
	return fmt.Sprintf("oci://%s/team/app%d:v1", u.up.Addr, i)
}

func (u *upstreamApps) bundle(n int) *airgap.Bundle {
	b := &airgap.Bundle{}
	for i := 0; i < n; i++ {
		b.Artifacts = append(b.Artifacts, airgap.BundleArtifact{Ref: u.ref(i), WithImages: true})
	}
	return b
}

// writesTo starts a site registry that counts the requests that write
// (anything but GET and HEAD).
func writesTo(t *testing.T) (*registry.Server, *atomic.Int64) {
	t.Helper()
	var writes atomic.Int64
	s := registrytest.NewWithOptions(t, registry.Options{Observe: func(r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writes.Add(1)
		}
	}})
	return s, &writes
}

func size(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestBundleOfThreeImported: a bundle of three artifacts with their images
// is one tarball; the import verifies and relocates each, and each one's
// signature and image are at the mirror.
func TestBundleOfThreeImported(t *testing.T) {
	ctx := context.Background()
	u := newUpstreamApps(t)
	for i := 0; i < 3; i++ {
		u.push(t, i, 1024)
	}
	tarball := filepath.Join(t.TempDir(), "site.tar")
	bi, _, err := airgap.ExportBundle(ctx, u.bundle(3), tarball, airgap.BundleOptions{RelocateOptions: airgap.RelocateOptions{Src: plain}})
	if err != nil {
		t.Fatal(err)
	}
	if len(bi.Artifacts) != 3 || len(bi.Assumed) != 0 {
		t.Fatalf("bundle.json: %+v", bi)
	}
	u.up.Close()
	site := registrytest.New(t)
	m, _ := artifact.ParseMirror("oci://" + site.Addr + "/airgap")
	res, err := airgap.ImportBundle(ctx, tarball, m, airgap.ImportOptions{Dst: plain, Policy: u.policy})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("imported %d artifacts, want 3", len(res))
	}
	for i, r := range res {
		if !r.Verified {
			t.Fatalf("artifact %d not verified", i)
		}
		at, _ := artifact.ParseReference(fmt.Sprintf("oci://%s/airgap/team/app%d:v1", site.Addr, i))
		if _, err := verify.Verify(ctx, at, u.policy, plain); err != nil {
			t.Fatalf("app%d at the mirror: %v", i, err)
		}
		lock, err := artifact.FetchImagesLock(ctx, at.WithDigest(bi.Artifacts[i].Digest), plain)
		if err != nil || lock == nil || len(lock.Images) != 1 {
			t.Fatalf("app%d images lock at the mirror: %+v, %v", i, lock, err)
		}
		img, _ := artifact.ParseImage(lock.Images[0].Reference)
		if ok, err := artifact.Exists(ctx, artifact.MirrorImage(site.Addr, "airgap", img.WithDigest(lock.Images[0].Digest)), plain); err != nil || !ok {
			t.Fatalf("app%d image %s at the mirror: %v %v", i, lock.Images[0].Reference, ok, err)
		}
	}
	// Import, the one-artifact call, refuses a bundle of three.
	if _, err := airgap.Import(ctx, tarball, m, airgap.ImportOptions{Dst: plain, Policy: u.policy}); err == nil || !strings.Contains(err.Error(), "a bundle of 3 artifacts") {
		t.Fatalf("Import of a bundle: %v", err)
	}
}

// TestDifferentialExport: after a full export of three artifacts, one of
// them changes; the export --since the full one is smaller than a full
// export, imports onto the mirror that has the base, and is refused
// before any push onto an empty mirror, naming the missing blobs.
func TestDifferentialExport(t *testing.T) {
	ctx := context.Background()
	u := newUpstreamApps(t)
	for i := 0; i < 3; i++ {
		u.push(t, i, 64<<10)
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base.tar")
	opts := airgap.BundleOptions{RelocateOptions: airgap.RelocateOptions{Src: plain}}
	if _, _, err := airgap.ExportBundle(ctx, u.bundle(3), base, opts); err != nil {
		t.Fatal(err)
	}
	site := registrytest.New(t)
	m, _ := artifact.ParseMirror("oci://" + site.Addr + "/airgap")
	if _, err := airgap.ImportBundle(ctx, base, m, airgap.ImportOptions{Dst: plain, Policy: u.policy}); err != nil {
		t.Fatal(err)
	}

	u.push(t, 1, 64<<10) // app1 and its image change
	full := filepath.Join(dir, "full.tar")
	if _, _, err := airgap.ExportBundle(ctx, u.bundle(3), full, opts); err != nil {
		t.Fatal(err)
	}
	diff := filepath.Join(dir, "diff.tar")
	opts.Since = base
	bi, _, err := airgap.ExportBundle(ctx, u.bundle(3), diff, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(bi.Assumed) == 0 || size(t, diff) >= size(t, full) {
		t.Fatalf("differential: %d bytes, %d blobs assumed; full: %d bytes", size(t, diff), len(bi.Assumed), size(t, full))
	}
	t.Logf("full %d bytes, differential %d bytes, %d blobs assumed", size(t, full), size(t, diff), len(bi.Assumed))
	// Only app1's image changed (its artifact, which names the image by
	// tag, is the same digest): every artifact manifest and the unchanged
	// images travel as assumed, recorded in their repositories, not in the
	// tarball; app1's new image is carried.
	carried := tarBlobs(t, diff)
	assumed := map[string]string{}
	for _, a := range bi.Assumed {
		assumed[a.Digest] = a.Repository
	}
	for i, ba := range bi.Artifacts {
		repo := fmt.Sprintf("%s/team/app%d", u.up.Addr, i)
		if carried[ba.Digest] || assumed[ba.Digest] != repo {
			t.Fatalf("the unchanged artifact app%d %s: carried %v, assumed in %q, want assumed in %s", i, ba.Digest, carried[ba.Digest], assumed[ba.Digest], repo)
		}
		img := ba.ImagesLock.Images[0].Digest
		imgRepo := fmt.Sprintf("%s/team/img%d", u.up.Addr, i)
		switch {
		case i == 1 && (!carried[img] || assumed[img] != ""):
			t.Fatalf("the changed image of app1 %s is not carried", img)
		case i != 1 && (carried[img] || assumed[img] != imgRepo):
			t.Fatalf("the unchanged image of app%d %s: carried %v, assumed in %q, want assumed in %s", i, img, carried[img], assumed[img], imgRepo)
		}
	}

	// Onto an empty mirror: refused before any push, naming the missing blobs.
	empty, writes := writesTo(t)
	em, _ := artifact.ParseMirror("oci://" + empty.Addr + "/airgap")
	_, err = airgap.ImportBundle(ctx, diff, em, airgap.ImportOptions{Dst: plain, Policy: u.policy})
	var mb *artifact.MissingBlobsError
	if !errors.As(err, &mb) || len(mb.Missing) != len(bi.Assumed) || !strings.Contains(err.Error(), "nothing pushed") {
		t.Fatalf("differential onto an empty mirror: %v, want every one of %d assumed blobs missing", err, len(bi.Assumed))
	}
	for _, a := range bi.Assumed {
		if !strings.Contains(err.Error(), a.Digest) {
			t.Fatalf("the refusal does not name the missing blob %s: %v", a.Digest, err)
		}
	}
	if n := writes.Load(); n != 0 {
		t.Fatalf("a refused differential import made %d write requests to the mirror", n)
	}

	// The assumed artifacts' signatures are still verified, read from
	// the mirror: under another key, the first (unchanged) artifact is
	// refused, and nothing is pushed.
	_, otherPub, err := verify.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := verify.LoadPublicKey("other.pub", otherPub)
	if err != nil {
		t.Fatal(err)
	}
	_, err = airgap.ImportBundle(ctx, diff, m, airgap.ImportOptions{Dst: plain, Policy: verify.Policy{Keys: []verify.PublicKey{other}}})
	if err == nil || !strings.Contains(err.Error(), "team/app0") || !strings.Contains(err.Error(), "nothing pushed") {
		t.Fatalf("differential under another key: %v, want app0 (assumed) refused", err)
	}

	// Onto the mirror that has the base: every artifact verifies there,
	// app1 at its new digest.
	res, err := airgap.ImportBundle(ctx, diff, m, airgap.ImportOptions{Dst: plain, Policy: u.policy})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		at, _ := artifact.ParseReference(fmt.Sprintf("oci://%s/airgap/team/app%d:v1", site.Addr, i))
		got, err := verify.Verify(ctx, at, u.policy, plain)
		if err != nil || got.Digest != r.Upstream.Digest {
			t.Fatalf("app%d at the mirror after the differential: %+v, %v", i, got, err)
		}
	}
	// The next differential can start from this one's index.json alone.
	opts.Since = diff
	if _, _, err := airgap.ExportBundle(ctx, u.bundle(3), filepath.Join(dir, "next.tar"), opts); err != nil {
		t.Fatalf("export --since a differential: %v", err)
	}
}

// tarBlobs lists the blob digests a tarball carries.
func tarBlobs(t *testing.T, p string) map[string]bool {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if hex, ok := strings.CutPrefix(hdr.Name, "blobs/sha256/"); ok {
			out["sha256:"+hex] = true
		}
	}
}
