package registry_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/internal/registrytest"
)

// TestHealthz: /healthz answers 200 "ok" while the storage reads and writes,
// without credentials on a registry that requires them, and 503 with the
// reason once the storage is gone.
func TestHealthz(t *testing.T) {
	t.Run("in-memory", func(t *testing.T) {
		reg := registrytest.New(t)
		if code, body := registrytest.Do(t, http.MethodGet, "http://"+reg.Addr+registry.HealthPath); code != http.StatusOK || body != "ok\n" {
			t.Fatalf("GET /healthz = %d %q, want 200 ok", code, body)
		}
	})

	t.Run("filesystem", func(t *testing.T) {
		storage := filepath.Join(t.TempDir(), "storage")
		reg := registrytest.NewWithOptions(t, registry.Options{StorageDir: storage, HtpasswdFile: registrytest.Htpasswd(t, "site", "secret")})
		url := "http://" + reg.Addr + registry.HealthPath
		if code, _ := registrytest.Do(t, http.MethodGet, "http://"+reg.Addr+"/v2/"); code != http.StatusUnauthorized {
			t.Fatalf("GET /v2/ without credentials = %d, want 401", code)
		}
		if code, body := registrytest.Do(t, http.MethodGet, url); code != http.StatusOK || body != "ok\n" {
			t.Fatalf("GET /healthz = %d %q, want 200 ok", code, body)
		}
		if code, _ := registrytest.Do(t, http.MethodHead, url); code != http.StatusOK {
			t.Fatalf("HEAD /healthz = %d, want 200", code)
		}
		// Checks one after the other never find the previous one still
		// holding the storage check (a monitor polling back to back).
		for i := 0; i < 200; i++ {
			if code, body := registrytest.Do(t, http.MethodGet, url); code != http.StatusOK {
				t.Fatalf("check %d right after the previous one = %d %q, want 200", i+1, code, body)
			}
		}
		if code, _ := registrytest.Do(t, http.MethodPost, url); code != http.StatusMethodNotAllowed {
			t.Fatalf("POST /healthz = %d, want 405", code)
		}
		// The probe leaves nothing behind in distribution's tree.
		if _, err := os.Stat(filepath.Join(storage, "docker")); err == nil {
			t.Fatal("the health check wrote into docker/")
		}

		// The storage directory replaced by a file: nothing can be written.
		if err := os.RemoveAll(storage); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(storage, []byte("not a directory"), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, body := registrytest.Do(t, http.MethodGet, url); code != http.StatusServiceUnavailable || !strings.Contains(body, "storage unhealthy") {
			t.Fatalf("GET /healthz on a broken storage = %d %q, want 503 naming the storage", code, body)
		}
	})
}
