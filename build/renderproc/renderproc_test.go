package renderproc_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"airlock.dev/airlock/build"
	"airlock.dev/airlock/build/helmrender"
	"airlock.dev/airlock/build/renderproc"
	"airlock.dev/airlock/internal/chartrendertest"
	"airlock.dev/airlock/internal/testtree"
)

// chartDir writes a chart of one template, tmpl, and returns its directory.
func chartDir(t *testing.T, tmpl string) string {
	t.Helper()
	return testtree.Write(t, map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: app\nversion: 0.1.0\n",
		"templates/cm.yaml": tmpl,
	})
}

// running lists the processes whose executable is bin (Linux's /proc).
func running(t *testing.T, bin string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/exe")
	if err != nil || len(procs) == 0 {
		t.Skip("no /proc to look for the render process in")
	}
	var found []string
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && exe == bin {
			found = append(found, p)
		}
	}
	return found
}

// TestProcess renders through a real airlock-chart-render, built here.
func TestProcess(t *testing.T) {
	bin := chartrendertest.Build(t, t.TempDir())
	proc := renderproc.Process{Path: bin}
	ctx := context.Background()

	t.Run("renders as the engine in this process does", func(t *testing.T) {
		// The parent's environment is not the process's: the process
		// refuses to run with any variable (see "refuses an environment").
		t.Setenv("AIRLOCK_TEST_SECRET", "not-for-charts")
		vals, err := build.ChartValues(nil, nil, []byte(`{"replicaCount":2,"greeting":"<b>hello</b> & more","auth":{"password":"pw"}}`))
		if err != nil {
			t.Fatal(err)
		}
		c := build.Chart{ReleaseName: "web", Namespace: "web", Values: vals}
		want, wantInfo, err := build.RenderChart(ctx, "../../examples/charts", "web", "sha256:example", c, build.Options{ChartRenderer: helmrender.Engine{}})
		if err != nil {
			t.Fatal(err)
		}
		got, gotInfo, err := build.RenderChart(ctx, "../../examples/charts", "web", "sha256:example", c, build.Options{ChartRenderer: proc})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 4 {
			t.Errorf("rendered %d objects, want 4", len(got))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("objects through the process (-in process +process):\n%s", diff)
		}
		if diff := cmp.Diff(wantInfo, gotInfo); diff != "" {
			t.Errorf("info through the process (-in process +process):\n%s", diff)
		}
	})

	t.Run("a render's error keeps its hint", func(t *testing.T) {
		_, _, err := build.RenderChart(ctx, "../../examples/charts", "web", "sha256:example", build.Chart{ReleaseName: "web", Namespace: "web"}, build.Options{ChartRenderer: proc})
		var be *build.Error
		if !errors.As(err, &be) || !strings.Contains(err.Error(), "auth.password is required") || be.Hint != build.ChartValuesHint+", or the chart" {
			t.Errorf("err = %v, want the required value named, with the values hint", err)
		}
	})

	t.Run("a render that does not end is killed at the timeout", func(t *testing.T) {
		dir := chartDir(t, "{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}")
		_, _, err := build.RenderChart(ctx, dir, "", "sha256:loop", build.Chart{}, build.Options{ChartRenderer: proc, Timeout: time.Second})
		var be *build.Error
		if !errors.As(err, &be) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a *build.Error of the deadline", err)
		}
		// Process.RenderChart itself returns once the process is reaped.
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		files := []*build.ChartFile{{Name: "Chart.yaml", Data: []byte("apiVersion: v2\nname: app\nversion: 0.1.0\n")}, {Name: "templates/cm.yaml", Data: []byte("{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}")}}
		_, err = proc.RenderChart(tctx, &build.ChartRequest{Files: files, MaxBytes: 1 << 20})
		if err == nil || !strings.Contains(err.Error(), "its process killed") || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the render stopped and its process killed", err)
		}
		if p := running(t, bin); len(p) > 0 {
			t.Errorf("render processes still running after the timeout: %v", p)
		}
	})

	t.Run("an answer over the bound is refused", func(t *testing.T) {
		dir := chartDir(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata: {a: {{ repeat 8000 \"x\" | quote }}}\n")
		_, _, err := build.RenderChart(ctx, dir, "", "sha256:big", build.Chart{}, build.Options{ChartRenderer: renderproc.Process{Path: bin, MaxAnswerBytes: 4096}})
		var be *build.Error
		if !errors.As(err, &be) || !strings.Contains(err.Error(), "answer is over 4096 bytes") {
			t.Errorf("err = %v, want the answer refused by its size", err)
		}
		if p := running(t, bin); len(p) > 0 {
			t.Errorf("render processes still running after the refusal: %v", p)
		}
	})

	t.Run("a missing executable is named, with the fix", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "airlock-chart-render")
		_, _, err := build.RenderChart(ctx, "../../examples/charts", "web", "sha256:example", build.Chart{}, build.Options{ChartRenderer: renderproc.Process{Path: missing}})
		var be *build.Error
		if !errors.As(err, &be) || !strings.Contains(err.Error(), missing+" does not exist") || !strings.Contains(err.Error(), "--chart-renderer") {
			t.Errorf("err = %v, want the path tried and --chart-renderer", err)
		}
	})

	t.Run("a renderer that fails is reported", func(t *testing.T) {
		f, err := exec.LookPath("false")
		if err != nil {
			t.Skip("no false command")
		}
		_, _, err = build.RenderChart(ctx, "../../examples/charts", "web", "sha256:example", build.Chart{}, build.Options{ChartRenderer: renderproc.Process{Path: f}})
		var be *build.Error
		if !errors.As(err, &be) || !strings.Contains(err.Error(), "the chart renderer "+f+" failed (exit status 1)") {
			t.Errorf("err = %v, want the failed process named", err)
		}
	})

	t.Run("refuses an environment", func(t *testing.T) {
		cmd := exec.Command(bin)
		cmd.Env = []string{"AWS_SECRET_ACCESS_KEY=x"}
		cmd.Stdin = strings.NewReader("{}")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "runs with an empty environment") {
			t.Errorf("err = %v, stderr %q: want a refusal of the environment", err, stderr.String())
		}
	})
}
