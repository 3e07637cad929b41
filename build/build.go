// Package build renders an artifact's directory with kustomize (krusty) into
// objects, for the controller and for the CLI's image discovery.
//
// A build never reaches the network and never runs a program: before
// kustomize runs, every kustomization reachable from the build root is read
// and each field that names a file or directory must name one inside the
// artifact; URLs, remote git bases, Helm charts and non-builtin plugins are
// refused. kustomize's loader would otherwise fetch http(s) resources and
// clone git bases, and neither can be switched off through its public API.
// A build is bounded: bytes per file and in total, the objects and
// kustomization loads the graph expands to (counted before building), the
// objects built, and its duration.
package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"airlock.dev/airlock/api/v1alpha1"
)

// Defaults of Options, from BenchmarkBuild. kustomize's time grows with the
// square of the objects it accumulates (each new object's id is compared
// with every one before it: 1,000 objects build in 0.4 s, 4,000 in 8.5 s)
// and with the square of the keys of one YAML mapping, and its heap peaks
// at 100 to 200 times the YAML it reads: a 2 MiB file builds in 0.9 s
// (CRD-like) to 2.5 s (mappings of 1,000 keys) with a heap of 260 to 370
// MiB; 4 MiB took 2.6 to 6.3 s and 470 to 820 MiB. DefaultMaxObjects also
// keeps a Release's status.inventory under 1.1 MiB in the worst case
// (every name 253 characters), far below etcd's 1.5 MiB object limit.
const (
	DefaultMaxObjects    = 1000
	DefaultMaxFileBytes  = 2 << 20
	DefaultMaxTotalBytes = 8 << 20
)

// maxMappingKeys bounds the keys of one YAML mapping, and of one generated
// ConfigMap or Secret: kustomize's YAML handling is quadratic in them.
const maxMappingKeys = 1000

// Options bound a build and say what a site layers on top of the
// artifact. The zero value is safe and layers nothing.
type Options struct {
	// MaxObjects bounds the objects a build returns and, before building,
	// what the kustomization graph expands to (a file or directory counts
	// once for every path that includes it): its objects, twice as many
	// kustomization loads, and eight times as many objects accumulated over
	// all the kustomizations loaded (a chain of bases re-accumulates its
	// objects at each level). 0 means DefaultMaxObjects.
	MaxObjects int
	// MaxFileBytes bounds each file the build reads. 0 means
	// DefaultMaxFileBytes.
	MaxFileBytes int64
	// MaxTotalBytes bounds the YAML in the artifact plus the other files the
	// kustomizations name, and the bytes kustomize reads counting a file once
	// for every path that loads it. 0 means DefaultMaxTotalBytes.
	MaxTotalBytes int64
	// Timeout bounds the build's duration. 0 means no bound beyond ctx.
	Timeout time.Duration
	// Slots, shared by the builds of one process, bounds how many kustomize
	// runs go on at once (and so their memory): a run takes a slot before
	// it starts and gives it back when it ends, also when Build has already
	// returned on ctx and the run finishes in the background. A build that
	// cannot get a slot before ctx ends fails. nil means no bound.
	Slots chan struct{}

	// Site is layered on top of the artifact's kustomization by kustomize,
	// in memory; the artifact is not changed. nil means nothing.
	Site *Site
	// Substitute replaces variables in the built objects, after kustomize
	// (and so after Site). Each object's YAML after substitution is bounded
	// by MaxFileBytes, and all of them by MaxTotalBytes. nil means none.
	Substitute *Substitution

	// Chart renders the artifact as a Helm chart (RenderChart) instead of
	// building it with kustomize; Site and Substitute must then be nil.
	// nil means kustomize.
	Chart *Chart
	// ChartRenderer runs Helm's template engine for Chart, so that build
	// does not link it: build/helmrender.Engine{} in this process (the
	// CLI), build/renderproc.Process in a separate one (the controller).
	// nil makes every chart render fail with an error that says to set it;
	// kustomize builds do not use it.
	ChartRenderer ChartRenderer
	// Decrypt holds the keys that decrypt, in memory, before kustomize
	// runs, the SOPS-encrypted files the build reads: resource files and the
	// files and envs of secretGenerators (not patches or ConfigMap
	// generators). nil means no keys: an encrypted file the build reads is
	// then an error that names it.
	Decrypt *Decryption
}

