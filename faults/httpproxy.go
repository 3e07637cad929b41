package faults

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is what a Fault does to a request.
type Kind int

const (
	// Status answers with Fault.Code without forwarding the request.
	Status Kind = iota + 1
	// Delay holds the request for Fault.Delay (or until the client gives
	// up), then forwards it.
	Delay
	// Reset forwards the request, sends the first Fault.N bytes of the
	// answer's body and then resets the client's TCP connection.
	Reset
	// Truncate serves only the first Fault.N bytes of the body, with a
	// Content-Length that matches them: a well-formed but short answer.
	Truncate
	// Corrupt flips every bit of the body's byte at offset Fault.N (the last
	// byte when the body is shorter).
	Corrupt
	// Replace serves Fault.Body instead of the upstream body.
	Replace
)

// Fault is one misbehaviour of an HTTPProxy for the requests Match selects.
type Fault struct {
	// Name identifies the fault in answers and errors.
	Name string
	// Match selects requests. nil matches every request.
	Match func(*http.Request) bool
	Kind  Kind
	// Code is the status of a Status fault.
	Code int
	// Delay is how long a Delay fault holds a request.
	Delay time.Duration
	// N is the byte count or offset of Reset, Truncate and Corrupt.
	N int64
	// Body is what a Replace fault serves.
	Body []byte
}

// Injected is a fault switched on in a proxy.
type Injected struct {
	Fault
	hits   atomic.Int64
	remove func()
}

// Hits is the number of requests the fault has changed so far.
func (i *Injected) Hits() int64 { return i.hits.Load() }

// Remove switches the fault off. It is safe to call more than once.
func (i *Injected) Remove() { i.remove() }

// Hook observes requests: Before runs when a request arrives (before any
// fault), After when the upstream has answered and before the answer goes
// to the client, so After can change the world between two requests of a
// client (move a tag after it was resolved).
type Hook struct {
	Match  func(*http.Request) bool
	Before func(*http.Request)
	After  func(*http.Request, *http.Response)
}

// HTTPOptions configures an HTTPProxy.
type HTTPOptions struct {
	// Target is the upstream's base URL, for example http://127.0.0.1:5000.
	Target *url.URL
	// Transport reaches the upstream. nil means a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	// TLS serves HTTPS with this configuration. nil means plain HTTP.
	TLS *tls.Config
}

// HTTPProxy is a reverse proxy on 127.0.0.1 whose faults and hooks can be
// switched at run time.
type HTTPProxy struct {
	// Addr is host:port of the proxy.
	Addr string

	srv *http.Server
	rp  *httputil.ReverseProxy

	mu     sync.Mutex
	faults []*Injected
	hooks  map[int]Hook
	nextID int
	done   chan struct{}
}

type stateKey struct{}

// requestState is what ServeHTTP decided for a request, for ModifyResponse.
type requestState struct {
	fault *Injected
	hooks []Hook
}

// StartHTTP starts a proxy on a free port of 127.0.0.1.
func StartHTTP(opts HTTPOptions) (*HTTPProxy, error) {
	if opts.Target == nil {
		return nil, errors.New("start HTTP proxy: no target URL")
	}
	transport := opts.Transport
	if transport == nil {
		transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start HTTP proxy for %s: %w", opts.Target, err)
	}
	p := &HTTPProxy{Addr: ln.Addr().String(), hooks: map[int]Hook{}, done: make(chan struct{})}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(opts.Target)
			pr.Out.Host = opts.Target.Host
		},
		Transport:      transport,
		ModifyResponse: p.modifyResponse,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "faults proxy: upstream: "+err.Error(), http.StatusBadGateway)
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig:         opts.TLS.Clone(), // the server adds its protocols to it
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(p.done)
		if opts.TLS != nil {
			_ = p.srv.ServeTLS(ln, "", "")
		} else {
			_ = p.srv.Serve(ln)
		}
	}()
	return p, nil
}

// Close stops the proxy and drops its connections.
func (p *HTTPProxy) Close() error {
	err := p.srv.Close()
	<-p.done
	return err
}

// Inject switches f on until Remove. The first matching fault, in the order
// of injection, applies to a request.
func (p *HTTPProxy) Inject(f Fault) *Injected {
	in := &Injected{Fault: f}
	in.remove = func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, x := range p.faults {
			if x == in {
				p.faults = append(p.faults[:i:i], p.faults[i+1:]...)
				return
			}
		}
	}
	p.mu.Lock()
	p.faults = append(p.faults, in)
	p.mu.Unlock()
	return in
}

// AddHook adds h and returns the function that removes it.
func (p *HTTPProxy) AddHook(h Hook) (remove func()) {
	p.mu.Lock()
	id := p.nextID
	p.nextID++
	p.hooks[id] = h
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.hooks, id)
		p.mu.Unlock()
	}
}

func (p *HTTPProxy) match(r *http.Request) (*Injected, []Hook) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var hooks []Hook
	for _, h := range p.hooks {
		if h.Match == nil || h.Match(r) {
			hooks = append(hooks, h)
		}
	}
	for _, f := range p.faults {
		if f.Match == nil || f.Match(r) {
			return f, hooks
		}
	}
	return nil, hooks
}

func (p *HTTPProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, hooks := p.match(r)
	for _, h := range hooks {
		if h.Before != nil {
			h.Before(r)
		}
	}
	if f != nil {
		f.hits.Add(1)
		switch f.Kind {
		case Status:
			http.Error(w, "injected by the faults proxy: "+f.Name, f.Code)
			return
		case Delay:
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		case Reset:
			w = &resetWriter{ResponseWriter: w, left: f.N}
		}
	}
	ctx := context.WithValue(r.Context(), stateKey{}, &requestState{fault: f, hooks: hooks})
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

func (p *HTTPProxy) modifyResponse(resp *http.Response) error {
	st, _ := resp.Request.Context().Value(stateKey{}).(*requestState)
	if st == nil {
		return nil
	}
	if f := st.fault; f != nil {
		switch f.Kind {
		case Truncate:
			body, err := io.ReadAll(io.LimitReader(resp.Body, f.N))
			resp.Body.Close()
			if err != nil {
				return err
			}
			setBody(resp, body)
		case Corrupt:
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if len(body) > 0 {
				body[min(f.N, int64(len(body)-1))] ^= 0xff
			}
			setBody(resp, body)
		case Replace:
			resp.Body.Close()
			setBody(resp, bytes.Clone(f.Body))
		}
	}
	for _, h := range st.hooks {
		if h.After != nil {
			h.After(resp.Request, resp)
		}
	}
	return nil
}

func setBody(resp *http.Response, body []byte) {
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.TransferEncoding = nil
}

// resetWriter passes the first left bytes of a body through, then resets the
// client's TCP connection (SO_LINGER 0: the peer sees a RST, not a clean
// end of stream).
type resetWriter struct {
	http.ResponseWriter
	left int64
}

var errInjectedReset = errors.New("faults proxy: connection reset on purpose")

func (w *resetWriter) Write(b []byte) (int, error) {
	if int64(len(b)) < w.left {
		w.left -= int64(len(b))
		return w.ResponseWriter.Write(b)
	}
	n, _ := w.ResponseWriter.Write(b[:w.left])
	w.left = 0
	rc := http.NewResponseController(w.ResponseWriter)
	_ = rc.Flush()
	conn, _, err := rc.Hijack()
	if err == nil {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	}
	return n, errInjectedReset
}

func (w *resetWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
