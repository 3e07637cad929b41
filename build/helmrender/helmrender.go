// Package helmrender renders Helm charts with Helm's template engine in
// this process: the build.ChartRenderer of the CLI, of tests, and of
// airlock-chart-render, the process the controller renders charts in.
//
// It is apart from package build because Helm's engine is text/template
// with sprig: text/template's executor looks methods up by name, which
// makes the linker keep every exported method of every type a binary
// links. The controller, which imports build, does not link this package.
package helmrender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"sigs.k8s.io/yaml"

	"airlock.dev/airlock/build"
)

// Engine renders charts in this process, as build.Chart describes. Helm's
// engine takes no context: a render that does not end is not stopped by
// ctx (build.RenderChart returns on ctx all the same, and the render goes
// on in the background). The zero value is ready to use.
type Engine struct{}

var _ build.ChartRenderer = Engine{}

// RenderChart loads req.Files as a chart and renders it with req.Chart.
func (Engine) RenderChart(_ context.Context, req *build.ChartRequest) (*build.ChartRender, error) {
	files := make([]*loader.BufferedFile, 0, len(req.Files))
	for _, f := range req.Files {
		files = append(files, &loader.BufferedFile{Name: f.Name, Data: f.Data})
	}
	chrt, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	out := &build.ChartRender{Info: build.ChartInfo{Name: chrt.Name(), Version: chrt.Metadata.Version, AppVersion: chrt.Metadata.AppVersion}}
	info := &out.Info
	if chrt.Metadata.Type == "library" {
		return nil, fmt.Errorf("chart %s is a library chart, which cannot be deployed", chrt.Name())
	}
	if err := checkVendored(chrt); err != nil {
		return nil, err
	}
	if a := chrt.Metadata.Annotations[build.ImagesAnnotation]; a != "" {
		var listed []struct {
			Image string `json:"image"`
		}
		if err := yaml.Unmarshal([]byte(a), &listed); err != nil {
			return nil, fmt.Errorf("chart %s: annotation %s is not a YAML list of {name, image}", chrt.Name(), build.ImagesAnnotation)
		}
		for _, l := range listed {
			if l.Image != "" && len(info.Images) < req.MaxImages {
				info.Images = append(info.Images, l.Image)
			}
		}
	}
	c := req.Chart
	vals := c.Values
	if vals == nil {
		vals = map[string]any{}
	}
	if err := chartutil.ProcessDependenciesWithMerge(chrt, vals); err != nil {
		return nil, build.WithHint(fmt.Errorf("chart %s: dependencies: %w", chrt.Name(), err), build.ChartValuesHint)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *kubeVersion()
	if kv := chrt.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart %s requires Kubernetes %s, and renders for %s", chrt.Name(), kv, caps.KubeVersion.String())
	}
	// Helm's own schema validation loads $refs over HTTP and from the
	// host's files: it is skipped, and validateSchemas checks offline.
	top, err := chartutil.ToRenderValuesWithSchemaValidation(chrt, vals,
		chartutil.ReleaseOptions{Name: c.ReleaseName, Namespace: c.Namespace, Revision: 1, IsInstall: true}, caps, true)
	if err != nil {
		return nil, build.WithHint(fmt.Errorf("chart %s: merge values: %w", chrt.Name(), err), build.ChartValuesHint)
	}
	if err := validateSchemas(chrt, top["Values"].(chartutil.Values), chrt.Name()); err != nil {
		return nil, err
	}
	// The zero Engine has no client: lookup returns an empty map, and DNS
	// lookups return "".
	rendered, err := engine.Engine{}.Render(chrt, top)
	if err != nil {
		return nil, build.WithHint(fmt.Errorf("render chart %s: %w", chrt.Name(), err), build.ChartValuesHint+", or the chart")
	}
	out.Templates = make(map[string]string, len(rendered))
	var total int64
	for name, text := range rendered {
		if build.IsChartPartial(name) {
			continue
		}
		if total += int64(len(text)); total > req.MaxBytes {
			return nil, fmt.Errorf("the rendered chart is over %d bytes (--build-max-total-bytes)", req.MaxBytes)
		}
		out.Templates[name] = text
	}
	for _, crd := range chrt.CRDObjects() {
		out.CRDs = append(out.CRDs, &build.ChartFile{Name: crd.Filename, Data: crd.File.Data})
	}
	return out, nil
}

func kubeVersion() *chartutil.KubeVersion {
	return &chartutil.KubeVersion{Version: build.KubeVersion, Major: "1", Minor: strings.Split(build.KubeVersion, ".")[1]}
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
		return build.WithHint(fmt.Errorf("chart dependencies not vendored in charts/: %s", strings.Join(missing, "; ")),
			"run `helm dependency build` before packaging the chart and push it again: a render never fetches a dependency")
	}
	return nil
}

// validateSchemas checks values against the values.schema.json of c and of
// each subchart that has values, as Helm does, but offline: a schema that
// refers to another document is refused. The error names where the values
// fail and which keyword, never a value.
func validateSchemas(c *chart.Chart, values map[string]any, at string) error {
	if c.Schema != nil {
		if err := validateSchema(c.Schema, values); err != nil {
			return build.WithHint(fmt.Errorf("values of chart %s do not meet its values.schema.json: %w", at, err), build.ChartValuesHint)
		}
	}
	for _, sub := range c.Dependencies() {
		raw, ok := values[sub.Name()]
		if !ok || raw == nil {
			continue
		}
		sv, ok := raw.(map[string]any)
		if !ok {
			return build.WithHint(fmt.Errorf("values of subchart %s/%s are not a map", at, sub.Name()), build.ChartValuesHint)
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
