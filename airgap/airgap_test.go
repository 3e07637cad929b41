package airgap_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry"

	"airlock.dev/airlock/airgap"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/verify"
)

var plain = artifact.RemoteOptions{PlainHTTPInsecure: true}

const sbomType = "application/vnd.example.sbom+json"

// signedWithReferrer pushes a signed artifact to a fresh registry, and an
// SBOM that refers to it (OCI 1.1 subject). It returns the artifact's
// reference, its descriptor, the SBOM's and the upstream policy.
func signedWithReferrer(t *testing.T) (artifact.Reference, ocispec.Descriptor, ocispec.Descriptor, verify.Policy) {
	t.Helper()
	ctx := context.Background()
	up := registrytest.New(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref, err := artifact.ParseReference("oci://" + up.Addr + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := artifact.Push(ctx, ref, dir, artifact.PushOptions{Remote: plain, Source: "https://example.com/app.git", Revision: "main@sha1:0123456789abcdef0123456789abcdef01234567"})
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
	if _, err := verify.Sign(ctx, pushed.Ref, key, nil, plain); err != nil {
		t.Fatal(err)
	}
	pk, err := verify.LoadPublicKey("upstream.pub", pub)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := plain.Repository(ref)
	if err != nil {
		t.Fatal(err)
	}
	art, err := repo.Resolve(ctx, pushed.Digest)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := oras.PushBytes(ctx, repo, sbomType, []byte(`{"packages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	sbom, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, sbomType, oras.PackManifestOptions{Layers: []ocispec.Descriptor{layer}, Subject: &art})
	if err != nil {
		t.Fatal(err)
	}
	return ref, art, sbom, verify.Policy{Keys: []verify.PublicKey{pk}}
}

// hasReferrer says whether at's repository lists sbom as a referrer of art.
func hasReferrer(t *testing.T, at artifact.Reference, art, sbom ocispec.Descriptor) bool {
	t.Helper()
	repo, err := plain.Repository(at)
	if err != nil {
		t.Fatal(err)
	}
	refs, err := registry.Referrers(context.Background(), repo, art, "")
	if err != nil {
		t.Fatalf("referrers of %s at %s: %v", art.Digest, at, err)
	}
	for _, r := range refs {
		if r.Digest == sbom.Digest {
			return true
		}
	}
	return false
}

// TestReferrersTravel: an artifact's OCI 1.1 referrers go with it, through
// a copy and through an export and a verified import.
func TestReferrersTravel(t *testing.T) {
	ctx := context.Background()
	ref, art, sbom, policy := signedWithReferrer(t)

	site := registrytest.New(t)
	dst, _ := artifact.ParseReference("oci://" + site.Addr + "/team/app:v1")
	rel, err := airgap.Copy(ctx, ref, dst, airgap.RelocateOptions{Src: plain, Dst: plain})
	if err != nil {
		t.Fatal(err)
	}
	if !hasReferrer(t, dst, art, sbom) {
		t.Fatalf("the copy did not carry the referrer %s: %+v", sbom.Digest, rel)
	}

	tarball := filepath.Join(t.TempDir(), "site.tar")
	_, rel, err = airgap.Export(ctx, ref, tarball, airgap.RelocateOptions{Src: plain})
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]int{}
	for _, r := range rel {
		roles[r.Role]++
	}
	if roles["artifact"] != 1 || roles["referrer"] != 1 || roles["signature"] < 1 {
		t.Fatalf("export wrote %v, want the artifact, its referrer and its signature", roles)
	}
	mirror := registrytest.New(t)
	m, _ := artifact.ParseMirror("oci://" + mirror.Addr + "/airgap")
	res, err := airgap.Import(ctx, tarball, m, airgap.ImportOptions{Dst: plain, Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Verified || res.Upstream == nil || res.Upstream.Digest != art.Digest.String() {
		t.Fatalf("import result %+v", res)
	}
	at, _ := artifact.ParseReference("oci://" + mirror.Addr + "/airgap/team/app:v1")
	if !hasReferrer(t, at, art, sbom) {
		t.Fatalf("the import did not carry the referrer %s: %+v", sbom.Digest, res.Relocated)
	}
	if _, err := verify.Verify(ctx, at, policy, plain); err != nil {
		t.Fatalf("upstream signature at the mirror: %v", err)
	}
}
