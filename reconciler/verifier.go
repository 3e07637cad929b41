package reconciler

import (
	"context"
	"errors"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

// CosignVerifier is the Verifier backed by the verify package: cosign
// signatures checked offline against the Release's public keys.
type CosignVerifier struct{}

// Verify loads the keys, then checks ref's signatures against them. A
// registry failure is returned as it is, so it reads as the registry's
// fault; every other failure is a *VerificationError with the fingerprints
// of the keys found on the signatures.
func (CosignVerifier) Verify(ctx context.Context, c *artifact.Client, ref artifact.Reference, keys []TrustedKey, threshold int) ([]v1alpha1.Signer, []byte, error) {
	policy := verify.Policy{Threshold: threshold}
	var keyErrs []error
	for _, k := range keys {
		pub, err := verify.LoadPublicKey(k.Name+".pub", k.PEM)
		if err != nil {
			keyErrs = append(keyErrs, err)
			continue
		}
		policy.Keys = append(policy.Keys, pub)
	}
	if len(policy.Keys) == 0 {
		return nil, nil, &VerificationError{Ref: ref.String(), Err: errors.Join(keyErrs...)}
	}
	res, err := verify.VerifyWith(ctx, c, ref, policy)
	if err != nil {
		if errors.Is(err, verify.ErrRegistry) {
			return nil, nil, err
		}
		ve := &VerificationError{Ref: ref.String(), Err: errors.Join(append([]error{err}, keyErrs...)...)}
		var vErr *verify.Error
		if errors.As(err, &vErr) {
			ve.Found = vErr.Found
			ve.Err = errors.Join(append([]error{errors.New(vErr.Reason.Error() + messageSuffix(vErr))}, keyErrs...)...)
			ve.cause = err
		}
		return nil, nil, ve
	}
	signers := make([]v1alpha1.Signer, 0, len(res.Signers))
	for _, s := range res.Signers {
		signers = append(signers, v1alpha1.Signer{Name: trimPub(s.Name), Fingerprint: s.Fingerprint})
	}
	return signers, res.Manifest, nil
}

func messageSuffix(e *verify.Error) string {
	s := ""
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

func trimPub(name string) string {
	if len(name) > 4 && name[len(name)-4:] == ".pub" {
		return name[:len(name)-4]
	}
	return name
}
