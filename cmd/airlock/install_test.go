package main

import (
	"bytes"
	"strings"
	"testing"

	"airlock.dev/airlock/config"
)

// TestInstallExportReceiver: --receiver adds the receiver endpoint to the
// manifests, with --image applied too; without it nothing of it is there.
func TestInstallExportReceiver(t *testing.T) {
	const image = "registry.example.com/airlock/airlock-controller:v9"
	out, stderr, code := runCLI(t, "", "install", "--export", "--receiver", "--image", image)
	if code != 0 {
		t.Fatalf("install --export --receiver exited %d: %s", code, stderr)
	}
	want, err := config.WithReceiver(bytes.ReplaceAll(config.Install, []byte("image: "+config.DefaultImage+"\n"), []byte("image: "+image+"\n")))
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Error("install --export --receiver --image printed other manifests than WithReceiver of the image's")
	}
	for _, s := range []string{"--receiver-addr=:9292", "name: airlock-controller-receiver", "image: " + image} {
		if !strings.Contains(out, s) {
			t.Errorf("the output lacks %q", s)
		}
	}
	plain, _, code := runCLI(t, "", "install", "--export")
	if code != 0 || plain != string(config.Install) || strings.Contains(plain, "--receiver-addr=") {
		t.Errorf("install --export (exit %d) is not install.yaml alone", code)
	}
}
