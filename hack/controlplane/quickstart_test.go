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

// TestQuickstart runs hack/quickstart.sh in assert mode: v1 Ready, the v2
// update and prune, the unsigned v3 refused with v2 still applied. It is
// what a newcomer's `make quickstart` does, checked.
func TestQuickstart(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is unset: export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) to run the quickstart")
	}
	if testing.Short() {
		t.Skip("-short: the quickstart builds three binaries and starts a control plane")
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
	for _, want := range []string{"ok   v1 is applied", "ok   v2 pruned the Service", "ok   v3 refused: Ready=False VerificationFailed", "ok   v2 stays applied"} {
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
