package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"
)

const testPassword = "correct horse"

// plainHTTP reaches the test registry on loopback.
var plainHTTP = artifact.RemoteOptions{PlainHTTPInsecure: true}

// testKeyPair is a generated key pair written to disk, cached per name:
// cosign encrypts private keys with scrypt, which is slow under -race.
type testKeyPair struct {
	priv    *PrivateKey
	pub     PublicKey
	privPEM []byte
	pubPEM  []byte
	dir     string // holds NAME.key and NAME.pub
}

var (
	keysMu   sync.Mutex
	keyCache = map[string]*testKeyPair{}
	keyDir   string
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "airlock-verify-keys-")
	if err != nil {
		panic(err)
	}
	keyDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

func testKey(t testing.TB, name string) *testKeyPair {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	if k, ok := keyCache[name]; ok {
		return k
	}
	privPEM, pubPEM, err := GenerateKeyPair([]byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(keyDir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), privPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pub"), pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	priv, err := LoadPrivateKeyFile(filepath.Join(dir, name+".key"), []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublicKeyFile(filepath.Join(dir, name+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	k := &testKeyPair{priv: priv, pub: pub, privPEM: privPEM, pubPEM: pubPEM, dir: dir}
	keyCache[name] = k
	return k
}

// pushTestArtifact pushes a small OCI artifact (one layer, source and
// revision annotations) to oci://ADDR/REPO:TAG and returns its reference
// with the digest set. content makes artifacts with different digests.
func pushTestArtifact(t testing.TB, addr, repoName, tag, body string) artifact.Reference {
	t.Helper()
	ctx := context.Background()
	ref, err := artifact.ParseReference("oci://" + addr + "/" + repoName + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := plainHTTP.Repository(ref)
	if err != nil {
		t.Fatal(err)
	}
	layer := pushBlob(t, repo, "application/vnd.cncf.flux.content.v1.tar+gzip", []byte(body))
	desc, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.airlock.test.v1", oras.PackManifestOptions{
		Layers: []ocispec.Descriptor{layer},
		ManifestAnnotations: map[string]string{
			ocispec.AnnotationCreated:  "2024-01-01T00:00:00Z",
			ocispec.AnnotationSource:   "https://git.example.com/team/app",
			ocispec.AnnotationRevision: "main@sha1:" + digest.FromString(body).Encoded()[:40],
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(ctx, desc, tag); err != nil {
		t.Fatal(err)
	}
	return ref.WithDigest(desc.Digest.String())
}

func pushBlob(t testing.TB, repo content.Pusher, mediaType string, b []byte) ocispec.Descriptor {
	t.Helper()
	desc := content.NewDescriptorFromBytes(mediaType, b)
	if err := repo.Push(context.Background(), desc, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return desc
}

// pushSignatureManifest writes a hand-made signature manifest with the given
// layers on dgst's .sig tag, to forge malformed or oversized signatures.
func pushSignatureManifest(t testing.TB, ref artifact.Reference, layers []ocispec.Descriptor, annotations map[string]string) {
	t.Helper()
	ctx := context.Background()
	repo, err := plainHTTP.Repository(ref)
	if err != nil {
		t.Fatal(err)
	}
	config := pushBlob(t, repo, ocispec.MediaTypeImageConfig, []byte(`{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}`))
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: layers, Annotations: annotations}
	m.SchemaVersion = 2
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	desc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, b)
	if err := repo.PushReference(ctx, desc, bytes.NewReader(b), SignatureTag(ref.Digest)); err != nil {
		t.Fatal(err)
	}
}

// copySignatures copies the signature manifest of from onto to's .sig tag,
// as an attacker replaying signatures onto another artifact would.
func copySignatures(t testing.TB, from, to artifact.Reference) {
	t.Helper()
	copyAttached(t, from, to, SignatureTag)
}

// copyAttached copies the manifest on from's tag(digest) onto to's.
func copyAttached(t testing.TB, from, to artifact.Reference, tag func(string) string) {
	t.Helper()
	ctx := context.Background()
	repo, err := plainHTTP.Repository(from)
	if err != nil {
		t.Fatal(err)
	}
	desc, rc, err := repo.FetchReference(ctx, tag(from.Digest))
	if err != nil {
		t.Fatal(err)
	}
	b, err := content.ReadAll(rc, desc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.PushReference(ctx, desc, bytes.NewReader(b), tag(to.Digest)); err != nil {
		t.Fatal(err)
	}
}

// signatureCount is how many layers to's .sig manifest has.
func signatureCount(t testing.TB, ref artifact.Reference) int {
	t.Helper()
	repo, err := plainHTTP.Repository(ref)
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := fetchManifest(context.Background(), repo, SignatureTag(ref.Digest), MaxSignatureManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return len(m.Layers)
}

func newRegistry(t testing.TB) string {
	t.Helper()
	return registrytest.New(t).Addr
}
