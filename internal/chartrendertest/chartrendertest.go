// Package chartrendertest builds airlock-chart-render, the chart render
// process, for tests and benchmarks that render through it.
package chartrendertest

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// Build builds cmd/airlock-chart-render into dir and returns its path. The
// go command and the module's source are needed; a test without them
// fails, naming the fix.
func Build(tb testing.TB, dir string) string {
	tb.Helper()
	bin := filepath.Join(dir, "airlock-chart-render")
	out, err := exec.Command("go", "build", "-o", bin, "airlock.dev/airlock/cmd/airlock-chart-render").CombinedOutput()
	if err != nil {
		tb.Fatalf("build airlock-chart-render (the go command and the module's source are needed): %v\n%s", err, out)
	}
	return bin
}
