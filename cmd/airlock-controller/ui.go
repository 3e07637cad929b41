package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"

	"airlock.dev/airlock/audit"
	"airlock.dev/airlock/ui"
)

// uiOptions are the flags of the read-only web view, off by default.
type uiOptions struct {
	addr        string
	tokenFile   string
	proxyHeader string
	token       string
}

func (o *uiOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.addr, "ui-addr", "", "address of the read-only web view (for example :8090); empty disables it; it needs --ui-token-file or --ui-auth-proxy-header")
	fs.StringVar(&o.tokenFile, "ui-token-file", "", "file holding the web view's bearer token (mount it from a Secret), at least 16 characters; the view accepts it as Authorization: Bearer or at its sign-in page")
	fs.StringVar(&o.proxyHeader, "ui-auth-proxy-header", "", "trust an authenticating proxy in front of the web view: a request carrying this header (such as X-Forwarded-User) is let in; set it only when nothing but the proxy can reach --ui-addr")
}

// minTokenLen bounds how weak a web view token may be.
const minTokenLen = 16

// load checks the flags and reads the token, before anything connects.
func (o *uiOptions) load() error {
	if o.addr == "" {
		if o.tokenFile != "" || o.proxyHeader != "" {
			return fmt.Errorf("--ui-token-file and --ui-auth-proxy-header need --ui-addr")
		}
		return nil
	}
	if o.tokenFile == "" && o.proxyHeader == "" {
		return fmt.Errorf("--ui-addr %s: the web view needs authentication: pass --ui-token-file (a token from a Secret) or --ui-auth-proxy-header (behind the cluster's authenticating proxy)", o.addr)
	}
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return fmt.Errorf("--ui-token-file: %w", err)
		}
		o.token = strings.TrimSpace(string(b))
		if len(o.token) < minTokenLen {
			return fmt.Errorf("--ui-token-file %s: the token has %d characters, want at least %d: generate one with `head -c 32 /dev/urandom | base64`", o.tokenFile, len(o.token), minTokenLen)
		}
	}
	return nil
}

// runnable is the view to add to the manager, or nil when it is off.
func (o *uiOptions) runnable(cfg *rest.Config) (*uiRunnable, error) {
	if o.addr == "" {
		return nil, nil
	}
	c, err := audit.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	h, err := ui.New(ui.Options{Client: c, Token: o.token, ProxyUserHeader: o.proxyHeader})
	if err != nil {
		return nil, err
	}
	return &uiRunnable{addr: o.addr, handler: h}, nil
}

// uiRunnable serves the view on every replica, leader or not.
type uiRunnable struct {
	addr    string
	handler http.Handler
}

func (u *uiRunnable) NeedLeaderElection() bool { return false }

func (u *uiRunnable) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", u.addr)
	if err != nil {
		return fmt.Errorf("--ui-addr: %w", err)
	}
	ctrl.Log.Info("serving the read-only web view", "addr", ln.Addr().String())
	return ui.Serve(ctx, ln, u.handler)
}
