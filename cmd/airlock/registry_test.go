package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/internal/registrytest"
)

// runRegistryServe runs `airlock registry serve` on storage until the test
// ends, and returns its address once it serves.
func runRegistryServe(t *testing.T, storage string, extra ...string) (addr string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		var out strings.Builder
		err := run(ctx, append([]string{"registry", "serve", "--addr", "127.0.0.1:0", "--storage", storage}, extra...), strings.NewReader(""), &out, pw)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	first := make(chan string, 1)
	go func() {
		br := bufio.NewReader(pr)
		line, _ := br.ReadString('\n')
		first <- line
		_, _ = io.Copy(io.Discard, br)
	}()
	line := <-first
	// "registry serving http://127.0.0.1:41234 from DIR"
	_, rest, ok := strings.Cut(line, "http://")
	addr, _, _ = strings.Cut(rest, " ")
	if !ok || addr == "" {
		cancel()
		t.Fatalf("registry serve printed %q, then stopped: %v", line, <-done)
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return addr, stop
}

// TestCLIRegistryGC: gc refuses the storage of a running `registry serve`,
// naming the lock; once serve stops, --dry-run lists the overwritten
// artifact and deletes nothing, --delete-untagged deletes it.
func TestCLIRegistryGC(t *testing.T) {
	storage := filepath.Join(t.TempDir(), "storage")
	addr, stop := runRegistryServe(t, storage)

	if code, body := registrytest.Do(t, http.MethodGet, "http://"+addr+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("GET /healthz of registry serve = %d %q", code, body)
	}
	url := "oci://" + addr + "/demo/app:v1"
	var digests []string
	for _, content := range []string{"one", "two"} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "app.yaml"), []byte("kind: ConfigMap # "+content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, stderr, code := airlock(t, "push", "artifact", url, "--path", dir, "--source", "s", "--revision", testRevision, "--insecure-registry")
		if code != 0 {
			t.Fatalf("push exited %d: %s", code, stderr)
		}
		_, d, _ := strings.Cut(strings.TrimSpace(out), "@")
		digests = append(digests, d)
	}
	old, cur := digests[0], digests[1]

	lock := filepath.Join(storage, registry.LockFileName)
	_, stderr, code := airlock(t, "registry", "gc", "--storage", storage, "--delete-untagged")
	if code != 1 || !strings.Contains(stderr, lock) || !strings.Contains(stderr, "stop it") {
		t.Fatalf("gc while serve runs exited %d: %s; want a refusal naming %s", code, stderr, lock)
	}
	if err := stop(); err != nil {
		t.Fatalf("registry serve: %v", err)
	}

	out, stderr, code := airlock(t, "registry", "gc", "--storage", storage, "--delete-untagged", "--dry-run")
	if code != 0 || !strings.Contains(out, "would delete manifest demo/app@"+old) || !strings.Contains(out, "would delete 1 manifests, 2 blobs") || strings.Contains(out, cur) {
		t.Fatalf("gc --dry-run exited %d, printed %q: %s", code, out, stderr)
	}
	out, stderr, code = airlock(t, "registry", "gc", "--storage", storage, "--delete-untagged")
	if code != 0 || !strings.Contains(out, "deleted manifest demo/app@"+old) || !strings.Contains(out, "deleted 1 manifests, 2 blobs") || strings.Contains(out, cur) {
		t.Fatalf("gc exited %d, printed %q: %s", code, out, stderr)
	}
	out, _, code = airlock(t, "registry", "gc", "--storage", storage, "--delete-untagged")
	if code != 0 || !strings.Contains(out, "deleted 0 manifests, 0 blobs (0 bytes)") {
		t.Fatalf("second gc exited %d, printed %q", code, out)
	}

	// Served again, the tag still pulls.
	addr, _ = runRegistryServe(t, storage)
	out, stderr, code = airlock(t, "pull", "artifact", "oci://"+addr+"/demo/app:v1", "-o", filepath.Join(t.TempDir(), "out"), "--insecure-registry")
	if code != 0 || !strings.Contains(out, cur) {
		t.Fatalf("pull after gc exited %d, printed %q: %s", code, out, stderr)
	}

	if _, stderr, code := airlock(t, "registry", "gc"); code != 1 || !strings.Contains(stderr, "--storage DIR is required") {
		t.Fatalf("gc without --storage exited %d: %s", code, stderr)
	}
}
