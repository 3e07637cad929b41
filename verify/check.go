package verify

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// fetchedSignature is one signature layer as read from the registry: the
// raw payload and the layer's annotations (the base64 signature, and a
// certificate or Rekor bundle when cosign added one).
type fetchedSignature struct {
	Payload     []byte
	Annotations map[string]string
	MediaType   string
}

var hexFingerprint = regexp.MustCompile(`^[0-9a-f]{64}$`)

// short abbreviates a fingerprint or digest for lists in messages.
func short(s string) string {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// evaluate is the pure check: do at least p's threshold of distinct trusted
// keys have valid signatures over exactly dgst among sigs? ref names the
// artifact in messages. It reads nothing from the network.
func evaluate(ctx context.Context, ref, dgst string, sigs []fetchedSignature, p Policy) (*Result, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("verify %s: %w", ref, err)
	}
	fail := func(reason error, msg, hint string) *Error {
		return &Error{Op: "verify", Ref: ref, Reason: reason, Msg: msg, Hint: hint}
	}
	h, err := v1.NewHash(dgst)
	if err != nil {
		return nil, fail(ErrMalformed, fmt.Sprintf("artifact digest %q: %v", dgst, err), "")
	}
	if len(sigs) == 0 {
		return nil, fail(ErrNoSignatures, "no signature on "+dgst,
			"sign it with `airlock sign "+ref+" --key cosign.key`, or check that the signatures were copied with the artifact")
	}
	if len(sigs) > MaxSignatures {
		return nil, fail(ErrMalformed, fmt.Sprintf("%d signatures, over the cap of %d per digest", len(sigs), MaxSignatures),
			"remove stale signatures from the .sig tag")
	}

	keys := p.distinctKeys()
	var (
		details    []error
		found      []string // signer hints, as fingerprints
		foundSeen  = map[string]bool{}
		malformed  int
		mismatched []string // digests named by trusted keys' signatures for other artifacts
		signed     = map[string]Signer{}
		valid      []Signer
	)
	addFound := func(fp string) {
		if fp != "" && !foundSeen[fp] {
			foundSeen[fp] = true
			found = append(found, fp)
		}
	}
	for i, fs := range sigs {
		n := i + 1
		claim, sig, err := parseSignature(fs)
		if err != nil {
			malformed++
			details = append(details, fmt.Errorf("signature %d: %w: %v", n, ErrMalformed, err))
			continue
		}
		hinted := claim.Annotations[SignerAnnotation]
		if hexFingerprint.MatchString(hinted) {
			addFound(hinted)
		}
		if sig.cert != nil {
			if fp, err := Fingerprint(sig.cert.PublicKey); err == nil {
				addFound(fp)
			}
		}
		for _, k := range keys {
			verr := verifyOne(ctx, sig, h, k)
			switch {
			case verr == nil && claim.Digest == h.String():
				s := Signer{Name: k.Name, Fingerprint: k.Fingerprint, Annotations: claim.Annotations}
				if _, ok := signed[k.Fingerprint]; !ok {
					signed[k.Fingerprint] = s
				}
				valid = append(valid, s)
				addFound(k.Fingerprint)
			case claim.Digest != h.String() && cryptoValid(sig, k):
				mismatched = append(mismatched, claim.Digest)
				addFound(k.Fingerprint)
				details = append(details, fmt.Errorf("signature %d: %w: trusted key %s (%s) signed %s, not %s",
					n, ErrDigestMismatch, short(k.Fingerprint), k.Name, claim.Digest, h.String()))
			default:
				details = append(details, fmt.Errorf("signature %d: key %s (%s): %v", n, short(k.Fingerprint), k.Name, verr))
			}
		}
	}

	need := p.threshold()
	var signers []Signer
	var missing []string
	for _, k := range keys {
		if s, ok := signed[k.Fingerprint]; ok {
			signers = append(signers, s)
		} else {
			missing = append(missing, k.Fingerprint)
		}
	}
	if len(signers) >= need {
		res := &Result{Ref: ref, Digest: h.String(), Signers: signers, Threshold: need, Signatures: len(sigs), valid: valid}
		for _, s := range valid {
			if l := s.Annotations[ChainImagesLock]; l != "" && !contains(res.ImagesLocks, l) {
				res.ImagesLocks = append(res.ImagesLocks, l)
			}
			if res.Chain == nil {
				res.Chain = chainOf(s)
			}
		}
		if len(p.Upstream) > 0 {
			if err := checkChain(ctx, ref, dgst, sigs, p, res); err != nil {
				return nil, err
			}
		}
		return res, nil
	}

	var e *Error
	trusted := describeKeys(keys, nil)
	switch {
	case len(signers) > 0:
		e = fail(ErrThresholdNotMet,
			fmt.Sprintf("%d of %d required keys signed: missing %s", len(signers), need, describeKeys(keys, missing)),
			"sign the digest with the missing keys (`airlock sign "+ref+" --key KEY`), or lower --threshold")
	case len(mismatched) > 0:
		e = fail(ErrDigestMismatch,
			fmt.Sprintf("%d signature(s) by trusted keys name another digest (%s), not %s", len(mismatched), strings.Join(uniq(mismatched), ", "), h.String()),
			"a signature was copied from another artifact or the tag was moved: verify the digest that was signed, or sign this one")
	case malformed == len(sigs):
		e = fail(ErrMalformed, fmt.Sprintf("all %d signature(s) are malformed", len(sigs)),
			"re-sign the artifact with `airlock sign` or `cosign sign`")
	default:
		signersFound := "unknown (the signatures name no signer key)"
		if len(found) > 0 {
			signersFound = strings.Join(found, ", ")
		}
		e = fail(ErrUntrustedSigner,
			fmt.Sprintf("%d signature(s), none valid for a trusted key (found signers: %s; trusted keys tried: %s)", len(sigs), signersFound, trusted),
			"sign the artifact with one of the trusted keys, or add the signer's public key to the policy")
	}
	e.Found, e.Missing = found, missing
	e.Details = errors.Join(details...)
	return nil, e
}

