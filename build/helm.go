package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"airlock.dev/airlock/api/v1alpha1"
)

// Chart says how a Helm chart is rendered: Helm's template engine, in
// memory, as `helm template` would for an install, with these differences,
// all on the side of safety:
//   - the render never reaches the network or the host: `lookup` returns
//     nothing, `getHostByName` returns "", and a values.schema.json that
//     refers to another document (http, https, file) is refused;
//   - a dependency of Chart.yaml that is not vendored in charts/ is an
//     error naming it: nothing is fetched;
//   - hook templates (helm.sh/hook) are left out unless IncludeHooks, and
//     nothing is ever run as a hook;
//   - .Capabilities are not the cluster's: the Kubernetes version is
//     KubeVersion, and the API versions are Helm's built-in list.
type Chart struct {
	// ReleaseName is .Release.Name.
	ReleaseName string
	// Namespace is .Release.Namespace.
	Namespace string
	// Values are merged over the chart's values.yaml (they win). nil means
	// the chart's defaults.
	Values map[string]any
	// IncludeHooks keeps hook templates, as plain objects. false leaves
	// them out and names them in ChartInfo.SkippedHooks.
	IncludeHooks bool
	// SkipCRDs leaves out the CRDs of crds/. false puts them first.
	SkipCRDs bool
}

// ChartInfo describes a rendered chart.
type ChartInfo struct {
	Name       string
	Version    string
	AppVersion string
	// SkippedHooks names each hook template left out, as
	// "templates/FILE: Kind/name (hook)", at most maxSkippedHooks.
	SkippedHooks []string
	// Images are the images the chart lists in its artifacthub.io/images
	// annotation (Artifact Hub's convention), which may name images that
	// only some values render.
	Images []string
}

// ImagesAnnotation is the Chart.yaml annotation listing a chart's images.
const ImagesAnnotation = "artifacthub.io/images"

// HookAnnotation marks a Helm hook template.
const HookAnnotation = "helm.sh/hook"

const (
	// maxChartFiles bounds the files of a chart, its vendored subcharts
	// (unpacked) included.
	maxChartFiles = 10000
	// maxChartDepth bounds how deep vendored chart archives nest.
	maxChartDepth = 8
	// maxSkippedHooks bounds ChartInfo.SkippedHooks.
	maxSkippedHooks = 20
)

const (
	chartHint       = "fix the chart and push a new version"
	chartValuesHint = "fix spec.chart.values or spec.chart.valuesFrom"
)

// IsChart reports whether dir/subPath holds a Helm chart: a Chart.yaml at
// its root, or in its only subdirectory (the layout of a chart archive).
func IsChart(dir, subPath string) bool {
	_, err := chartRoot(dir, subPath)
	return err == nil
}

// chartRoot finds the chart directory in dir/subPath.
func chartRoot(dir, subPath string) (string, error) {
	root, err := securePath(subPath)
	if err != nil {
		return "", err
	}
	base := filepath.Join(dir, root)
	if isRegular(filepath.Join(base, "Chart.yaml")) {
		return base, nil
	}
	entries, err := os.ReadDir(base)
	if err != nil {
		return "", fmt.Errorf("path %q is not a directory in the artifact", subPath)
	}
	var found []string
	for _, e := range entries {
		if e.IsDir() && isRegular(filepath.Join(base, e.Name(), "Chart.yaml")) {
			found = append(found, e.Name())
		}
	}
	if len(found) != 1 || len(entries) != 1 {
		return "", fmt.Errorf("no Chart.yaml at %q nor in its only subdirectory: spec.chart needs a Helm chart (push one with `helm push` or `oras push`, or point spec.path at its directory)", subPath)
	}
	return filepath.Join(base, found[0]), nil
}

func isRegular(p string) bool {
	info, err := os.Lstat(p)
	return err == nil && info.Mode().IsRegular()
}

