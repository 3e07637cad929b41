package reconciler

import (
	"context"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

// CosignVerifier is the Verifier backed by the verify package: cosign
// signatures checked offline against a policy of parsed keys. Its errors
// are verify's own: a *verify.Error whose Reason says why, ErrRegistry
// when the registry could not be asked.
type CosignVerifier struct{}

// Verify checks ref's signatures against policy, reading through c.
func (CosignVerifier) Verify(ctx context.Context, c *artifact.Client, ref artifact.Reference, policy verify.Policy) ([]v1alpha1.Signer, []byte, error) {
	res, err := verify.VerifyWith(ctx, c, ref, policy)
	if err != nil {
		return nil, nil, err
	}
	signers := make([]v1alpha1.Signer, 0, len(res.Signers))
	for _, s := range res.Signers {
		signers = append(signers, v1alpha1.Signer{Name: s.Name, Fingerprint: s.Fingerprint})
	}
	return signers, res.Manifest, nil
}
