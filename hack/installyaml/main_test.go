package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestInstallYAMLCurrent fails when config/install.yaml, which the CLI
// embeds, is not what config/default renders to.
func TestInstallYAMLCurrent(t *testing.T) {
	root := filepath.Join("..", "..")
	got, err := Render(filepath.Join(root, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(root, "config", "install.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("config/install.yaml is stale: run `go run ./hack/installyaml` (or hack/generate.sh) and commit it (-committed +rendered):\n%s", diff)
	}
}
