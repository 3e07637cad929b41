package verify

import (
	"errors"
	"strings"
)

// Reasons a verification or a key operation fails. Callers test with
// errors.Is; the controller derives its condition reasons from them, never
// from the message text.
var (
	// ErrNoSignatures: the artifact's digest has no signature at all.
	ErrNoSignatures = errors.New("no signatures")
	// ErrUntrustedSigner: signatures exist, but none verifies with a trusted key.
	ErrUntrustedSigner = errors.New("no signature by a trusted key")
	// ErrDigestMismatch: a signature by a trusted key names another digest
	// (a signature copied from another artifact, or a re-pointed tag).
	ErrDigestMismatch = errors.New("signature is for another digest")
	// ErrMalformed: a signature manifest, payload or signature cannot be
	// parsed, or is over a size or count limit.
	ErrMalformed = errors.New("malformed or oversized signature")
	// ErrThresholdNotMet: fewer distinct trusted keys signed than the policy requires.
	ErrThresholdNotMet = errors.New("signature threshold not met")
	// ErrChainNotMet: the policy requires a chain of trust (a site signature
	// recording an upstream signer, and that upstream signature) and it is missing.
	ErrChainNotMet = errors.New("chain of trust not met")
	// ErrKey: a key cannot be read or used (missing file, not a cosign key,
	// wrong password).
	ErrKey = errors.New("unusable key")
	// ErrWrongPassword: the private key does not decrypt with the password
	// given. It always comes with ErrKey.
	ErrWrongPassword = errors.New("wrong password")
	// ErrPolicy: the trust policy itself is invalid (no keys, bad threshold).
	ErrPolicy = errors.New("invalid trust policy")
	// ErrRegistry: the registry could not be asked (unreachable, auth, 5xx).
	// It comes with the artifact.Err… kind, such as artifact.ErrUnreachable.
	// A registry failure is never a pass.
	ErrRegistry = errors.New("registry failure")
)

// Error is a failed verification or signing. errors.Is(err, Reason) holds,
// and so does errors.Is for whatever Err wraps (such as
// artifact.ErrUnreachable). Details keeps every per-key and per-signature
// failure, joined with errors.Join, for the message; errors.Is does not look
// into it, so a stray malformed signature does not change the reason.
type Error struct {
	// Op is "verify" or "sign".
	Op string
	// Ref is the artifact, oci://HOST/REPO[:TAG]@DIGEST when the digest is known.
	Ref string
	// Reason is one of the Err… sentinels of this package.
	Reason error
	// Msg is the cause in words ("1 of 2 required keys signed: missing 3f9a…").
	Msg string
	// Hint says what to do.
	Hint string
	// Found lists signer fingerprints seen on signatures (from a certificate
	// or airlock's signer annotation); empty when the signatures carry none.
	Found []string
	// Missing lists the trusted fingerprints without a valid signature.
	Missing []string
	// Err is an underlying error, such as a *artifact.RegistryError.
	Err error
	// Details joins each per-key and per-signature failure.
	Details error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Ref != "" {
		b.WriteString(" " + e.Ref)
	}
	b.WriteString(": " + e.Reason.Error())
	if e.Msg != "" {
		b.WriteString(": " + e.Msg)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if e.Hint != "" {
		b.WriteString(": " + e.Hint)
	}
	if e.Details != nil {
		for _, line := range strings.Split(e.Details.Error(), "\n") {
			b.WriteString("\n  " + line)
		}
	}
	return b.String()
}

// Unwrap gives the reason and the underlying error, not the details.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Reason, e.Err}
	}
	return []error{e.Reason}
}
