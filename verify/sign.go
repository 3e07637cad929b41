package verify

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore/pkg/signature/payload"
	"oras.land/oras-go/v2/errdef"

	"airlock.dev/airlock/artifact"
)

// SignResult is a stored signature.
type SignResult struct {
	// Ref is the artifact signed, with its Digest set.
	Ref artifact.Reference `json:"-"`
	// Digest is the manifest digest signed.
	Digest string `json:"digest"`
	// SignatureTag is the tag the signature is stored under (sha256-<hex>.sig).
	SignatureTag string `json:"signatureTag"`
	// Fingerprint is the signing key's public key fingerprint.
	Fingerprint string `json:"fingerprint"`
	// Existing is how many signatures the digest had before this one.
	Existing int `json:"existing"`
}

// Sign signs ref's digest with key and stores the signature where cosign
// does: a simple-signing payload layer on the sha256-<hex>.sig tag, next to
// the signatures already there (a signature by the same key over the same
// payload replaces its duplicate, as in cosign). ref is pinned by digest, or
// its tag is resolved first; the tag itself is never signed. annotations go
// into the signed payload (`cosign sign -a`); nil means none. The payload
// also carries SignerAnnotation with the key's fingerprint. Nothing is
// uploaded to a transparency log. It builds a client from opts; SignWith
// uses one already built.
func Sign(ctx context.Context, ref artifact.Reference, key *PrivateKey, annotations map[string]string, opts artifact.RemoteOptions) (*SignResult, error) {
	c, err := artifact.NewClient(opts.For(ref))
	if err != nil {
		return nil, &Error{Op: "sign", Ref: ref.String(), Reason: ErrRegistry, Err: err}
	}
	return signWith(ctx, c, ref, false, key, annotations)
}

// SignWith is Sign through client c (for example the one that pushed ref).
// It reads the existing signature manifest once, bounded, and writes it
// back with the new signature added.
func SignWith(ctx context.Context, c *artifact.Client, ref artifact.Reference, key *PrivateKey, annotations map[string]string) (*SignResult, error) {
	return signWith(ctx, c, ref, false, key, annotations)
}

// ErrTagMoved: the tag to sign no longer points at the digest the signer
// pinned (the digest they reviewed).
var ErrTagMoved = errors.New("the tag does not point at the pinned digest")

// SignPinned is Sign for a reference that names both a tag and the digest
// the signer reviewed: it signs that digest only if the tag still resolves
// to it, and otherwise fails with ErrTagMoved naming both digests. A tag
// alone signs whatever it points to at that moment.
func SignPinned(ctx context.Context, ref artifact.Reference, key *PrivateKey, annotations map[string]string, opts artifact.RemoteOptions) (*SignResult, error) {
	if ref.Tag == "" || ref.Digest == "" {
		return nil, &Error{Op: "sign", Ref: ref.String(), Reason: ErrTagMoved, Msg: "a pinned signature needs both a tag and a digest (oci://HOST/REPO:TAG@sha256:…)"}
	}
	c, err := artifact.NewClient(opts.For(ref))
	if err != nil {
		return nil, &Error{Op: "sign", Ref: ref.String(), Reason: ErrRegistry, Err: err}
	}
	return signWith(ctx, c, ref, true, key, annotations)
}

