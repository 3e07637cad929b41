package airgap_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"

	"airlock.dev/airlock/airgap"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/verify"
)

// signedImages is an upstream registry with an artifact whose Deployment
// uses two images, svc-a and svc-b; the artifact is signed.
type signedImages struct {
	up       *registry.Server
	art      artifact.Reference
	a, b     artifact.Reference // the images, pinned by digest
	key      *verify.PrivateKey
	policy   verify.Policy
	artifact verify.Policy
}

func newSignedImages(t *testing.T) *signedImages {
	t.Helper()
	ctx := context.Background()
	f := &signedImages{up: registrytest.New(t)}
	priv, pub, err := verify.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if f.key, err = verify.LoadPrivateKey(priv, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	pk, err := verify.LoadPublicKey("images.pub", pub)
	if err != nil {
		t.Fatal(err)
	}
	f.policy = verify.Policy{Keys: []verify.PublicKey{pk}}
	f.artifact = f.policy
	var images []string
	for i, repo := range []string{"team/svc-a", "team/svc-b"} {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		tagged := f.up.Addr + "/" + repo + ":1.0"
		r, _ := name.ParseReference(tagged, name.Insecure)
		if err := ggcrremote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		pinned, err := artifact.ParseImage(f.up.Addr + "/" + repo + "@" + d.String())
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			f.a = pinned
		} else {
			f.b = pinned
		}
		images = append(images, tagged)
	}
	app := t.TempDir()
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc\n  namespace: default\nspec:\n  selector:\n    matchLabels: {app: svc}\n  template:\n    metadata:\n      labels: {app: svc}\n    spec:\n      containers:\n      - name: a\n        image: " + images[0] + "\n      - name: b\n        image: " + images[1] + "\n"
	if err := os.WriteFile(filepath.Join(app, "deploy.yaml"), []byte(deploy), 0o644); err != nil {
		t.Fatal(err)
	}
	f.art, _ = artifact.ParseReference("oci://" + f.up.Addr + "/team/app:v1")
	pushed, err := artifact.Push(ctx, f.art, app, artifact.PushOptions{Remote: plain, Source: "s", Revision: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify.Sign(ctx, pushed.Ref, f.key, nil, plain); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *signedImages) sign(t *testing.T, img artifact.Reference) {
	t.Helper()
	if _, err := verify.Sign(context.Background(), img, f.key, nil, plain); err != nil {
		t.Fatal(err)
	}
}

// attach pushes a small manifest into img's repository: tagged with the
// cosign tag suffix of img's digest when suffix is set, else as an OCI 1.1
// referrer (subject img). It returns its descriptor.
func attach(t *testing.T, img artifact.Reference, suffix, artifactType string) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	repo, err := plain.Repository(img)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := repo.Resolve(ctx, img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := oras.PushBytes(ctx, repo, artifactType, []byte(`{"for":"`+img.Digest+suffix+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	po := oras.PackManifestOptions{Layers: []ocispec.Descriptor{layer}}
	if suffix == "" {
		po.Subject = &subject
	}
	d, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, artifactType, po)
	if err != nil {
		t.Fatal(err)
	}
	if suffix != "" {
		if err := repo.Tag(ctx, d, artifact.AttachedTag(img.Digest, suffix)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// TestExportVerifyImagesKeyRefusesUnsignedImage: with --verify-images-key,
// an export whose image svc-b is unsigned is refused before anything is
// written, and the error names svc-b (and only svc-b).
func TestExportVerifyImagesKeyRefusesUnsignedImage(t *testing.T) {
	ctx := context.Background()
	f := newSignedImages(t)
	f.sign(t, f.a)
	out := filepath.Join(t.TempDir(), "site.tar")
	_, _, err := airgap.Export(ctx, f.art, out, airgap.RelocateOptions{Src: plain, WithImages: true, ImagesPolicy: f.policy})
	var ise *airgap.ImageSignatureError
	if !errors.As(err, &ise) || len(ise.Failures) != 1 || !errors.Is(err, verify.ErrNoSignatures) {
		t.Fatalf("export with svc-b unsigned: %v, want one image failure, no signatures", err)
	}
	if msg := err.Error(); !strings.Contains(msg, f.b.DigestRef()) || strings.Contains(msg, f.a.DigestRef()) {
		t.Fatalf("the refusal should name svc-b %s and not svc-a: %s", f.b.DigestRef(), msg)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a refused export left %s behind: %v", out, err)
	}
	f.sign(t, f.b)
	if _, _, err := airgap.Export(ctx, f.art, out, airgap.RelocateOptions{Src: plain, WithImages: true, ImagesPolicy: f.policy}); err != nil {
		t.Fatalf("export with both images signed: %v", err)
	}
}

// TestImageSignaturesTravel: an image's cosign signature, attestation and
// SBOM tags and its OCI 1.1 referrer go through an export and a verified
// import, into the image's repository at the mirror, and the image
// signature verifies there.
func TestImageSignaturesTravel(t *testing.T) {
	ctx := context.Background()
	f := newSignedImages(t)
	f.sign(t, f.a)
	att := attach(t, f.a, ".att", "application/vnd.dsse.envelope.v1+json")
	sbom := attach(t, f.a, ".sbom", "application/spdx+json")
	ref := attach(t, f.a, "", sbomType)
	aDesc := ocispec.Descriptor{}
	{
		repo, _ := plain.Repository(f.a)
		var err error
		if aDesc, err = repo.Resolve(ctx, f.a.Digest); err != nil {
			t.Fatal(err)
		}
	}

	tarball := filepath.Join(t.TempDir(), "site.tar")
	_, rel, err := airgap.Export(ctx, f.art, tarball, airgap.RelocateOptions{Src: plain, WithImages: true})
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]int{}
	for _, r := range rel {
		roles[r.Role]++
	}
	if roles["image-signature"] != 3 || roles["image-referrer"] != 1 {
		t.Fatalf("export carried %v, want 3 image-signature (.sig .att .sbom) and 1 image-referrer", roles)
	}
	f.up.Close()

	site := registrytest.New(t)
	m, _ := artifact.ParseMirror("oci://" + site.Addr + "/airgap")
	if _, err := airgap.Import(ctx, tarball, m, airgap.ImportOptions{Dst: plain, Policy: f.artifact}); err != nil {
		t.Fatal(err)
	}
	at := artifact.MirrorImage(site.Addr, "airgap", f.a)
	if _, err := verify.Verify(ctx, at, f.policy, plain); err != nil {
		t.Fatalf("the image signature at the mirror: %v", err)
	}
	repo, err := plain.Repository(at)
	if err != nil {
		t.Fatal(err)
	}
	for suffix, want := range map[string]ocispec.Descriptor{".att": att, ".sbom": sbom} {
		got, err := repo.Resolve(ctx, artifact.AttachedTag(f.a.Digest, suffix))
		if err != nil || got.Digest != want.Digest {
			t.Fatalf("%s at the mirror: %v, %v; want %s", suffix, got.Digest, err, want.Digest)
		}
	}
	if !hasReferrer(t, at, aDesc, ref) {
		t.Fatalf("the image referrer %s did not reach the mirror", ref.Digest)
	}
}

// TestExportVerifyImagesKeyPlatformAcceptsIndexSignature: --platform
// narrows a multi-platform image to its linux/amd64 manifest, and
// --verify-images-key accepts a signature over the index the tag names
// (as cosign commonly signs), as well as one over the manifest carried.
// Unsigned, the refusal names both digests.
func TestExportVerifyImagesKeyPlatformAcceptsIndexSignature(t *testing.T) {
	ctx := context.Background()
	u := newUpstreamApps(t) // a registry, a key and its policy
	up, key, policy := u.up, u.key, u.policy
	var idx v1.ImageIndex = empty.Index
	var amd64 v1.Hash
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		if arch == "amd64" {
			amd64, _ = img.Digest()
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	tagged := up.Addr + "/team/multi:1.0"
	r, _ := name.ParseReference(tagged, name.Insecure)
	if err := ggcrremote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	app := t.TempDir()
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: multi\n  namespace: default\nspec:\n  selector:\n    matchLabels: {app: m}\n  template:\n    metadata:\n      labels: {app: m}\n    spec:\n      containers:\n      - name: m\n        image: " + tagged + "\n"
	if err := os.WriteFile(filepath.Join(app, "deploy.yaml"), []byte(deploy), 0o644); err != nil {
		t.Fatal(err)
	}
	art, _ := artifact.ParseReference("oci://" + up.Addr + "/team/app:v1")
	if _, err := artifact.Push(ctx, art, app, artifact.PushOptions{Remote: plain, Source: "s", Revision: "r"}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "site.tar")
	opts := airgap.RelocateOptions{Src: plain, WithImages: true, Platform: "linux/amd64", ImagesPolicy: policy}

	_, _, err := airgap.Export(ctx, art, out, opts)
	var ise *airgap.ImageSignatureError
	if !errors.As(err, &ise) || len(ise.Failures) != 1 || !strings.Contains(err.Error(), amd64.String()) || !strings.Contains(err.Error(), idxDigest.String()) {
		t.Fatalf("export of an unsigned image: %v, want one failure naming the manifest %s and its index %s", err, amd64, idxDigest)
	}

	index, _ := artifact.ParseImage(up.Addr + "/team/multi@" + idxDigest.String())
	if _, err := verify.Sign(ctx, index, key, nil, plain); err != nil {
		t.Fatal(err)
	}
	lock, rel, err := airgap.Export(ctx, art, out, opts)
	if err != nil {
		t.Fatalf("export with the index signed: %v", err)
	}
	if len(lock.Images) != 1 || lock.Images[0].Digest != amd64.String() {
		t.Fatalf("images lock %+v: want the linux/amd64 manifest %s", lock.Images, amd64)
	}
	for _, r := range rel {
		if r.Digest == idxDigest.String() {
			t.Fatalf("--platform carried the index: %+v", r)
		}
	}
}
