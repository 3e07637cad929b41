package receiver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Headers of the generic-hmac format.
const (
	// SignatureHeader is "sha256=" and the hex HMAC-SHA256, keyed by the
	// Receiver's token, of the timestamp header's value, ".", and the body.
	SignatureHeader = "X-Signature"
	// TimestampHeader is the time of sending in Unix seconds. The receiver
	// refuses a time outside its replay window before it reads the body.
	TimestampHeader = "X-Airlock-Timestamp"
	signaturePrefix = "sha256="
)

// MinTokenBytes is the shortest token a Receiver accepts: a shorter HMAC key
// or bearer token can be guessed.
const MinTokenBytes = 16

// WebhookPath is where a Receiver is served: /hook/ and the hex
// HMAC-SHA256, keyed by the token, of "namespace/name". Without the token it
// cannot be guessed, and a new token moves it.
func WebhookPath(token []byte, namespace, name string) string {
	m := hmac.New(sha256.New, token)
	m.Write([]byte(namespace + "/" + name))
	return "/hook/" + hex.EncodeToString(m.Sum(nil))
}

// Sign is the X-Signature value of body sent at timestamp ts (the
// X-Airlock-Timestamp value) with key.
func Sign(key []byte, ts string, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(key, ts, body))
}

func mac(key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// ParseSignature reads an X-Signature value without the body: sha256= and
// 64 hex digits.
func ParseSignature(v string) ([]byte, error) {
	hexSig, ok := strings.CutPrefix(v, signaturePrefix)
	if !ok {
		return nil, fmt.Errorf("%s %q: want sha256=<64 hex digits>", SignatureHeader, truncate(v))
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil || len(sig) != sha256.Size {
		return nil, fmt.Errorf("%s %q: want sha256=<64 hex digits>", SignatureHeader, truncate(v))
	}
	return sig, nil
}

// ParseTimestamp reads an X-Airlock-Timestamp value and checks that it is
// within window of now, either way.
func ParseTimestamp(v string, now time.Time, window time.Duration) (time.Time, error) {
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want Unix seconds", TimestampHeader, truncate(v))
	}
	t := time.Unix(sec, 0)
	if err := Fresh(t, now, window); err != nil {
		return t, err
	}
	return t, nil
}

// ErrStale is returned for a time outside the replay window.
var ErrStale = errors.New("outside the replay window")

// Fresh checks that t is within window of now, either way (clocks differ).
func Fresh(t, now time.Time, window time.Duration) error {
	if d := now.Sub(t); d > window || d < -window {
		return fmt.Errorf("sent at %s, %s from now: %w of %s", t.UTC().Format(time.RFC3339), d.Round(time.Second), ErrStale, window)
	}
	return nil
}

// VerifySignature checks sig (from ParseSignature) against the body sent at
// ts, in constant time.
func VerifySignature(key []byte, ts string, body, sig []byte) bool {
	return hmac.Equal(mac(key, ts, body), sig)
}

// AuthorizationMatches reports, in constant time, whether an Authorization
// header value is "Bearer " and token, or the token alone (Harbor sends its
// policy's auth header as it was typed, and Flux's Harbor receiver takes the
// bare token).
func AuthorizationMatches(header string, token []byte) bool {
	got := strings.TrimPrefix(header, "Bearer ")
	if got == "" {
		return false
	}
	// Hashes first: ConstantTimeCompare leaks the length of its arguments.
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256(token)
	return hmac.Equal(a[:], b[:])
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// SendOptions configures Send.
type SendOptions struct {
	// Client sends the request. nil means a client with a 10 s timeout.
	Client *http.Client
	// Now is the clock. nil means time.Now.
	Now func() time.Time
}

// RedactURL is a Receiver's URL without its path, which stands for a
// credential (Quay's only one): scheme://host/hook/…, for logs and errors.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "the notify URL"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// Send posts a generic notification to a generic-hmac Receiver's URL,
// signed with key, and checks that it was accepted (202).
func Send(ctx context.Context, target string, key []byte, g Generic, opts SendOptions) error {
	body, err := json.Marshal(g)
	if err != nil {
		return err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	shown := RedactURL(target)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("notify %s: %w", shown, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(TimestampHeader, ts)
	req.Header.Set(SignatureHeader, Sign(key, ts, body))
	resp, err := client.Do(req)
	if err != nil {
		// url.Error quotes the whole URL: name the host alone.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("notify %s: %w", shown, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("notify %s: %s: %s", shown, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
