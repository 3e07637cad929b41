// Package registry runs a real OCI distribution registry (distribution/v3)
// inside the process: the embedded default for the README, the tests and a
// site that has no registry of its own.
package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/sirupsen/logrus"

	// Access controller and storage drivers, registered by side effect.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// MaxCatalogEntries is the largest page of /v2/_catalog (distribution's
// default): a client asking for more gets PAGINATION_NUMBER_INVALID, and
// follows the Link header for the next page.
const MaxCatalogEntries = 1000

// MaxTags is the largest page of /v2/<name>/tags/list (distribution's
// default); a larger n is clamped, with a Link header to the next page.
const MaxTags = 1000

// Options configures an embedded registry. The zero value is an in-memory,
// unauthenticated, plain-HTTP registry.
type Options struct {
	// StorageDir is the filesystem root. "" means in-memory storage. Start
	// holds its lock (LockFileName) until Close, so a garbage collection
	// cannot run under it.
	StorageDir string
	// HtpasswdFile enables basic auth against a bcrypt htpasswd file. "" means no auth.
	HtpasswdFile string
	// TLSCertFile and TLSKeyFile serve HTTPS. Both "" means plain HTTP.
	TLSCertFile, TLSKeyFile string
	// LogOutput receives the registry's own log. nil means discard.
	LogOutput io.Writer
	// Observe sees every request before it is served (tests count requests
	// by kind with it). nil means none.
	Observe func(*http.Request)
	// Notify are the endpoints that distribution sends its notification
	// envelope to, for every manifest push and every delete (an airlock
	// Receiver of type distribution). nil means none.
	Notify []NotifyEndpoint
}

// NotifyEndpoint is one receiver of the registry's notifications.
// Distribution queues the events in memory and sends them one by one, again
// and again until the endpoint accepts each: a registry restart loses what
// is queued.
type NotifyEndpoint struct {
	// URL receives a POST of the envelope
	// (application/vnd.docker.distribution.events.v2+json).
	URL string
	// Headers are sent with every request, for example Authorization:
	// Bearer TOKEN. nil means none.
	Headers http.Header
	// Timeout bounds each request. 0 means 5s.
	Timeout time.Duration
}

// NewHandler returns the registry as an http.Handler, with HealthPath
// beside the distribution API.
func NewHandler(ctx context.Context, opts Options) (http.Handler, error) {
	cfg := &configuration.Configuration{}
	cfg.Log.AccessLog.Disabled = true
	cfg.Log.Level = "panic"
	// configuration.Parse defaults these for a YAML file; a configuration
	// built in code must set them, or the catalog answers every page empty
	// and refuses any n (crane's 1000 included).
	cfg.Catalog.MaxEntries = MaxCatalogEntries
	cfg.Tags.MaxTags = MaxTags
	if opts.StorageDir != "" {
		cfg.Storage = configuration.Storage{"filesystem": configuration.Parameters{"rootdirectory": opts.StorageDir}}
	} else {
		cfg.Storage = configuration.Storage{"inmemory": configuration.Parameters{}}
	}
	cfg.Storage["delete"] = configuration.Parameters{"enabled": true}
	cfg.Storage["maintenance"] = configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}}
	if opts.HtpasswdFile != "" {
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "airlock", "path": opts.HtpasswdFile}}
	}
	for i, n := range opts.Notify {
		timeout := n.Timeout
		if timeout <= 0 {
			timeout = 5 * time.Second
		}
		cfg.Notifications.Endpoints = append(cfg.Notifications.Endpoints, configuration.Endpoint{
			Name:      fmt.Sprintf("notify-%d", i),
			URL:       n.URL,
			Headers:   n.Headers,
			Timeout:   timeout,
			Threshold: 3,
			Backoff:   time.Second,
			// Pulls and mounts change nothing a Release resolves; blob
			// pushes come before the manifest push that names them.
			Ignore: configuration.Ignore{Actions: []string{"pull", "mount"}, MediaTypes: []string{"application/octet-stream"}},
		})
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	cfg.HTTP.Secret = hex.EncodeToString(secret)

	// distribution logs through logrus, and logs every 404 HEAD (which
	// clients send all the time) as an error: keep it quiet.
	// Its logger is logrus' standard one, so this setting is process-wide.
	logrus.SetOutput(io.Discard)
	logrus.SetLevel(logrus.PanicLevel)
	if opts.LogOutput != nil {
		logrus.SetOutput(dropNotFound{opts.LogOutput})
		logrus.SetLevel(logrus.WarnLevel)
	}

	var app http.Handler
	var perr error
	func() {
		// NewApp panics on a storage driver it cannot create.
		defer func() {
			if r := recover(); r != nil {
				perr = fmt.Errorf("start registry with storage %q: %v", opts.StorageDir, r)
			}
		}()
		app = handlers.NewApp(ctx, cfg)
	}()
	if perr != nil {
		return nil, perr
	}
	var probe storagedriver.StorageDriver // in-memory storage: nothing to probe
	if opts.StorageDir != "" {
		d, err := factory.Create(ctx, "filesystem", cfg.Storage.Parameters())
		if err != nil {
			return nil, fmt.Errorf("storage %s for the health check: %w", opts.StorageDir, err)
		}
		probe = d
	}
	hh := newHealth(probe)
	// Not a ServeMux: it would redirect paths it finds unclean before
	// distribution sees them.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == HealthPath {
			hh.ServeHTTP(w, r)
			return
		}
		app.ServeHTTP(w, r)
	}), nil
}

