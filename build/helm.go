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
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
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

// ChartFile is one file of a chart, its name relative to the chart's
// directory, slash-separated.
type ChartFile struct {
	Name string
	Data []byte
}

// ChartRequest is what a ChartRenderer renders: a chart's files, read
// within the bounds (vendored chart archives unpacked under charts/NAME/),
// and how to render them.
type ChartRequest struct {
	Files []*ChartFile
	Chart Chart
	// MaxImages bounds ChartInfo.Images.
	MaxImages int
	// MaxBytes bounds the rendered templates, partials and NOTES.txt left
	// out (IsChartPartial).
	MaxBytes int64
}

// ChartRender is what Helm's template engine made of a ChartRequest.
type ChartRender struct {
	// Info has the chart's name, versions and images; SkippedHooks is
	// left to RenderChart.
	Info ChartInfo
	// CRDs are the files of crds/, of the chart and of its subcharts,
	// named as Helm names them.
	CRDs []*ChartFile
	// Templates are the rendered templates by name, partials and
	// NOTES.txt left out.
	Templates map[string]string
}

// ChartRenderer renders a Helm chart with Helm's template engine. Its
// errors are sent back to the Release as they are, so they must quote no
// value; one that wraps WithHint carries its fix. Package
// build/helmrender renders in this process; build/renderproc, in a
// separate process (airlock-chart-render) that it kills when ctx ends.
type ChartRenderer interface {
	RenderChart(ctx context.Context, req *ChartRequest) (*ChartRender, error)
}

// ChartValuesHint is the fix for a chart that fails with the Release's
// values.
const ChartValuesHint = chartValuesHint

// WithHint is err with its fix, hint, for a ChartRenderer: a build's
// *Error then says hint instead of its default.
func WithHint(err error, hint string) error { return &hinted{err, hint} }

// HintOf is the hint of WithHint in err's chain, or "".
func HintOf(err error) string {
	if h := (*hinted)(nil); errors.As(err, &h) {
		return h.hint
	}
	return ""
}

// RenderChart renders the Helm chart in dir/subPath, a pulled artifact,
// with c, through opts.ChartRenderer. CRDs come first (unless c.SkipCRDs),
// then the templates' objects in Helm's install order. Bounds: the
// chart's files (count, bytes per file, total bytes, vendored archives
// unpacked included), the objects and bytes rendered, and the duration
// (opts.Timeout, opts.Slots), as for Build. Every failure is an *Error;
// no message quotes a value.
func RenderChart(ctx context.Context, dir, subPath, digest string, c Chart, opts Options) ([]*unstructured.Unstructured, *ChartInfo, error) {
	opts = opts.withDefaults()
	ctx, cancel := opts.bound(ctx)
	defer cancel()
	fail := failer(digest, subPath, chartHint)
	if opts.ChartRenderer == nil {
		return nil, nil, fail("", &hinted{errors.New("no chart renderer is set (build.Options.ChartRenderer)"), "give the build a renderer: build/helmrender.Engine{} in this process, or build/renderproc.Process (airlock-chart-render) in its own"})
	}
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
	req := &ChartRequest{Files: files, Chart: c, MaxImages: opts.MaxObjects, MaxBytes: opts.MaxTotalBytes}
	r, err := inSlot(ctx, opts, fail, func() (result, error) {
		rendered, err := opts.ChartRenderer.RenderChart(ctx, req)
		if err != nil {
			return result{}, err
		}
		objs, info, err := chartObjects(rendered, c, opts)
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
func readChartFiles(root string, opts Options) ([]*ChartFile, error) {
	b := &chartBudget{opts: opts}
	var files []*ChartFile
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
		files = append(files, &ChartFile{Name: name, Data: data})
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
func (b *chartBudget) unpackVendored(files []*ChartFile, depth int) ([]*ChartFile, error) {
	var out []*ChartFile
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
func (b *chartBudget) untar(f *ChartFile) ([]*ChartFile, error) {
	prefix := strings.TrimSuffix(f.Name, ".tgz") + "/"
	gz, err := gzip.NewReader(bytes.NewReader(f.Data))
	if err != nil {
		return nil, fmt.Errorf("vendored chart %s: %w", f.Name, err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	var files []*ChartFile
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
		files = append(files, &ChartFile{Name: prefix + rest, Data: data})
	}
}

// chartObjects decodes what r rendered for c into objects, within opts's
// bounds: the CRDs first (unless c.SkipCRDs), then the templates' objects,
// their hooks left out unless c.IncludeHooks, in Helm's install order.
func chartObjects(r *ChartRender, c Chart, opts Options) ([]*unstructured.Unstructured, *ChartInfo, error) {
	info := r.Info
	info.SkippedHooks = nil
	if len(info.Images) > opts.MaxObjects {
		info.Images = info.Images[:opts.MaxObjects]
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
		for _, crd := range r.CRDs {
			for _, doc := range splitDocs(string(crd.Data)) {
				if err := add(crd.Name, []byte(doc), true); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	crds := len(objs)
	names := make([]string, 0, len(r.Templates))
	for name := range r.Templates {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if IsChartPartial(name) {
			continue
		}
		for _, doc := range splitDocs(r.Templates[name]) {
			if err := add(name, []byte(doc), false); err != nil {
				return nil, nil, err
			}
		}
	}
	sortByInstallOrder(objs[crds:])
	return objs, &info, nil
}

// IsChartPartial reports whether the template name renders no objects:
// a partial (_helpers.tpl) or NOTES.txt.
func IsChartPartial(name string) bool {
	return strings.HasPrefix(path.Base(name), "_") || strings.HasSuffix(name, "NOTES.txt")
}

// KubeVersion is .Capabilities.KubeVersion in a chart's templates: the
// Kubernetes version of the k8s.io/client-go airlock is built with
// (v0.37.x stands for v1.37; TestKubeVersionFollowsClientGo keeps it in
// step with go.mod). Helm's library default is v1.20.0, which charts that
// require a newer Kubernetes (cert-manager's) refuse.
const KubeVersion = "v1.37.0"

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

// InstallOrder is Helm's install order of kinds (releaseutil.InstallOrder,
// which build does not import: it would link Helm's chart loader;
// helmrender's TestInstallOrderIsHelms keeps the two equal).
var InstallOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
	"ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
	"ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
	"Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
	"APIService",
}

// sortByInstallOrder orders objs by Helm's install order of kinds, stably.
func sortByInstallOrder(objs []*unstructured.Unstructured) {
	rank := make(map[string]int, len(InstallOrder))
	for i, k := range InstallOrder {
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
