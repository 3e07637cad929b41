package verify

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParsePayload feeds hostile simple-signing payloads to the parser. Seeds
// are in testdata/payloads/ (and testdata/fuzz/FuzzParsePayload/ when the
// fuzzer saves a failing input). The parser must never panic, and whatever
// it accepts names a valid digest.
func FuzzParsePayload(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "payloads", "*.json"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seed payloads in testdata/payloads: %v", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parsePayload(b)
		if err != nil {
			return
		}
		if len(c.Digest) < len("sha256:") {
			t.Fatalf("accepted payload without a digest: %q", b)
		}
		// A parsed payload must go through the signature checks without panicking.
		_, _, _ = parseSignature(fetchedSignature{Payload: b, Annotations: map[string]string{"dev.cosignproject.cosign/signature": "MEUCIQ=="}})
	})
}

// TestSeedPayloads pins what the parser makes of each seed.
func TestSeedPayloads(t *testing.T) {
	cases := map[string]string{ // file → expected digest, "" means rejected
		"airlock.json":         "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"cosign-cli.json":      "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"wrong-type.json":      "",
		"bad-digest.json":      "",
		"trailing-data.json":   "",
		"not-an-object.json":   "",
		"nested-optional.json": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	}
	for file, want := range cases {
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "payloads", file))
			if err != nil {
				t.Fatal(err)
			}
			c, err := parsePayload(b)
			switch {
			case want == "" && err == nil:
				t.Fatalf("accepted %s: %+v", file, c)
			case want != "" && err != nil:
				t.Fatalf("rejected %s: %v", file, err)
			case want != "" && c.Digest != want:
				t.Fatalf("digest %s, want %s", c.Digest, want)
			}
		})
	}
}
