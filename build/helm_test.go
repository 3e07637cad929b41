package build_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"airlock.dev/airlock/build"
	"airlock.dev/airlock/build/helmrender"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"airlock.dev/airlock/internal/testtree"
)

// chartArchive is a chart packed as `helm package` does: gzip, tar, one
// top directory named after the chart.
func chartArchive(t testing.TB, top string, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: top + "/" + name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

const simpleChart = `apiVersion: v2
name: app
version: 0.1.0
`

func TestRenderChartExample(t *testing.T) {
	vals, err := build.ChartValues([][]byte{[]byte("auth:\n  password: s3cret-from-secret\n")}, []string{"Secret web/web-values key values.yaml"},
		[]byte(`{"replicaCount":2,"greeting":"hello from production"}`))
	if err != nil {
		t.Fatal(err)
	}
	objs, info, err := build.RenderChart(context.Background(), "../examples/charts", "web", "sha256:example",
		build.Chart{ReleaseName: "web", Namespace: "web", Values: vals}, inProcess(build.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Secret/web-auth", "ConfigMap/web-page", "Service/web", "Deployment/web"}
	if diff := cmp.Diff(want, kinds(objs)); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	if info.Name != "web" || info.Version != "1.0.0" || info.AppVersion != "1.27" {
		t.Errorf("info = %+v", info)
	}
	if diff := cmp.Diff([]string{"web/templates/tests/test-connection.yaml: Pod/web-test (test)"}, info.SkippedHooks); diff != "" {
		t.Errorf("skipped hooks (-want +got):\n%s", diff)
	}
	pw, _, _ := unstructured.NestedString(objs[0].Object, "stringData", "password")
	page, _, _ := unstructured.NestedString(objs[1].Object, "data", "index.html")
	replicas, _, _ := unstructured.NestedInt64(objs[3].Object, "spec", "replicas")
	if pw != "s3cret-from-secret" || !strings.Contains(page, "hello from production") || replicas != 2 {
		t.Errorf("values not rendered: password %q, page %q, replicas %d", pw, page, replicas)
	}

	// Without the password, the chart's own `required` names it, and nothing renders.
	_, _, err = build.RenderChart(context.Background(), "../examples/charts", "web", "sha256:example", build.Chart{ReleaseName: "web", Namespace: "web"}, inProcess(build.Options{}))
	if err == nil || !strings.Contains(err.Error(), "auth.password is required") {
		t.Errorf("err = %v, want the required value named", err)
	}
}

func TestRenderChart(t *testing.T) {
	crd := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gauges.example.com
spec:
  group: example.com
  names: {kind: Gauge, plural: gauges}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`
	sub := chartArchive(t, "db", map[string]string{
		"Chart.yaml":                "apiVersion: v2\nname: db\nversion: 2.0.0\n",
		"values.yaml":               "size: small\n",
		"templates/cm.yaml":         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db}\ndata: {size: {{ .Values.size | quote }}}\n",
		"crds/dbs.example.com.yaml": strings.ReplaceAll(strings.ReplaceAll(crd, "gauges", "dbs"), "Gauge", "DB"),
	})
	for _, tc := range []struct {
		name      string
		files     map[string]string
		chart     build.Chart
		want      []string
		wantHooks int
	}{{
		name: "CRDs first, then Helm's install order",
		files: map[string]string{
			"Chart.yaml":             simpleChart + "kubeVersion: '>= 1.22.0-0'\n",
			"crds/gauges.yaml":       crd,
			"templates/gauge.yaml":   "apiVersion: example.com/v1\nkind: Gauge\nmetadata: {name: g}\n",
			"templates/deploy.yaml":  "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
			"templates/sa.yaml":      "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: s}\n---\n# only a comment\n",
			"templates/NOTES.txt":    "notes {{ .Release.Name }}",
			"templates/_helpers.tpl": `{{ define "x" }}x{{ end }}`,
			"templates/hook.yaml":    "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations: {helm.sh/hook: pre-install}\n",
		},
		want:      []string{"CustomResourceDefinition/gauges.example.com", "ServiceAccount/s", "Deployment/d", "Gauge/g"},
		wantHooks: 1,
	}, {
		name: "hooks kept when asked, CRDs skipped when asked",
		files: map[string]string{
			"Chart.yaml":          simpleChart,
			"crds/gauges.yaml":    crd,
			"templates/hook.yaml": "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations: {helm.sh/hook: pre-install}\n",
		},
		chart: build.Chart{IncludeHooks: true, SkipCRDs: true},
		want:  []string{"Job/migrate"},
	}, {
		name: "lookup returns nothing, DNS returns nothing, release from the Release",
		files: map[string]string{
			"Chart.yaml": simpleChart,
			"templates/cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-{{ .Release.Namespace }}
data:
  found: {{ (lookup "v1" "Secret" "kube-system" "") | len | quote }}
  host: {{ getHostByName "example.com" | quote }}
`,
		},
		chart: build.Chart{ReleaseName: "rel", Namespace: "ns"},
		want:  []string{"ConfigMap/rel-ns"},
	}, {
		name: "a vendored dependency, as an archive, with its CRDs and values",
		files: map[string]string{
			"Chart.yaml":          "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n- name: db\n  version: 2.0.0\n  repository: https://charts.example.com\n",
			"charts/db-2.0.0.tgz": string(sub),
		},
		want: []string{"CustomResourceDefinition/dbs.example.com", "ConfigMap/db"},
	}, {
		name: "a disabled dependency renders nothing",
		files: map[string]string{
			"Chart.yaml":          "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n- name: db\n  version: 2.0.0\n  repository: https://charts.example.com\n  condition: db.enabled\n",
			"values.yaml":         "db: {enabled: false}\n",
			"charts/db-2.0.0.tgz": string(sub),
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testtree.Write(t, tc.files)
			objs, info, err := build.RenderChart(context.Background(), dir, "", "sha256:test", tc.chart, inProcess(build.Options{}))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, kinds(objs)); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
			if len(info.SkippedHooks) != tc.wantHooks {
				t.Errorf("skipped hooks %v, want %d", info.SkippedHooks, tc.wantHooks)
			}
			if tc.chart.ReleaseName == "rel" {
				data, _, _ := unstructured.NestedStringMap(objs[0].Object, "data")
				if diff := cmp.Diff(map[string]string{"found": "0", "host": ""}, data); diff != "" {
					t.Errorf("lookup and DNS (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestRenderChartRefusals(t *testing.T) {
	const secret = "s3cret-value-never-shown"
	for _, tc := range []struct {
		name    string
		files   map[string]string
		values  map[string]any
		opts    build.Options
		want    []string // substrings of the error
		notWant string
	}{{
		name: "a dependency not vendored is named",
		files: map[string]string{
			"Chart.yaml": "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n- name: postgresql\n  version: 12.1.0\n  repository: oci://registry-1.docker.io/bitnamicharts\n",
		},
		want: []string{"not vendored in charts/", "postgresql 12.1.0 from oci://registry-1.docker.io/bitnamicharts (of chart app)", "helm dependency build"},
	}, {
		name: "a schema that refers to another document is refused, nothing fetched",
		files: map[string]string{
			"Chart.yaml":         simpleChart,
			"values.schema.json": `{"$ref": "https://charts.example.com/schema.json"}`,
		},
		want: []string{"https://charts.example.com/schema.json", "nothing is fetched"},
	}, {
		name: "a schema violation names where, never the value",
		files: map[string]string{
			"Chart.yaml":         simpleChart,
			"values.schema.json": `{"type":"object","properties":{"auth":{"type":"object","properties":{"password":{"type":"string","pattern":"^[0-9]+$"}}}}}`,
		},
		values:  map[string]any{"auth": map[string]any{"password": secret}},
		want:    []string{"values.schema.json", "/auth/password (pattern)", "spec.chart.values"},
		notWant: secret,
	}, {
		name: "rendered YAML that does not parse is named, never quoted",
		files: map[string]string{
			"Chart.yaml":        simpleChart,
			"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  a: {{ .Values.pw }}: [\n",
		},
		values:  map[string]any{"pw": secret},
		want:    []string{"templates/cm.yaml renders YAML that does not parse"},
		notWant: secret,
	}, {
		name:  "a library chart",
		files: map[string]string{"Chart.yaml": "apiVersion: v2\nname: lib\nversion: 0.1.0\ntype: library\n"},
		want:  []string{"library chart"},
	}, {
		name:  "no chart",
		files: map[string]string{"deploy.yaml": "apiVersion: v1\nkind: ConfigMap\n"},
		want:  []string{"no Chart.yaml"},
	}, {
		name:  "a file over the limit",
		files: map[string]string{"Chart.yaml": simpleChart, "templates/big.yaml": strings.Repeat("#", 2000)},
		opts:  build.Options{MaxFileBytes: 1000},
		want:  []string{"templates/big.yaml is 2000 bytes", "--build-max-file-bytes"},
	}, {
		name:  "too many objects",
		files: map[string]string{"Chart.yaml": simpleChart, "templates/cm.yaml": "{{ range until 5 }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c{{ . }}}\n{{ end }}"},
		opts:  build.Options{MaxObjects: 3},
		want:  []string{"more than 3 objects"},
	}, {
		name:  "a kubeVersion the render does not meet",
		files: map[string]string{"Chart.yaml": simpleChart + "kubeVersion: '< 1.10'\n"},
		want:  []string{"requires Kubernetes < 1.10"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testtree.Write(t, tc.files)
			objs, _, err := build.RenderChart(context.Background(), dir, "", "sha256:test", build.Chart{ReleaseName: "r", Namespace: "n", Values: tc.values}, inProcess(tc.opts))
			var be *build.Error
			if !errors.As(err, &be) {
				t.Fatalf("err = %v (objects %v), want a *build.Error", err, kinds(objs))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tc.notWant != "" && strings.Contains(err.Error(), tc.notWant) {
				t.Errorf("error %q quotes the value", err)
			}
		})
	}
}

func TestRenderChartVendoredBombBounded(t *testing.T) {
	big := chartArchive(t, "db", map[string]string{
		"Chart.yaml":       "apiVersion: v2\nname: db\nversion: 2.0.0\n",
		"templates/x.yaml": strings.Repeat("#", 3<<20), // compresses to a few KiB
	})
	dir := testtree.Write(t, map[string]string{"Chart.yaml": simpleChart, "charts/db.tgz": string(big)})
	_, _, err := build.RenderChart(context.Background(), dir, "", "sha256:test", build.Chart{}, inProcess(build.Options{}))
	if err == nil || !strings.Contains(err.Error(), "charts/db/templates/x.yaml is 3145728 bytes") {
		t.Errorf("err = %v, want the unpacked file refused by its size", err)
	}
}

func TestChartValues(t *testing.T) {
	vals, err := build.ChartValues([][]byte{[]byte("a: {b: 1, c: 2}\nd: x\n"), []byte("a: {c: 3}\n")}, []string{"one", "two"}, []byte(`{"d":"y","e":12345678901234567890}`))
	if err != nil {
		t.Fatal(err)
	}
	got := build.ChartValuesHash(vals)
	b := build.ChartValuesHash(map[string]any{"d": "y"})
	if got == "" || got == b {
		t.Errorf("hash %q, other values %q", got, b)
	}
	if diff := cmp.Diff(`map[a:map[b:1 c:3] d:y e:12345678901234567890]`, fmt.Sprint(vals)); diff != "" {
		t.Errorf("merged (-want +got):\n%s", diff)
	}
	_, err = build.ChartValues([][]byte{[]byte("password: [s3cret")}, []string{"Secret ns/v key values.yaml"}, nil)
	if err == nil || !strings.Contains(err.Error(), "Secret ns/v key values.yaml is not a YAML map") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("err = %v", err)
	}
}

func TestBuildOfAChartSaysSetSpecChart(t *testing.T) {
	_, err := build.Build(context.Background(), "../examples/charts", "web", "sha256:example", inProcess(build.Options{}))
	if err == nil || !strings.Contains(err.Error(), "is a Helm chart") || !strings.Contains(err.Error(), "set spec.chart") {
		t.Errorf("err = %v, want a hint to set spec.chart", err)
	}
}

// TestKubeVersionFollowsClientGo: build.KubeVersion is the Kubernetes minor of
// the k8s.io/client-go in go.mod.
func TestKubeVersionFollowsClientGo(t *testing.T) {
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	var minor string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "k8s.io/client-go" {
			minor = strings.Split(f[1], ".")[1]
		}
	}
	if want := "v1." + minor + ".0"; minor == "" || build.KubeVersion != want {
		t.Errorf("build.KubeVersion = %s, go.mod's k8s.io/client-go stands for %s: update build.KubeVersion", build.KubeVersion, want)
	}
}

// inProcess is o with Helm's engine in this process as its renderer.
func inProcess(o build.Options) build.Options {
	o.ChartRenderer = helmrender.Engine{}
	return o
}

// TestRenderChartWithoutRendererSaysSetOne: a build without a
// ChartRenderer fails, naming the fix, and never skips the chart.
func TestRenderChartWithoutRendererSaysSetOne(t *testing.T) {
	objs, _, err := build.RenderChart(context.Background(), "../examples/charts", "web", "sha256:example", build.Chart{ReleaseName: "web", Namespace: "web"}, build.Options{})
	var be *build.Error
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "no chart renderer") || !strings.Contains(err.Error(), "helmrender") {
		t.Errorf("err = %v (objects %d), want a *build.Error that says to set a renderer", err, len(objs))
	}
}
