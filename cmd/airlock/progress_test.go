package main

import (
	"bytes"
	"testing"

	"github.com/spf13/cobra"
)

// TestProgressOutInCI: in CI the CLI gives transfers no progress writer at
// all (the progress package reads no environment).
func TestProgressOutInCI(t *testing.T) {
	cmd := &cobra.Command{}
	var stderr bytes.Buffer
	cmd.SetErr(&stderr)
	t.Setenv("CI", "true")
	if w := progressOut(cmd); w != nil {
		t.Fatalf("progressOut with CI set = %v, want nil", w)
	}
	t.Setenv("CI", "")
	if w := progressOut(cmd); w != &stderr {
		t.Fatalf("progressOut without CI = %v, want stderr", w)
	}
}
