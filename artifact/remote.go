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
	"oras.land/oras-go/v2/registry/remote/retry"
)

// CredsEnv is read when no --creds is given.
const CredsEnv = "AIRLOCK_REGISTRY_CREDS"

// RemoteOptions says how to reach a registry. The zero value uses HTTPS with
// the system roots and docker's config.json (and its credential helpers).
type RemoteOptions struct {
	// Creds is "user:password" (or a bare token). "" means AIRLOCK_REGISTRY_CREDS,
	// then Keychain.
	Creds string
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

func (o RemoteOptions) transport() (http.RoundTripper, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
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
				return nil, fmt.Errorf("read CA file: %w", err)
			}
			pem = append(append([]byte{}, pem...), b...)
		}
		if len(pem) > 0 && !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA bundle %q holds no PEM certificate", o.CAFile)
		}
		base.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if o.ClientCert != nil {
			base.TLSClientConfig.Certificates = []tls.Certificate{*o.ClientCert}
		}
	}
	var rt http.RoundTripper = base
	if o.WrapTransport != nil {
		rt = o.WrapTransport(rt)
	}
	return rt, nil
}

// credential resolves the credential for a registry host: --creds, then
// AIRLOCK_REGISTRY_CREDS, then the keychain (docker config and helpers).
func (o RemoteOptions) credential(host string) (auth.Credential, error) {
	creds := o.Creds
	if creds == "" {
		creds = os.Getenv(CredsEnv)
	}
	if creds != "" {
		user, pass, ok := strings.Cut(creds, ":")
		if !ok {
			return auth.Credential{AccessToken: creds}, nil
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
		return auth.EmptyCredential, fmt.Errorf("read credentials for %s from docker config: %w", host, err)
	}
	cfg, err := authn.Authorization(context.Background(), a)
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

// Repository returns an oras-go client for ref's repository.
func (o RemoteOptions) Repository(ref Reference) (*remote.Repository, error) {
	repo, err := remote.NewRepository(ref.Name())
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", ref.Name(), err)
	}
	rt, err := o.transport()
	if err != nil {
		return nil, err
	}
	client := &auth.Client{
		Client: &http.Client{Transport: retry.NewTransport(rt)},
		Cache:  auth.NewCache(),
		Credential: func(ctx context.Context, hostport string) (auth.Credential, error) {
			return o.credential(hostport)
		},
	}
	client.SetUserAgent(o.userAgent())
	repo.Client = client
	repo.PlainHTTP = o.PlainHTTPInsecure
	// Bound what a registry can make us read for manifests and tag lists.
	repo.MaxMetadataBytes = MaxManifestSize
	return repo, nil
}

// GGCROptions returns go-containerregistry options for the same registry
// settings, for cosign's signature code.
func (o RemoteOptions) GGCROptions(ctx context.Context) ([]ggcrremote.Option, error) {
	rt, err := o.transport()
	if err != nil {
		return nil, err
	}
	return []ggcrremote.Option{
		ggcrremote.WithContext(ctx),
		ggcrremote.WithTransport(rt),
		ggcrremote.WithUserAgent(o.userAgent()),
		ggcrremote.WithAuthFromKeychain(credKeychain{o}),
	}, nil
}

// NameOptions returns go-containerregistry name options (plain HTTP when asked).
func (o RemoteOptions) NameOptions() []name.Option {
	opts := []name.Option{name.StrictValidation}
	if o.PlainHTTPInsecure {
		opts = append(opts, name.Insecure)
	}
	return opts
}

// credKeychain adapts the same credential order to go-containerregistry.
type credKeychain struct{ o RemoteOptions }

func (k credKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	c, err := k.o.credential(r.RegistryStr())
	if err != nil {
		return nil, err
	}
	if c == auth.EmptyCredential {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: c.Username, Password: c.Password, IdentityToken: c.RefreshToken, RegistryToken: c.AccessToken}), nil
}
