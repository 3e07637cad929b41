package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/verify"
)

// airlock runs the CLI in process and returns stdout, stderr and the exit code.
func airlock(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	code := exitCode(err, &errb)
	return out.String(), errb.String(), code
}

const testRevision = "main@sha1:0123456789abcdef0123456789abcdef01234567"

func exampleDir(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "examples", "app"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLIPushPullTagListDiff(t *testing.T) {
	reg := registrytest.New(t)
	url := "oci://" + reg.Addr + "/demo/app"
	push := []string{"push", "artifact", url + ":v1", "--path", exampleDir(t), "--source", "https://example.com/app.git", "--revision", testRevision, "--insecure-registry"}

	out, stderr, code := airlock(t, append(push, "-o", "json")...)
	if code != 0 {
		t.Fatalf("push exited %d: %s", code, stderr)
	}
	var res struct {
		Digest, URL, Tag, Source, Revision string
		Annotations                        map[string]string
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("push -o json printed %q: %v", out, err)
	}
	if !strings.HasPrefix(res.Digest, "sha256:") || res.URL != url+":v1@"+res.Digest || res.Tag != "v1" || res.Source != "https://example.com/app.git" || res.Revision != testRevision || res.Annotations["org.opencontainers.image.created"] == "" {
		t.Fatalf("push -o json = %+v", res)
	}
	out, _, code = airlock(t, push...)
	if code != 0 || strings.TrimSpace(out) != res.URL {
		t.Fatalf("second push printed %q (exit %d), want the same %s", out, code, res.URL)
	}

	dir := filepath.Join(t.TempDir(), "pulled")
	out, stderr, code = airlock(t, "pull", "artifact", url+":v1", "-o", dir, "--insecure-registry")
	if code != 0 || strings.TrimSpace(out) != res.URL {
		t.Fatalf("pull exited %d, printed %q: %s", code, out, stderr)
	}
	if _, _, code := airlock(t, "diff", "artifact", url+":v1", "--path", dir, "--insecure-registry"); code != 0 {
		t.Fatalf("diff of the pulled tree exited %d", code)
	}
	os.WriteFile(filepath.Join(dir, "extra.yaml"), []byte("x: 1\n"), 0o644)
	out, _, code = airlock(t, "diff", "artifact", url+":v1", "--path", dir, "--insecure-registry")
	if code != 1 || !strings.Contains(out, "+ extra.yaml") {
		t.Fatalf("diff after a change exited %d, printed %q", code, out)
	}

	out, _, code = airlock(t, "tag", "artifact", url+":v1", "--tag", "1.0.0", "--tag", "stable", "--insecure-registry")
	if code != 0 || !strings.Contains(out, ":1.0.0@"+res.Digest) || !strings.Contains(out, ":stable@"+res.Digest) {
		t.Fatalf("tag exited %d, printed %q", code, out)
	}
	out, _, code = airlock(t, "list", "artifacts", url, "--insecure-registry")
	if code != 0 || !strings.Contains(out, "TAG") || strings.Count(out, res.Digest) != 3 || !strings.Contains(out, testRevision) {
		t.Fatalf("list exited %d, printed:\n%s", code, out)
	}
	out, _, code = airlock(t, "list", "artifacts", url, "--insecure-registry", "--filter-semver", ">=1.0.0", "-o", "json")
	var entries []map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 1 || entries[0]["tag"] != "1.0.0" {
		t.Fatalf("list --filter-semver -o json exited %d, printed %q", code, out)
	}

	tgz := filepath.Join(t.TempDir(), "app.tgz")
	out, _, code = airlock(t, "build", "artifact", "--path", exampleDir(t), "-o", tgz)
	if code != 0 {
		t.Fatalf("build exited %d", code)
	}
	var pushed map[string]any
	airlockJSON := func() map[string]any {
		o, _, _ := airlock(t, append(push, "-o", "json")...)
		json.Unmarshal([]byte(o), &pushed)
		return pushed
	}
	if layer := airlockJSON()["layerDigest"]; strings.TrimSpace(out) != layer {
		t.Fatalf("build gave %s, push uploaded layer %v", out, layer)
	}
}

func TestCLIBadInput(t *testing.T) {
	reg := registrytest.New(t)
	url := "oci://" + reg.Addr + "/demo/app"
	empty := t.TempDir()
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no oci scheme", []string{"push", "artifact", reg.Addr + "/demo/app:v1", "--path", empty, "--source", "s", "--revision", "r"}, 1, "must start with oci://"},
		{"bad tag", []string{"push", "artifact", url + ":bad!", "--path", empty, "--source", "s", "--revision", "r"}, 1, "invalid tag"},
		{"missing path flag", []string{"push", "artifact", url + ":v1", "--source", "s", "--revision", "r", "--insecure-registry"}, 1, "--path is required"},
		{"missing path", []string{"push", "artifact", url + ":v1", "--path", filepath.Join(empty, "nope"), "--source", "s", "--revision", "r", "--insecure-registry"}, 1, "does not exist"},
		{"empty directory", []string{"push", "artifact", url + ":v1", "--path", empty, "--source", "s", "--revision", "r", "--insecure-registry"}, 1, "holds no files"},
		{"unreachable registry", []string{"pull", "artifact", "oci://127.0.0.1:1/demo/app:v1", "-o", filepath.Join(empty, "o"), "--insecure-registry"}, 1, "connection refused"},
		{"missing tag", []string{"pull", "artifact", url + ":nope", "-o", filepath.Join(empty, "o"), "--insecure-registry"}, 1, "no such"},
		{"bad output format", []string{"list", "artifacts", url, "-o", "xml"}, 1, "want one of json, yaml"},
		{"diff cannot compare", []string{"diff", "artifact", "oci://127.0.0.1:1/demo/app:v1", "--path", empty, "--insecure-registry"}, 2, "connection refused"},
		{"bad max size", []string{"pull", "artifact", url + ":v1", "-o", filepath.Join(empty, "o"), "--max-size", "lots"}, 1, "--max-size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := airlock(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

func TestCLIVersion(t *testing.T) {
	out, _, code := airlock(t, "version")
	if code != 0 || !strings.Contains(out, "airlock dev") || !strings.Contains(out, "go: go1.") {
		t.Fatalf("version exited %d: %q", code, out)
	}
}

func TestCLIPushSignKey(t *testing.T) {
	reg := registrytest.New(t)
	dir := t.TempDir()
	t.Setenv("COSIGN_PASSWORD", "pw")
	priv, pub, err := verify.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cosign.key"), priv, 0o600)
	os.WriteFile(filepath.Join(dir, "cosign.pub"), pub, 0o644)
	url := "oci://" + reg.Addr + "/demo/signed:v1"
	out, stderr, code := airlock(t, "push", "artifact", url, "--path", exampleDir(t), "--source", "s", "--revision", testRevision,
		"--insecure-registry", "--sign-key", filepath.Join(dir, "cosign.key"), "-o", "json")
	if code != 0 {
		t.Fatalf("push --sign-key exited %d: %s", code, stderr)
	}
	var res struct{ Digest, Signature string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || !strings.HasSuffix(res.Signature, ":sha256-"+strings.TrimPrefix(res.Digest, "sha256:")+".sig") {
		t.Fatalf("push -o json = %q (%v), want the signature reference", out, err)
	}
	key, err := verify.LoadPublicKeyFile(filepath.Join(dir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := artifact.ParseReference(url)
	if _, err := verify.Verify(context.Background(), ref, verify.Policy{Keys: []verify.PublicKey{key}}, artifact.RemoteOptions{PlainHTTPInsecure: true}); err != nil {
		t.Fatalf("the pushed artifact does not verify: %v", err)
	}

	// A wrong password fails before anything is pushed.
	t.Setenv("COSIGN_PASSWORD", "wrong")
	_, stderr, code = airlock(t, "push", "artifact", "oci://"+reg.Addr+"/demo/other:v1", "--path", exampleDir(t), "--source", "s", "--revision", testRevision,
		"--insecure-registry", "--sign-key", filepath.Join(dir, "cosign.key"))
	if code == 0 || !strings.Contains(stderr, "password") {
		t.Fatalf("wrong password: exit %d, %q", code, stderr)
	}
	if _, err := artifact.Resolve(context.Background(), mustParse(t, "oci://"+reg.Addr+"/demo/other:v1"), artifact.RemoteOptions{PlainHTTPInsecure: true}); err == nil {
		t.Fatal("a push with a bad signing key uploaded the artifact")
	}
}

func mustParse(t *testing.T, s string) artifact.Reference {
	t.Helper()
	r, err := artifact.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
