package reconciler

import (
	"context"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

// CosignVerifier is the Verifier backed by the verify package: cosign
// signatures checked offline against a policy of parsed keys, the chain of
// trust (spec.verify.upstream) by the same check as `airlock verify
// --require-upstream`. Its errors are verify's own: a *verify.Error whose
// Reason says why, ErrRegistry when the registry could not be asked.
type CosignVerifier struct{}

// Verify checks ref's signatures against policy, reading through c.
func (CosignVerifier) Verify(ctx context.Context, c *artifact.Client, ref artifact.Reference, policy verify.Policy) (*verify.Result, error) {
	return verify.VerifyWith(ctx, c, ref, policy)
}
