package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"
)

// TestCLISignDigestPin: `sign :TAG --digest D` signs only when the tag still
// points at D, the digest the signer reviewed; without --digest, sign says
// which digest it signed.
func TestCLISignDigestPin(t *testing.T) {
	t.Setenv(passwordEnv, cliPassword)
	reg := registrytest.New(t)
	key, pub, _ := cliKeygen(t, t.TempDir(), "a")
	url := "oci://" + reg.Addr + "/demo/app"
	push := func(path string) string {
		t.Helper()
		if _, stderr, code := runCLI(t, "", "push", "artifact", url+":v1", "--path", path, "--source", "s", "--revision", testRevision, "--insecure-registry"); code != 0 {
			t.Fatalf("push exited %d: %s", code, stderr)
		}
		ref, err := artifact.ParseReference(url + ":v1")
		if err != nil {
			t.Fatal(err)
		}
		ref, err = artifact.Resolve(context.Background(), ref, artifact.RemoteOptions{PlainHTTPInsecure: true})
		if err != nil {
			t.Fatal(err)
		}
		return ref.Digest
	}
	reviewed := push(exampleDir(t))
	moved := push(filepath.Join(exampleDir(t), "base")) // the tag moves after the review

	// Pinned to the reviewed digest: refused, naming both, and nothing signed.
	out, stderr, code := runCLI(t, "", "sign", url+":v1", "--digest", reviewed, "--key", key, "--insecure-registry")
	if code != 1 || out != "" || !strings.Contains(stderr, reviewed) || !strings.Contains(stderr, moved) {
		t.Fatalf("sign --digest of a moved tag exited %d, stdout %q, stderr:\n%s\nwant a refusal naming %s and %s", code, out, stderr, reviewed, moved)
	}
	for _, d := range []string{reviewed, moved} {
		if _, stderr, code := runCLI(t, "", "verify", url+"@"+d, "--key", pub, "--insecure-registry"); code != 1 || !strings.Contains(stderr, "no signatures") {
			t.Fatalf("after a refused sign, verify %s exited %d: %s", d, code, stderr)
		}
	}
	// The same pin given in the reference.
	if _, stderr, code := runCLI(t, "", "sign", url+":v1@"+reviewed, "--key", key, "--insecure-registry"); code != 1 || !strings.Contains(stderr, moved) {
		t.Fatalf("sign :v1@reviewed of a moved tag exited %d: %s", code, stderr)
	}

	// Pinned to what the tag points at: signed, and the digest reference printed.
	out, stderr, code = runCLI(t, "", "sign", url+":v1", "--digest", moved, "--key", key, "--insecure-registry")
	if code != 0 || strings.TrimSpace(out) != url+"@"+moved {
		t.Fatalf("sign --digest exited %d, printed %q (want %s@%s): %s", code, out, url, moved, stderr)
	}

	// Without --digest: the digest signed is printed, as text and as JSON.
	out, stderr, code = runCLI(t, "", "sign", url+":v1", "--key", key, "--insecure-registry", "-o", "json")
	if code != 0 {
		t.Fatalf("sign -o json exited %d: %s", code, stderr)
	}
	var res struct{ Ref, Digest string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Digest != moved || res.Ref != url+"@"+moved {
		t.Fatalf("sign -o json printed %q (%v), want digest %s", out, err, moved)
	}

	for name, args := range map[string][]string{
		"bad --digest":         {"sign", url + ":v1", "--digest", "sha256:abc", "--key", key, "--insecure-registry"},
		"--digest differs":     {"sign", url + ":v1@" + moved, "--digest", reviewed, "--key", key, "--insecure-registry"},
		"--digest on a digest": {"sign", url + "@" + moved, "--digest", reviewed, "--key", key, "--insecure-registry"},
	} {
		if out, stderr, code := runCLI(t, "", args...); code != 1 || out != "" || !strings.Contains(stderr, "--digest") {
			t.Errorf("%s: exited %d, stdout %q, stderr:\n%s", name, code, out, stderr)
		}
	}
}