// sigLayer is one signature layer, decoded as cosign's registry signature
// layer (pkg/oci/internal/signature) decodes it.
type sigLayer struct {
	payload   []byte
	signature []byte
	// cert is the attached signing certificate; nil when there is none.
	cert *x509.Certificate
}

// parseSignature checks one fetched signature and decodes it.
func parseSignature(fs fetchedSignature) (signedClaim, sigLayer, error) {
	claim, err := parsePayload(fs.Payload)
	if err != nil {
		return signedClaim{}, sigLayer{}, err
	}
	b64 := fs.Annotations[sigAnnotation]
	if b64 == "" {
		return signedClaim{}, sigLayer{}, fmt.Errorf("no %s annotation", sigAnnotation)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return signedClaim{}, sigLayer{}, fmt.Errorf("signature is not base64: %v", err)
	}
	sig := sigLayer{payload: fs.Payload, signature: raw}
	if c := fs.Annotations[certAnnotation]; c != "" {
		certs, err := cryptoutils.UnmarshalCertificatesFromPEM([]byte(c))
		if err == nil && len(certs) == 0 {
			err = errors.New("no certificate")
		}
		if err != nil {
			return signedClaim{}, sigLayer{}, fmt.Errorf("certificate annotation: %v", err)
		}
		sig.cert = certs[0]
	}
	return claim, sig, nil
}

// verifyOne applies the rules of `cosign verify --key KEY
// --insecure-ignore-tlog=true` (cosign.VerifyImageSignature with a key
// verifier, IgnoreTlog, IgnoreSCT and SimpleClaimVerifier, in cosign's
// order) to one signature and key, offline:
//
//  1. the key's signature over the payload bytes;
//  2. the payload's critical.image.docker-manifest-digest equals h
//     (SimpleClaimVerifier; without it a signature copied from another
//     artifact passes);
//  3. a certificate attached to the signature is valid now: with no
//     transparency log and no signed timestamp, now is the only time cosign
//     has to check it against.
//
// It is written here rather than called from pkg/cosign, which links Rekor,
// TUF, Fulcio and CT clients the offline controller never uses;
// TestVerifyOneMatchesCosign checks it against cosign's own function.
func verifyOne(ctx context.Context, sig sigLayer, h v1.Hash, k PublicKey) error {
	if err := k.verifier.VerifySignature(bytes.NewReader(sig.signature), bytes.NewReader(sig.payload), options.WithContext(ctx)); err != nil {
		return err
	}
	var sci payload.SimpleContainerImage
	if err := json.Unmarshal(sig.payload, &sci); err != nil {
		return err
	}
	if got := sci.Critical.Image.DockerManifestDigest; got != h.String() {
		return fmt.Errorf("invalid or missing digest in claim: %s", got)
	}
	if cert := sig.cert; cert != nil {
		if now := time.Now(); cert.NotAfter.Before(now) || cert.NotBefore.After(now) {
			return fmt.Errorf("the signature's certificate is not valid now (%s to %s), and without a transparency log or a signed timestamp there is no other time to check it against",
				cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339))
		}
	}
	return nil
}

