package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"

	"airlock.dev/airlock/internal/registrytest"
)

// TestCLIExportBundleVerifyImagesKey: export -f bundle.yaml with
// --verify-images-key refuses while one image is unsigned, naming it;
// once signed, the bundle of two artifacts exports and imports.
func TestCLIExportBundleVerifyImagesKey(t *testing.T) {
	up := registrytest.New(t)
	site := registrytest.New(t)
	keys := t.TempDir()
	t.Setenv("COSIGN_PASSWORD", "pw")
	writeKeyPair(t, keys, "upstream", "pw")
	var bundle strings.Builder
	bundle.WriteString("artifacts:\n")
	for _, n := range []string{"a", "b"} {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		image := up.Addr + "/team/img-" + n + ":1.0"
		r, _ := name.ParseReference(image, name.Insecure)
		if err := ggcrremote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		if n == "a" {
			if _, stderr, code := airlock(t, "sign", "oci://"+image, "--insecure-registry", "--key", filepath.Join(keys, "upstream.key")); code != 0 {
				t.Fatalf("sign image: %s", stderr)
			}
		}
		app := t.TempDir()
		os.WriteFile(filepath.Join(app, "pod.yaml"), []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: "+image+"\n"), 0o644)
		url := "oci://" + up.Addr + "/team/app-" + n + ":v1"
		if _, stderr, code := airlock(t, "push", "artifact", url, "--path", app, "--source", "s", "--revision", testRevision,
			"--insecure-registry", "--sign-key", filepath.Join(keys, "upstream.key")); code != 0 {
			t.Fatalf("push: %s", stderr)
		}
		bundle.WriteString("- ref: " + url + "\n  withImages: true\n")
	}
	bf := filepath.Join(t.TempDir(), "bundle.yaml")
	os.WriteFile(bf, []byte(bundle.String()), 0o644)
	tarball := filepath.Join(t.TempDir(), "site.tar")
	_, stderr, code := airlock(t, "export", "-f", bf, "-o", tarball, "--insecure-registry", "--verify-images-key", filepath.Join(keys, "upstream.pub"))
	if code == 0 || !strings.Contains(stderr, up.Addr+"/team/img-b@sha256:") || strings.Contains(stderr, "team/img-a@") {
		t.Fatalf("export with img-b unsigned exited %d, want a refusal naming img-b only: %s", code, stderr)
	}
	if _, stderr, code := airlock(t, "sign", "oci://"+up.Addr+"/team/img-b:1.0", "--insecure-registry", "--key", filepath.Join(keys, "upstream.key")); code != 0 {
		t.Fatalf("sign image: %s", stderr)
	}
	if _, stderr, code := airlock(t, "export", "-f", bf, "-o", tarball, "--insecure-registry", "--verify-images-key", filepath.Join(keys, "upstream.pub")); code != 0 {
		t.Fatalf("export with both images signed: %s", stderr)
	}
	out, stderr, code := airlock(t, "import", tarball, "oci://"+site.Addr+"/airgap", "--insecure-registry", "--verify-key", filepath.Join(keys, "upstream.pub"))
	if code != 0 || !strings.Contains(out, site.Addr+"/airgap/team/app-a:v1") || !strings.Contains(out, site.Addr+"/airgap/team/app-b:v1") || !strings.Contains(out, "image-signature") {
		t.Fatalf("import of the bundle exited %d:\n%s\n%s", code, out, stderr)
	}
}
