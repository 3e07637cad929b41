package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/verify"
)

const cliPassword = "s3cret"

// runCLI runs airlock in process with stdin and returns stdout, stderr and
// the exit code main would use.
func runCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	code := exitCode(err, &errb)
	return out.String(), errb.String(), code
}

// cliKeygen runs `airlock keygen` for dir/name and returns the paths and the
// public key's fingerprint.
func cliKeygen(t *testing.T, dir, name string) (keyPath, pubPath, fingerprint string) {
	t.Helper()
	prefix := filepath.Join(dir, name)
	out, stderr, code := runCLI(t, "", "keygen", "--output-key-prefix", prefix)
	if code != 0 {
		t.Fatalf("keygen exited %d: %s", code, stderr)
	}
	pub, err := verify.LoadPublicKeyFile(prefix + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, pub.Fingerprint) {
		t.Errorf("keygen printed %q, want the fingerprint %s", out, pub.Fingerprint)
	}
	return prefix + ".key", prefix + ".pub", pub.Fingerprint
}

func TestCLIKeygen(t *testing.T) {
	t.Setenv(passwordEnv, cliPassword)
	dir := t.TempDir()
	keyPath, pubPath, _ := cliKeygen(t, dir, "release")
	for path, perm := range map[string]os.FileMode{keyPath: 0o600, pubPath: 0o644} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != perm {
			t.Errorf("%s has mode %v, want %v", path, st.Mode().Perm(), perm)
		}
	}
	if _, err := verify.LoadPrivateKeyFile(keyPath, []byte(cliPassword)); err != nil {
		t.Fatalf("the generated key does not open with COSIGN_PASSWORD: %v", err)
	}
	before, _ := os.ReadFile(keyPath)

	_, stderr, code := runCLI(t, "", "keygen", "--output-key-prefix", filepath.Join(dir, "release"))
	if code == 0 || !strings.Contains(stderr, "already exists: pass --force") {
		t.Fatalf("keygen over existing files exited %d: %s", code, stderr)
	}
	if after, _ := os.ReadFile(keyPath); !bytes.Equal(before, after) {
		t.Fatal("keygen without --force changed the existing key")
	}
	if _, stderr, code := runCLI(t, "", "keygen", "--output-key-prefix", filepath.Join(dir, "release"), "--force"); code != 0 {
		t.Fatalf("keygen --force exited %d: %s", code, stderr)
	}
	if after, _ := os.ReadFile(keyPath); bytes.Equal(before, after) {
		t.Fatal("keygen --force kept the old key")
	}

	// The default prefix is "cosign", in the working directory.
	t.Chdir(t.TempDir())
	if _, stderr, code := runCLI(t, "", "keygen"); code != 0 {
		t.Fatalf("keygen exited %d: %s", code, stderr)
	}
	for _, f := range []string{"cosign.key", "cosign.pub"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("keygen with the default prefix: %v", err)
		}
	}

	// Without COSIGN_PASSWORD the password is read from standard input.
	os.Unsetenv(passwordEnv)
	piped := filepath.Join(dir, "piped")
	if _, stderr, code := runCLI(t, "from-stdin", "keygen", "--output-key-prefix", piped); code != 0 {
		t.Fatalf("keygen with a piped password exited %d: %s", code, stderr)
	}
	if _, err := verify.LoadPrivateKeyFile(piped+".key", []byte("from-stdin")); err != nil {
		t.Fatalf("the key does not open with the piped password: %v", err)
	}
}

