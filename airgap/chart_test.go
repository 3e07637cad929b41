package airgap_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"

	"airlock.dev/airlock/airgap"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/internal/testtree"
	"airlock.dev/airlock/verify"
)

// TestChartExportedWithImages: a signed Helm chart (Helm's media types)
// is exported with the images it renders with its default values and the
// one its artifacthub.io/images annotation lists (used only when a value
// turns it on), stops upstream, and imports at the mirror: the chart
// verifies there, and every image is there by digest.
func TestChartExportedWithImages(t *testing.T) {
	ctx := context.Background()
	u := newUpstreamApps(t)
	image := func(repo string) string {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref := fmt.Sprintf("%s/%s:1.0", u.up.Addr, repo)
		r, _ := name.ParseReference(ref, name.Insecure)
		if err := ggcrremote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	web, exporter := image("team/web"), image("team/exporter")
	dir := testtree.Write(t, map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: web\nversion: 1.0.0\nannotations:\n  artifacthub.io/images: |\n    - name: exporter\n      image: " + exporter + "\n",
		"values.yaml": "image: " + web + "\nmetrics: {enabled: false}\n",
		"templates/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: {{ .Values.image }}
      {{- if .Values.metrics.enabled }}
      - name: exporter
        image: ` + exporter + `
      {{- end }}
`,
	})
	ref, _ := artifact.ParseReference("oci://" + u.up.Addr + "/charts/web:1.0.0")
	pushed, err := artifact.PushChart(ctx, ref, dir, artifact.PushOptions{Remote: plain})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify.Sign(ctx, pushed.Ref, u.key, nil, plain); err != nil {
		t.Fatal(err)
	}
	_, m, err := artifact.Manifest(ctx, pushed.Ref, plain)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != artifact.HelmConfigMediaType || len(m.Layers) != 1 || m.Layers[0].MediaType != artifact.HelmChartMediaType {
		t.Fatalf("manifest: config %s, layers %v: want Helm's media types", m.Config.MediaType, m.Layers)
	}

	tarball := filepath.Join(t.TempDir(), "chart.tar")
	lock, _, err := airgap.Export(ctx, ref, tarball, airgap.RelocateOptions{Src: plain, WithImages: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, img := range lock.Images {
		got = append(got, img.Reference)
	}
	if diff := cmp.Diff([]string{exporter, web}, got); diff != "" {
		t.Errorf("images carried (-want +got):\n%s", diff)
	}

	u.up.Close()
	site := registrytest.New(t)
	mirror, _ := artifact.ParseMirror("oci://" + site.Addr + "/airgap")
	if _, err := airgap.Import(ctx, tarball, mirror, airgap.ImportOptions{Dst: plain, Policy: u.policy}); err != nil {
		t.Fatal(err)
	}
	at, _ := artifact.ParseReference("oci://" + site.Addr + "/airgap/charts/web:1.0.0")
	if _, err := verify.Verify(ctx, at, u.policy, plain); err != nil {
		t.Fatalf("the chart at the mirror: %v", err)
	}
	for _, img := range lock.Images {
		r, _ := artifact.ParseImage(img.Reference)
		if ok, err := artifact.Exists(ctx, artifact.MirrorImage(site.Addr, "airgap", r.WithDigest(img.Digest)), plain); err != nil || !ok {
			t.Errorf("image %s at the mirror: %v %v", img.Reference, ok, err)
		}
	}
}
