package verify

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	cremote "github.com/sigstore/cosign/v2/pkg/cosign/remote"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/empty"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
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
// It reads the existing signature manifest once: its size from a HEAD
// request, then its content through cosign, which attaches the new
// signature to what it read.
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

	// The existing signature manifest: refuse one over the bound before
	// anything reads it.
	sigManifest, err := repo.Resolve(ctx, tag)
	found := err == nil
	switch {
	case errors.Is(err, errdef.ErrNotFound):
	case err != nil:
		return nil, registryError("sign", ref, "fetch signatures", ref.WithTag(tag), err)
	case sigManifest.Size > MaxSignatureManifestSize:
		return nil, fail(ErrMalformed, fmt.Sprintf("the existing signature manifest %s is %d bytes, over %d", tag, sigManifest.Size, MaxSignatureManifestSize), artifact.ErrTooLarge)
	}

	nameOpts := c.NameOptions()
	digestName, err := name.NewDigest(ref.DigestRef(), nameOpts...)
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
	sig, err := static.NewSignature(pl, base64.StdEncoding.EncodeToString(rawSig))
	if err != nil {
		return nil, fail(ErrMalformed, "build signature", err)
	}

	o := ociremote.WithRemoteOptions(c.GGCROptions(ctx)...)
	se, err := ociremote.SignedEntity(digestName, o)
	if err != nil {
		var nf *ociremote.EntityNotFoundError
		if errors.As(err, &nf) {
			return nil, fail(ErrRegistry, "", &artifact.RegistryError{Op: "fetch", Ref: ref.String(), Kind: artifact.ErrNotFound, Err: err, Hint: "push the artifact first"})
		}
		return nil, registryError("sign", ref, "fetch", ref, err)
	}
	// Read the existing signatures once, by the digest the HEAD request
	// sized, and hand cosign what was read.
	existingSigs := empty.Signatures()
	if found {
		sigDigest, err := name.NewDigest(ref.Name()+"@"+sigManifest.Digest.String(), nameOpts...)
		if err != nil {
			return nil, fail(ErrRegistry, "", err)
		}
		if existingSigs, err = ociremote.Signatures(sigDigest, o); err != nil {
			return nil, registryError("sign", ref, "fetch signatures", ref.WithTag(tag), err)
		}
	}
	list, err := existingSigs.Get()
	if err != nil {
		return nil, registryError("sign", ref, "read existing signatures from", ref.WithTag(tag), err)
	}
	existing := len(list)
	// Refuse to grow a signature set past what Verify reads.
	if existing >= MaxSignatures {
		return nil, fail(ErrMalformed, fmt.Sprintf("%s already holds %d signatures, the cap per digest is %d: remove stale signatures first", tag, existing, MaxSignatures), nil)
	}
	se = withSignatures(se, existingSigs)
	newSE, err := mutate.AttachSignatureToEntity(se, sig, mutate.WithDupeDetector(cremote.NewDupeDetector(key.signer)))
	if err != nil {
		return nil, registryError("sign", ref, "read existing signatures from", ref.WithTag(tag), err)
	}
	if err := ociremote.WriteSignatures(digestName.Repository, newSE, o); err != nil {
		return nil, registryError("sign", ref, "write signature to", ref.WithTag(tag), err)
	}
	return &SignResult{Ref: ref, Digest: ref.Digest, SignatureTag: tag, Fingerprint: key.Public.Fingerprint, Existing: existing}, nil
}

// withSignatures makes se answer Signatures with sigs, already read, so
// that cosign's mutate does not fetch the signature manifest again.
func withSignatures(se oci.SignedEntity, sigs oci.Signatures) oci.SignedEntity {
	switch e := se.(type) {
	case oci.SignedImage:
		return imageWithSignatures{e, sigs}
	case oci.SignedImageIndex:
		return indexWithSignatures{e, sigs}
	}
	return se
}

type imageWithSignatures struct {
	oci.SignedImage
	sigs oci.Signatures
}

func (i imageWithSignatures) Signatures() (oci.Signatures, error) { return i.sigs, nil }

type indexWithSignatures struct {
	oci.SignedImageIndex
	sigs oci.Signatures
}

func (i indexWithSignatures) Signatures() (oci.Signatures, error) { return i.sigs, nil }
