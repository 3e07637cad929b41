package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"k8s.io/utils/ptr"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/envtestenv"
	"airlock.dev/airlock/internal/registrytest"
)

// TestControllerRendersChartsInItsOwnProcess runs the built controller,
// with airlock-chart-render next to it, against a real API server and
// registry: a chart Release renders through the render process and gets
// Ready; a controller whose --chart-renderer does not exist fails the
// chart Release, naming the path tried and the flag.
func TestControllerRendersChartsInItsOwnProcess(t *testing.T) {
	env := envtestenv.Start(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	reg := registrytest.New(t)
	url := "oci://" + reg.Addr + "/charts/web"
	ref, err := artifact.ParseReference(url + ":1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := artifact.PushChart(ctx, ref, "../../examples/charts/web", artifact.PushOptions{Remote: artifact.RemoteOptions{PlainHTTPInsecure: true}}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", dir, ".", "airlock.dev/airlock/cmd/airlock-chart-render").CombinedOutput(); err != nil {
		t.Fatalf("build airlock-controller and airlock-chart-render: %v\n%s", err, out)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig, ns); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nowhere", "airlock-chart-render")
	start := func(shard string, extra ...string) {
		logf, err := os.Create(filepath.Join(dir, shard+".log"))
		if err != nil {
			t.Fatal(err)
		}
		args := append([]string{"--kubeconfig", kubeconfig, "--metrics-addr", "0", "--health-addr", "0",
			"--allow-unsigned", "--controller-namespace", ns, "--backoff-base", "200ms",
			"--cache-dir", filepath.Join(dir, shard+"-cache"), "--watch-label-selector", "shard=" + shard}, extra...)
		cmd := exec.Command(filepath.Join(dir, "airlock-controller"), args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("controller %s log:\n%s", shard, b[max(0, len(b)-4000):])
			}
		})
	}
	start("ok")
	start("missing", "--chart-renderer", missing)

	for _, shard := range []string{"ok", "missing"} {
		rel := &v1alpha1.Release{
			ObjectMeta: metav1.ObjectMeta{Name: "web-" + shard, Namespace: ns, Labels: map[string]string{"shard": shard}},
			Spec: v1alpha1.ReleaseSpec{
				URL: url, Ref: v1alpha1.ArtifactRef{Tag: "1.0.0"}, Insecure: true,
				Interval: metav1.Duration{Duration: time.Hour},
				Wait:     ptr.To(false), // envtest runs no Pods: Ready once applied
				Chart:    &v1alpha1.ChartSpec{Values: &apiextensionsv1.JSON{Raw: []byte(`{"auth":{"password":"pw"}}`)}},
			},
		}
		if err := env.Client.Create(ctx, rel); err != nil {
			t.Fatal(err)
		}
	}
	waitReady := func(name string, want metav1.ConditionStatus) *metav1.Condition {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			rel := &v1alpha1.Release{}
			if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, rel); err != nil {
				t.Fatal(err)
			}
			c := meta.FindStatusCondition(rel.Status.Conditions, v1alpha1.ConditionReady)
			if c != nil && c.Status == want && c.ObservedGeneration == rel.Generation {
				return c
			}
			if time.Now().After(deadline) {
				t.Fatalf("Release %s/%s: no Ready=%s after 90s; conditions %+v", ns, name, want, rel.Status.Conditions)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitReady("web-ok", metav1.ConditionTrue)
	secret := &corev1.Secret{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web-ok-auth"}, secret); err != nil {
		t.Errorf("the chart's Secret was not applied: %v", err)
	}
	c := waitReady("web-missing", metav1.ConditionFalse)
	if !strings.Contains(c.Message, missing+" does not exist") || !strings.Contains(c.Message, "--chart-renderer") {
		t.Errorf("Ready=False message %q, want the path tried and --chart-renderer", c.Message)
	}
}
