package registry_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"oras.land/oras-go/v2/registry/remote"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"
)

var plainHTTP = artifact.RemoteOptions{PlainHTTPInsecure: true}

// pushApp pushes a one-file artifact with content to oci://addr/repoTag.
func pushApp(t *testing.T, addr, repoTag, content string) *artifact.PushResult {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.yaml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	ref, err := artifact.ParseReference("oci://" + addr + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	res, err := artifact.Push(context.Background(), ref, dir, artifact.PushOptions{Remote: plainHTTP})
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return res
}

// TestCatalogListsPushedRepositories: a site operator or a replication tool
// lists what the registry holds, page by page, with the page sizes clients
// ask for (crane asks for n=1000).
func TestCatalogListsPushedRepositories(t *testing.T) {
	reg := registrytest.New(t)
	want := []string{"apps/a", "apps/b", "infra/c"}
	for _, repo := range want {
		pushApp(t, reg.Addr, repo+":v1", "kind: ConfigMap # "+repo+"\n")
	}

	// oras-go, one repository per page: it follows the Link header.
	r, err := remote.NewRegistry(reg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	r.RepositoryListPageSize = 1
	var got []string
	biggest := 0
	err = r.Repositories(context.Background(), "", func(repos []string) error {
		biggest = max(biggest, len(repos))
		got = append(got, repos...)
		return nil
	})
	if err != nil {
		t.Fatalf("list repositories with n=1: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" || biggest != 1 {
		t.Fatalf("catalog with n=1 (pages of up to %d, want 1) (-want +got):\n%s", biggest, diff)
	}

	// Without n: distribution's default page (100) holds them all.
	resp, err := http.Get("http://" + reg.Addr + "/v2/_catalog")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Repositories []string }
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/_catalog: status %d, %v", resp.StatusCode, err)
	}
	if diff := cmp.Diff(want, body.Repositories); diff != "" {
		t.Fatalf("GET /v2/_catalog (-want +got):\n%s", diff)
	}

	// The Link header of a short page names the next one.
	resp, err = http.Get("http://" + reg.Addr + "/v2/_catalog?n=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if link := resp.Header.Get("Link"); resp.StatusCode != http.StatusOK || !strings.Contains(link, "last=apps%2Fa") || !strings.Contains(link, `rel="next"`) {
		t.Fatalf("GET /v2/_catalog?n=1: status %d, Link %q, want 200 and a next link after apps/a", resp.StatusCode, link)
	}

	// go-containerregistry (crane catalog): n=1000 in one page, then n=1
	// from a given last.
	target, err := name.NewRegistry(reg.Addr, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	all, err := ggcrremote.CatalogPage(target, "", 1000)
	if err != nil {
		t.Fatalf("catalog with n=1000: %v", err)
	}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Fatalf("catalog with n=1000 (-want +got):\n%s", diff)
	}
	next, err := ggcrremote.CatalogPage(target, "apps/b", 1)
	if err != nil {
		t.Fatalf("catalog with n=1 after apps/b: %v", err)
	}
	if diff := cmp.Diff([]string{"infra/c"}, next); diff != "" {
		t.Fatalf("catalog with n=1 after apps/b (-want +got):\n%s", diff)
	}
	// distribution refuses a page larger than its maximum, 1000.
	if _, err := ggcrremote.CatalogPage(target, "", 1001); err == nil || !strings.Contains(err.Error(), "PAGINATION_NUMBER_INVALID") {
		t.Fatalf("catalog with n=1001: %v, want PAGINATION_NUMBER_INVALID (the maximum is 1000)", err)
	}
}
