package config_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/build"
	"airlock.dev/airlock/internal/envtestenv"
	"airlock.dev/airlock/reconciler"
)

// TestExampleReleases creates examples/releases with a server-side dry-run,
// so the API server's CRD schema validates them, and builds the overlays
// they name.
func TestExampleReleases(t *testing.T) {
	env := envtestenv.Start(t)
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "airlock-system"}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join("..", "examples", "releases", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no examples/releases/*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var rel v1alpha1.Release
			if err := yaml.UnmarshalStrict(b, &rel); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if err := env.Client.Create(ctx, &rel, client.DryRunAll); err != nil {
				t.Fatalf("%s is refused by the CRD: %v", f, err)
			}
			if rel.Spec.Verify == nil {
				t.Errorf("%s has no spec.verify: examples show signed delivery", f)
			}
			objs, err := build.Build(ctx, filepath.Join("..", "examples", "app"), rel.Spec.Path, "example", build.Options{})
			if err != nil || len(objs) == 0 {
				t.Errorf("spec.path %q does not build in examples/app: %d objects, %v", rel.Spec.Path, len(objs), err)
			}
		})
	}
}

// TestExampleMonitoring checks that the dashboard and the alerts name only
// metrics the controller exports.
func TestExampleMonitoring(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := reconciler.NewMetrics(reg)
	m.ObjectsApplied.Add(0) // every family must have a sample to be gathered
	m.ObjectsPruned.Add(0)
	m.ReconcileDuration.WithLabelValues("success").Observe(0)
	m.Condition.Set(types.NamespacedName{Namespace: "ns", Name: "n"}, []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}})
	m.RegistryRequests.WithLabelValues("GET", "200").Add(0)
	m.ObjectsDrifted.WithLabelValues("ns", "n").Add(0)
	m.APIWrites.WithLabelValues("patch", "false").Add(0)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, f := range families {
		known[f.GetName()] = true
	}
	for _, f := range []string{"grafana-dashboard.json", "alerts.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", "monitoring", f))
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := yaml.Unmarshal(b, &v); err != nil {
			t.Errorf("%s does not parse: %v", f, err)
		}
		used := regexp.MustCompile(`airlock_[a-z_]+`).FindAllString(string(b), -1)
		if len(used) == 0 {
			t.Errorf("%s uses no airlock metric", f)
		}
		for _, name := range used {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			if !known[base] {
				t.Errorf("%s uses %s, which airlock-controller does not export", f, name)
			}
		}
	}
}
