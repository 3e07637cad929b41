package reconciler

import (
	"context"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

// Source finds and fetches artifacts in a registry, through the Release's
// registry client (its connections, credentials and auth cache).
type Source interface {
	// Resolve returns ref with its digest set, with one HEAD request.
	Resolve(ctx context.Context, c *artifact.Client, ref artifact.Reference) (artifact.Reference, error)
	// LatestSemver returns the highest tag of repo in semverRange.
	LatestSemver(ctx context.Context, c *artifact.Client, repo artifact.Reference, semverRange string) (string, error)
	// Manifest fetches the manifest of ref (pinned by digest) and returns
	// its bytes, checked against the digest.
	Manifest(ctx context.Context, c *artifact.Client, ref artifact.Reference) ([]byte, error)
	// Pull fetches ref by digest and extracts it into dir, which must not
	// exist; with opts.Manifest it does not fetch the manifest again.
	Pull(ctx context.Context, c *artifact.Client, ref artifact.Reference, dir string, opts artifact.PullOptions) (*artifact.PullResult, error)
}

// Verifier checks an artifact's signatures against a trust policy.
type Verifier interface {
	// Verify returns the verification of ref's digest under policy (its
	// signers, the import record of a site signature, the images locks
	// trusted signatures cover, and the artifact manifest it read, checked
	// against ref's digest, for the pull), or the verify package's
	// *verify.Error when fewer than its threshold signed, reading through c.
	Verify(ctx context.Context, c *artifact.Client, ref artifact.Reference, policy verify.Policy) (*verify.Result, error)
}

// RegistrySource is the Source backed by the artifact package.
type RegistrySource struct{}

func (RegistrySource) Resolve(ctx context.Context, c *artifact.Client, ref artifact.Reference) (artifact.Reference, error) {
	return c.Resolve(ctx, ref)
}

func (RegistrySource) LatestSemver(ctx context.Context, c *artifact.Client, repo artifact.Reference, semverRange string) (string, error) {
	return c.LatestSemver(ctx, repo, semverRange)
}

func (RegistrySource) Manifest(ctx context.Context, c *artifact.Client, ref artifact.Reference) ([]byte, error) {
	_, _, body, err := c.Manifest(ctx, ref)
	return body, err
}

func (RegistrySource) Pull(ctx context.Context, c *artifact.Client, ref artifact.Reference, dir string, opts artifact.PullOptions) (*artifact.PullResult, error) {
	return c.Pull(ctx, ref, dir, opts)
}
