package artifact_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"

	"airlock.dev/airlock/internal/testtree"
)

func TestTagListDiff(t *testing.T) {
	reg := registrytest.New(t)
	ctx := context.Background()
	src := testtree.Write(t, appTree)
	repo := "oci://" + reg.Addr + "/demo/app"
	v1, err := artifact.Push(ctx, mustRef(t, repo+":v1"), src, artifact.PushOptions{Remote: plainHTTP, Source: "https://example.com/app.git", Revision: revision})
	if err != nil {
		t.Fatal(err)
	}

	got, err := artifact.Tag(ctx, mustRef(t, repo+":v1"), []string{"1.0.0", "1.2.0", "2.0.0-rc.1", "stable"}, plainHTTP)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != v1.Digest {
		t.Fatalf("tagged %s, want %s", got.Digest, v1.Digest)
	}
	if _, err := artifact.Tag(ctx, mustRef(t, repo+":v1"), []string{"-bad"}, plainHTTP); err == nil || !strings.Contains(err.Error(), "invalid tag") {
		t.Fatalf("bad tag: %v", err)
	}
	if _, err := artifact.Tag(ctx, mustRef(t, repo+":missing"), []string{"x"}, plainHTTP); !errors.Is(err, artifact.ErrNoTag) {
		t.Fatalf("tagging a missing tag: %v", err)
	}

	all, err := artifact.List(ctx, mustRef(t, repo+":v1").WithTag(""), artifact.ListOptions{Remote: plainHTTP})
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, e := range all {
		tags = append(tags, e.Tag)
		if e.Digest != v1.Digest || e.Source != "https://example.com/app.git" || e.Revision != revision {
			t.Errorf("entry %+v lacks digest or annotations", e)
		}
	}
	if diff := cmp.Diff([]string{"1.0.0", "1.2.0", "2.0.0-rc.1", "stable", "v1"}, tags); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	semver, err := artifact.List(ctx, mustRef(t, repo+":v1").WithTag(""), artifact.ListOptions{Remote: plainHTTP, SemverRange: ">=1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(semver) != 2 || semver[0].Tag != "1.2.0" || semver[1].Tag != "1.0.0" {
		t.Errorf("semver filter: %+v", semver)
	}
	re, err := artifact.List(ctx, mustRef(t, repo+":v1").WithTag(""), artifact.ListOptions{Remote: plainHTTP, Regex: "^v"})
	if err != nil || len(re) != 1 || re[0].Tag != "v1" {
		t.Errorf("regex filter: %+v %v", re, err)
	}
	if _, err := artifact.List(ctx, mustRef(t, repo+":v1").WithTag(""), artifact.ListOptions{Remote: plainHTTP, Regex: "("}); err == nil {
		t.Error("a bad regex was accepted")
	}
	latest, err := artifact.LatestSemver(ctx, mustRef(t, repo+":v1").WithTag(""), "1.x", plainHTTP)
	if err != nil || latest != "1.2.0" {
		t.Errorf("LatestSemver = %q, %v", latest, err)
	}

	same, err := artifact.Diff(ctx, mustRef(t, repo+":v1"), src, artifact.PackOptions{}, artifact.PullOptions{Remote: plainHTTP})
	if err != nil || !same.Equal() {
		t.Fatalf("diff of the pushed tree: %+v %v", same, err)
	}
	os.WriteFile(filepath.Join(src, "cm.yaml"), []byte("changed\n"), 0o644)
	os.WriteFile(filepath.Join(src, "new.yaml"), []byte("n: 1\n"), 0o644)
	os.Remove(filepath.Join(src, "sub", "deep", "x.yaml"))
	d, err := artifact.Diff(ctx, mustRef(t, repo+":v1"), src, artifact.PackOptions{}, artifact.PullOptions{Remote: plainHTTP})
	if err != nil {
		t.Fatal(err)
	}
	want := &artifact.DiffResult{Digest: v1.Digest, Added: []string{"new.yaml"}, Removed: []string{"sub/deep/x.yaml"}, Changed: []string{"cm.yaml"}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("diff (-want +got):\n%s", diff)
	}
}
