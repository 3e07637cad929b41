package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/common"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"oras.land/oras-go/v2/errdef"

	"airlock.dev/airlock/artifact"
)

// Deployment receipts: an in-toto statement, signed by a cluster's key in a
// DSSE envelope and stored as a cosign attestation on the artifact's
// sha256-<hex>.att tag, saying that a digest was deployed to a cluster and
// how it went. `cosign verify-attestation --key cluster.pub
// --insecure-ignore-tlog=true --type https://airlock.dev/receipt/v1` accepts
// one.
const (
	// ReceiptPredicateType is the receipt's in-toto predicate type.
	ReceiptPredicateType = "https://airlock.dev/receipt/v1"
	// InTotoPayloadType is the DSSE payload type of an in-toto statement.
	InTotoPayloadType = "application/vnd.in-toto+json"
	// MaxReceipts bounds the receipts stored on one digest: WriteReceipt
	// refuses to grow the .att manifest past it, and ReadReceipts reads no more.
	MaxReceipts = MaxSignatures
)

// Receipt events.
const (
	// ReceiptReady: the Release became Ready (healthy) on the digest.
	ReceiptReady = "Ready"
	// ReceiptRollback: the controller rolled back to the digest, healthy.
	ReceiptRollback = "Rollback"
)

// ErrNoReceipt: no valid receipt satisfies a requirement (--require-receipt).
var ErrNoReceipt = errors.New("no valid deployment receipt")

// ReceiptPredicate is what a receipt records.
type ReceiptPredicate struct {
	// Event is ReceiptReady or ReceiptRollback.
	Event string `json:"event"`
	// Cluster identifies where the digest ran.
	Cluster ReceiptCluster `json:"cluster"`
	// Release is the Release that applied it.
	Release ReceiptRelease `json:"release"`
	// Artifact is what was applied.
	Artifact ReceiptArtifact `json:"artifact"`
	// Signers are the trusted keys whose signatures the controller verified.
	Signers []ReceiptSigner `json:"signers,omitempty"`
	// TrustPolicies are the ClusterTrustPolicies that applied.
	TrustPolicies []string `json:"trustPolicies,omitempty"`
	// Chain is the chain of trust verified (site and upstream signers), when
	// the artifact was imported through an air gap.
	Chain *ReceiptChain `json:"chain,omitempty"`
	// RollbackOf is the digest rolled back from (Event ReceiptRollback).
	RollbackOf string `json:"rollbackOf,omitempty"`
	// Rendered is the sha256 of the objects applied, as rendered.
	Rendered string `json:"rendered,omitempty"`
	// Inventory is the set of objects applied.
	Inventory ReceiptInventory `json:"inventory"`
	// Health is the health verdict.
	Health ReceiptHealth `json:"health"`
	// AppliedAt is when the digest was applied, ReadyAt when it was judged
	// healthy.
	AppliedAt time.Time `json:"appliedAt"`
	ReadyAt   time.Time `json:"readyAt"`
	// Controller is the controller that wrote the receipt.
	Controller ReceiptController `json:"controller"`
}

// ReceiptCluster identifies a cluster: its configured name and the UID of
// its kube-system namespace (which a re-created cluster does not share).
type ReceiptCluster struct {
	Name string `json:"name"`
	ID   string `json:"id,omitempty"`
}

// ReceiptRelease identifies the Release.
type ReceiptRelease struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	UID        string `json:"uid,omitempty"`
	Generation int64  `json:"generation,omitempty"`
}

// ReceiptArtifact is the artifact applied.
type ReceiptArtifact struct {
	URL      string `json:"url"`
	Digest   string `json:"digest"`
	Revision string `json:"revision,omitempty"`
	Source   string `json:"source,omitempty"`
	Version  string `json:"version,omitempty"`
}

// ReceiptSigner is a key that verified.
type ReceiptSigner struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
}

// ReceiptChain is the chain of trust of an imported artifact.
type ReceiptChain struct {
	SiteSigner       ReceiptSigner   `json:"siteSigner"`
	UpstreamSigners  []ReceiptSigner `json:"upstreamSigners,omitempty"`
	UpstreamVerified bool            `json:"upstreamVerified,omitempty"`
	UpstreamRef      string          `json:"upstreamRef,omitempty"`
	ImportedAt       string          `json:"importedAt,omitempty"`
}

// ReceiptInventory is the objects applied: their count and the sha256 of
// their sorted list.
type ReceiptInventory struct {
	Objects int    `json:"objects"`
	Digest  string `json:"digest"`
}

