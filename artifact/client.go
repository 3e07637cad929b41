package artifact

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// Client reaches registries through one HTTP transport (one pool of
// connections) and one auth cache (tokens and schemes, by host), built once
// from RemoteOptions: every operation through it reuses the connections and
// tokens of the ones before. Its credentials are fixed when it is built:
// Creds for CredsHost, the Keychain for every other host. It is safe for
// concurrent use.
type Client struct {
	opts RemoteOptions
	base *http.Transport
	rt   http.RoundTripper
	auth *auth.Client

	mu    sync.Mutex
	creds map[string]auth.Credential // by host, as resolved once
}

// ErrCredsWithoutHost is RemoteOptions.Creds given without the host they are for.
var ErrCredsWithoutHost = errors.New("registry credentials name no registry host")

// NewClient builds a client from opts. Creds must be bound to a host
// (RemoteOptions.CredsHost, or RemoteOptions.For a reference).
func NewClient(opts RemoteOptions) (*Client, error) {
	if opts.Creds != "" && opts.CredsHost == "" {
		return nil, fmt.Errorf("%w: bind them to the registry they are for (RemoteOptions.For or CredsHost), so they are never sent to another", ErrCredsWithoutHost)
	}
	base, rt, err := opts.transport()
	if err != nil {
		return nil, err
	}
	c := &Client{opts: opts, base: base, rt: rt, creds: map[string]auth.Credential{}}
	c.auth = &auth.Client{
		Client:     &http.Client{Transport: retry.NewTransport(rt)},
		Cache:      auth.NewCache(),
		Credential: c.credential,
	}
	c.auth.SetUserAgent(opts.userAgent())
	return c, nil
}

// credential resolves host's credential once per client (a keychain may run
// a credential helper).
func (c *Client) credential(ctx context.Context, host string) (auth.Credential, error) {
	c.mu.Lock()
	cred, ok := c.creds[host]
	c.mu.Unlock()
	if ok {
		return cred, nil
	}
	cred, err := c.opts.credential(ctx, host)
	if err != nil {
		return cred, err
	}
	c.mu.Lock()
	c.creds[host] = cred
	c.mu.Unlock()
	return cred, nil
}

// Options returns the options the client was built from.
func (c *Client) Options() RemoteOptions { return c.opts }

// Close drops the client's idle connections. The client stays usable.
func (c *Client) Close() { c.base.CloseIdleConnections() }

// Repository returns an oras-go client for ref's repository that shares this
// client's connections and auth cache.
func (c *Client) Repository(ref Reference) (*remote.Repository, error) {
	repo, err := remote.NewRepository(ref.Name())
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", ref.Name(), err)
	}
	repo.Client = c.auth
	repo.PlainHTTP = c.opts.PlainHTTPInsecure
	// Bound what a registry can make us read for manifests and tag lists.
	repo.MaxMetadataBytes = MaxManifestSize
	return repo, nil
}

// Resolve returns ref with its digest set: unchanged when it has one,
// otherwise by one HEAD request for the tag.
func (c *Client) Resolve(ctx context.Context, ref Reference) (Reference, error) {
	if ref.Digest != "" {
		return ref, nil
	}
	repo, err := c.Repository(ref)
	if err != nil {
		return ref, err
	}
	return resolveIn(ctx, repo, ref)
}

// Manifest fetches ref's artifact manifest by digest (resolving a tag
// first), checks its size bound and digest, and parses it. It returns ref
// with its digest, the manifest, and its bytes (for PullOptions.Manifest).
func (c *Client) Manifest(ctx context.Context, ref Reference) (Reference, *ocispec.Manifest, []byte, error) {
	repo, err := c.Repository(ref)
	if err != nil {
		return ref, nil, nil, err
	}
	return fetchManifestBytes(ctx, repo, ref)
}

// Exists reports whether ref's digest is in its repository, with one HEAD request.
func (c *Client) Exists(ctx context.Context, ref Reference) (bool, error) {
	if ref.Digest == "" {
		return false, fmt.Errorf("exists %s: a digest is required", ref)
	}
	repo, err := c.Repository(ref)
	if err != nil {
		return false, err
	}
	_, err = repo.Resolve(ctx, ref.Digest)
	if errors.Is(err, errdef.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, classify("check", ref, err)
	}
	return true, nil
}

// GGCROptions returns go-containerregistry options (for cosign) that use
// this client's transport, so its connections, and its credentials.
func (c *Client) GGCROptions(ctx context.Context) []ggcrremote.Option {
	return []ggcrremote.Option{
		ggcrremote.WithContext(ctx),
		ggcrremote.WithTransport(c.rt),
		ggcrremote.WithUserAgent(c.opts.userAgent()),
		ggcrremote.WithAuthFromKeychain(credKeychain{c}),
	}
}

// NameOptions returns go-containerregistry name options (plain HTTP when asked).
func (c *Client) NameOptions() []name.Option { return c.opts.NameOptions() }

// credKeychain gives go-containerregistry the client's credentials.
type credKeychain struct{ c *Client }

func (k credKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	cred, err := k.c.credential(context.Background(), r.RegistryStr())
	if err != nil {
		return nil, err
	}
	if cred == auth.EmptyCredential {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: cred.Username, Password: cred.Password, IdentityToken: cred.RefreshToken, RegistryToken: cred.AccessToken}), nil
}

// Exists reports whether ref's digest is in its repository, with one HEAD request.
func Exists(ctx context.Context, ref Reference, opts RemoteOptions) (bool, error) {
	c, err := NewClient(opts.For(ref))
	if err != nil {
		return false, err
	}
	return c.Exists(ctx, ref)
}