// RenderChart renders the Helm chart in dir/subPath, a pulled artifact,
// with c. CRDs come first (unless c.SkipCRDs), then the templates' objects
// in Helm's install order. Bounds: the chart's files (count, bytes per
// file, total bytes, vendored archives unpacked included), the objects and
// bytes rendered, and the duration (opts.Timeout, opts.Slots), as for
// Build. Every failure is an *Error; no message quotes a value.
func RenderChart(ctx context.Context, dir, subPath, digest string, c Chart, opts Options) ([]*unstructured.Unstructured, *ChartInfo, error) {
	opts = opts.withDefaults()
	ctx, cancel := opts.bound(ctx)
	defer cancel()
	fail := failer(digest, subPath, chartHint)
	if !opts.Site.Empty() || opts.Substitute != nil {
		return nil, nil, fail("", &hinted{errors.New("spec.patches, images, components, namePrefix, nameSuffix, commonMetadata and postBuild do not apply to a Helm chart"), "set them through the chart's values (spec.chart.values, valuesFrom) instead"})
	}
	root, err := chartRoot(dir, subPath)
	if err != nil {
		return nil, nil, fail("", err)
	}
	files, err := readChartFiles(root, opts)
	if err != nil {
		return nil, nil, fail("", err)
	}
	type result struct {
		objs []*unstructured.Unstructured
		info *ChartInfo
	}
	r, err := inSlot(ctx, opts, fail, func() (result, error) {
		objs, info, err := renderChart(files, c, opts)
		return result{objs, info}, err
	})
	if e := (*Error)(nil); err != nil && !errors.As(err, &e) {
		err = fail("", err)
	}
	if err != nil {
		return nil, nil, err
	}
	return r.objs, r.info, nil
}

// readChartFiles reads the regular files under root into memory, within
// the bounds, and unpacks vendored chart archives (charts/*.tgz) the same
// way, so that Helm's loader never decompresses anything itself. Links and
// other special files are left out, as Helm's archive loader does.
func readChartFiles(root string, opts Options) ([]*loader.BufferedFile, error) {
	b := &chartBudget{opts: opts}
	var files []*loader.BufferedFile
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if err := b.take(name, info.Size()); err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read chart file %s: %w", name, err)
		}
		if int64(len(data)) != info.Size() {
			return fmt.Errorf("chart file %s changed while read", name)
		}
		files = append(files, &loader.BufferedFile{Name: name, Data: data})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b.unpackVendored(files, 0)
}

// chartBudget counts a chart's files and bytes against the bounds.
type chartBudget struct {
	opts  Options
	files int
	total int64
}

func (b *chartBudget) take(name string, size int64) error {
	b.files++
	if b.files > maxChartFiles {
		return fmt.Errorf("the chart has more than %d files", maxChartFiles)
	}
	if size > b.opts.MaxFileBytes {
		return fmt.Errorf("chart file %s is %d bytes, over the limit of %d bytes per file (--build-max-file-bytes)", name, size, b.opts.MaxFileBytes)
	}
	b.total += size
	if b.total > b.opts.MaxTotalBytes {
		return fmt.Errorf("the chart's files add up to more than %d bytes (--build-max-total-bytes)", b.opts.MaxTotalBytes)
	}
	return nil
}

// vendoredArchive matches a vendored chart archive, charts/NAME.tgz, at any
// depth of subcharts.
var vendoredArchive = regexp.MustCompile(`(^|/)charts/[^/]+\.tgz$`)

// unpackVendored replaces each charts/NAME.tgz with its files under
// charts/NAME/ (the loader's layout for an unpacked subchart), within the
// budget, recursively.
func (b *chartBudget) unpackVendored(files []*loader.BufferedFile, depth int) ([]*loader.BufferedFile, error) {
	var out []*loader.BufferedFile
	unpacked := false
	for _, f := range files {
		if !vendoredArchive.MatchString(f.Name) {
			out = append(out, f)
			continue
		}
		if depth >= maxChartDepth {
			return nil, fmt.Errorf("vendored chart archives nest more than %d deep at %s", maxChartDepth, f.Name)
		}
		inner, err := b.untar(f)
		if err != nil {
			return nil, err
		}
		b.total -= int64(len(f.Data)) // the archive is replaced by its files
		out = append(out, inner...)
		unpacked = true
	}
	if !unpacked {
		return out, nil
	}
	return b.unpackVendored(out, depth+1)
}