// InventoryDigest is ReceiptInventory.Digest of ids (each one object's
// identity, such as apps/v1/Deployment/ns/name): the sha256 of the sorted
// ids, one a line.
func InventoryDigest(ids []string) string {
	s := append([]string(nil), ids...)
	sort.Strings(s)
	h := sha256.New()
	for _, id := range s {
		h.Write([]byte(id + "\n"))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// ReceiptHealth is the health verdict: Healthy, or Unknown when the Release
// does not wait for health.
type ReceiptHealth struct {
	Result  string `json:"result"`
	Message string `json:"message,omitempty"`
}

// ReceiptController is the controller that wrote the receipt.
type ReceiptController struct {
	Version string `json:"version"`
}

// WrittenReceipt is a stored receipt.
type WrittenReceipt struct {
	// Digest is the sha256 of the DSSE envelope: the layer digest on the
	// .att tag, which names this receipt.
	Digest string `json:"digest"`
	// Tag is the attestation tag, sha256-<hex>.att.
	Tag string `json:"tag"`
	// Existing is how many attestations the digest had before.
	Existing int `json:"existing"`
}

// AttestationTag is the tag cosign stores a digest's attestations under:
// sha256:<hex> → sha256-<hex>.att.
func AttestationTag(dgst string) string {
	return artifact.AttachedTag(dgst, ".att")
}

// receiptStatement is the in-toto statement of a receipt on ref.
func receiptStatement(ref artifact.Reference, p *ReceiptPredicate) ([]byte, error) {
	algo, hexDigest, ok := strings.Cut(ref.Digest, ":")
	if !ok {
		return nil, fmt.Errorf("digest %q: want sha256:<hex>", ref.Digest)
	}
	return json.Marshal(in_toto.Statement{
		StatementHeader: in_toto.StatementHeader{
			Type:          in_toto.StatementInTotoV01,
			PredicateType: ReceiptPredicateType,
			Subject:       []in_toto.Subject{{Name: ref.Name(), Digest: common.DigestSet{algo: hexDigest}}},
		},
		Predicate: p,
	})
}

// SignDSSE signs payload in a DSSE envelope of payloadType, as `cosign
// attest` does, and returns the envelope's JSON.
func (k *PrivateKey) SignDSSE(payloadType string, payload []byte) ([]byte, error) {
	if k == nil || k.signer == nil {
		return nil, fmt.Errorf("%w: no private key", ErrKey)
	}
	sig, err := k.signer.SignMessage(bytes.NewReader(dsse.PAE(payloadType, payload)))
	if err != nil {
		return nil, fmt.Errorf("%w: sign: %v", ErrKey, err)
	}
	return json.Marshal(dsse.Envelope{PayloadType: payloadType, Payload: base64.StdEncoding.EncodeToString(payload),
		Signatures: []dsse.Signature{{Sig: base64.StdEncoding.EncodeToString(sig)}}})
}

// OpenDSSE parses a DSSE envelope and returns its payload type and payload
// if one of its signatures verifies with k, and an error otherwise. It
// never returns a payload that did not verify.
func (k PublicKey) OpenDSSE(envelope []byte) (payloadType string, payload []byte, err error) {
	var env dsse.Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return "", nil, fmt.Errorf("%w: not a DSSE envelope: %v", ErrMalformed, err)
	}
	body, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return "", nil, fmt.Errorf("%w: DSSE payload is not base64: %v", ErrMalformed, err)
	}
	if len(env.Signatures) == 0 {
		return "", nil, fmt.Errorf("%w: DSSE envelope has no signature", ErrMalformed)
	}
	if k.verifier == nil {
		return "", nil, fmt.Errorf("%w: public key %s not loaded", ErrKey, k.Name)
	}
	pae := dsse.PAE(env.PayloadType, body)
	for _, s := range env.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			continue
		}
		if k.verifier.VerifySignature(bytes.NewReader(sig), bytes.NewReader(pae)) == nil {
			return env.PayloadType, body, nil
		}
	}
	return "", nil, fmt.Errorf("%w: no DSSE signature verifies with key %s (%s)", ErrUntrustedSigner, k.Name, shortFP(k.Fingerprint))
}

func shortFP(fp string) string {
	if len(fp) > 12 {
		return fp[:12]
	}
	return fp
}

