package main

import (
	"net/http"
	"sync/atomic"
	"testing"

	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/internal/registrytest"
)

// TestCLICredsBoundToTheirHost: $AIRLOCK_REGISTRY_CREDS (like --creds) is
// for the registry of the command's reference; copy sends them to another
// destination registry only as --dest-creds.
func TestCLICredsBoundToTheirHost(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	src := registrytest.NewWithOptions(t, registry.Options{HtpasswdFile: registrytest.Htpasswd(t, "ci", "s3cret")})
	var leaked atomic.Int64
	dst := registrytest.NewWithOptions(t, registry.Options{HtpasswdFile: registrytest.Htpasswd(t, "site", "site-pw"), Observe: func(r *http.Request) {
		if user, _, ok := r.BasicAuth(); ok && user == "ci" {
			leaked.Add(1)
		}
	}})
	t.Setenv(credsEnv, "ci:s3cret")
	url := "oci://" + src.Addr + "/demo/app:v1"
	if _, stderr, code := airlock(t, "push", "artifact", url, "--path", exampleDir(t), "--source", "https://example.com/app.git", "--revision", testRevision, "--insecure-registry"); code != 0 {
		t.Fatalf("push with $%s exited %d: %s", credsEnv, code, stderr)
	}
	copyArgs := []string{"copy", url, "oci://" + dst.Addr + "/demo/app", "--insecure-registry", "--dest-insecure-registry"}
	if _, _, code := airlock(t, copyArgs...); code == 0 {
		t.Errorf("copy to a registry that refuses anonymous pushes, without --dest-creds, exited 0")
	}
	if n := leaked.Load(); n > 0 {
		t.Errorf("the destination registry %s received the source's credentials on %d requests; $%s is for %s only", dst.Addr, n, credsEnv, src.Addr)
	}
	if _, stderr, code := airlock(t, append(copyArgs, "--dest-creds", "site:site-pw")...); code != 0 {
		t.Fatalf("copy with --dest-creds exited %d: %s", code, stderr)
	}
}
