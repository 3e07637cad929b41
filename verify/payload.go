package verify

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Limits on what a registry can make verification read. Earlier cosign
// versions could be made to read without limit by a huge signature or a huge
// number of them (CVE-2024-29902, CVE-2024-29903).
const (
	// MaxSignatureManifestSize bounds the manifest on the .sig tag: 1 MiB.
	MaxSignatureManifestSize = 1 << 20
	// MaxPayloadSize bounds one signature's payload layer: 1 MiB.
	MaxPayloadSize = 1 << 20
	// MaxSignatures bounds the signatures on one digest: 64.
	MaxSignatures = 64
)

// SignerAnnotation is the payload annotation in which airlock's Sign records
// the signer's key fingerprint. It is a hint for messages ("signed by 3f9a…,
// which is not trusted"); trust comes only from verifying the signature.
const SignerAnnotation = "dev.airlock/signer-fingerprint"

// signedClaim is what a simple-signing payload claims.
type signedClaim struct {
	// Digest is critical.image.docker-manifest-digest: the digest signed.
	Digest string
	// Reference is critical.identity.docker-reference (HOST/REPO).
	Reference string
	// Annotations are the payload's optional annotations, values as strings.
	Annotations map[string]string
}

// parsePayload parses a cosign simple-signing payload
// ({"critical":{"identity":…,"image":{"docker-manifest-digest":…},"type":
// "cosign container image signature"},"optional":{…}}). It refuses payloads
// over MaxPayloadSize, of another type, or without a valid digest.
func parsePayload(b []byte) (signedClaim, error) {
	if len(b) > MaxPayloadSize {
		return signedClaim{}, fmt.Errorf("payload is %d bytes, over the %d-byte limit", len(b), MaxPayloadSize)
	}
	var sci payload.SimpleContainerImage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&sci); err != nil {
		return signedClaim{}, fmt.Errorf("payload is not simple-signing JSON: %v", err)
	}
	if dec.More() {
		return signedClaim{}, fmt.Errorf("payload has data after its JSON object")
	}
	if sci.Critical.Type != payload.CosignSignatureType {
		return signedClaim{}, fmt.Errorf("payload type %q is not %q", sci.Critical.Type, payload.CosignSignatureType)
	}
	d, err := digest.Parse(sci.Critical.Image.DockerManifestDigest)
	if err != nil {
		return signedClaim{}, fmt.Errorf("payload digest %q: %v", sci.Critical.Image.DockerManifestDigest, err)
	}
	c := signedClaim{Digest: d.String(), Reference: sci.Critical.Identity.DockerReference}
	if len(sci.Optional) > 0 {
		c.Annotations = make(map[string]string, len(sci.Optional))
		for k, v := range sci.Optional {
			if s, ok := v.(string); ok {
				c.Annotations[k] = s
				continue
			}
			j, err := json.Marshal(v)
			if err != nil {
				return signedClaim{}, fmt.Errorf("payload annotation %q: %v", k, err)
			}
			c.Annotations[k] = string(j)
		}
	}
	return c, nil
}
