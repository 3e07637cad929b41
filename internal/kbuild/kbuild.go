// Package kbuild renders an artifact's directory with kustomize (krusty) into
// objects, for the controller and for the CLI's image discovery.
package kbuild

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// BuildError is a kustomize build that failed. Path is the directory inside
// the artifact, and File the file at fault when known.
type BuildError struct {
	Digest string
	Path   string
	File   string
	Err    error
}

func (e *BuildError) Error() string {
	where := e.Path
	if where == "" {
		where = "the root"
	}
	if e.File != "" {
		where = e.File
	}
	return fmt.Sprintf("build %s of %s: %v: fix the kustomization in the artifact and push a new one", where, e.Digest, e.Err)
}

func (e *BuildError) Unwrap() error { return e.Err }

// Build runs kustomize over dir/subPath of a pulled artifact and returns the
// objects in kustomize's order. A directory without a kustomization gets one
// generated over its YAML files, as Flux does. The build runs on an
// in-memory copy of the artifact, so a kustomization can reach neither the
// host's files nor the pull cache, and nothing is written to the cache.
func Build(dir, subPath, digest string) ([]*unstructured.Unstructured, error) {
	root, err := securePath(dir, subPath)
	if err != nil {
		return nil, &BuildError{Digest: digest, Path: subPath, Err: err}
	}
	info, err := os.Stat(filepath.Join(dir, root))
	if err != nil || !info.IsDir() {
		return nil, &BuildError{Digest: digest, Path: subPath, Err: fmt.Errorf("path %q is not a directory in the artifact", subPath)}
	}
	mem, err := loadInMemory(dir)
	if err != nil {
		return nil, &BuildError{Digest: digest, Path: subPath, Err: err}
	}
	buildRoot := path.Join("/", filepath.ToSlash(root))
	if err := checkYAML(mem, buildRoot); err != nil {
		return nil, &BuildError{Digest: digest, Path: subPath, File: err.file, Err: err.err}
	}
	if !hasKustomization(mem, buildRoot) {
		n, err := generateKustomization(mem, buildRoot)
		if err != nil {
			return nil, &BuildError{Digest: digest, Path: subPath, Err: err}
		}
		if n == 0 {
			return nil, nil // no YAML at all: an empty artifact
		}
	}
	opts := krusty.MakeDefaultOptions()
	resMap, err := krusty.MakeKustomizer(opts).Run(mem, buildRoot)
	if err != nil {
		return nil, &BuildError{Digest: digest, Path: subPath, Err: err}
	}
	var objs []*unstructured.Unstructured
	for _, res := range resMap.Resources() {
		// Through JSON, so numbers are int64 or float64 as unstructured wants.
		b, err := res.MarshalJSON()
		if err != nil {
			return nil, &BuildError{Digest: digest, Path: subPath, Err: fmt.Errorf("object %s: %w", res.CurId(), err)}
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			return nil, &BuildError{Digest: digest, Path: subPath, Err: fmt.Errorf("object %s: %w", res.CurId(), err)}
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// securePath cleans subPath and refuses one that leaves the artifact.
func securePath(dir, subPath string) (string, error) {
	clean := filepath.Clean("/" + subPath)
	rel := strings.TrimPrefix(clean, "/")
	if rel == "" {
		rel = "."
	}
	if !filepath.IsLocal(rel) && rel != "." {
		return "", fmt.Errorf("path %q leaves the artifact", subPath)
	}
	return rel, nil
}

// loadInMemory copies the artifact's regular files into an in-memory file
// system rooted at "/".
func loadInMemory(dir string) (filesys.FileSystem, error) {
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		target := path.Join("/", filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			return mem.MkdirAll(target)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return mem.WriteFile(target, b)
		default:
			return nil // the safe extractor writes no links; skip anything else
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read artifact content: %w", err)
	}
	return mem, nil
}

func hasKustomization(fsys filesys.FileSystem, dir string) bool {
	for _, n := range konfig.RecognizedKustomizationFileNames() {
		if fsys.Exists(path.Join(dir, n)) {
			return true
		}
	}
	return false
}

func isYAML(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

type fileError struct {
	file string
	err  error
}

// checkYAML parses every YAML file under root, so that a syntax error names
// its file (kustomize's own message often does not).
func checkYAML(fsys filesys.FileSystem, root string) *fileError {
	var bad *fileError
	_ = fsys.Walk(root, func(p string, info fs.FileInfo, err error) error {
		if err != nil || bad != nil || info.IsDir() || !isYAML(p) {
			return nil
		}
		b, err := fsys.ReadFile(p)
		if err != nil {
			bad = &fileError{strings.TrimPrefix(p, "/"), err}
			return nil
		}
		for i, doc := range splitDocuments(b) {
			var v any
			if err := yaml.Unmarshal(doc, &v); err != nil {
				bad = &fileError{strings.TrimPrefix(p, "/"), fmt.Errorf("document %d: %w", i+1, err)}
				return nil
			}
		}
		return nil
	})
	return bad
}

func splitDocuments(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if bytes.Equal(bytes.TrimRight(line, " \t\r\n"), []byte("---")) {
			docs = append(docs, bytes.Clone(cur.Bytes()))
			cur.Reset()
			continue
		}
		cur.Write(line)
	}
	return append(docs, cur.Bytes())
}

// generateKustomization writes a kustomization.yaml in dir listing its YAML
// files, and its subdirectories: a subdirectory with a kustomization is
// listed as a base; one without gets its YAML files listed.
func generateKustomization(fsys filesys.FileSystem, dir string) (int, error) {
	var resources []string
	var walk func(d string) error
	walk = func(d string) error {
		entries, err := fsys.ReadDir(d)
		if err != nil {
			return err
		}
		sort.Strings(entries)
		for _, name := range entries {
			if strings.HasPrefix(name, ".") {
				continue
			}
			p := path.Join(d, name)
			rel := strings.TrimPrefix(strings.TrimPrefix(p, dir), "/")
			switch {
			case fsys.IsDir(p) && hasKustomization(fsys, p):
				resources = append(resources, rel)
			case fsys.IsDir(p):
				if err := walk(p); err != nil {
					return err
				}
			case isYAML(name):
				resources = append(resources, rel)
			}
		}
		return nil
	}
	if err := walk(dir); err != nil {
		return 0, fmt.Errorf("list YAML files: %w", err)
	}
	k := map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"resources":  resources,
	}
	b, err := yaml.Marshal(k)
	if err != nil {
		return 0, err
	}
	return len(resources), fsys.WriteFile(path.Join(dir, "kustomization.yaml"), b)
}
