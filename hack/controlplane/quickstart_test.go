package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQuickstart runs hack/quickstart.sh in assert mode on the local
// cluster with workloads: v1 Ready with its Pods Running, the v2 rollout
// (new Pods) and prune, the crashing v3 rolled back to v2 by the
// controller, the unsigned v4 refused with v2 still applied. It is what a
// newcomer's `make quickstart` does, checked.
func TestQuickstart(t *testing.T) {
	// The script builds the assets itself when they are missing (minutes):
	// run it only where they were built, as make test does.
	for _, env := range []string{"KUBEBUILDER_ASSETS", "AIRLOCK_CLUSTER_ASSETS"} {
		if os.Getenv(env) == "" {
			t.Skip(env + " is unset: export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) AIRLOCK_CLUSTER_ASSETS=$(hack/cluster-assets.sh) to run the quickstart (make test does)")
		}
	}
	if testing.Short() {
		t.Skip("-short: the quickstart builds three binaries and starts a local cluster")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "hack", "quickstart.sh"), "--assert")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "QUICKSTART_ASSERT=1")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) } // let its trap stop what it started
	cmd.WaitDelay = 30 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if err != nil {
		t.Fatalf("hack/quickstart.sh --assert: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"ok   v1 is applied", "ok   v1 runs: 2 Pods Running and ready",
		"ok   v2 pruned the Service", "ok   v2 replaced the Pods: the v1 Pods are gone",
		"ok   v3 rolled back: Ready=False RolledBack", "ok   v2 is applied again", "ok   the crashing Pods are gone",
		"ok   v4 refused: Ready=False VerificationFailed", "ok   v2 stays applied",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the quickstart's output lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("quickstart: %s", lastLine(out.String(), "v1 was Ready"))
}

func lastLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
