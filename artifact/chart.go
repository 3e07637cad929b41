package artifact

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// Helm's media types for a chart stored in an OCI registry (`helm push`):
// the config is the chart's metadata (Chart.yaml) as JSON, and the one
// layer is the chart archive, whose entries sit under the chart's name.
const (
	HelmConfigMediaType = "application/vnd.cncf.helm.config.v1+json"
	HelmChartMediaType  = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
)

// PushChart packs the Helm chart in directory dir as `helm package` lays it
// out (every entry under the chart's name) and pushes it to ref's tag with
// Helm's media types, so that helm, Flux and airlock all read it. The
// archive is reproducible as Push's is; files ignored by .helmignore are
// not left out (list them in opts.Pack.IgnorePaths). It builds a client
// from opts.Remote.
func PushChart(ctx context.Context, ref Reference, dir string, opts PushOptions) (*PushResult, error) {
	c, err := NewClient(opts.Remote.For(ref))
	if err != nil {
		return nil, err
	}
	meta, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, fmt.Errorf("push chart %s: %w: dir must be a Helm chart's directory", ref, err)
	}
	var chart struct {
		Name string `json:"name"`
	}
	if err := yaml.Unmarshal(meta, &chart); err != nil || chart.Name == "" || !filepath.IsLocal(chart.Name) || filepath.Base(chart.Name) != chart.Name {
		return nil, fmt.Errorf("push chart %s: %s/Chart.yaml has no valid name", ref, dir)
	}
	config, err := yaml.YAMLToJSON(meta)
	if err != nil {
		return nil, fmt.Errorf("push chart %s: Chart.yaml: %w", ref, err)
	}
	opts.Pack.Prefix = chart.Name
	return c.push(ctx, ref, dir, opts, mediaTypes{config: HelmConfigMediaType, configBody: config, layer: HelmChartMediaType})
}