func (o Options) withDefaults() Options {
	if o.MaxObjects <= 0 {
		o.MaxObjects = DefaultMaxObjects
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxTotalBytes <= 0 {
		o.MaxTotalBytes = DefaultMaxTotalBytes
	}
	return o
}

// Error is a build that failed or was refused. Path is the directory inside
// the artifact, and File the file at fault when known.
// Hint says what to do; "" means fix the artifact's kustomization.
type Error struct {
	Digest string
	Path   string
	File   string
	Err    error
	Hint   string
}

func (e *Error) Error() string {
	where := e.Path
	if where == "" {
		where = "the root"
	}
	if e.File != "" {
		where = e.File
	}
	hint := e.Hint
	if hint == "" {
		hint = "fix the kustomization in the artifact and push a new one"
	}
	return fmt.Sprintf("build %s of %s: %v: %s", where, e.Digest, e.Err, hint)
}

// bound is ctx within opts.Timeout, when there is one.
func (o Options) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.Timeout > 0 {
		return context.WithTimeout(ctx, o.Timeout)
	}
	return ctx, func() {}
}

// failer makes the *Error of a build of digest at subPath: a failure at
// file ("" when none), with the hint of a *hinted error, else hint.
func failer(digest, subPath, hint string) func(file string, err error) error {
	return func(file string, err error) error {
		e := &Error{Digest: digest, Path: subPath, File: file, Err: err, Hint: hint}
		if h := (*hinted)(nil); errors.As(err, &h) {
			e.Hint = h.hint
		}
		return e
	}
}

// hinted is a failure whose fix is in the Release, not in the artifact.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

const (
	substituteHint = "define the variable in spec.postBuild.substitute or in a ConfigMap or Secret of spec.postBuild.substituteFrom, give it a default (${VAR:=default}), or opt the object out with the annotation " + v1alpha1.SubstituteAnnotation + ": " + v1alpha1.SubstituteDisabled
	siteHint       = "fix the Release's spec.patches, images, components, namePrefix, nameSuffix or commonMetadata"
)

func (e *Error) Unwrap() error { return e.Err }

