package receiver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestSignature(t *testing.T) {
	body := []byte(`{"repository":"r.example.com/a","tag":"v1"}`)
	sig, err := ParseSignature(Sign(testKey, "1796180400", body))
	if err != nil {
		t.Fatal(err)
	}
	if !VerifySignature(testKey, "1796180400", body, sig) {
		t.Fatal("a good signature does not verify")
	}
	tests := []struct {
		name string
		key  []byte
		ts   string
		body []byte
	}{
		{"other key", []byte("another key of 32 bytes, or so.."), "1796180400", body},
		{"other time", testKey, "1796180401", body},
		{"other body", testKey, "1796180400", []byte(`{"repository":"r.example.com/b","tag":"v1"}`)},
	}
	for _, tt := range tests {
		if VerifySignature(tt.key, tt.ts, tt.body, sig) {
			t.Errorf("%s: the signature verifies", tt.name)
		}
	}
	for _, v := range []string{"", "sha256=", "sha1=" + strings.Repeat("a", 40), "sha256=" + strings.Repeat("z", 64), "sha256=" + strings.Repeat("a", 62)} {
		if _, err := ParseSignature(v); err == nil {
			t.Errorf("ParseSignature(%q) = nil error", v)
		}
	}
}

func TestTimestamp(t *testing.T) {
	now := time.Unix(1796180400, 0)
	for _, tt := range []struct {
		v     string
		stale bool
		bad   bool
	}{
		{v: "1796180400"},
		{v: "1796180100"},              // 5 minutes ago
		{v: "1796180700"},              // 5 minutes ahead: clocks differ
		{v: "1796180099", stale: true}, // a second too old
		{v: "1796180701", stale: true},
		{v: "", bad: true},
		{v: "1796180400.5", bad: true},
	} {
		_, err := ParseTimestamp(tt.v, now, 5*time.Minute)
		switch {
		case tt.stale && !errors.Is(err, ErrStale):
			t.Errorf("%q: %v, want ErrStale", tt.v, err)
		case tt.bad && (err == nil || errors.Is(err, ErrStale)):
			t.Errorf("%q: %v, want a format error", tt.v, err)
		case !tt.stale && !tt.bad && err != nil:
			t.Errorf("%q: %v", tt.v, err)
		}
	}
}

func TestAuthorizationMatches(t *testing.T) {
	for _, tt := range []struct {
		header string
		want   bool
	}{
		{"Bearer " + string(testKey), true},
		{string(testKey), true},
		{"Bearer " + string(testKey) + "x", false},
		{"Bearer " + string(testKey[:len(testKey)-1]), false},
		{"Basic " + string(testKey), false},
		{"Bearer ", false},
		{"", false},
	} {
		if got := AuthorizationMatches(tt.header, testKey); got != tt.want {
			t.Errorf("AuthorizationMatches(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestWebhookPath(t *testing.T) {
	p := WebhookPath(testKey, "team", "registry")
	if !strings.HasPrefix(p, "/hook/") || len(p) != len("/hook/")+64 {
		t.Fatalf("path %q: want /hook/ and 64 hex digits", p)
	}
	if p != WebhookPath(testKey, "team", "registry") {
		t.Error("the same Receiver gets two paths")
	}
	for _, other := range []string{WebhookPath([]byte("another key of 32 bytes, or so.."), "team", "registry"), WebhookPath(testKey, "team2", "registry"), WebhookPath(testKey, "team", "registry2"), WebhookPath(testKey, "team/registry", "")} {
		if other == p {
			t.Errorf("another token, namespace or name gives the same path %s", p)
		}
	}
}

func TestNonces(t *testing.T) {
	now := time.Unix(1796180400, 0)
	n := NewNonces(time.Minute, 2)
	if err := n.Add("a", now); err != nil {
		t.Fatal(err)
	}
	if err := n.Add("a", now.Add(59*time.Second)); !errors.Is(err, ErrReplayed) {
		t.Errorf("a again within the window: %v, want ErrReplayed", err)
	}
	if err := n.Add("b", now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := n.Add("c", now.Add(2*time.Second)); !errors.Is(err, ErrReplayCacheFull) {
		t.Errorf("a third within the window: %v, want ErrReplayCacheFull", err)
	}
	n.Forget("b")
	if err := n.Add("b", now.Add(3*time.Second)); err != nil {
		t.Errorf("b after Forget: %v", err)
	}
	// a expires at +60s; b's first entry too, but b was added again at +3s.
	if err := n.Add("c", now.Add(61*time.Second)); err != nil {
		t.Errorf("c once a expired: %v", err)
	}
	if err := n.Add("b", now.Add(62*time.Second)); !errors.Is(err, ErrReplayed) {
		t.Errorf("b within its second window: %v, want ErrReplayed", err)
	}
	if err := n.Add("a", now.Add(62*time.Second)); !errors.Is(err, ErrReplayCacheFull) {
		t.Errorf("a after its window, cache full of b and c: %v, want ErrReplayCacheFull", err)
	}
	if err := n.Add("a", now.Add(64*time.Second)); err != nil {
		t.Errorf("a after b's window: %v", err)
	}
	if n.Len() != 2 {
		t.Errorf("%d nonces remembered, want 2 (c and a)", n.Len())
	}
}

func TestSend(t *testing.T) {
	now := time.Unix(1796180400, 0)
	var got struct {
		ts, sig string
		body    []byte
	}
	status := http.StatusAccepted
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.ts, got.sig = r.Header.Get(TimestampHeader), r.Header.Get(SignatureHeader)
		got.body, _ = io.ReadAll(r.Body)
		w.WriteHeader(status)
		io.WriteString(w, "no Receiver at this path\n")
	}))
	defer srv.Close()
	g := Generic{Repository: "r.example.com/team/app", Tag: "v1", Digest: testDigest}
	if err := Send(context.Background(), srv.URL+"/hook/x", testKey, g, SendOptions{Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	if got.ts != strconv.FormatInt(now.Unix(), 10) {
		t.Errorf("timestamp %q", got.ts)
	}
	sig, err := ParseSignature(got.sig)
	if err != nil || !VerifySignature(testKey, got.ts, got.body, sig) {
		t.Errorf("the signature %q does not verify (%v)", got.sig, err)
	}
	notes, err := ParseGeneric(got.body)
	if err != nil || len(notes) != 1 || notes[0].Name() != "r.example.com/team/app" || notes[0].Tag != "v1" {
		t.Errorf("sent %s: %+v, %v", got.body, notes, err)
	}
	status = http.StatusNotFound
	err = Send(context.Background(), srv.URL+"/hook/x", testKey, g, SendOptions{})
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "no Receiver at this path") {
		t.Errorf("Send to a 404: %v, want the status and the answer", err)
	}
}
