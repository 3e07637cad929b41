// Package ui serves airlock's read-only web view: server-rendered HTML from
// templ components (pages.templ, compiled to Go by hack/generate.sh) and one
// embedded stylesheet, no JavaScript and no asset
// from anywhere but the server itself. It shows the Releases; per Release
// the chain from source commit to signer to digest to applied objects, the
// history with its rollbacks, the drift corrections, the receipts and the
// events; and the trace of any applied object. It reads the cluster through
// audit's read-only client, so it cannot change anything.
package ui

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"airlock.dev/airlock/audit"
)

//go:embed static/style.css
var files embed.FS

// Options configure the web view. At least one of Token and
// ProxyUserHeader must be set: the view never serves without
// authentication.
type Options struct {
	// Client reads the cluster. Required.
	Client *audit.Client
	// Token is the bearer token a request must carry (Authorization:
	// Bearer TOKEN), or have exchanged for a session cookie at /login.
	// Empty means no token is accepted.
	Token string
	// ProxyUserHeader trusts an authenticating proxy in front of the view
	// (such as X-Forwarded-User or X-Remote-User): a request that carries
	// the header, not empty, is let in. Set it only when nothing but the
	// proxy can reach the view's port. Empty means no proxy is trusted.
	ProxyUserHeader string
	// Refresh is how often the list and a Release's page reload
	// themselves (an HTML meta refresh). 0 means 30 s; negative never.
	Refresh time.Duration
	// SessionTTL is how long a session cookie from /login lasts. 0 means 12 h.
	SessionTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

type server struct {
	opts Options
	css  []byte
}

// New returns the web view's handler.
func New(opts Options) (http.Handler, error) {
	if opts.Client == nil {
		return nil, errors.New("ui: no client")
	}
	if opts.Token == "" && opts.ProxyUserHeader == "" {
		return nil, errors.New("ui: no authentication configured: give a bearer token (a file or Secret) or the header of a trusted authenticating proxy")
	}
	if opts.Refresh == 0 {
		opts.Refresh = 30 * time.Second
	}
	if opts.SessionTTL == 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &server{opts: opts}
	var err error
	if s.css, err = fs.ReadFile(files, "static/style.css"); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.auth(s.list))
	mux.HandleFunc("GET /releases/{namespace}/{name}", s.auth(s.release))
	mux.HandleFunc("GET /trace", s.auth(s.trace))
	mux.HandleFunc("GET /style.css", s.style)
	mux.HandleFunc("GET /login", s.login)
	mux.HandleFunc("POST /login", s.login)
	return securityHeaders(mux), nil
}

// securityHeaders: no script at all, nothing from another origin, no
// framing, no MIME sniffing, no referrer, nothing cached.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// Serve serves h on ln until ctx ends, then shuts down within 5 s.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(ln)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

const sessionCookie = "airlock_ui_session"

// auth lets in a request from the trusted proxy, with the bearer token, or
// with a session cookie from /login; others get the login page.
func (s *server) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.ProxyUserHeader != "" && r.Header.Get(s.opts.ProxyUserHeader) != "" {
			next(w, r)
			return
		}
		if s.opts.Token != "" {
			if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.tokenOK(tok) {
				next(w, r)
				return
			}
			if c, err := r.Cookie(sessionCookie); err == nil && s.sessionOK(c.Value) {
				next(w, r)
				return
			}
		}
		s.render(w, http.StatusUnauthorized, loginView(loginPage{page: page{Title: "Sign in"}, Next: r.URL.RequestURI(), Token: s.opts.Token != ""}))
	}
}

func (s *server) tokenOK(tok string) bool {
	return subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.Token)) == 1
}

// A session is "EXPIRY.MAC": the expiry in Unix seconds and its HMAC-SHA256
// under the token, so that a new token ends every session.
func (s *server) session(exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	m := hmac.New(sha256.New, []byte(s.opts.Token))
	m.Write([]byte("airlock ui session " + e))
	return e + "." + hex.EncodeToString(m.Sum(nil))
}

func (s *server) sessionOK(v string) bool {
	e, _, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	sec, err := strconv.ParseInt(e, 10, 64)
	if err != nil || s.opts.Now().Unix() >= sec {
		return false
	}
	return hmac.Equal([]byte(v), []byte(s.session(time.Unix(sec, 0))))
}

type loginPage struct {
	page
	Next   string
	Token  bool
	Failed bool
}

// login exchanges the token, from the form or from ?token= (the link
// `airlock ui` prints), for a session cookie, and goes on to next.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	if s.opts.Token == "" {
		s.render(w, http.StatusUnauthorized, loginView(loginPage{page: page{Title: "Sign in"}}))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	next := localPath(r.Form.Get("next"))
	tok := r.Form.Get("token")
	if tok == "" || !s.tokenOK(tok) {
		code := http.StatusOK
		if tok != "" {
			code = http.StatusUnauthorized
		}
		s.render(w, code, loginView(loginPage{page: page{Title: "Sign in"}, Next: next, Token: true, Failed: tok != ""}))
		return
	}
	exp := s.opts.Now().Add(s.opts.SessionTTL)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.session(exp), Path: "/", Expires: exp,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// localPath is p when it is a path on this server, else "/": a login link
// never sends the browser elsewhere.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") || strings.HasPrefix(p, "/login") {
		return "/"
	}
	return p
}

func (s *server) style(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=3600")
	_, _ = w.Write(s.css)
}

// render writes a page into a buffer first, so that a failed render is a
// clean 500 and not half a page.
func (s *server) render(w http.ResponseWriter, code int, page templ.Component) {
	var buf bytes.Buffer
	if err := page.Render(context.Background(), &buf); err != nil {
		http.Error(w, "render page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

type errorPage struct {
	page
	Err string
}

func (s *server) fail(w http.ResponseWriter, what string, err error) {
	s.render(w, statusOf(err), errorView(errorPage{page: page{Title: what}, Err: err.Error()}))
}

// statusOf is the HTTP status of a failed read.
func statusOf(err error) int {
	switch {
	case errors.Is(err, audit.ErrBadReference):
		return http.StatusBadRequest
	case apierrors.IsNotFound(err), errors.Is(err, audit.ErrNotApplied):
		return http.StatusNotFound
	case apierrors.IsForbidden(err), errors.Is(err, audit.ErrWriteRefused):
		return http.StatusForbidden
	}
	return http.StatusBadGateway
}

// refresh is the meta refresh in seconds, 0 for none.
func (s *server) refresh() int {
	if s.opts.Refresh < 0 {
		return 0
	}
	return max(int(s.opts.Refresh/time.Second), 1)
}
