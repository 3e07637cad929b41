package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/verify"
)

func writeKeyPair(t *testing.T, dir, prefix, password string) {
	t.Helper()
	priv, pub, err := verify.GenerateKeyPair([]byte(password))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, prefix+".key"), priv, 0o600)
	os.WriteFile(filepath.Join(dir, prefix+".pub"), pub, 0o644)
}

// TestCLIAirGapChainedTrust: push and sign upstream, export with images,
// lose upstream, import into the site verifying upstream and signing for the
// site; a wrong upstream key pushes nothing.
func TestCLIAirGapChainedTrust(t *testing.T) {
	up := registrytest.New(t)
	site := registrytest.New(t)
	keys := t.TempDir()
	t.Setenv("COSIGN_PASSWORD", "pw")
	writeKeyPair(t, keys, "upstream", "pw")
	writeKeyPair(t, keys, "site", "pw")
	writeKeyPair(t, keys, "other", "pw")

	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	imgRef, _ := name.ParseReference(up.Addr+"/team/svc:1.0", name.Insecure)
	if err := ggcrremote.Write(imgRef, img); err != nil {
		t.Fatal(err)
	}
	app := t.TempDir()
	os.WriteFile(filepath.Join(app, "deploy.yaml"), []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc\n  namespace: default\nspec:\n  selector:\n    matchLabels: {app: svc}\n  template:\n    metadata:\n      labels: {app: svc}\n    spec:\n      containers:\n      - name: svc\n        image: "+up.Addr+"/team/svc:1.0\n"), 0o644)

	url := "oci://" + up.Addr + "/team/app:v1"
	if _, stderr, code := airlock(t, "push", "artifact", url, "--path", app, "--source", "https://example.com/app.git", "--revision", testRevision,
		"--insecure-registry", "--sign-key", filepath.Join(keys, "upstream.key")); code != 0 {
		t.Fatalf("push: %s", stderr)
	}
	tarball := filepath.Join(t.TempDir(), "site.tar")
	out, stderr, code := airlock(t, "export", url, "-o", tarball, "--with-images", "--insecure-registry")
	if code != 0 || !strings.Contains(out, "image") || !strings.Contains(out, "signature") {
		t.Fatalf("export exited %d: %s\n%s", code, out, stderr)
	}
	up.Close()

	// A wrong upstream key: refused before anything reaches the site.
	_, stderr, code = airlock(t, "import", tarball, "oci://"+site.Addr+"/airgap", "--insecure-registry",
		"--verify-key", filepath.Join(keys, "other.pub"), "--sign-key", filepath.Join(keys, "site.key"))
	if code == 0 || !strings.Contains(stderr, "nothing pushed") {
		t.Fatalf("import with the wrong upstream key exited %d: %s", code, stderr)
	}
	if n := site.Requests(); n != 0 {
		t.Fatalf("a refused import sent %d requests to the site registry", n)
	}

	out, stderr, code = airlock(t, "import", tarball, "oci://"+site.Addr+"/airgap", "--insecure-registry",
		"--verify-key", filepath.Join(keys, "upstream.pub"), "--sign-key", filepath.Join(keys, "site.key"))
	if code != 0 || !strings.Contains(out, "site-signature") || !strings.Contains(out, site.Addr+"/airgap/team/svc@sha256:") {
		t.Fatalf("import exited %d:\n%s\n%s", code, out, stderr)
	}

	// Both signatures verify at the site; the site one records the upstream signer.
	atSite, _ := artifact.ParseReference("oci://" + site.Addr + "/airgap/team/app:v1")
	sitePub, _ := verify.LoadPublicKeyFile(filepath.Join(keys, "site.pub"))
	upPub, _ := verify.LoadPublicKeyFile(filepath.Join(keys, "upstream.pub"))
	res, err := verify.Verify(context.Background(), atSite, verify.Policy{Keys: []verify.PublicKey{sitePub, upPub}, Threshold: 2}, artifact.RemoteOptions{PlainHTTPInsecure: true})
	if err != nil {
		t.Fatalf("verify at the site: %v", err)
	}
	var chained bool
	for _, s := range res.Signers {
		if s.Fingerprint == sitePub.Fingerprint && s.Annotations[verify.ChainUpstreamSigners] == upPub.Fingerprint {
			chained = true
		}
	}
	if !chained {
		t.Fatalf("the site signature does not record the upstream signer: %+v", res.Signers)
	}
	// It records the images lock the import stored, by digest: the
	// controller uses no other.
	lock, err := artifact.NewClient(artifact.RemoteOptions{PlainHTTPInsecure: true})
	if err != nil {
		t.Fatal(err)
	}
	lockDigest, err := lock.ImagesLockDigest(context.Background(), atSite.WithDigest(res.Digest))
	if err != nil || lockDigest == "" || len(res.ImagesLocks) != 1 || res.ImagesLocks[0] != lockDigest {
		t.Fatalf("the site signature covers images locks %v, the mirror holds %q (%v): want the one", res.ImagesLocks, lockDigest, err)
	}
	// --upstream-threshold over the upstream keys given cannot be met.
	_, stderr, code = airlock(t, "verify", atSite.String(), "--insecure-registry", "--key", filepath.Join(keys, "site.pub"),
		"--require-upstream", filepath.Join(keys, "upstream.pub"), "--upstream-threshold", "2")
	if code != 2 || !strings.Contains(stderr, "upstream threshold 2 is more than the 1 distinct upstream keys") {
		t.Fatalf("verify --upstream-threshold 2 with one upstream key: exit %d, %s", code, stderr)
	}

	// A policy can require the chain: the site key's signature recording the
	// upstream signer, and the upstream signature itself.
	out, stderr, code = airlock(t, "verify", atSite.String(), "--insecure-registry", "--key", filepath.Join(keys, "site.pub"),
		"--require-upstream", filepath.Join(keys, "upstream.pub"))
	if code != 0 || !strings.Contains(out, "after verifying upstream signer(s) "+upPub.Fingerprint) || !strings.Contains(out, "Upstream signature verified: "+upPub.Fingerprint) {
		t.Fatalf("verify --require-upstream exited %d:\n%s\n%s", code, out, stderr)
	}
	// The upstream key alone has no import record: the chain is not met.
	_, stderr, code = airlock(t, "verify", atSite.String(), "--insecure-registry", "--key", filepath.Join(keys, "upstream.pub"),
		"--require-upstream", filepath.Join(keys, "upstream.pub"))
	if code != 1 || !strings.Contains(stderr, "chain of trust not met") {
		t.Fatalf("a chain without a site record: exit %d, %s", code, stderr)
	}
	// Another upstream key than the one the site verified: not met either.
	_, stderr, code = airlock(t, "verify", atSite.String(), "--insecure-registry", "--key", filepath.Join(keys, "site.pub"),
		"--require-upstream", filepath.Join(keys, "other.pub"))
	if code != 1 || !strings.Contains(stderr, "chain of trust not met") {
		t.Fatalf("a chain to another upstream key: exit %d, %s", code, stderr)
	}
}