// WriteReceipt signs a receipt for ref's digest with the cluster key and
// stores it, as cosign stores an attestation, on ref's sha256-<hex>.att tag
// next to the attestations already there. It needs write access to the
// repository. It refuses to grow the tag past MaxReceipts.
func WriteReceipt(ctx context.Context, c *artifact.Client, ref artifact.Reference, key *PrivateKey, p *ReceiptPredicate) (*WrittenReceipt, error) {
	fail := func(reason error, msg string, err error) error {
		return &Error{Op: "write receipt", Ref: ref.String(), Reason: reason, Msg: msg, Err: err}
	}
	if ref.Digest == "" {
		return nil, fail(ErrMalformed, "a receipt is for a digest: pin the reference", nil)
	}
	if key == nil || key.signer == nil {
		return nil, fail(ErrKey, "no cluster key", nil)
	}
	stmt, err := receiptStatement(ref, p)
	if err != nil {
		return nil, fail(ErrMalformed, "build the statement", err)
	}
	env, err := key.SignDSSE(InTotoPayloadType, stmt)
	if err != nil {
		return nil, fail(ErrKey, "", err)
	}
	repo, err := c.Repository(ref)
	if err != nil {
		return nil, fail(ErrRegistry, "", err)
	}
	tag := AttestationTag(ref.Digest)
	m, err := readAttached(ctx, repo, tag)
	switch {
	case errors.Is(err, errTooLarge) || errors.Is(err, errdef.ErrSizeExceedsLimit):
		return nil, fail(ErrMalformed, fmt.Sprintf("the attestation manifest %s is over %d bytes", tag, MaxSignatureManifestSize), artifact.ErrTooLarge)
	case errors.Is(err, errMalformedAttached):
		return nil, fail(ErrMalformed, "attestation manifest "+tag+" is not an image manifest", err)
	case err != nil:
		return nil, registryError("write receipt", ref, "fetch attestations", ref.WithTag(tag), err)
	}
	existing := len(m.Layers)
	if existing >= MaxReceipts {
		return nil, fail(ErrMalformed, fmt.Sprintf("%s already holds %d attestations, the cap per digest is %d: remove old receipts first", tag, existing, MaxReceipts), nil)
	}
	// As cosign's static.NewAttestation: the envelope is the layer, and
	// the signature annotation is present and empty (the signature is in
	// the envelope).
	att := attachedLayer{MediaType: dssePayloadType, Blob: env,
		Annotations: map[string]string{"predicateType": ReceiptPredicateType, sigAnnotation: ""}}
	if err := appendLayer(ctx, repo, tag, m, att); err != nil {
		return nil, registryError("write receipt", ref, "write receipt to", ref.WithTag(tag), err)
	}
	sum := sha256.Sum256(env)
	return &WrittenReceipt{Digest: "sha256:" + hex.EncodeToString(sum[:]), Tag: tag, Existing: existing}, nil
}

// Receipt is a receipt read from an artifact's .att tag.
type Receipt struct {
	// Digest is the sha256 of its DSSE envelope.
	Digest string `json:"digest"`
	// Signer is the trusted key it verified with.
	Signer ReceiptSigner `json:"signer"`
	// Predicate is what it records.
	Predicate ReceiptPredicate `json:"predicate"`
}

// SkippedReceipt is an attestation on the .att tag that is not a valid
// receipt by a trusted key; its content is not trusted, so only why it was
// skipped is kept.
type SkippedReceipt struct {
	Digest string `json:"digest"`
	Reason string `json:"reason"`
}

// Receipts are the receipts on one digest.
type Receipts struct {
	// Ref is the artifact, with its digest.
	Ref string `json:"ref"`
	// Digest is the artifact's digest.
	Digest string `json:"digest"`
	// Receipts verified with a trusted key, oldest ReadyAt first.
	Receipts []Receipt `json:"receipts"`
	// Skipped are receipt-typed attestations that did not verify with any
	// trusted key, or named another digest. Other attestations (SLSA
	// provenance, SBOMs) are not counted.
	Skipped []SkippedReceipt `json:"skipped,omitempty"`
}

// ReadReceipts resolves ref and reads the receipts on its digest's .att
// tag, each checked against keys: a receipt counts only when its DSSE
// signature verifies with one of keys and its statement's subject is the
// digest. The others are listed in Skipped with the reason, and their
// content is not returned. No .att tag means no receipts.
func ReadReceipts(ctx context.Context, c *artifact.Client, ref artifact.Reference, keys []PublicKey) (*Receipts, error) {
	if len(keys) == 0 {
		return nil, &Error{Op: "read receipts", Ref: ref.String(), Reason: ErrPolicy, Msg: "no cluster keys given"}
	}
	repo, err := c.Repository(ref)
	if err != nil {
		return nil, &Error{Op: "read receipts", Ref: ref.String(), Reason: ErrRegistry, Err: err}
	}
	desc, _, err := fetchManifest(ctx, repo, ref.Reference(), artifact.MaxManifestSize)
	if err != nil {
		return nil, registryError("read receipts", ref, "fetch manifest", ref, err)
	}
	ref = ref.WithDigest(desc.Digest.String())
	out := &Receipts{Ref: ref.String(), Digest: ref.Digest, Receipts: []Receipt{}}
	sigs, err := fetchAttached(ctx, repo, ref, AttestationTag(ref.Digest), "read receipts")
	if err != nil || sigs == nil {
		return out, err
	}
	for _, s := range sigs {
		sum := sha256.Sum256(s.Payload)
		d := "sha256:" + hex.EncodeToString(sum[:])
		r, skip, isReceipt := openReceipt(s, ref, keys)
		switch {
		case !isReceipt:
		case skip != "":
			out.Skipped = append(out.Skipped, SkippedReceipt{Digest: d, Reason: skip})
		default:
			r.Digest = d
			out.Receipts = append(out.Receipts, *r)
		}
	}
	sort.SliceStable(out.Receipts, func(i, j int) bool {
		return out.Receipts[i].Predicate.ReadyAt.Before(out.Receipts[j].Predicate.ReadyAt)
	})
	return out, nil
}