// untar reads the chart archive f (gzip, tar, one top directory) into
// files named below f's name without .tgz.
func (b *chartBudget) untar(f *loader.BufferedFile) ([]*loader.BufferedFile, error) {
	prefix := strings.TrimSuffix(f.Name, ".tgz") + "/"
	gz, err := gzip.NewReader(bytes.NewReader(f.Data))
	if err != nil {
		return nil, fmt.Errorf("vendored chart %s: %w", f.Name, err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	var files []*loader.BufferedFile
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("vendored chart %s: %w", f.Name, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(strings.TrimPrefix(filepath.ToSlash(hdr.Name), "/"))
		_, rest, ok := strings.Cut(name, "/") // drop the archive's top directory
		if !ok || rest == "" || !fs.ValidPath(rest) {
			return nil, fmt.Errorf("vendored chart %s: entry %q is not inside one top directory", f.Name, hdr.Name)
		}
		if err := b.take(prefix+rest, hdr.Size); err != nil {
			return nil, err
		}
		data, err := io.ReadAll(io.LimitReader(tr, hdr.Size+1))
		if err != nil {
			return nil, fmt.Errorf("vendored chart %s: %s: %w", f.Name, rest, err)
		}
		if int64(len(data)) != hdr.Size {
			return nil, fmt.Errorf("vendored chart %s: %s: size does not match its header", f.Name, rest)
		}
		files = append(files, &loader.BufferedFile{Name: prefix + rest, Data: data})
	}
}

// renderChart loads files as a chart and renders it with c.
func renderChart(files []*loader.BufferedFile, c Chart, opts Options) ([]*unstructured.Unstructured, *ChartInfo, error) {
	chrt, err := loader.LoadFiles(files)
	if err != nil {
		return nil, nil, fmt.Errorf("load chart: %w", err)
	}
	info := &ChartInfo{Name: chrt.Name(), Version: chrt.Metadata.Version, AppVersion: chrt.Metadata.AppVersion}
	if chrt.Metadata.Type == "library" {
		return nil, info, fmt.Errorf("chart %s is a library chart, which cannot be deployed", chrt.Name())
	}
	if err := checkVendored(chrt); err != nil {
		return nil, info, err
	}
	if a := chrt.Metadata.Annotations[ImagesAnnotation]; a != "" {
		var listed []struct {
			Image string `json:"image"`
		}
		if err := yaml.Unmarshal([]byte(a), &listed); err != nil {
			return nil, info, fmt.Errorf("chart %s: annotation %s is not a YAML list of {name, image}", chrt.Name(), ImagesAnnotation)
		}
		for _, l := range listed {
			if l.Image != "" && len(info.Images) < opts.MaxObjects {
				info.Images = append(info.Images, l.Image)
			}
		}
	}
	vals := c.Values
	if vals == nil {
		vals = map[string]any{}
	}
	if err := chartutil.ProcessDependenciesWithMerge(chrt, vals); err != nil {
		return nil, info, &hinted{fmt.Errorf("chart %s: dependencies: %w", chrt.Name(), err), chartValuesHint}
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *kubeVersion()
	if kv := chrt.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return nil, info, fmt.Errorf("chart %s requires Kubernetes %s, and renders for %s", chrt.Name(), kv, caps.KubeVersion.String())
	}
	// Helm's own schema validation loads $refs over HTTP and from the
	// host's files: it is skipped, and validateSchemas checks offline.
	top, err := chartutil.ToRenderValuesWithSchemaValidation(chrt, vals,
		chartutil.ReleaseOptions{Name: c.ReleaseName, Namespace: c.Namespace, Revision: 1, IsInstall: true}, caps, true)
	if err != nil {
		return nil, info, &hinted{fmt.Errorf("chart %s: merge values: %w", chrt.Name(), err), chartValuesHint}
	}
	if err := validateSchemas(chrt, top["Values"].(chartutil.Values), chrt.Name()); err != nil {
		return nil, info, err
	}
	// The zero Engine has no client: lookup returns an empty map, and DNS
	// lookups return "".
	rendered, err := engine.Engine{}.Render(chrt, top)
	if err != nil {
		return nil, info, &hinted{fmt.Errorf("render chart %s: %w", chrt.Name(), err), chartValuesHint + ", or the chart"}
	}
	var objs []*unstructured.Unstructured
	var total int64
	add := func(file string, doc []byte, crd bool) error {
		total += int64(len(doc))
		if total > opts.MaxTotalBytes {
			return fmt.Errorf("the rendered chart is over %d bytes (--build-max-total-bytes)", opts.MaxTotalBytes)
		}
		u, err := decodeDoc(file, doc)
		if err != nil || u == nil {
			return err
		}
		if !crd {
			if hook := u.GetAnnotations()[HookAnnotation]; hook != "" && !c.IncludeHooks {
				if len(info.SkippedHooks) < maxSkippedHooks {
					info.SkippedHooks = append(info.SkippedHooks, fmt.Sprintf("%s: %s/%s (%s)", file, u.GetKind(), u.GetName(), hook))
				}
				return nil
			}
		}
		objs = append(objs, u)
		if len(objs) > opts.MaxObjects {
			return fmt.Errorf("the chart renders more than %d objects (--build-max-objects): split it into several Releases", opts.MaxObjects)
		}
		return nil
	}
	if !c.SkipCRDs {
		for _, crd := range chrt.CRDObjects() {
			for _, doc := range splitDocs(string(crd.File.Data)) {
				if err := add(crd.Filename, []byte(doc), true); err != nil {
					return nil, info, err
				}
			}
		}
	}
	crds := len(objs)
	names := make([]string, 0, len(rendered))
	for name := range rendered {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		base := path.Base(name)
		if strings.HasPrefix(base, "_") || strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		for _, doc := range splitDocs(rendered[name]) {
			if err := add(name, []byte(doc), false); err != nil {
				return nil, info, err
			}
		}
	}
	sortByInstallOrder(objs[crds:])
	return objs, info, nil
}

// KubeVersion is .Capabilities.KubeVersion in a chart's templates: the
// Kubernetes version of the k8s.io/client-go airlock is built with
// (v0.37.x stands for v1.37; TestKubeVersionFollowsClientGo keeps it in
// step with go.mod). Helm's library default is v1.20.0, which charts that
// require a newer Kubernetes (cert-manager's) refuse.
const KubeVersion = "v1.37.0"

func kubeVersion() *chartutil.KubeVersion {
	return &chartutil.KubeVersion{Version: KubeVersion, Major: "1", Minor: strings.Split(KubeVersion, ".")[1]}
}

// checkVendored makes every dependency in Chart.yaml, at every level, a
// chart vendored in charts/.
func checkVendored(c *chart.Chart) error {
	var missing []string
	var walk func(c *chart.Chart)
	walk = func(c *chart.Chart) {
		have := map[string]bool{}
		for _, d := range c.Dependencies() {
			have[d.Name()] = true
			walk(d)
		}
		for _, d := range c.Metadata.Dependencies {
			if d != nil && !have[d.Name] {
				missing = append(missing, fmt.Sprintf("%s %s from %s (of chart %s)", d.Name, d.Version, d.Repository, c.ChartFullPath()))
			}
		}
	}
	walk(c)
	if len(missing) > 0 {
		return &hinted{fmt.Errorf("chart dependencies not vendored in charts/: %s", strings.Join(missing, "; ")),
			"run `helm dependency build` before packaging the chart and push it again: a render never fetches a dependency"}
	}
	return nil
}

// docSeparator is Helm's YAML document separator.
var docSeparator = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

// splitDocs splits a rendered file into its non-empty YAML documents.
func splitDocs(s string) []string {
	var docs []string
	for _, d := range docSeparator.Split(s, -1) {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

var yamlLine = regexp.MustCompile(`line \d+`)

// decodeDoc decodes one YAML document of file into an object; nil for a
// document of comments only. Its errors quote nothing of the document,
// which may hold values from Secrets.
func decodeDoc(file string, doc []byte) (*unstructured.Unstructured, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		where := yamlLine.FindString(err.Error())
		if where == "" {
			where = "somewhere"
		}
		return nil, &hinted{fmt.Errorf("%s renders YAML that does not parse (at %s of a document)", file, where), chartValuesHint + ", or the chart"}
	}
	if t := bytes.TrimSpace(js); bytes.Equal(t, []byte("null")) || bytes.Equal(t, []byte("{}")) {
		return nil, nil // comments only
	}
	u := &unstructured.Unstructured{}
	// Through JSON, so numbers are int64 or float64 as unstructured wants.
	if err := u.UnmarshalJSON(js); err != nil || u.GetAPIVersion() == "" || u.GetKind() == "" {
		return nil, fmt.Errorf("%s renders a document without apiVersion and kind", file)
	}
	return u, nil
}

// sortByInstallOrder orders objs by Helm's install order of kinds, stably.
func sortByInstallOrder(objs []*unstructured.Unstructured) {
	rank := make(map[string]int, len(releaseutil.InstallOrder))
	for i, k := range releaseutil.InstallOrder {
		rank[k] = i
	}
	r := func(o *unstructured.Unstructured) int {
		if i, ok := rank[o.GetKind()]; ok {
			return i
		}
		return len(rank) // unknown kinds last, as Helm does
	}
	sort.SliceStable(objs, func(i, j int) bool { return r(objs[i]) < r(objs[j]) })
}

// validateSchemas checks values against the values.schema.json of c and of
// each subchart that has values, as Helm does, but offline: a schema that
// refers to another document is refused. The error names where the values
// fail and which keyword, never a value.
func validateSchemas(c *chart.Chart, values map[string]any, at string) error {
	if c.Schema != nil {
		if err := validateSchema(c.Schema, values); err != nil {
			return &hinted{fmt.Errorf("values of chart %s do not meet its values.schema.json: %w", at, err), chartValuesHint}
		}
	}
	for _, sub := range c.Dependencies() {
		raw, ok := values[sub.Name()]
		if !ok || raw == nil {
			continue
		}
		sv, ok := raw.(map[string]any)
		if !ok {
			return &hinted{fmt.Errorf("values of subchart %s/%s are not a map", at, sub.Name()), chartValuesHint}
		}
		if err := validateSchemas(sub, sv, at+"/"+sub.Name()); err != nil {
			return err
		}
	}
	return nil
}

// offlineLoader refuses every document a schema refers to.
type offlineLoader struct{}

func (offlineLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("the schema refers to %s: a chart's schema must be self-contained, nothing is fetched", url)
}

func validateSchema(schemaJSON []byte, values map[string]any) error {
	schema, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return fmt.Errorf("values.schema.json is not JSON: %v", err)
	}
	comp := jsonschema.NewCompiler()
	comp.UseLoader(offlineLoader{})
	const id = "chart:///values.schema.json"
	if err := comp.AddResource(id, schema); err != nil {
		return err
	}
	sch, err := comp.Compile(id)
	if err != nil {
		return fmt.Errorf("compile values.schema.json: %v", err)
	}
	// Through JSON, so that the validator sees JSON's types.
	b, err := json.Marshal(values)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	err = sch.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	var where []string
	seen := map[string]bool{}
	for _, u := range leaves(ve) {
		w := "/" + strings.Join(u.InstanceLocation, "/") + " (" + keyword(u) + ")"
		if !seen[w] && len(where) < 10 {
			seen[w] = true
			where = append(where, w)
		}
	}
	return fmt.Errorf("at %s", strings.Join(where, ", "))
}

func leaves(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return []*jsonschema.ValidationError{ve}
	}
	var out []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

// keyword names the schema keyword that failed, from its kind's type
// (kind.MinLength is "minLength"), without its message, which may quote
// the value.
func keyword(ve *jsonschema.ValidationError) string {
	if ve.ErrorKind == nil {
		return "schema"
	}
	kw := ve.ErrorKind.KeywordPath()
	if len(kw) == 0 {
		return "schema"
	}
	return strings.Join(kw, "/")
}

// ValuesFromError is a ConfigMap or Secret of spec.chart.valuesFrom that
// cannot be read or parsed. It never carries a value.
type ValuesFromError struct {
	Kind   string
	Object types.NamespacedName
	Key    string
	Err    error
}

func (e *ValuesFromError) Error() string {
	return fmt.Sprintf("%s %s key %s (spec.chart.valuesFrom): %v", e.Kind, e.Object, e.Key, e.Err)
}

func (e *ValuesFromError) Unwrap() error { return e.Err }

// ReleaseChart is how rel's spec.chart renders (ChartFor), with the values
// files of its spec.chart.valuesFrom read through read, in order. A
// missing object or key is skipped when the reference is optional. nil
// when rel has no spec.chart. The controller and the CLI's previews both
// render a Release's chart through it, each with its own reader.
func ReleaseChart(ctx context.Context, rel *v1alpha1.Release, read ValueReader) (*Chart, error) {
	spec := rel.Spec.Chart
	if spec == nil {
		return nil, nil
	}
	var files [][]byte
	var names []string
	for _, ref := range spec.ValuesFrom {
		key := types.NamespacedName{Namespace: rel.Namespace, Name: ref.Name}
		valuesKey := ref.ValuesKey
		if valuesKey == "" {
			valuesKey = "values.yaml"
		}
		data, err := read(ctx, ref.Kind, key)
		if err != nil {
			if apierrors.IsNotFound(err) && ref.Optional {
				continue
			}
			if apierrors.IsNotFound(err) {
				err = fmt.Errorf("not found: create it, or mark it optional")
			}
			return nil, &ValuesFromError{Kind: ref.Kind, Object: key, Key: valuesKey, Err: err}
		}
		v, ok := data[valuesKey]
		if !ok {
			if ref.Optional {
				continue
			}
			return nil, &ValuesFromError{Kind: ref.Kind, Object: key, Key: valuesKey, Err: fmt.Errorf("no such key: add it, set valuesKey, or mark the reference optional")}
		}
		files = append(files, []byte(v))
		names = append(names, fmt.Sprintf("%s %s key %s", ref.Kind, key, valuesKey))
	}
	c, err := ChartFor(rel, files, names)
	if err != nil {
		return nil, &ValuesFromError{Kind: "Release", Object: types.NamespacedName{Namespace: rel.Namespace, Name: rel.Name}, Key: "spec.chart", Err: err}
	}
	return c, nil
}

// ChartFor is how rel's spec.chart renders, given the values files of its
// spec.chart.valuesFrom as read by the caller (names name each in errors):
// the values merged, the release name and namespace defaulted from rel.
func ChartFor(rel *v1alpha1.Release, files [][]byte, names []string) (*Chart, error) {
	spec := rel.Spec.Chart
	var inline []byte
	if spec.Values != nil {
		inline = spec.Values.Raw
	}
	vals, err := ChartValues(files, names, inline)
	if err != nil {
		return nil, err
	}
	name := spec.ReleaseName
	if name == "" {
		name = rel.Name
	}
	ns := rel.Spec.TargetNamespace
	if ns == "" {
		ns = rel.Namespace
	}
	return &Chart{ReleaseName: name, Namespace: ns, Values: vals, IncludeHooks: spec.IncludeHooks, SkipCRDs: spec.SkipCRDs}, nil
}

// ChartValues merges values files (YAML maps, in order: a later one wins,
// key by key, maps merged deeply) and then inline JSON values over them.
// name names each file in errors, which never quote a value.
func ChartValues(files [][]byte, names []string, inline []byte) (map[string]any, error) {
	out := map[string]any{}
	for i, f := range files {
		var m map[string]any
		if err := yaml.Unmarshal(f, &m, useNumber); err != nil {
			where := yamlLine.FindString(err.Error())
			if where != "" {
				where = " (at " + where + ")"
			}
			return nil, fmt.Errorf("%s is not a YAML map of values%s", names[i], where)
		}
		mergeValues(out, m)
	}
	if len(inline) > 0 {
		var m map[string]any
		if err := yaml.Unmarshal(inline, &m, useNumber); err != nil {
			return nil, errors.New("spec.chart.values is not a JSON object")
		}
		mergeValues(out, m)
	}
	return out, nil
}

// useNumber keeps numbers as written (json.Number), as Helm reads values.
func useNumber(d *json.Decoder) *json.Decoder {
	d.UseNumber()
	return d
}

// mergeValues merges src into dst: maps deeply, anything else replaced.
func mergeValues(dst, src map[string]any) {
	for k, v := range src {
		sm, sok := v.(map[string]any)
		dm, dok := dst[k].(map[string]any)
		if sok && dok {
			mergeValues(dm, sm)
			continue
		}
		dst[k] = v
	}
}

// ChartValuesHash is "sha256:<hex>" over values as canonical JSON (keys
// sorted), or "" when there are none.
func ChartValuesHash(values map[string]any) string {
	if len(values) == 0 {
		return ""
	}
	b, err := json.Marshal(values)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