// Server is a registry listening on a TCP address.
type Server struct {
	// Addr is host:port, for example 127.0.0.1:41234.
	Addr string

	srv      *http.Server
	ln       net.Listener
	observe  func(*http.Request)
	requests atomic.Int64
	conns    atomic.Int64
	failWith atomic.Int32
	// refuseWrites answers every write with 403 (RefuseWrites).
	refuseWrites atomic.Bool
	done         chan error
	unlock       func()
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves until Close.
// With StorageDir, it holds the directory's lock (LockStorage) until Close,
// and fails with ErrStorageLocked while another registry or a garbage
// collection holds it.
func Start(ctx context.Context, addr string, opts Options) (*Server, error) {
	var lock *StorageLock
	if opts.StorageDir != "" {
		if err := os.MkdirAll(opts.StorageDir, 0o755); err != nil {
			return nil, fmt.Errorf("registry storage: %w", err)
		}
		l, err := LockStorage(opts.StorageDir)
		if err != nil {
			return nil, err
		}
		lock = l
	}
	unlock := func() {
		if lock != nil {
			_ = lock.Unlock()
		}
	}
	h, err := NewHandler(ctx, opts)
	if err != nil {
		unlock()
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := &Server{Addr: ln.Addr().String(), ln: ln, observe: opts.Observe, done: make(chan error, 1), unlock: unlock}
	errLog := io.Discard // TLS handshake errors from clients that lack the CA
	if opts.LogOutput != nil {
		errLog = opts.LogOutput
	}
	s.srv = &http.Server{
		Handler:           s.wrap(h),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(errLog, "registry: ", 0),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		},
	}
	go func() {
		var err error
		if opts.TLSCertFile != "" || opts.TLSKeyFile != "" {
			err = s.srv.ServeTLS(ln, opts.TLSCertFile, opts.TLSKeyFile)
		} else {
			err = s.srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil // Close releases the lock once requests have finished
		} else {
			unlock()
		}
		s.done <- err
	}()
	return s, nil
}

func (s *Server) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if s.observe != nil {
			s.observe(r)
		}
		if code := s.failWith.Load(); code != 0 {
			http.Error(w, "injected failure", int(code))
			return
		}
		if s.refuseWrites.Load() && r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"errors":[{"code":"DENIED","message":"this registry is read-only"}]}`)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Requests is the number of HTTP requests served so far.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Connections is the number of TCP connections accepted so far.
func (s *Server) Connections() int64 { return s.conns.Load() }

// FailWith makes every request answer with the HTTP status code; 0 restores
// normal service. Tests use it to simulate a broken registry.
func (s *Server) FailWith(code int) { s.failWith.Store(int32(code)) }

// RefuseWrites makes every request but GET and HEAD answer 403 DENIED, as
// a read-only registry or credentials without push rights do; false
// restores writes.
func (s *Server) RefuseWrites(on bool) { s.refuseWrites.Store(on) }

// Wait blocks until the server stops and returns why.
func (s *Server) Wait() error { return <-s.done }

// Close stops the server and, once its requests have finished, releases its
// storage's lock. Requests still running after 5s keep the lock until the
// process ends.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return err
	}
	s.unlock()
	return nil
}

// dropNotFound filters the registry's log lines about 404 answers, which
// clients provoke on purpose (a HEAD before every upload).
type dropNotFound struct{ w io.Writer }

func (d dropNotFound) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("http.response.status=404")) {
		return len(p), nil
	}
	return d.w.Write(p)
}
