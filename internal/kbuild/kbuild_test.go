package kbuild

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const cmA = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  n: \"1\"\n"
const cmB = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"

func TestBuild(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		path    string
		want    []string // kind/name
		wantErr string   // substring; "" means success
	}{
		{name: "generated over YAML files, recursively", files: map[string]string{"a.yaml": cmA, "sub/b.yml": cmB, "README.md": "# not yaml"}, want: []string{"ConfigMap/a", "ConfigMap/b"}},
		{name: "kustomization in a subdirectory is a base", files: map[string]string{"a.yaml": cmA, "base/kustomization.yaml": "resources: [b.yaml]\n", "base/b.yaml": cmB, "base/ignored.yaml": "kind: ["}, wantErr: "base/ignored.yaml"},
		{name: "existing kustomization wins", files: map[string]string{"kustomization.yaml": "resources: [a.yaml]\n", "a.yaml": cmA, "b.yaml": cmB}, want: []string{"ConfigMap/a"}},
		{name: "path selects a directory", files: map[string]string{"a.yaml": cmA, "prod/b.yaml": cmB}, path: "prod", want: []string{"ConfigMap/b"}},
		{name: "path cannot leave the artifact", files: map[string]string{"a.yaml": cmA}, path: "../..", want: []string{"ConfigMap/a"}},
		{name: "missing path", files: map[string]string{"a.yaml": cmA}, path: "nope", wantErr: `path "nope" is not a directory`},
		{name: "YAML error names the file", files: map[string]string{"good.yaml": cmA, "bad.yaml": "kind: ConfigMap\nmetadata: [\n"}, wantErr: "bad.yaml"},
		{name: "kustomization cannot reach outside the artifact", files: map[string]string{"kustomization.yaml": "resources: [/etc/passwd]\n"}, wantErr: "build"},
		{name: "empty directory builds to nothing", files: map[string]string{"README.md": "x"}, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := Build(writeTree(t, tc.files), tc.path, "sha256:abc")
			if tc.wantErr != "" {
				var be *BuildError
				if err == nil || !errors.As(err, &be) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a BuildError containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.GetKind()+"/"+o.GetName())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildLeavesArtifactUntouched(t *testing.T) {
	dir := writeTree(t, map[string]string{"a.yaml": cmA})
	if _, err := Build(dir, "", "sha256:abc"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kustomization.yaml")); !os.IsNotExist(err) {
		t.Errorf("Build wrote a kustomization.yaml into the cached artifact")
	}
}
