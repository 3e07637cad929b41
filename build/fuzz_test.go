package build

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"airlock.dev/airlock/internal/testtree"
)

// FuzzBuildNeverReachesNetworkOrGit builds fuzzed kustomizations in which
// "URL" stands for a live server's address: no input may make a request or
// run git (a fake git first in PATH leaves a marker), whatever it builds.
func FuzzBuildNeverReachesNetworkOrGit(f *testing.F) {
	for _, seed := range []string{
		"resources: [a.yaml]\n",
		"resources: [URL/crb.yaml]\n",
		"resources:\n- HTTP://URL/crb.yaml\n",
		"bases: [URL/base]\n",
		"resources:\n- github.com/example/repo//base?ref=v1\n",
		"resources:\n- git@github.com:example/repo.git\n",
		"resources:\n- git::URL/repo.git//base\n",
		"configMapGenerator:\n- name: c\n  files: [creds=URL/x]\n",
		"secretGenerator:\n- name: c\n  env: URL/x\n",
		"resources: [a.yaml]\npatches:\n- path: URL/p.yaml\n",
		"resources: [a.yaml]\npatchesStrategicMerge: [URL/p.yaml]\n",
		"resources: [a.yaml]\nopenapi: {path: URL/s.json}\n",
		"resources: [a.yaml]\ntransformers:\n- |\n  apiVersion: builtin\n  kind: PatchTransformer\n  metadata: {name: p}\n  path: URL/p.yaml\n",
		"resources: [a.yaml]\nreplacements: [{path: URL/r.yaml}]\n",
		"Resources: [URL/crb.yaml]\n",
	} {
		f.Add(seed)
	}
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Write([]byte(crb))
	}))
	f.Cleanup(srv.Close)
	bin := f.TempDir()
	marker := filepath.Join(bin, "git-ran")
	if err := os.WriteFile(filepath.Join(bin, "git"), []byte("#!/bin/sh\necho \"$@\" >> "+marker+"\nexit 1\n"), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	host := strings.TrimPrefix(srv.URL, "http://")
	f.Fuzz(func(t *testing.T, kustomization string) {
		k := strings.ReplaceAll(strings.ReplaceAll(kustomization, "HTTP://URL", "HTTP://"+host), "URL", srv.URL)
		dir := testtree.Write(t, map[string]string{"kustomization.yaml": k, "a.yaml": cmA})
		_, _ = Build(context.Background(), dir, "", "sha256:abc", Options{MaxObjects: 50, MaxFileBytes: 64 << 10})
		if n := requests.Load(); n != 0 {
			t.Fatalf("kustomization %q made %d requests", k, n)
		}
		if b, err := os.ReadFile(marker); err == nil {
			t.Fatalf("kustomization %q ran git: %s", k, b)
		}
	})
}
