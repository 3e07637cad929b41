// Package registrytest starts a real in-process registry for tests.
package registrytest

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"airlock.dev/airlock/internal/registry"
)

// New starts an in-memory registry on 127.0.0.1 and stops it when the test ends.
func New(t testing.TB) *registry.Server {
	t.Helper()
	return NewWithOptions(t, registry.Options{})
}

// NewWithOptions is New with storage, auth or TLS options.
func NewWithOptions(t testing.TB, opts registry.Options) *registry.Server {
	t.Helper()
	s, err := registry.Start(context.Background(), "127.0.0.1:0", opts)
	if err != nil {
		t.Fatalf("start registry: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Htpasswd writes an htpasswd file with one account, for
// registry.Options.HtpasswdFile, and returns its path.
func Htpasswd(t testing.TB, user, pass string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(p, []byte(user+":"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Do sends one request without credentials, such as a health check, and
// returns the status code and the body.
func Do(t testing.TB, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
