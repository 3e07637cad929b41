package artifact_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/yaml"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/internal/tlstest"
	"airlock.dev/airlock/verify"

	"airlock.dev/airlock/internal/testtree"
)

// upstreamFixture pushes a two-platform image and a signed artifact whose
// Deployment uses it, to a fresh "upstream" registry.
type upstreamFixture struct {
	addr      string
	image     string // as written in the Deployment (by tag)
	artifact  artifact.Reference
	policy    verify.Policy
	requests  func() int64
	stop      func()
	deployDir string
}

func newUpstream(t *testing.T) *upstreamFixture {
	t.Helper()
	up := registrytest.New(t)
	ctx := context.Background()
	idx, err := random.Index(512, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	image := up.Addr + "/team/svc:1.0"
	iref, err := name.ParseReference(image, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := ggcrremote.WriteIndex(iref, idx, ggcrremote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	dir := testtree.Write(t, map[string]string{
		"deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc\nspec:\n  template:\n    spec:\n      initContainers:\n      - name: init\n        image: " + image + "\n      containers:\n      - name: svc\n        image: " + image + "\n",
	})
	res, err := artifact.Push(ctx, mustRef(t, "oci://"+up.Addr+"/team/app:v1"), dir, artifact.PushOptions{Remote: plainHTTP, Source: "https://example.com/app.git", Revision: revision})
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := verify.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := verify.LoadPrivateKey(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify.Sign(ctx, res.Ref, key, nil, plainHTTP); err != nil {
		t.Fatal(err)
	}
	pk, err := verify.LoadPublicKey("upstream.pub", pub)
	if err != nil {
		t.Fatal(err)
	}
	return &upstreamFixture{addr: up.Addr, image: image, artifact: res.Ref, policy: verify.Policy{Keys: []verify.PublicKey{pk}},
		requests: up.Requests, stop: func() { up.Close() }, deployDir: dir}
}

func imagesOf(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "deploy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	return artifact.Images([]map[string]any{obj})
}

func TestExportImportAirGap(t *testing.T) {
	ctx := context.Background()
	up := newUpstream(t)
	images := imagesOf(t, up.deployDir)
	if len(images) != 1 || images[0] != up.image {
		t.Fatalf("image discovery found %v, want [%s]", images, up.image)
	}

	tarball := filepath.Join(t.TempDir(), "site.tar")
	f, err := os.Create(tarball)
	if err != nil {
		t.Fatal(err)
	}
	lock, relocated, err := artifact.Export(ctx, up.artifact.WithDigest(""), f, artifact.RelocateOptions{Src: plainHTTP, Images: images})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(lock.Images) != 1 || !strings.HasPrefix(lock.Images[0].Digest, "sha256:") {
		t.Fatalf("images.lock = %+v", lock)
	}
	roles := map[string]int{}
	for _, r := range relocated {
		roles[r.Role]++
	}
	if roles["artifact"] != 1 || roles["signature"] != 1 || roles["image"] != 1 {
		t.Fatalf("export wrote %v, want the artifact, its signature and the image", roles)
	}

	// The gap: upstream is gone, and is never contacted again.
	before := up.requests()
	up.stop()

	site := registrytest.New(t)
	a, err := artifact.OpenArchive(ctx, tarball)
	if err != nil {
		t.Fatal(err)
	}
	mirror, err := artifact.ParseMirror("oci://" + site.Addr + "/mirror")
	if err != nil {
		t.Fatal(err)
	}
	imported, err := artifact.Import(ctx, a, mirror, artifact.ImportOptions{Dst: plainHTTP, ContentImages: images})
	if err != nil {
		t.Fatal(err)
	}
	if len(imported) != 5 {
		t.Fatalf("imported %+v, want the image, its tag, the artifact, its images lock and its signature", imported)
	}
	if up.requests() != before {
		t.Fatalf("upstream got %d requests after the export", up.requests()-before)
	}

	// Same digest at the mirror, and the upstream signature still verifies there.
	atSite := mustRef(t, "oci://"+site.Addr+"/mirror/team/app:v1")
	res, err := verify.Verify(ctx, atSite, up.policy, plainHTTP)
	if err != nil {
		t.Fatalf("upstream signature does not verify at the mirror: %v", err)
	}
	if res.Digest != up.artifact.Digest {
		t.Fatalf("digest changed across the gap: %s → %s", up.artifact.Digest, res.Digest)
	}
	// The image is there by digest, all platforms.
	img := mustRef(t, "oci://"+site.Addr+"/mirror/team/svc@"+lock.Images[0].Digest)
	if _, err := artifact.Resolve(ctx, img.WithTag("x").WithDigest(img.Digest), plainHTTP); err != nil {
		t.Fatal(err)
	}
	// And by the tag the lock pinned, pointing at the pinned digest, for a
	// node whose runtime mirrors the upstream tag to the site.
	if tagged, err := artifact.Resolve(ctx, mustRef(t, "oci://"+site.Addr+"/mirror/team/svc:1.0"), plainHTTP); err != nil || tagged.Digest != lock.Images[0].Digest {
		t.Fatalf("tag 1.0 at the mirror: %v, %v; want %s", tagged, err, lock.Images[0].Digest)
	}
	repo, _ := plainHTTP.Repository(img)
	if _, err := repo.Resolve(ctx, lock.Images[0].Digest); err != nil {
		t.Fatalf("image %s missing at the mirror: %v", img, err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := artifact.Pull(ctx, atSite, out, artifact.PullOptions{Remote: plainHTTP}); err != nil {
		t.Fatal(err)
	}
	// The images lock travelled with the artifact, found by its digest.
	gotLock, err := artifact.FetchImagesLock(ctx, atSite.WithDigest(res.Digest), plainHTTP)
	if err != nil || gotLock == nil || len(gotLock.Images) != 1 || gotLock.Images[0] != lock.Images[0] {
		t.Fatalf("images lock at the mirror = %+v, %v; want %+v", gotLock, err, lock)
	}
	if none, err := artifact.FetchImagesLock(ctx, mustRef(t, "oci://"+site.Addr+"/mirror/team/svc@"+lock.Images[0].Digest), plainHTTP); none != nil || err != nil {
		t.Fatalf("an image without a lock: %+v, %v", none, err)
	}
}

func TestImportRefusesTamperedBlob(t *testing.T) {
	ctx := context.Background()
	up := newUpstream(t)
	var buf bytes.Buffer
	if _, _, err := artifact.Export(ctx, up.artifact, &buf, artifact.RelocateOptions{Src: plainHTTP}); err != nil {
		t.Fatal(err)
	}
	// Flip a byte inside the artifact's layer, which is gzip data in the tar.
	_, m, err := artifact.Manifest(ctx, up.artifact, plainHTTP)
	if err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	hdr := bytes.Index(b, []byte("blobs/sha256/"+m.Layers[0].Digest.Encoded()))
	if hdr < 0 {
		t.Fatal("layer not found in the archive")
	}
	b[hdr+512+10] ^= 0xff
	tarball := filepath.Join(t.TempDir(), "site.tar")
	os.WriteFile(tarball, b, 0o644)

	_, err = artifact.OpenArchive(ctx, tarball)
	if !errors.Is(err, artifact.ErrDigest) || !strings.Contains(err.Error(), m.Layers[0].Digest.Encoded()) {
		t.Fatalf("got %v, want a digest error naming blob %s", err, m.Layers[0].Digest)
	}
}

func TestCopyWithSignaturesAndImages(t *testing.T) {
	ctx := context.Background()
	up := newUpstream(t)
	site := registrytest.New(t)
	dst := mustRef(t, "oci://"+site.Addr+"/team/app:v1").WithTag("")
	dst.Tag = ""
	rel, err := artifact.Copy(ctx, up.artifact.WithDigest(""), dst, artifact.RelocateOptions{Src: plainHTTP, Dst: plainHTTP, Images: imagesOf(t, up.deployDir), Platform: "linux/amd64"})
	if err == nil {
		t.Fatalf("random images have no linux/amd64 platform, yet the copy passed: %+v", rel)
	}
	rel, err = artifact.Copy(ctx, up.artifact.WithDigest(""), dst, artifact.RelocateOptions{Src: plainHTTP, Dst: plainHTTP, Images: imagesOf(t, up.deployDir)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rel) != 3 {
		t.Fatalf("copied %+v", rel)
	}
	res, err := verify.Verify(ctx, mustRef(t, "oci://"+site.Addr+"/team/app:v1"), up.policy, plainHTTP)
	if err != nil || res.Digest != up.artifact.Digest {
		t.Fatalf("copied signature: %v", err)
	}
}

// TestCopyToTLSMirror: a site registry serving TLS with its own CA is
// reached with the CA file, and refused (with the fix named) without it.
func TestCopyToTLSMirror(t *testing.T) {
	ctx := context.Background()
	up := newUpstream(t)
	certs := tlstest.New(t)
	site := registrytest.NewWithOptions(t, registry.Options{TLSCertFile: certs.Cert, TLSKeyFile: certs.Key})
	dst := mustRef(t, "oci://"+site.Addr+"/team/app:v1")
	_, err := artifact.Copy(ctx, up.artifact, dst, artifact.RelocateOptions{Src: plainHTTP})
	if !errors.Is(err, artifact.ErrTLS) || !strings.Contains(err.Error(), "--ca-file") {
		t.Fatalf("without the CA: got %v, want ErrTLS suggesting --ca-file", err)
	}
	if _, err := artifact.Copy(ctx, up.artifact, dst, artifact.RelocateOptions{Src: plainHTTP, Dst: artifact.RemoteOptions{CAFile: certs.CA}}); err != nil {
		t.Fatal(err)
	}
	if _, err := verify.Verify(ctx, dst, up.policy, artifact.RemoteOptions{CAData: certs.CAPEM}); err != nil {
		t.Fatalf("verify over TLS with CA data: %v", err)
	}
}

// rewriteLock returns the export tarball b with its images.lock replaced.
func rewriteLock(t *testing.T, b []byte, lock artifact.ImagesLock) string {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == artifact.ImagesLockFile {
			body, _ = json.Marshal(lock)
			hdr.Size = int64(len(body))
		}
		tw.WriteHeader(hdr)
		tw.Write(body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "site.tar")
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestImportImagePinnedByDigest: an image the content names by digest is
// exported whole (--platform narrows only images named by tag: the workload
// pulls that digest), and an images.lock that pins it to another digest is
// refused before any request to the mirror.
func TestImportImagePinnedByDigest(t *testing.T) {
	ctx := context.Background()
	up := newUpstream(t)
	idx, err := artifact.Resolve(ctx, mustRef(t, "oci://"+up.image), plainHTTP)
	if err != nil {
		t.Fatal(err)
	}
	pinned := strings.TrimSuffix(up.image, ":1.0") + "@" + idx.Digest
	var buf bytes.Buffer
	lock, _, err := artifact.Export(ctx, up.artifact, &buf, artifact.RelocateOptions{Src: plainHTTP, Images: []string{pinned}, Platform: "linux/amd64"})
	if err != nil {
		t.Fatalf("export of an image pinned by digest with --platform: %v", err)
	}
	if len(lock.Images) != 1 || lock.Images[0].Digest != idx.Digest {
		t.Fatalf("images.lock = %+v, want %s pinned to its own digest %s", lock, pinned, idx.Digest)
	}

	other := "sha256:" + strings.Repeat("ab", 32)
	for name, tc := range map[string]struct {
		lockDigest string
		want       string
	}{
		"as exported":    {idx.Digest, ""},
		"another digest": {other, "pins " + idx.Digest},
	} {
		t.Run(name, func(t *testing.T) {
			l := *lock
			l.Images = []artifact.ImageLock{{Reference: pinned, Digest: tc.lockDigest}}
			a, err := artifact.OpenArchive(ctx, rewriteLock(t, buf.Bytes(), l))
			if err != nil {
				t.Fatal(err)
			}
			site := registrytest.New(t)
			mirror, _ := artifact.ParseMirror("oci://" + site.Addr + "/mirror")
			_, err = artifact.Import(ctx, a, mirror, artifact.ImportOptions{Dst: plainHTTP, ContentImages: []string{pinned}})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, artifact.ErrNotReached) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), pinned) {
				t.Fatalf("got %v, want a refusal naming %s and %q", err, pinned, tc.want)
			}
			if n := site.Requests(); n != 0 {
				t.Fatalf("a refused import sent %d requests to the mirror", n)
			}
		})
	}
}