func TestCLIPushSignVerify(t *testing.T) {
	t.Setenv(passwordEnv, cliPassword)
	reg := registrytest.New(t)
	dir := t.TempDir()
	aKey, aPub, aFP := cliKeygen(t, dir, "a")
	bKey, bPub, bFP := cliKeygen(t, dir, "b")
	_, cPub, cFP := cliKeygen(t, dir, "c")
	url := "oci://" + reg.Addr + "/demo/app"

	// Push and sign in one step, then verify.
	_, stderr, code := runCLI(t, "", "push", "artifact", url+":v1", "--path", exampleDir(t), "--source", "https://example.com/app.git",
		"--revision", testRevision, "--insecure-registry", "--sign-key", aKey)
	if code != 0 {
		t.Fatalf("push --sign-key exited %d: %s", code, stderr)
	}
	out, stderr, code := runCLI(t, "", "verify", url+":v1", "--key", aPub, "--insecure-registry")
	if code != 0 {
		t.Fatalf("verify exited %d: %s", code, stderr)
	}
	for _, want := range []string{aFP, aPub, "Source:   https://example.com/app.git", "Revision: " + testRevision, "Signed by 1 of 1 required keys"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify printed:\n%s\nwant %q", out, want)
		}
	}

	// Another key: not verified, and the message names who signed and who was trusted.
	_, stderr, code = runCLI(t, "", "verify", url+":v1", "--key", bPub, "--insecure-registry")
	if code != 1 || !strings.Contains(stderr, "no signature by a trusted key") || !strings.Contains(stderr, "found signers: "+aFP) || !strings.Contains(stderr, bFP) {
		t.Fatalf("verify with another key exited %d:\n%s", code, stderr)
	}

	// Sign by tag with a second key: the digest signed is printed.
	out, stderr, code = runCLI(t, "", "sign", url+":v1", "--key", bKey, "-a", "approved-by=alice", "--insecure-registry")
	if code != 0 {
		t.Fatalf("sign exited %d: %s", code, stderr)
	}
	signedRef := strings.TrimSpace(out)
	if !strings.HasPrefix(signedRef, url+"@sha256:") {
		t.Fatalf("sign printed %q, want %s@sha256:…", out, url)
	}

	// Threshold 2 of a and b, by digest, as JSON.
	out, stderr, code = runCLI(t, "", "verify", signedRef, "--key", aPub, "--key", bPub, "--threshold", "2", "--insecure-registry", "-o", "json")
	if code != 0 {
		t.Fatalf("verify --threshold 2 exited %d: %s", code, stderr)
	}
	var res verify.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("verify -o json printed %q: %v", out, err)
	}
	if len(res.Signers) != 2 || res.Signers[1].Fingerprint != bFP || res.Signers[1].Annotations["approved-by"] != "alice" || res.Revision != testRevision {
		t.Errorf("verify -o json = %+v", res)
	}

	// Threshold 2 of a and c: only a signed.
	_, stderr, code = runCLI(t, "", "verify", signedRef, "--key", aPub, "--key", cPub, "--threshold", "2", "--insecure-registry")
	if code != 1 || !strings.Contains(stderr, "1 of 2 required keys signed: missing "+cFP) {
		t.Fatalf("verify with threshold not met exited %d:\n%s", code, stderr)
	}

	// An unsigned artifact.
	_, stderr, code = runCLI(t, "", "push", "artifact", url+":unsigned", "--path", filepath.Join(exampleDir(t), "base"), "--source", "s", "--revision", testRevision, "--insecure-registry")
	if code != 0 {
		t.Fatalf("push exited %d: %s", code, stderr)
	}
	_, stderr, code = runCLI(t, "", "verify", url+":unsigned", "--key", aPub, "--insecure-registry")
	if code != 1 || !strings.Contains(stderr, "no signatures") {
		t.Fatalf("verify unsigned exited %d:\n%s", code, stderr)
	}
}

func TestCLISignVerifyErrors(t *testing.T) {
	t.Setenv(passwordEnv, cliPassword)
	reg := registrytest.New(t)
	dir := t.TempDir()
	aKey, aPub, _ := cliKeygen(t, dir, "a")
	url := "oci://" + reg.Addr + "/demo/app"
	if _, stderr, code := runCLI(t, "", "push", "artifact", url+":v1", "--path", exampleDir(t), "--source", "s", "--revision", testRevision, "--insecure-registry"); code != 0 {
		t.Fatalf("push exited %d: %s", code, stderr)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "oci://" + l.Addr().String() + "/demo/app:v1"
	l.Close()

	cases := []struct {
		name     string
		password string // "" keeps COSIGN_PASSWORD
		args     []string
		code     int
		want     string
	}{
		{"sign wrong password", "wrong", []string{"sign", url + ":v1", "--key", aKey, "--insecure-registry"}, 1, "wrong password"},
		{"sign missing key file", "", []string{"sign", url + ":v1", "--key", filepath.Join(dir, "nope.key"), "--insecure-registry"}, 1, "nope.key does not exist"},
		{"sign with a public key", "", []string{"sign", url + ":v1", "--key", aPub, "--insecure-registry"}, 1, "not a cosign private key"},
		{"sign without --key", "", []string{"sign", url + ":v1", "--insecure-registry"}, 1, "--key is required"},
		{"sign bad annotation", "", []string{"sign", url + ":v1", "--key", aKey, "-a", "novalue", "--insecure-registry"}, 1, "want key=value"},
		{"sign unreachable", "", []string{"sign", dead, "--key", aKey, "--insecure-registry"}, 1, "registry unreachable"},
		{"verify with a private key", "", []string{"verify", url + ":v1", "--key", aKey, "--insecure-registry"}, 2, "holds a private key"},
		{"verify missing key file", "", []string{"verify", url + ":v1", "--key", filepath.Join(dir, "nope.pub"), "--insecure-registry"}, 2, "nope.pub does not exist"},
		{"verify without --key", "", []string{"verify", url + ":v1", "--insecure-registry"}, 2, "--key is required"},
		{"verify threshold over keys", "", []string{"verify", url + ":v1", "--key", aPub, "--threshold", "2", "--insecure-registry"}, 2, "threshold 2 is more than the 1 distinct trusted keys"},
		{"verify unreachable", "", []string{"verify", dead, "--key", aPub, "--insecure-registry"}, 2, "registry unreachable"},
		{"verify missing tag", "", []string{"verify", url + ":nope", "--key", aPub, "--insecure-registry"}, 2, "no such tag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.password != "" {
				t.Setenv(passwordEnv, tc.password)
			}
			out, stderr, code := runCLI(t, "", tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exited %d (want %d), stderr:\n%s\nwant %q", code, tc.code, stderr, tc.want)
			}
			if out != "" {
				t.Errorf("printed %q on stdout on failure", out)
			}
		})
	}
}
