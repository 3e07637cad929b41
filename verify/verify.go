package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"

	"airlock.dev/airlock/artifact"
)

// Artifact annotations reported with a verification result.
const (
	AnnotationSource   = ocispec.AnnotationSource
	AnnotationRevision = ocispec.AnnotationRevision
)

// Result is a passed verification.
type Result struct {
	// Ref is the artifact verified, oci://HOST/REPO[:TAG]@DIGEST.
	Ref string `json:"ref"`
	// Digest is the manifest digest whose signatures were verified.
	Digest string `json:"digest"`
	// Signers are the distinct trusted keys with a valid signature, in policy order.
	Signers []Signer `json:"signers"`
	// Threshold is how many signers the policy required.
	Threshold int `json:"threshold"`
	// Signatures is how many signatures the digest has (valid or not).
	Signatures int `json:"signatures"`
	// Upstream are the upstream keys whose signatures verified when the
	// policy requires a chain of trust; empty otherwise.
	Upstream []Signer `json:"upstream,omitempty"`
	// Chain is the import a trusted site signature records (`airlock
	// import --sign-key`); nil when none does. With a policy that requires
	// the chain, it is the site signature whose record the check accepted.
	Chain *Chain `json:"chain,omitempty"`
	// ImagesLocks are the images lock digests that valid signatures by
	// trusted keys cover (ChainImagesLock): the only locks to use.
	ImagesLocks []string `json:"imagesLocks,omitempty"`
	// Source and Revision are the artifact manifest's
	// org.opencontainers.image.source and .revision annotations; "" when absent.
	Source   string `json:"source,omitempty"`
	Revision string `json:"revision,omitempty"`
	// Manifest is the artifact manifest as read for Digest (checked against
	// it): pass it as artifact.PullOptions.Manifest to pull through the same
	// client without reading it again.
	Manifest []byte `json:"-"`

	// valid is every valid signature by a trusted key over the digest, with
	// its payload annotations: a key can have signed more than once (an
	// artifact imported twice).
	valid []Signer
}

// Chain is what a site signature recorded about an import, inside its
// signed payload.
type Chain struct {
	// Site is the trusted key that made the site signature.
	Site Signer `json:"site"`
	// UpstreamSigners are the upstream fingerprints the import verified, as
	// recorded.
	UpstreamSigners []string `json:"upstreamSigners"`
	// UpstreamRef is the artifact's reference before the import.
	UpstreamRef string `json:"upstreamRef,omitempty"`
	// ImportedAt is the import time, RFC 3339.
	ImportedAt string `json:"importedAt,omitempty"`
	// ImagesLock is the digest of the images lock the import stored, "" when none.
	ImagesLock string `json:"imagesLock,omitempty"`
}

// chainOf reads the import record of a site signature; nil when it has none.
func chainOf(s Signer) *Chain {
	up := s.Annotations[ChainUpstreamSigners]
	if up == "" {
		return nil
	}
	return &Chain{Site: Signer{Name: s.Name, Fingerprint: s.Fingerprint}, UpstreamSigners: strings.Split(up, ","),
		UpstreamRef: s.Annotations[ChainUpstreamRef], ImportedAt: s.Annotations[ChainImportedAt], ImagesLock: s.Annotations[ChainImagesLock]}
}

// Signer is a trusted key that signed.
type Signer struct {
	// Name is the key's name (its file name, or its key in a Secret).
	Name string `json:"name"`
	// Fingerprint is the hex SHA-256 of the key's DER SubjectPublicKeyInfo.
	Fingerprint string `json:"fingerprint"`
	// Annotations are the signed payload's optional annotations (`sign -a`).
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Verify checks that at least p's threshold of distinct trusted keys have
// valid cosign signatures over exactly ref's digest. ref is pinned by digest,
// or its tag is resolved first. It reads the artifact manifest (for its
// source and revision annotations) and the signatures on the
// sha256-<hex>.sig tag, bounded by MaxSignatureManifestSize, MaxPayloadSize
// and MaxSignatures. A failure is an *Error whose Reason is one of the Err…
// sentinels; a registry that cannot be reached is ErrRegistry, never a pass.
// It builds a client from opts; VerifyWith uses one already built.
func Verify(ctx context.Context, ref artifact.Reference, p Policy, opts artifact.RemoteOptions) (*Result, error) {
	c, err := artifact.NewClient(opts.For(ref))
	if err != nil {
		return nil, &Error{Op: "verify", Ref: ref.String(), Reason: ErrRegistry, Err: err}
	}
	return VerifyWith(ctx, c, ref, p)
}

// VerifyWith is Verify through client c, whose connections and tokens the
// caller reuses to pull (with Result.Manifest).
func VerifyWith(ctx context.Context, c *artifact.Client, ref artifact.Reference, p Policy) (*Result, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("verify %s: %w", ref, err)
	}
	f, err := fetch(ctx, ref, c)
	if err != nil {
		return nil, err
	}
	res, err := evaluate(ctx, f.ref.String(), f.ref.Digest, f.sigs, p)
	if err != nil {
		return nil, err
	}
	res.Source = f.annotations[AnnotationSource]
	res.Revision = f.annotations[AnnotationRevision]
	res.Manifest = f.manifest
	return res, nil
}

// fetched is what verification reads from the registry.
type fetched struct {
	ref         artifact.Reference // with Digest set
	annotations map[string]string  // the artifact manifest's
	manifest    []byte             // the artifact manifest, checked against ref.Digest
	sigs        []fetchedSignature
}

// SignatureTag is the tag cosign stores a digest's signatures under:
// sha256:<hex> → sha256-<hex>.sig.
func SignatureTag(dgst string) string {
	return artifact.AttachedTag(dgst, ".sig")
}

