package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"airlock.dev/airlock/api/v1alpha1"
)

// Config is what a provider needs: the Alert's spec.provider and the
// contents of its Secret.
type Config struct {
	// Type is v1alpha1.ProviderGeneric, ProviderSlack, ProviderTeams or ProviderSyslog.
	Type string
	// Address is the webhook URL, or tls://HOST:PORT or tcp://HOST:PORT
	// for syslog. It may hold a token (Slack's URLs do): errors name only
	// its scheme and host.
	Address string
	// HMACKey signs a generic webhook's body. Required for generic.
	HMACKey []byte
	// CAData is PEM certificates to trust for the endpoint's TLS
	// certificate, on top of the system's. nil means the system's only.
	CAData []byte
	// ClientCert is presented to the endpoint. nil means none.
	ClientCert *tls.Certificate
	// Channel and Username override a Slack-compatible webhook's. "" means the webhook's own, and airlock.
	Channel, Username string
	// PlainInsecure allows http:// and tcp:// addresses, which send
	// notifications unencrypted. false refuses them.
	PlainInsecure bool
	// Hostname is syslog's HOSTNAME field. "" means NILVALUE (-).
	Hostname string
	// Timeout bounds one delivery attempt. 0 means 10s.
	Timeout time.Duration
}

// MaxMessageBytes bounds an event's message in what a provider sends.
const MaxMessageBytes = 4000

// New checks cfg and builds its provider. Its errors name the missing or
// wrong Secret key, never a value.
func New(cfg Config) (Provider, error) {
	if cfg.Address == "" {
		return nil, fmt.Errorf("no address: put the endpoint in the Secret's key address")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	tlsConfig, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	if cfg.Type == v1alpha1.ProviderSyslog {
		return newSyslog(cfg, tlsConfig)
	}
	u, err := url.Parse(cfg.Address)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("address is not an http(s) URL: put https://HOST/PATH in the Secret's key address")
	}
	if u.Scheme == "http" && !cfg.PlainInsecure {
		return nil, fmt.Errorf("address %s is plain HTTP: use https, or set spec.provider.insecure to send notifications unencrypted", redact(u))
	}
	hc := &http.Client{
		Timeout: cfg.Timeout,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     tlsConfig,
			TLSHandshakeTimeout: cfg.Timeout,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
		},
		// A webhook that redirects could send the body, and a generic
		// webhook's signature, elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	w := webhook{url: u, client: hc}
	switch cfg.Type {
	case v1alpha1.ProviderGeneric:
		if len(cfg.HMACKey) == 0 {
			return nil, fmt.Errorf("no hmacKey: a generic webhook's body is signed; put a random key in the Secret's key hmacKey and give it to the receiver")
		}
		return &Generic{webhook: w, key: cfg.HMACKey}, nil
	case v1alpha1.ProviderSlack:
		return &Slack{webhook: w, channel: cfg.Channel, username: cfg.Username}, nil
	case v1alpha1.ProviderTeams:
		return &Teams{webhook: w}, nil
	}
	return nil, fmt.Errorf("unknown provider type %q: use generic, slack, teams or syslog", cfg.Type)
}

func (cfg Config) tlsConfig() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(cfg.CAData) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(cfg.CAData) {
			return nil, fmt.Errorf("ca.crt holds no PEM certificate")
		}
		c.RootCAs = pool
	}
	if cfg.ClientCert != nil {
		c.Certificates = []tls.Certificate{*cfg.ClientCert}
	}
	return c, nil
}

// redact is u's scheme and host: a webhook URL's path and query often hold
// its token.
func redact(u *url.URL) string {
	return u.Scheme + "://" + u.Host
}

// permanent is an error that another attempt would not fix.
type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return &permanent{err} }

// IsPermanent says whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanent
	return errors.As(err, &p)
}

// webhook posts JSON bodies to one URL.
type webhook struct {
	url    *url.URL
	client *http.Client
}

// post sends body with headers and judges the answer: 2xx is delivered;
// 408, 429 and 5xx and network errors are retried; other codes are not.
func (w webhook) post(ctx context.Context, body []byte, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url.String(), bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("POST %s: %v", redact(w.url), err))
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "airlock-controller")
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text holds the whole URL
		}
		return fmt.Errorf("POST %s: %v", redact(w.url), err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("POST %s: %s: %q", redact(w.url), resp.Status, bytes.TrimSpace(snippet))
	switch {
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return err
	}
	return Permanent(err)
}

// title is the one-line summary every provider shows.
func title(ev Event) string {
	return fmt.Sprintf("Release %s/%s: %s", ev.Namespace, ev.Name, ev.Reason)
}

// message is ev's message cut to MaxMessageBytes.
func message(ev Event) string {
	m := ev.Message
	if len(m) > MaxMessageBytes {
		m = m[:MaxMessageBytes-3] + "..."
	}
	return m
}

// Close lets the webhook's idle connections go.
func (w webhook) Close() error {
	w.client.CloseIdleConnections()
	return nil
}