// Build runs kustomize over dir/subPath of a pulled artifact and returns the
// objects in kustomize's order. A directory without a kustomization gets one
// generated over its YAML files, as Flux does. The build runs on an
// in-memory copy of the artifact, so a kustomization can reach neither the
// host's files nor the pull cache, and nothing is written to the cache.
//
// Every failure is an *Error. When ctx is done or opts.Timeout passes,
// Build returns at once with ctx's error; kustomize takes no context, so
// its goroutine finishes in the background, bounded by the checks made
// before it started (objects, loads, bytes).
func Build(ctx context.Context, dir, subPath, digest string, opts Options) ([]*unstructured.Unstructured, error) {
	opts = opts.withDefaults()
	ctx, cancel := opts.bound(ctx)
	defer cancel()
	fail := failer(digest, subPath, "")
	root, err := securePath(subPath)
	if err != nil {
		return nil, fail("", err)
	}
	info, err := os.Stat(filepath.Join(dir, root))
	if err != nil || !info.IsDir() {
		return nil, fail("", fmt.Errorf("path %q is not a directory in the artifact", subPath))
	}
	if IsChart(dir, subPath) && !hasKustomization(filesys.MakeFsOnDisk(), filepath.Join(dir, root)) {
		return nil, fail("", &hinted{errors.New("the artifact is a Helm chart, not a kustomization"), "set spec.chart on the Release (values go in spec.chart.values)"})
	}
	art, err := loadArtifact(dir, opts)
	if err != nil {
		return nil, fail("", err)
	}
	buildRoot := path.Join("/", filepath.ToSlash(root))
	s := newScanner(art, opts)
	if err := s.checkTree(buildRoot); err != nil {
		return nil, fail(err.file, err.err)
	}
	if !hasKustomization(art.mem, buildRoot) {
		n, err := generateKustomization(art.mem, buildRoot)
		if err != nil {
			return nil, fail("", err)
		}
		if n == 0 {
			return nil, nil // no YAML at all: an empty artifact
		}
	}
	if err := s.checkGraph(ctx, buildRoot); err != nil {
		return nil, fail(err.file, err.err)
	}
	if opts.Substitute != nil {
		if err := CheckVarNames(opts.Substitute.Vars); err != nil {
			return nil, fail("spec.postBuild", &hinted{err, "rename the variable"})
		}
	}
	mem := art.mem
	if !opts.Site.Empty() {
		c, ferr := s.checkSite(opts.Site, buildRoot)
		if ferr != nil {
			return nil, fail(ferr.file, &hinted{ferr.err, siteHint})
		}
		c.add(s.dirs[buildRoot])
		c.loads = sat(c.loads, 1)
		c.work = sat(c.work, c.objects)
		if ferr := s.checkCost(buildRoot, c); ferr != nil {
			return nil, fail(ferr.file, &hinted{ferr.err, siteHint})
		}
	}
	// Every file the build reads is known now, the site's components' too.
	if err := decryptFiles(ctx, art.mem, s.sops, opts.Decrypt, opts.MaxFileBytes); err != nil {
		file := ""
		if d := (*DecryptError)(nil); errors.As(err, &d) {
			file = d.File
		}
		return nil, fail(file, err)
	}
	if !opts.Site.Empty() {
		if mem, buildRoot, err = overlay(art.mem, buildRoot, opts.Site); err != nil {
			return nil, fail("", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fail("", fmt.Errorf("build stopped: %w", err))
	}
	return run(ctx, mem, buildRoot, opts, fail)
}

// Render turns the artifact in dir into objects: with opts.Chart, as a
// Helm chart (RenderChart, which also returns what it rendered); without,
// with kustomize (Build).
func Render(ctx context.Context, dir, subPath, digest string, opts Options) ([]*unstructured.Unstructured, *ChartInfo, error) {
	if opts.Chart != nil {
		return RenderChart(ctx, dir, subPath, digest, *opts.Chart, opts)
	}
	objs, err := Build(ctx, dir, subPath, digest, opts)
	return objs, nil, err
}

// run runs krusty in a goroutine, so that the caller returns when ctx is done.
func run(ctx context.Context, mem filesys.FileSystem, buildRoot string, opts Options, fail func(string, error) error) ([]*unstructured.Unstructured, error) {
	objs, err := inSlot(ctx, opts, fail, func() ([]*unstructured.Unstructured, error) {
		return kustomize(mem, buildRoot, opts)
	})
	if h := (*hinted)(nil); err != nil && !opts.Site.Empty() && !errors.As(err, &h) {
		return nil, fail("", &hinted{err, "fix the kustomization in the artifact, or the Release's spec.patches, images, components, namePrefix, nameSuffix or commonMetadata layered on top of it"})
	}
	if err != nil {
		return nil, fail("", err)
	}
	return objs, nil
}

// inSlot runs f in a goroutine within one of opts.Slots, so that the caller
// returns when ctx is done; f then finishes in the background and gives
// its slot back when it ends. A panic in f is an error. Errors from
// waiting are passed through fail; f's own are returned as they are.
func inSlot[T any](ctx context.Context, opts Options, fail func(string, error) error, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	var zero T
	if opts.Slots != nil {
		select {
		case opts.Slots <- struct{}{}:
		case <-ctx.Done():
			return zero, fail("", fmt.Errorf("build stopped while waiting for one of the %d build slots (other builds were running): %w", cap(opts.Slots), ctx.Err()))
		}
	}
	done := make(chan result, 1)
	go func() {
		var r result
		if opts.Slots != nil {
			defer func() { <-opts.Slots }() // after the result is sent: the run is over
		}
		defer func() {
			if p := recover(); p != nil {
				r = result{err: fmt.Errorf("render failed: %v", p)}
			}
			done <- r
		}()
		r.v, r.err = f()
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, fail("", fmt.Errorf("build stopped: %w", ctx.Err()))
	}
}

func kustomize(mem filesys.FileSystem, buildRoot string, opts Options) ([]*unstructured.Unstructured, error) {
	kopts := krusty.MakeDefaultOptions()
	kopts.LoadRestrictions = types.LoadRestrictionsRootOnly
	kopts.PluginConfig = types.DisabledPluginConfig() // builtins only; no exec, container or Helm plugins
	resMap, err := krusty.MakeKustomizer(kopts).Run(mem, buildRoot)
	if err != nil {
		return nil, err
	}
	return objects(resMap, opts)
}

func objects(resMap resmap.ResMap, opts Options) ([]*unstructured.Unstructured, error) {
	if n := resMap.Size(); n > opts.MaxObjects {
		return nil, fmt.Errorf("the build made %d objects, over the limit of %d objects (--build-max-objects): split the artifact into several Releases", n, opts.MaxObjects)
	}
	var objs []*unstructured.Unstructured
	var substituted int64
	for _, res := range resMap.Resources() {
		var b []byte
		done := false
		if opts.Substitute != nil {
			var err error
			if b, done, err = substitute(res, opts.Substitute, opts.MaxFileBytes); err != nil {
				return nil, &hinted{fmt.Errorf("object %s: %w", objectName(res), err), substituteHint}
			}
			if substituted += int64(len(b)); substituted > opts.MaxTotalBytes {
				return nil, &hinted{fmt.Errorf("after substitution the objects add up to more than %d bytes (--build-max-total-bytes)", opts.MaxTotalBytes), "use shorter values in spec.postBuild"}
			}
		}
		if !done {
			// Through JSON, so numbers are int64 or float64 as unstructured wants.
			var err error
			if b, err = res.MarshalJSON(); err != nil {
				return nil, fmt.Errorf("object %s: %w", res.CurId(), err)
			}
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil && done {
			// The message would quote the object, values and all.
			return nil, &hinted{fmt.Errorf("object %s: after substitution it is not a Kubernetes object (apiVersion, kind, metadata)", objectName(res)), substituteHint}
		} else if err != nil {
			return nil, fmt.Errorf("object %s: %w", res.CurId(), err)
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// securePath cleans subPath and refuses one that leaves the artifact.
func securePath(subPath string) (string, error) {
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

// artifact is the in-memory copy of an artifact that kustomize reads.
// YAML files and kustomization files are copied at once; other files when
// a kustomization names them (files of generators, patches named without
// a YAML extension), so large unrelated files cost nothing.
type artifact struct {
	dir      string
	mem      filesys.FileSystem
	oversize map[string]int64 // files over MaxFileBytes left out, by in-memory path
	total    int64
	opts     Options
}

func isBuildFile(name string) bool {
	if isYAML(name) {
		return true
	}
	for _, n := range konfig.RecognizedKustomizationFileNames() {
		if name == n {
			return true
		}
	}
	return false
}

// loadArtifact copies the artifact's directories, YAML files and
// kustomization files into an in-memory file system rooted at "/".
func loadArtifact(dir string, opts Options) (*artifact, error) {
	a := &artifact{dir: dir, mem: filesys.MakeFsInMemory(), oversize: map[string]int64{}, opts: opts}
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
			return a.mem.MkdirAll(target)
		case d.Type().IsRegular() && isBuildFile(d.Name()):
			_, err := a.copy(target)
			return err
		default:
			return nil // the safe extractor writes no links; other files on demand
		}
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// copy reads the artifact's file at the in-memory path p into memory,
// within the bounds. It reports false for a file over MaxFileBytes, which
// it leaves out and remembers in oversize.
func (a *artifact) copy(p string) (bool, error) {
	disk := filepath.Join(a.dir, filepath.FromSlash(strings.TrimPrefix(p, "/")))
	info, err := os.Lstat(disk)
	if err != nil {
		return false, fmt.Errorf("read artifact content: %w", err)
	}
	if info.Size() > a.opts.MaxFileBytes {
		a.oversize[p] = info.Size()
		return false, nil
	}
	if a.total+info.Size() > a.opts.MaxTotalBytes {
		return false, fmt.Errorf("the artifact's YAML and the files its kustomizations name add up to more than %d bytes (--build-max-total-bytes)", a.opts.MaxTotalBytes)
	}
	b, err := os.ReadFile(disk)
	if err != nil {
		return false, fmt.Errorf("read artifact content: %w", err)
	}
	if int64(len(b)) > a.opts.MaxFileBytes { // it grew under us
		a.oversize[p] = int64(len(b))
		return false, nil
	}
	a.total += int64(len(b))
	return true, a.mem.WriteFile(p, b)
}

// file makes sure the artifact's regular file at p is in memory. It reports
// whether such a file exists; one over MaxFileBytes is an error.
func (a *artifact) file(p string) (bool, error) {
	if n, ok := a.oversize[p]; ok {
		return false, fmt.Errorf("%s is %d bytes, over the limit of %d bytes per file (--build-max-file-bytes)", strings.TrimPrefix(p, "/"), n, a.opts.MaxFileBytes)
	}
	if a.mem.Exists(p) {
		return !a.mem.IsDir(p), nil
	}
	if !a.mem.IsDir(path.Dir(p)) {
		return false, nil // every directory of the artifact is in memory
	}
	info, err := os.Lstat(filepath.Join(a.dir, filepath.FromSlash(strings.TrimPrefix(p, "/"))))
	if err != nil || !info.Mode().IsRegular() {
		return false, nil
	}
	ok, err := a.copy(p)
	if err != nil {
		return false, err
	}
	if !ok {
		return a.file(p) // now in oversize: the error names the limit
	}
	return true, nil
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