// openReceipt checks one attestation layer. isReceipt is false for other
// attestations; skip says why a receipt-typed one does not count.
func openReceipt(s fetchedSignature, ref artifact.Reference, keys []PublicKey) (r *Receipt, skip string, isReceipt bool) {
	if s.MediaType != dssePayloadType {
		return nil, "", false
	}
	// The payload type and predicate type are read before verification only
	// to tell receipts from other attestations; nothing else of an
	// unverified envelope is used.
	var env dsse.Envelope
	if json.Unmarshal(s.Payload, &env) != nil || env.PayloadType != InTotoPayloadType {
		return nil, "", false
	}
	if unverified, err := base64.StdEncoding.DecodeString(env.Payload); err != nil {
		return nil, "", false
	} else {
		var h in_toto.StatementHeader
		if json.Unmarshal(unverified, &h) != nil || h.PredicateType != ReceiptPredicateType {
			return nil, "", false
		}
	}
	var payload []byte
	var signer *PublicKey
	for i := range keys {
		pt, body, err := keys[i].OpenDSSE(s.Payload)
		if err == nil && pt == InTotoPayloadType {
			payload, signer = body, &keys[i]
			break
		}
	}
	if signer == nil {
		return nil, "signed by none of the cluster keys given", true
	}
	var st struct {
		in_toto.StatementHeader
		Predicate ReceiptPredicate `json:"predicate"`
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, "statement does not parse: " + err.Error(), true
	}
	if st.PredicateType != ReceiptPredicateType {
		return nil, "predicate type " + st.PredicateType, true
	}
	algo, hexDigest, _ := strings.Cut(ref.Digest, ":")
	subject := false
	for _, sub := range st.Subject {
		if sub.Digest[algo] == hexDigest {
			subject = true
		}
	}
	if !subject || st.Predicate.Artifact.Digest != ref.Digest {
		return nil, "signed for another digest (copied from another artifact?)", true
	}
	return &Receipt{Signer: ReceiptSigner{Name: signer.Name, Fingerprint: signer.Fingerprint}, Predicate: st.Predicate}, "", true
}

// ReceiptRequirement is what RequireReceipt asks of a digest.
type ReceiptRequirement struct {
	// Cluster is the cluster name the receipt must record.
	Cluster string
	// Keys are the cluster's keys; the receipt must verify with one.
	Keys []PublicKey
}

// RequireReceipt returns the newest valid receipt on ref's digest from the
// cluster, verified with one of its keys, whose health is Healthy; and an
// *Error with ErrNoReceipt when there is none, listing what was found.
func RequireReceipt(ctx context.Context, c *artifact.Client, ref artifact.Reference, req ReceiptRequirement) (*Receipt, error) {
	rs, err := ReadReceipts(ctx, c, ref, req.Keys)
	if err != nil {
		return nil, err
	}
	var seen []string
	var best *Receipt
	for i := range rs.Receipts {
		r := &rs.Receipts[i]
		p := r.Predicate
		if p.Cluster.Name == req.Cluster && p.Health.Result == "Healthy" {
			best = r
			continue
		}
		seen = append(seen, fmt.Sprintf("cluster %s health %s", p.Cluster.Name, p.Health.Result))
	}
	if best != nil {
		return best, nil
	}
	msg := fmt.Sprintf("no receipt from cluster %q with health Healthy on %s", req.Cluster, rs.Digest)
	if len(seen) > 0 {
		msg += "; found: " + strings.Join(seen, ", ")
	}
	if len(rs.Skipped) > 0 {
		msg += fmt.Sprintf("; %d receipt(s) skipped (not signed by the given cluster keys or for another digest)", len(rs.Skipped))
	}
	return nil, &Error{Op: "verify", Ref: rs.Ref, Reason: ErrNoReceipt, Msg: msg,
		Hint: "deploy the digest to " + req.Cluster + " and wait until it is Ready, or check --receipt-key is that cluster's public key"}
}
