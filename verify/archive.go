package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"

	"airlock.dev/airlock/artifact"
)

// Annotations of a site signature made at import (chained trust): they
// record what was verified upstream, inside the signed payload.
const (
	// ChainUpstreamSigners lists the upstream signer fingerprints, comma-separated.
	ChainUpstreamSigners = "dev.airlock/upstream-signers"
	// ChainUpstreamRef is the artifact's reference before the import.
	ChainUpstreamRef = "dev.airlock/upstream-ref"
	// ChainImportedAt is the time of the import, RFC 3339.
	ChainImportedAt = "dev.airlock/imported-at"
	// ChainImagesLock is the digest of the images lock manifest the import
	// stored next to the artifact: the controller uses a lock only when a
	// trusted signature names its digest here.
	ChainImagesLock = "dev.airlock/images-lock"
)

// VerifyArchive checks the artifact in an export tarball against p before
// anything is pushed: the same rules and bounds as Verify, with the
// signatures read from the archive instead of a registry.
func VerifyArchive(ctx context.Context, a *artifact.Archive, p Policy) (*Result, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	desc, ref, err := a.Artifact()
	if err != nil {
		return nil, err
	}
	fail := func(reason error, msg string) error {
		return &Error{Op: "verify", Ref: ref.String(), Reason: reason, Msg: msg, Hint: "export the artifact again from upstream, with its signatures"}
	}
	var sigDesc *ocispec.Descriptor
	want := ref.Name() + ":" + SignatureTag(ref.Digest)
	for i, m := range a.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == want {
			sigDesc = &a.Manifests[i]
		}
	}
	var sigs []fetchedSignature
	if sigDesc != nil {
		tag := SignatureTag(ref.Digest)
		if sigDesc.Size > MaxSignatureManifestSize {
			return nil, oversized(ref, tag, fmt.Sprintf("signature manifest %s is %d bytes, over the %d-byte limit", tag, sigDesc.Size, MaxSignatureManifestSize))
		}
		body, err := content.FetchAll(ctx, a.Store, *sigDesc)
		if err != nil {
			return nil, fail(ErrMalformed, "read signature manifest: "+err.Error())
		}
		sigs, err = readSignatures(ref, tag, body, func(i int, l ocispec.Descriptor) ([]byte, error) {
			b, err := content.FetchAll(ctx, a.Store, l)
			if err != nil {
				return nil, fail(ErrMalformed, fmt.Sprintf("read signature %d payload: %v", i+1, err))
			}
			return b, nil
		})
		if err != nil {
			return nil, err
		}
	}
	res, err := evaluate(ctx, ref.String(), desc.Digest.String(), sigs, p)
	if err != nil {
		return nil, err
	}
	if body, err := content.FetchAll(ctx, a.Store, desc); err == nil {
		var m ocispec.Manifest
		if json.Unmarshal(body, &m) == nil {
			res.Source, res.Revision = m.Annotations[AnnotationSource], m.Annotations[AnnotationRevision]
		}
	}
	return res, nil
}

// ChainAnnotations are the payload annotations of a site signature over an
// artifact whose upstream signatures verified as res.
func ChainAnnotations(res *Result, upstreamRef string, at time.Time) map[string]string {
	fps := ""
	for i, s := range res.Signers {
		if i > 0 {
			fps += ","
		}
		fps += s.Fingerprint
	}
	return map[string]string{
		ChainUpstreamSigners: fps,
		ChainUpstreamRef:     upstreamRef,
		ChainImportedAt:      at.UTC().Format(time.RFC3339),
	}
}
