package artifact

import (
	"encoding/json"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzParseManifest: parseManifest never panics, and whatever it accepts is
// an artifact manifest whose layers can be fetched and bounded: at least one
// layer, each with a valid digest and a size that is not negative.
// Seeds live in testdata/fuzz/FuzzParseManifest.
func FuzzParseManifest(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte, mediaType string) {
		m, err := parseManifest(ocispec.Descriptor{MediaType: mediaType}, body)
		if err != nil {
			return
		}
		if m.MediaType == ocispec.MediaTypeImageIndex || mediaType == ocispec.MediaTypeImageIndex {
			t.Fatalf("accepted an image index: %s", body)
		}
		if len(m.Layers) == 0 {
			t.Fatalf("accepted a manifest without layers: %s", body)
		}
		for _, l := range m.Layers {
			if err := l.Digest.Validate(); err != nil {
				t.Fatalf("accepted layer digest %q: %v", l.Digest, err)
			}
			if l.Size < 0 {
				t.Fatalf("accepted layer %s of %d bytes", l.Digest, l.Size)
			}
		}
		// What the pull does next must not panic either.
		_, _ = contentLayer(Reference{Registry: "r", Repository: "x", Tag: "v1"}, m, "")
		if _, err := json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	})
}
