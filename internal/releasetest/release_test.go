package releasetest

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"airlock.dev/airlock/verify"
)

// The verification steps of examples/ci, run here on the built release
// from its directory (RELEASE_PUB is the pinned release key).
var verifySteps = []string{
	`base64 -d SHA256SUMS.sig > SHA256SUMS.sig.der`,
	`openssl dgst -sha256 -verify "$RELEASE_PUB" -signature SHA256SUMS.sig.der SHA256SUMS`,
	`sha256sum --check --ignore-missing SHA256SUMS`,
}

// TestRelease builds a release with hack/release.sh for this machine's
// platform only (the CLI for GOOS/GOARCH and the image for linux/GOARCH),
// to stay within a few minutes, and verifies it: signatures, checksums, a
// static binary that reports its version, the SBOM and the image layout.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a release: minutes")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	priv, pub, err := verify.GenerateKeyPair([]byte("release-pw"))
	if err != nil {
		t.Fatal(err)
	}
	keyPath, pubPath := filepath.Join(work, "release.key"), filepath.Join(work, "release.pub")
	os.WriteFile(keyPath, priv, 0o600)
	os.WriteFile(pubPath, pub, 0o644)
	dist := filepath.Join(work, "dist")
	platform := runtime.GOOS + "/" + runtime.GOARCH
	cmd := exec.Command("bash", "hack/release.sh")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "VERSION=v0.0.0-test", "PLATFORMS="+platform, "IMAGE_PLATFORMS=linux/"+runtime.GOARCH,
		"DIST="+dist, "RELEASE_KEY="+keyPath, "COSIGN_PASSWORD=release-pw")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/release.sh: %v\n%s", err, out)
	}

	bin := "airlock_" + runtime.GOOS + "_" + runtime.GOARCH
	controllerBOM := "airlock-controller_linux_" + runtime.GOARCH + ".cdx.json"
	renderBOM := "airlock-chart-render_linux_" + runtime.GOARCH + ".cdx.json"
	files := []string{bin, bin + ".cdx.json", "airlock-controller_v0.0.0-test.oci.tar", controllerBOM, renderBOM, "SHA256SUMS"}
	key, err := verify.LoadPublicKey("release", pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		sig, err := os.ReadFile(filepath.Join(dist, f+".sig"))
		if err != nil {
			t.Fatal(err)
		}
		body, err := os.Open(filepath.Join(dist, f))
		if err != nil {
			t.Fatal(err)
		}
		err = key.VerifyBlob(body, sig)
		body.Close()
		if err != nil {
			t.Errorf("%s.sig: %v", f, err)
		}
	}

	// As the CI examples do, with openssl and sha256sum alone.
	script := strings.Join(verifySteps, "\n")
	if out, err := runIn(dist, script, "RELEASE_PUB="+pubPath); err != nil {
		t.Fatalf("the CI examples' verification failed: %v\n%s", err, out)
	}
	for _, ex := range []string{"github-actions.yaml", "gitlab-ci.yml"} {
		b, err := os.ReadFile(filepath.Join(root, "examples/ci", ex))
		if err != nil {
			t.Fatal(err)
		}
		for _, step := range verifySteps {
			if !strings.Contains(string(b), step) {
				t.Errorf("examples/ci/%s does not run %q", ex, step)
			}
		}
		if strings.Contains(string(b), "@latest") {
			t.Errorf("examples/ci/%s still installs @latest", ex)
		}
	}
	// Another key, or a changed binary: refused.
	_, otherPub, err := verify.GenerateKeyPair([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	otherPath := filepath.Join(work, "other.pub")
	os.WriteFile(otherPath, otherPub, 0o644)
	if out, err := runIn(dist, script, "RELEASE_PUB="+otherPath); err == nil {
		t.Fatalf("verified with another key:\n%s", out)
	}

	// The binary is static and reports its version.
	if runtime.GOOS == "linux" {
		f, err := elf.Open(filepath.Join(dist, bin))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s has a program interpreter: not static", bin)
			}
		}
		f.Close()
	}
	out, err := exec.Command(filepath.Join(dist, bin), "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "airlock v0.0.0-test") {
		t.Errorf("%s version: %v\n%s", bin, err, out)
	}

	// The SBOM is CycloneDX and lists the signing library.
	var bom struct {
		BOMFormat  string `json:"bomFormat"`
		Components []struct {
			Name string `json:"name"`
		} `json:"components"`
	}
	for file, want := range map[string]string{bin + ".cdx.json": "github.com/sigstore/sigstore", controllerBOM: "sigs.k8s.io/controller-runtime", renderBOM: "helm.sh/helm/v3"} {
		b, err := os.ReadFile(filepath.Join(dist, file))
		if err != nil || json.Unmarshal(b, &bom) != nil || bom.BOMFormat != "CycloneDX" {
			t.Fatalf("SBOM %s: %v %.200s", file, err, b)
		}
		found := false
		for _, c := range bom.Components {
			if strings.Contains(c.Name, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("the SBOM %s's %d components do not list %s", file, len(bom.Components), want)
		}
	}

	// The image is an OCI layout naming the controller at the version.
	names := tarNames(t, filepath.Join(dist, "airlock-controller_v0.0.0-test.oci.tar"))
	if !names["index.json"] || !names["oci-layout"] {
		t.Errorf("image tarball entries %v: want an OCI layout", names)
	}

	// A changed binary fails the checksum.
	if err := os.WriteFile(filepath.Join(dist, bin), []byte("tampered"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := runIn(dist, script, "RELEASE_PUB="+pubPath); err == nil {
		t.Fatalf("a changed binary passed:\n%s", out)
	}
}

func runIn(dir, script string, env ...string) (string, error) {
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func tarNames(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
}