// registryError is a failed registry call during op on artifact; what says
// which call (as artifact.RegistryError's Op) and on which reference.
func registryError(op string, artifactRef artifact.Reference, what string, on artifact.Reference, err error) error {
	return &Error{Op: op, Ref: artifactRef.String(), Reason: ErrRegistry, Err: artifact.ClassifyError(what, on, err)}
}

// fetch resolves ref and reads its manifest annotations and signatures.
func fetch(ctx context.Context, ref artifact.Reference, c *artifact.Client) (*fetched, error) {
	repo, err := c.Repository(ref)
	if err != nil {
		return nil, &Error{Op: "verify", Ref: ref.String(), Reason: ErrRegistry, Err: err}
	}
	desc, body, err := fetchManifest(ctx, repo, ref.Reference(), artifact.MaxManifestSize)
	if err != nil {
		return nil, registryError("verify", ref, "fetch manifest", ref, err)
	}
	f := &fetched{ref: ref.WithDigest(desc.Digest.String()), manifest: body}
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(body, &m) == nil {
		f.annotations = m.Annotations
	}
	f.sigs, err = fetchSignatures(ctx, repo, f.ref)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// errTooLarge marks content refused by size before it was read.
var errTooLarge = errors.New("over the size limit")

// fetchManifest reads a manifest by tag or digest, refusing one over limit
// before reading it. content.ReadAll checks the size and digest.
func fetchManifest(ctx context.Context, repo *remote.Repository, reference string, limit int64) (ocispec.Descriptor, []byte, error) {
	desc, rc, err := repo.FetchReference(ctx, reference)
	if err != nil {
		return desc, nil, err
	}
	defer rc.Close()
	if desc.Size > limit {
		return desc, nil, fmt.Errorf("manifest %s is %d bytes: %w of %d bytes", reference, desc.Size, errTooLarge, limit)
	}
	body, err := content.ReadAll(rc, desc)
	if err != nil {
		return desc, nil, err
	}
	return desc, body, nil
}

// fetchSignatures reads the signatures on ref's sha256-<hex>.sig tag. No tag
// means no signatures (nil, nil).
func fetchSignatures(ctx context.Context, repo *remote.Repository, ref artifact.Reference) ([]fetchedSignature, error) {
	return fetchAttached(ctx, repo, ref, SignatureTag(ref.Digest), "verify")
}

// fetchAttached reads the layers of the manifest on tag next to ref (its
// .sig or .att tag), with readSignatures' bounds; op names the operation in
// errors. No tag means nothing attached (nil, nil).
func fetchAttached(ctx context.Context, repo *remote.Repository, ref artifact.Reference, tag, op string) ([]fetchedSignature, error) {
	sigRef := ref.WithTag(tag)
	_, body, err := fetchManifest(ctx, repo, tag, MaxSignatureManifestSize)
	switch {
	case errors.Is(err, errdef.ErrNotFound):
		return nil, nil
	case errors.Is(err, errTooLarge) || errors.Is(err, errdef.ErrSizeExceedsLimit):
		return nil, oversized(ref, tag, fmt.Sprintf("signature manifest %s is over the %d-byte limit", tag, MaxSignatureManifestSize))
	case err != nil:
		return nil, registryError(op, ref, "fetch "+tag+" of", sigRef, err)
	}
	return readSignatures(ref, tag, body, func(i int, l ocispec.Descriptor) ([]byte, error) {
		rc, err := repo.Fetch(ctx, l)
		if err != nil {
			return nil, registryError(op, ref, fmt.Sprintf("fetch layer %d (%s) from", i+1, l.Digest), sigRef, err)
		}
		defer rc.Close()
		b, err := content.ReadAll(rc, l)
		if err != nil {
			return nil, registryError(op, ref, fmt.Sprintf("read layer %d (%s) from", i+1, l.Digest), sigRef, err)
		}
		return b, nil
	})
}

// oversized is signature content refused by a bound before parsing.
func oversized(ref artifact.Reference, tag, msg string) error {
	return &Error{Op: "verify", Ref: ref.String(), Reason: ErrMalformed, Msg: msg, Err: artifact.ErrTooLarge,
		Hint: "refused before parsing; remove the oversized signatures from tag " + tag}
}

// readSignatures parses the signature manifest body stored on tag and reads
// its payloads through fetch (whose errors are returned as they are), with
// the same count and size bounds wherever the signatures come from: a
// registry or an export tarball.
func readSignatures(ref artifact.Reference, tag string, body []byte, fetch func(i int, l ocispec.Descriptor) ([]byte, error)) ([]fetchedSignature, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, &Error{Op: "verify", Ref: ref.String(), Reason: ErrMalformed,
			Msg: fmt.Sprintf("signature manifest %s is not an image manifest: %v", tag, err), Hint: "re-sign the artifact"}
	}
	if len(m.Layers) > MaxSignatures {
		return nil, oversized(ref, tag, fmt.Sprintf("signature manifest %s lists %d signatures, over the cap of %d per digest", tag, len(m.Layers), MaxSignatures))
	}
	sigs := make([]fetchedSignature, 0, len(m.Layers))
	for i, l := range m.Layers {
		if l.Size > MaxPayloadSize || l.Size < 0 {
			return nil, oversized(ref, tag, fmt.Sprintf("signature %d payload is %d bytes, over the %d-byte limit", i+1, l.Size, MaxPayloadSize))
		}
		b, err := fetch(i, l)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, fetchedSignature{Payload: b, Annotations: l.Annotations, MediaType: l.MediaType})
	}
	return sigs, nil
}
