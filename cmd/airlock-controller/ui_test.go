package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The web view is off by default, never served without authentication,
// and refuses a weak token, before anything connects.
func TestUIFlags(t *testing.T) {
	dir := t.TempDir()
	weak := filepath.Join(dir, "weak")
	if err := os.WriteFile(weak, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no authentication", []string{"--ui-addr", ":8090"}, "needs authentication"},
		{"weak token", []string{"--ui-addr", ":8090", "--ui-token-file", weak}, "want at least 16"},
		{"missing token file", []string{"--ui-addr", ":8090", "--ui-token-file", filepath.Join(dir, "none")}, "--ui-token-file"},
		{"token without address", []string{"--ui-token-file", weak}, "need --ui-addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), append(tc.args, "--kubeconfig", "/nonexistent"), &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
	o := uiOptions{}
	if err := o.load(); err != nil {
		t.Errorf("no flags: %v, want the view off", err)
	}
	if r, err := o.runnable(nil); r != nil || err != nil {
		t.Errorf("no flags: runnable %v, %v; want none", r, err)
	}
}