// cryptoValid reports whether k made sig over its payload, whatever the
// payload claims. It tells a replayed signature from a stranger's.
func cryptoValid(sig sigLayer, k PublicKey) bool {
	return k.verifier.VerifySignature(bytes.NewReader(sig.signature), bytes.NewReader(sig.payload)) == nil
}

// describeKeys lists keys as "fingerprint (name)"; only those in only when
// only is not nil.
func describeKeys(keys []PublicKey, only []string) string {
	var want map[string]bool
	if only != nil {
		want = map[string]bool{}
		for _, fp := range only {
			want[fp] = true
		}
	}
	var parts []string
	for _, k := range keys {
		if want != nil && !want[k.Fingerprint] {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", k.Fingerprint, k.Name))
	}
	return strings.Join(parts, ", ")
}

func uniq(ss []string) []string {
	m := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !m[s] {
			m[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// checkChain requires a site signature (by a policy key) whose signed
// import record names at least p's upstream threshold of upstream keys of
// p.Upstream, and those upstream keys' own valid signatures over the same
// digest. It is the one check behind `airlock verify --require-upstream`
// and the controller's spec.verify.upstream.
func checkChain(ctx context.Context, ref, dgst string, sigs []fetchedSignature, p Policy, res *Result) error {
	need := p.upstreamThreshold()
	upstream, err := evaluate(ctx, ref, dgst, sigs, Policy{Keys: p.Upstream, Threshold: need})
	if err != nil {
		return &Error{Op: "verify", Ref: ref, Reason: ErrChainNotMet, Err: err,
			Msg:  fmt.Sprintf("no valid upstream signature by %d of the required upstream keys (%s)", need, describeKeys(p.Upstream, nil)),
			Hint: "import the artifact with its upstream signatures (`airlock import … --verify-key upstream.pub`), or trust the upstream key that signed it"}
	}
	verified := map[string]Signer{}
	var fps []string
	for _, s := range upstream.Signers {
		verified[s.Fingerprint] = s
		fps = append(fps, s.Fingerprint)
	}
	var recorded []string
	for _, s := range res.valid {
		c := chainOf(s)
		if c == nil {
			continue
		}
		recorded = append(recorded, c.UpstreamSigners...)
		var chained []Signer
		for _, fp := range c.UpstreamSigners {
			if u, ok := verified[fp]; ok && !containsSigner(chained, fp) {
				chained = append(chained, u)
			}
		}
		if len(chained) >= need {
			res.Upstream, res.Chain = chained, c
			return nil
		}
	}
	msg := "the upstream signature verifies, but no trusted site signature records it (no " + ChainUpstreamSigners + " annotation naming " + describeKeys(p.Upstream, fps) + ")"
	if len(recorded) > 0 {
		msg = fmt.Sprintf("the upstream signatures verify (%s), but no trusted site signature records %d of them (the site signatures record upstream signers %s)",
			describeKeys(p.Upstream, fps), need, strings.Join(uniq(recorded), ", "))
	}
	return &Error{Op: "verify", Ref: ref, Reason: ErrChainNotMet, Msg: msg,
		Hint: "re-import with `airlock import … --verify-key upstream.pub --sign-key site.key`"}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func containsSigner(ss []Signer, fp string) bool {
	for _, s := range ss {
		if s.Fingerprint == fp {
			return true
		}
	}
	return false
}
