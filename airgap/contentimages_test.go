package airgap

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/build"
	"airlock.dev/airlock/internal/testtree"
)

// diamondApp writes a kustomization of the given levels where each level
// includes the one below twice, under two name prefixes, over a Deployment.
func diamondApp(t *testing.T, levels int) string {
	t.Helper()
	files := map[string]string{
		"l0/kustomization.yaml": "resources: [deploy.yaml]\n",
		"l0/deploy.yaml":        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: svc}\nspec:\n  template:\n    spec:\n      containers: [{name: svc, image: registry.example/team/svc@sha256:" + fmt.Sprintf("%064d", 1) + "}]\n",
	}
	for k := 1; k <= levels; k++ {
		files[fmt.Sprintf("l%d/kustomization.yaml", k)] = "resources: [a, b]\n"
		files[fmt.Sprintf("l%d/a/kustomization.yaml", k)] = fmt.Sprintf("namePrefix: a-\nresources: [../../l%d]\n", k-1)
		files[fmt.Sprintf("l%d/b/kustomization.yaml", k)] = fmt.Sprintf("namePrefix: b-\nresources: [../../l%d]\n", k-1)
	}
	return testtree.Write(t, files)
}

// TestContentImagesStopsWithContext: Ctrl-C or SIGTERM (a cancelled
// context) stops --with-images' build of a large diamond instead of letting
// it run to the end.
func TestContentImagesStopsWithContext(t *testing.T) {
	dir := diamondApp(t, 8) // 256 Deployments, within the build's bounds
	discoverImages := func(ctx context.Context, dir, path, digest string) ([]string, error) {
		return contentImages(ctx, path, func(string) (*artifact.PullResult, error) {
			return &artifact.PullResult{Path: dir, Digest: digest}, nil
		})
	}
	images, err := discoverImages(context.Background(), dir, "l8", "sha256:abc")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"registry.example/team/svc@sha256:" + fmt.Sprintf("%064d", 1)}, images); diff != "" {
		t.Fatalf("images (-want +got):\n%s", diff)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	images, err = discoverImages(ctx, dir, "l8", "sha256:abc")
	var be *build.Error
	if !errors.Is(err, context.Canceled) || !errors.As(err, &be) {
		t.Fatalf("with a cancelled context: images %v, err = %v; want a build.Error wrapping context.Canceled", images, err)
	}
}
