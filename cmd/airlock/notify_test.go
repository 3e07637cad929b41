package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/receiver"
)

var notifyToken = []byte("ci-receiver-token-0123456789abcdef")

// hookRecorder is a receiver endpoint that keeps what it was sent and
// answers with status.
type hookRecorder struct {
	mu     sync.Mutex
	status int
	reqs   []*http.Request
	bodies [][]byte
	got    chan struct{}
}

func newHookRecorder(t *testing.T) (*hookRecorder, string) {
	h := &hookRecorder{status: http.StatusAccepted, got: make(chan struct{}, 64)}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL + "/hook/0123abcd"
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.reqs, h.bodies = append(h.reqs, r), append(h.bodies, b)
	status := h.status
	h.mu.Unlock()
	w.WriteHeader(status)
	h.got <- struct{}{}
}

func writeToken(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, append(notifyToken, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCLIPushNotify: push artifact --notify sends one generic notification,
// signed over its timestamp and body with the token of --notify-secret,
// naming the pushed tag and digest; a receiver that refuses it makes the
// push exit 3 with the artifact still pushed and printed; a missing token
// fails before anything is pushed.
func TestCLIPushNotify(t *testing.T) {
	reg := registrytest.New(t)
	hook, hookURL := newHookRecorder(t)
	url := "oci://" + reg.Addr + "/demo/app"
	push := []string{"push", "artifact", url + ":v1", "--path", exampleDir(t), "--source", "https://example.com/app.git", "--revision", testRevision, "--insecure-registry", "--notify", hookURL}

	out, stderr, code := airlock(t, append(push, "--notify-secret", writeToken(t))...)
	if code != 0 {
		t.Fatalf("push --notify exited %d: %s", code, stderr)
	}
	hook.mu.Lock()
	if len(hook.reqs) != 1 {
		t.Fatalf("%d notifications, want 1", len(hook.reqs))
	}
	req, body := hook.reqs[0], hook.bodies[0]
	hook.mu.Unlock()
	ts := req.Header.Get(receiver.TimestampHeader)
	sig, err := receiver.ParseSignature(req.Header.Get(receiver.SignatureHeader))
	if err != nil || !receiver.VerifySignature(notifyToken, ts, body, sig) {
		t.Fatalf("the notification's signature does not verify with the token (trailing newline dropped): %v", err)
	}
	if _, err := receiver.ParseTimestamp(ts, time.Now(), time.Minute); err != nil {
		t.Errorf("timestamp: %v", err)
	}
	notes, err := receiver.ParseGeneric(body)
	if err != nil || len(notes) != 1 {
		t.Fatalf("body %s: %v", body, err)
	}
	n := notes[0]
	if n.Event != receiver.EventPush || n.Name() != reg.Addr+"/demo/app" || n.Tag != "v1" || strings.TrimSpace(out) != url+":v1@"+n.Digest {
		t.Errorf("notified %+v for the push of %s", n, strings.TrimSpace(out))
	}
	if strings.Contains(stderr, "0123abcd") {
		t.Errorf("stderr quotes the webhook path: %s", stderr)
	}

	hook.mu.Lock()
	hook.status = http.StatusUnauthorized
	hook.mu.Unlock()
	t.Setenv(notifySecretEnv, string(notifyToken))
	out, stderr, code = airlock(t, push...)
	if code != 3 || !strings.Contains(out, url+":v1@sha256:") || !strings.Contains(stderr, "401") || !strings.Contains(stderr, "at its interval") {
		t.Errorf("push to a refusing receiver: exit %d, stdout %q, stderr %q; want exit 3, the URL printed, the 401 named", code, out, stderr)
	}
	if strings.Contains(stderr, "0123abcd") {
		t.Errorf("stderr quotes the webhook path: %s", stderr)
	}

	t.Setenv(notifySecretEnv, "")
	_, stderr, code = airlock(t, "push", "artifact", url+":v2", "--path", exampleDir(t), "--source", "https://example.com/app.git", "--revision", testRevision, "--insecure-registry", "--notify", hookURL)
	if code != 1 || !strings.Contains(stderr, "--notify-secret") {
		t.Errorf("push --notify without a token: exit %d, %s", code, stderr)
	}
	if _, _, code := airlock(t, "pull", "artifact", url+":v2", "-o", t.TempDir(), "--insecure-registry"); code == 0 {
		t.Error("v2 was pushed although the notification could not be sent")
	}
}

// TestCLIRegistryServeNotify: registry serve --notify sends distribution's
// envelope of each manifest push, with the bearer token of --notify-secret,
// and the receiver's parser finds the pushed tag in it.
func TestCLIRegistryServeNotify(t *testing.T) {
	hook, hookURL := newHookRecorder(t)
	addr, _ := runRegistryServe(t, t.TempDir(), "--notify", hookURL, "--notify-secret", writeToken(t))
	url := "oci://" + addr + "/demo/app"
	out, stderr, code := airlock(t, "push", "artifact", url+":v1", "--path", exampleDir(t), "--source", "https://example.com/app.git", "--revision", testRevision, "--insecure-registry")
	if code != 0 {
		t.Fatalf("push exited %d: %s", code, stderr)
	}
	digest := strings.TrimPrefix(strings.TrimSpace(out), url+":v1@")
	deadline := time.After(20 * time.Second)
	for {
		select {
		case <-hook.got:
		case <-deadline:
			t.Fatalf("no notification of the push of %s:v1 within 20s", url)
		}
		hook.mu.Lock()
		req, body := hook.reqs[len(hook.reqs)-1], hook.bodies[len(hook.bodies)-1]
		hook.mu.Unlock()
		if !receiver.AuthorizationMatches(req.Header.Get("Authorization"), notifyToken) || !strings.HasPrefix(req.Header.Get("Authorization"), "Bearer ") {
			t.Fatalf("notification without Authorization: Bearer and the token")
		}
		notes, err := receiver.ParseDistribution(body)
		if err != nil {
			t.Fatalf("envelope %s: %v", body, err)
		}
		for _, n := range notes {
			if n.Event == receiver.EventPush && n.Name() == addr+"/demo/app" && n.Tag == "v1" && n.Digest == digest && !n.Time.IsZero() && n.ID != "" {
				return
			}
		}
	}
}
