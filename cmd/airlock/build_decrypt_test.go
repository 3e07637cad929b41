package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildArtifactDecryptKey: --decrypt-key checks, before writing the
// layer, that a site's SOPS-encrypted files decrypt with its key, and says
// which files and Secrets without showing a value; another site's key fails
// naming the file.
func TestBuildArtifactDecryptKey(t *testing.T) {
	sites := filepath.Join("..", "..", "examples", "sites")
	app := filepath.Join(sites, "app")
	tgz := filepath.Join(t.TempDir(), "app.tgz")
	args := func(site, key string) []string {
		return []string{"build", "artifact", "--path", app, "-o", tgz,
			"--decrypt-key", filepath.Join(sites, "test-keys", key+".agekey"), "--component", "components/secrets-" + site}
	}
	out, errOut, code := airlock(t, args("staging", "staging")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"decrypted components/secrets-staging/api-credentials.yaml", "built Secret shop-api: 2 keys", "decrypted 1 files with 1 keys"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not say %q:\n%s", want, errOut)
		}
	}
	if !strings.HasPrefix(out, "sha256:") {
		t.Errorf("stdout %q, want the layer's digest", out)
	}
	if strings.Contains(out+errOut, "example-staging-token") {
		t.Error("the output shows the decrypted token")
	}

	_, errOut, code = airlock(t, args("staging", "production")...)
	if code == 0 || !strings.Contains(errOut, "decrypt components/secrets-staging/api-credentials.yaml") || !strings.Contains(errOut, "none of the keys given opens it") {
		t.Errorf("with production's key: exit %d, stderr %s; want the file named", code, errOut)
	}
}
