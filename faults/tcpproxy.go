package faults

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// TCPProxy forwards TCP connections from 127.0.0.1 to a target. It can
// refuse connections (nothing listens), reset new ones as they arrive, reset
// every open one, and restart: drop everything, refuse for a while, then
// listen again on the same address.
type TCPProxy struct {
	// Addr is host:port of the proxy; it stays the same across restarts.
	Addr string

	target string

	mu       sync.Mutex
	ln       net.Listener
	resetNew bool
	conns    map[net.Conn]net.Conn // client → upstream
	closed   bool
	wg       sync.WaitGroup
}

// StartTCP listens on a free port of 127.0.0.1 and forwards to target.
func StartTCP(target string) (*TCPProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start TCP proxy for %s: %w", target, err)
	}
	p := &TCPProxy{Addr: ln.Addr().String(), target: target, conns: map[net.Conn]net.Conn{}}
	p.serve(ln)
	return p, nil
}

func (p *TCPProxy) serve(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.handle(c)
		}
	}()
}

func (p *TCPProxy) handle(c net.Conn) {
	p.mu.Lock()
	reset := p.resetNew || p.closed
	p.mu.Unlock()
	if reset {
		rst(c)
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		rst(c)
		return
	}
	p.mu.Lock()
	p.conns[c] = up
	p.mu.Unlock()
	p.wg.Add(2)
	done := func() {
		defer p.wg.Done()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
	}
	go func() { defer done(); _, _ = io.Copy(up, c) }()
	go func() { defer done(); _, _ = io.Copy(c, up) }()
}

// rst closes c so that the peer sees a connection reset.
func rst(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// ResetNew makes the proxy accept and at once reset every new connection
// (on), or forward them again (off).
func (p *TCPProxy) ResetNew(on bool) {
	p.mu.Lock()
	p.resetNew = on
	p.mu.Unlock()
}

// ResetAll resets every open connection; it returns how many there were.
func (p *TCPProxy) ResetAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	for c, up := range p.conns {
		rst(c)
		_ = up.Close()
	}
	return n
}

// Refuse stops listening, so that new connections are refused, and resets
// every open one: the first half of a restart.
func (p *TCPProxy) Refuse() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	p.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	p.ResetAll()
}

// Accept listens again on Addr after Refuse.
func (p *TCPProxy) Accept() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("TCP proxy is closed")
	}
	if p.ln != nil {
		return nil
	}
	var err error
	for range 50 { // the port may linger for a moment after the close
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.Addr); err == nil {
			p.serve(ln)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("TCP proxy: listen again on %s: %w", p.Addr, err)
}

// Restart drops every connection, refuses new ones for down, then accepts again.
func (p *TCPProxy) Restart(down time.Duration) error {
	p.Refuse()
	time.Sleep(down)
	return p.Accept()
}

// Close stops the proxy and resets its connections.
func (p *TCPProxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Refuse()
	p.wg.Wait()
}
