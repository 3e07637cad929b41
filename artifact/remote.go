package artifact

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// RemoteOptions says how to reach a registry. The zero value uses HTTPS with
// the system roots and docker's config.json (and its credential helpers).
type RemoteOptions struct {
	// Creds is "user:password" (or a bare token), sent to CredsHost only:
	// every other host gets its credentials from Keychain. "" means none.
	Creds string
	// CredsHost is the registry host[:port] Creds are for. "" means the
	// registry of the reference an operation is given (the artifact's, never
	// an image's or a destination's): see For. A Client refuses Creds
	// without CredsHost.
	CredsHost string
	// Keychain resolves credentials per registry. nil means docker's
	// config.json and credential helpers (authn.DefaultKeychain).
	Keychain authn.Keychain
	// PlainHTTPInsecure talks plain HTTP, without TLS. false means HTTPS only.
	PlainHTTPInsecure bool
	// CAFile is a PEM bundle of extra roots. "" means the system roots only.
	CAFile string
	// CAData is PEM roots given in memory (from a Kubernetes Secret). nil means none.
	CAData []byte
	// ClientCert is a client certificate for mutual TLS. nil means none.
	ClientCert *tls.Certificate
	// Transport wraps the HTTP transport (for metrics). nil means none.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// UserAgent is sent on every request. "" means "airlock".
	UserAgent string
}

// transport builds the HTTP transport: base holds the connections, rt is
// base wrapped by WrapTransport.
func (o RemoteOptions) transport() (base *http.Transport, rt http.RoundTripper, err error) {
	base = http.DefaultTransport.(*http.Transport).Clone()
	base.DialContext = (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	base.TLSHandshakeTimeout = 15 * time.Second
	base.ResponseHeaderTimeout = 60 * time.Second
	// HTTP/1.1 only: over HTTP/2, net/http closes a request body from another
	// goroutine while oras-go's copy closes it too, a data race in oras-go
	// v2.7.0 (httputil.readSeekCloser) seen under -race. Registries serve
	// HTTP/1.1 everywhere.
	base.ForceAttemptHTTP2 = false
	base.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	if o.CAFile != "" || len(o.CAData) > 0 || o.ClientCert != nil {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem := o.CAData
		if o.CAFile != "" {
			b, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, nil, fmt.Errorf("read CA file: %w", err)
			}
			pem = append(append([]byte{}, pem...), b...)
		}
		if len(pem) > 0 && !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("CA bundle %q holds no PEM certificate", o.CAFile)
		}
		base.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if o.ClientCert != nil {
			base.TLSClientConfig.Certificates = []tls.Certificate{*o.ClientCert}
		}
	}
	rt = base
	if o.WrapTransport != nil {
		rt = o.WrapTransport(rt)
	}
	return base, rt, nil
}

// For returns the options with Creds bound to ref's registry when they name
// no host yet. Every operation that takes a reference and RemoteOptions
// calls it on the reference it was given, so credentials never follow an
// operation to another host.
func (o RemoteOptions) For(ref Reference) RemoteOptions {
	if o.Creds != "" && o.CredsHost == "" {
		o.CredsHost = ref.Registry
	}
	return o
}

// credential resolves the credential for a registry host: Creds for
// CredsHost, else the keychain (docker config and helpers), else anonymous.
func (o RemoteOptions) credential(ctx context.Context, host string) (auth.Credential, error) {
	if o.Creds != "" && host == o.CredsHost {
		user, pass, ok := strings.Cut(o.Creds, ":")
		if !ok {
			return auth.Credential{AccessToken: o.Creds}, nil
		}
		return auth.Credential{Username: user, Password: pass}, nil
	}
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	reg, err := name.NewRegistry(host, name.WeakValidation)
	if err != nil {
		return auth.EmptyCredential, err
	}
	a, err := kc.Resolve(reg)
	if err != nil {
		return auth.EmptyCredential, fmt.Errorf("read credentials for %s from the keychain: %w", host, err)
	}
	cfg, err := authn.Authorization(ctx, a)
	if err != nil {
		return auth.EmptyCredential, fmt.Errorf("read credentials for %s: %w", host, err)
	}
	return auth.Credential{Username: cfg.Username, Password: cfg.Password, RefreshToken: cfg.IdentityToken, AccessToken: cfg.RegistryToken}, nil
}

func (o RemoteOptions) userAgent() string {
	if o.UserAgent == "" {
		return "airlock"
	}
	return o.UserAgent
}

// Repository returns an oras-go client for ref's repository. Creds must
// already be bound to a host (see For): an operation that reaches several
// hosts binds them to its own reference first. Each call builds a new
// transport and auth cache: an operation that makes more than one call
// should build one Client and use its Repository instead.
func (o RemoteOptions) Repository(ref Reference) (*remote.Repository, error) {
	c, err := NewClient(o)
	if err != nil {
		return nil, err
	}
	return c.Repository(ref)
}

// GGCROptions returns go-containerregistry options for the same registry
// settings, for cosign's signature code, through a new Client. Prefer
// Client.GGCROptions, which shares the client's connections.
func (o RemoteOptions) GGCROptions(ctx context.Context) ([]ggcrremote.Option, error) {
	c, err := NewClient(o)
	if err != nil {
		return nil, err
	}
	return c.GGCROptions(ctx), nil
}

// NameOptions returns go-containerregistry name options (plain HTTP when asked).
func (o RemoteOptions) NameOptions() []name.Option {
	opts := []name.Option{name.StrictValidation}
	if o.PlainHTTPInsecure {
		opts = append(opts, name.Insecure)
	}
	return opts
}
