package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// `airlock ui` serves on loopback only, unless told it is unsafe.
func TestUIAddressLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:8089", ":8089", "10.1.2.3:8089", "example.com:8089", "8089"} {
		_, stderr, code := airlock(t, "ui", "--address", addr, "--kubeconfig", "/nonexistent")
		if code == 0 || !strings.Contains(stderr, "--address") {
			t.Errorf("airlock ui --address %s: exit %d, %s; want a refusal naming --address", addr, code, stderr)
		}
	}
	for _, addr := range []string{"127.0.0.1:8089", "[::1]:8089", "localhost:0"} {
		if err := checkLoopbackAddr(addr, false); err != nil {
			t.Errorf("--address %s: %v", addr, err)
		}
	}
	if err := checkLoopbackAddr("0.0.0.0:8089", true); err != nil {
		t.Errorf("--address 0.0.0.0:8089 --address-non-loopback-unsafe: %v", err)
	}
}

// lockedBuffer is a bytes.Buffer that a command writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// `airlock ui -n NS` serves the view through the kubeconfig: the link it
// prints signs the browser in and shows the namespace's Releases; without
// it, the view asks for the token. Ctrl-C (the context) stops it cleanly.
func TestUIServesThroughKubeconfig(t *testing.T) {
	f := releaseFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"ui", "--address", "127.0.0.1:0", "--kubeconfig", f.kubeconfig, "-n", f.namespace}, strings.NewReader(""), &stdout, &stderr)
	}()
	link := regexp.MustCompile(`http://127\.0\.0\.1:[0-9]+/login\?token=[0-9a-f]+&next=\S+`)
	deadline := time.Now().Add(30 * time.Second)
	for link.FindString(stdout.String()) == "" {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("airlock ui printed no link: %s%s", stdout.String(), stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	u := link.FindString(stdout.String())
	base := u[:strings.Index(u, "/login")]
	if resp, err := http.Get(base + "/"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the link: %v %v, want 401", resp, err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Jar: jar}).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Query().Get("namespace") != f.namespace || !strings.Contains(string(body), `href="/releases/`+f.namespace+`/hello"`) {
		t.Errorf("the printed link: %d at %s, want the namespace's Releases:\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("airlock ui after Ctrl-C: %v", err)
	}
}
