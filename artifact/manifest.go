package artifact

import (
	"encoding/json"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// parseManifest parses the manifest body a registry served for desc (its
// size and digest already checked) and refuses what is not an artifact
// manifest: an image index, a manifest without layers, or a layer whose
// digest is invalid or whose size is negative (the size bounds the pull).
// It reads nothing else, so it can be fuzzed.
func parseManifest(desc ocispec.Descriptor, body []byte) (*ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("not a JSON manifest: %v", err)
	}
	if m.MediaType == ocispec.MediaTypeImageIndex || desc.MediaType == ocispec.MediaTypeImageIndex || len(m.Layers) == 0 {
		return nil, fmt.Errorf("media type %q with %d layers is not an artifact manifest: point at a single artifact, not an image index", desc.MediaType, len(m.Layers))
	}
	for i, l := range m.Layers {
		if err := l.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("layer %d has digest %q: %v: the manifest is malformed", i, l.Digest, err)
		}
		if l.Size < 0 {
			return nil, fmt.Errorf("layer %d (%s) has size %d: the manifest is malformed", i, l.Digest, l.Size)
		}
	}
	return &m, nil
}