func signWith(ctx context.Context, c *artifact.Client, ref artifact.Reference, pinned bool, key *PrivateKey, annotations map[string]string) (*SignResult, error) {
	fail := func(reason error, msg string, err error) error {
		return &Error{Op: "sign", Ref: ref.String(), Reason: reason, Msg: msg, Err: err}
	}
	if key == nil || key.signer == nil {
		return nil, fail(ErrKey, "no private key: load one with verify.LoadPrivateKeyFile", nil)
	}
	if _, ok := annotations[SignerAnnotation]; ok {
		return nil, fail(ErrKey, "annotation "+SignerAnnotation+" is set by airlock from the signing key: remove it", nil)
	}
	repo, err := c.Repository(ref)
	if err != nil {
		return nil, fail(ErrRegistry, "", err)
	}
	// Resolve the tag (or check the digest exists): a signature is always
	// over a digest. A pinned reference resolves its tag, which must still
	// point at the pin; the pin is what gets signed either way.
	resolve := ref.Reference()
	if pinned {
		resolve = ref.Tag
	}
	desc, err := repo.Resolve(ctx, resolve)
	if err != nil {
		return nil, registryError("sign", ref, "resolve", ref, err)
	}
	if pinned && desc.Digest.String() != ref.Digest {
		return nil, &Error{Op: "sign", Ref: ref.WithDigest("").String(), Reason: ErrTagMoved,
			Msg:  fmt.Sprintf("tag %s points to %s, not the pinned %s", ref.Tag, desc.Digest, ref.Digest),
			Hint: "nothing was signed; review what the tag points to now and pin that digest, or sign the reviewed one by digest (oci://" + ref.DigestRef() + ")"}
	}
	ref = ref.WithDigest(desc.Digest.String())
	tag := SignatureTag(ref.Digest)

	// The existing signature manifest, read once and bounded.
	existingM, err := readAttached(ctx, repo, tag)
	switch {
	case errors.Is(err, errTooLarge) || errors.Is(err, errdef.ErrSizeExceedsLimit):
		return nil, fail(ErrMalformed, fmt.Sprintf("the existing signature manifest %s is over %d bytes", tag, MaxSignatureManifestSize), artifact.ErrTooLarge)
	case errors.Is(err, errMalformedAttached):
		return nil, fail(ErrMalformed, "signature manifest "+tag+" is not an image manifest", err)
	case err != nil:
		return nil, registryError("sign", ref, "fetch signatures", ref.WithTag(tag), err)
	}
	existing := len(existingM.Layers)
	// Refuse to grow a signature set past what Verify reads.
	if existing >= MaxSignatures {
		return nil, fail(ErrMalformed, fmt.Sprintf("%s already holds %d signatures, the cap per digest is %d: remove stale signatures first", tag, existing, MaxSignatures), nil)
	}

	digestName, err := name.NewDigest(ref.DigestRef(), c.NameOptions()...)
	if err != nil {
		return nil, fail(ErrRegistry, "", fmt.Errorf("reference %s: %w", ref.DigestRef(), err))
	}
	optional := map[string]interface{}{SignerAnnotation: key.Public.Fingerprint}
	for k, v := range annotations {
		optional[k] = v
	}
	pl, err := (&payload.Cosign{Image: digestName, Annotations: optional}).MarshalJSON()
	if err != nil {
		return nil, fail(ErrMalformed, "build payload", err)
	}
	rawSig, err := key.signer.SignMessage(bytes.NewReader(pl))
	if err != nil {
		return nil, fail(ErrKey, "sign payload", err)
	}
	layer := attachedLayer{MediaType: simpleSigningMediaType, Blob: pl,
		Annotations: map[string]string{sigAnnotation: base64.StdEncoding.EncodeToString(rawSig)}}
	if !duplicateSignature(existingM, layer, key) {
		if err := appendLayer(ctx, repo, tag, existingM, layer); err != nil {
			return nil, registryError("sign", ref, "write signature to", ref.WithTag(tag), err)
		}
	}
	return &SignResult{Ref: ref, Digest: ref.Digest, SignatureTag: tag, Fingerprint: key.Public.Fingerprint, Existing: existing}, nil
}

// duplicateSignature reports whether m already holds l, as cosign's
// DupeDetector (pkg/cosign/remote) decides: a layer of the same digest and
// media type, with every annotation of l except the signature, whose own
// signature key verifies over l's payload. cosign then writes nothing new.
func duplicateSignature(m attachedManifest, l attachedLayer, key *PrivateKey) bool {
	dgst := digest.FromBytes(l.Blob)
LayerLoop:
	for _, e := range m.Layers {
		for a, v := range l.Annotations {
			if a == sigAnnotation {
				continue
			}
			if ev, ok := e.Annotations[a]; !ok || ev != v {
				continue LayerLoop
			}
		}
		if e.Digest != dgst || e.MediaType != l.MediaType {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(e.Annotations[sigAnnotation])
		if err != nil || len(raw) == 0 {
			continue
		}
		if key.Public.verifier.VerifySignature(bytes.NewReader(raw), bytes.NewReader(l.Blob)) == nil {
			return true
		}
	}
	return false
}
