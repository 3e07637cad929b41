package faults

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// The proxies' own tests: each fault does what the suite relies on, against
// a plain upstream server.

func startUpstream(t *testing.T, body []byte) *HTTPProxy {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(body)
	}))
	t.Cleanup(up.Close)
	p, err := StartHTTP(HTTPOptions{Target: mustURL(up.URL)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func get(ctx context.Context, addr, path string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return nil, nil, err
	}
	// A fresh connection per request, so a reset hits only this request.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestHTTPProxyFaults(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 10000)
	p := startUpstream(t, body)
	ctx := context.Background()
	only := func(path string) func(*http.Request) bool {
		return func(r *http.Request) bool { return r.URL.Path == path }
	}

	t.Run("pass", func(t *testing.T) {
		_, b, err := get(ctx, p.Addr, "/x")
		if err != nil || !bytes.Equal(b, body) {
			t.Fatalf("got %d bytes, %v; want the upstream's %d", len(b), err, len(body))
		}
	})
	t.Run("status", func(t *testing.T) {
		f := p.Inject(Fault{Kind: Status, Code: 503, Match: only("/s")})
		defer f.Remove()
		resp, _, err := get(ctx, p.Addr, "/s")
		if err != nil || resp.StatusCode != 503 {
			t.Fatalf("got %v, %v; want 503", resp, err)
		}
		if _, b, _ := get(ctx, p.Addr, "/other"); !bytes.Equal(b, body) {
			t.Fatal("a fault for /s changed /other")
		}
		if f.Hits() != 1 {
			t.Fatalf("hits = %d, want 1", f.Hits())
		}
	})
	t.Run("reset", func(t *testing.T) {
		f := p.Inject(Fault{Kind: Reset, N: 5000, Match: only("/r")})
		defer f.Remove()
		_, b, err := get(ctx, p.Addr, "/r")
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read %d bytes, error %v; want a connection reset", len(b), err)
		}
		if len(b) > 5000 || !bytes.Equal(b, body[:len(b)]) {
			t.Fatalf("read %d bytes before the reset, want at most the first 5000 of the body", len(b))
		}
	})
	t.Run("truncate", func(t *testing.T) {
		f := p.Inject(Fault{Kind: Truncate, N: 100, Match: only("/t")})
		defer f.Remove()
		resp, b, err := get(ctx, p.Addr, "/t")
		if err != nil || !bytes.Equal(b, body[:100]) || resp.ContentLength != 100 {
			t.Fatalf("got %d bytes (Content-Length %d), %v; want a well-formed answer of the first 100", len(b), resp.ContentLength, err)
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		f := p.Inject(Fault{Kind: Corrupt, N: 7, Match: only("/c")})
		defer f.Remove()
		_, b, err := get(ctx, p.Addr, "/c")
		if err != nil || len(b) != len(body) {
			t.Fatalf("got %d bytes, %v; want %d", len(b), err, len(body))
		}
		var diff []int
		for i := range b {
			if b[i] != body[i] {
				diff = append(diff, i)
			}
		}
		if len(diff) != 1 || diff[0] != 7 {
			t.Fatalf("bytes changed at %v, want only at 7", diff)
		}
	})
	t.Run("replace", func(t *testing.T) {
		f := p.Inject(Fault{Kind: Replace, Body: []byte("other"), Match: only("/p")})
		defer f.Remove()
		if _, b, err := get(ctx, p.Addr, "/p"); err != nil || string(b) != "other" {
			t.Fatalf("got %q, %v; want the replacement", b, err)
		}
	})
	t.Run("delay ends when the client gives up", func(t *testing.T) {
		f := p.Inject(Fault{Kind: Delay, Delay: time.Hour, Match: only("/d")})
		defer f.Remove()
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, _, err := get(ctx, p.Addr, "/d"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the client's deadline", err)
		}
	})
	t.Run("hook runs after the upstream answers, before the client gets it", func(t *testing.T) {
		var order []string
		remove := p.AddHook(Hook{
			Match:  only("/h"),
			Before: func(*http.Request) { order = append(order, "before") },
			After:  func(*http.Request, *http.Response) { order = append(order, "after") },
		})
		defer remove()
		if _, _, err := get(ctx, p.Addr, "/h"); err != nil {
			t.Fatal(err)
		}
		order = append(order, "client")
		if got := len(order); got != 3 || order[0] != "before" || order[1] != "after" {
			t.Fatalf("order %v, want before, after, client", order)
		}
	})
}

func TestTCPProxy(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }() // echo
		}
	}()
	p, err := StartTCP(up.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	echo := func() error {
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
		if string(b) != "ping" {
			return errors.New("echo: got " + string(b))
		}
		return nil
	}
	if err := echo(); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}

	open, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if err := echoOn(open); err != nil {
		t.Fatal(err)
	}
	p.Refuse()
	if err := echoOn(open); err == nil {
		t.Fatal("an open connection survived Refuse")
	}
	if err := echo(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("while refusing: %v, want connection refused", err)
	}
	if err := p.Accept(); err != nil {
		t.Fatal(err)
	}
	if err := echo(); err != nil {
		t.Fatalf("after Accept: %v", err)
	}
	p.ResetNew(true)
	if err := echo(); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Fatalf("with ResetNew: %v, want a reset", err)
	}
	p.ResetNew(false)
	if err := echo(); err != nil {
		t.Fatalf("after ResetNew(false): %v", err)
	}
}

func echoOn(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	b := make([]byte, 4)
	_, err := io.ReadFull(c, b)
	return err
}
