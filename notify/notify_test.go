package notify_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc5424"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/internal/tlstest"
	"airlock.dev/airlock/notify"
)

func event(reason string) notify.Event {
	return notify.Event{
		Time: time.Date(2026, 12, 2, 3, 4, 5, 0, time.UTC), Namespace: "team", Name: "web",
		Reason: reason, Severity: v1alpha1.AlertEventSeverity(reason),
		Message: "applied 0123456789ab (main@sha1:abc): 3 objects, all healthy",
		Digest:  "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Revision: "main@sha1:abc",
	}
}

// router sends every event to its targets and records what was given up,
// and the attempts of what was delivered.
type router struct {
	targets   []notify.Target
	mu        sync.Mutex
	gaveUp    []error
	delivered []int
}

func (r *router) Route(context.Context, notify.Event) []notify.Target { return r.targets }
func (r *router) Done(_ notify.Target, _ notify.Event, attempts int, err error) {
	r.mu.Lock()
	if err != nil {
		r.gaveUp = append(r.gaveUp, err)
	} else {
		r.delivered = append(r.delivered, attempts)
	}
	r.mu.Unlock()
}

func (r *router) deliveries() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.delivered...)
}

func (r *router) failures() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.gaveUp...)
}

func start(t *testing.T, d *notify.Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newProvider(t *testing.T, cfg notify.Config) notify.Provider {
	t.Helper()
	p, err := notify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A generic webhook that answers 503 first gets the event again, signed
// with the Secret's HMAC key both times.
func TestGenericSignedAndRetriedAfter503(t *testing.T) {
	key := []byte("k3y-for-hmac")
	var calls atomic.Int32
	bodies := make(chan []byte, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !notify.VerifySignature(key, body, r.Header.Get(notify.SignatureHeader)) {
			t.Errorf("X-Signature %q does not verify", r.Header.Get(notify.SignatureHeader))
		}
		if notify.VerifySignature([]byte("another key"), body, r.Header.Get(notify.SignatureHeader)) {
			t.Error("X-Signature verifies with another key")
		}
		if calls.Add(1) == 1 {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		bodies <- body
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	m := notify.NewMetrics(prometheus.NewRegistry())
	r := &router{targets: []notify.Target{{Alert: "team/hook", Type: "generic",
		Provider: newProvider(t, notify.Config{Type: "generic", Address: srv.URL + "/hook", HMACKey: key, PlainInsecure: true})}}}
	d := &notify.Dispatcher{Router: r, BackoffBase: 10 * time.Millisecond, Metrics: m}
	start(t, d)
	d.Notify(event(v1alpha1.AlertEventReady))

	var got notify.GenericPayload
	select {
	case b := <-bodies:
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the event was not delivered after the 503")
	}
	if got.Kind != "Release" || got.Namespace != "team" || got.Name != "web" || got.Reason != "Ready" || got.Severity != "info" || got.Digest == "" {
		t.Errorf("payload = %+v", got)
	}
	if n := testutil.ToFloat64(m.Deliveries.WithLabelValues("generic", "retry")); n != 1 {
		t.Errorf("retries = %v, want 1", n)
	}
	waitFor(t, "delivered counted", func() bool { return testutil.ToFloat64(m.Deliveries.WithLabelValues("generic", "delivered")) == 1 })
	waitFor(t, "the router told of the delivery", func() bool { return len(r.deliveries()) == 1 })
	if got := r.deliveries(); got[0] != 2 {
		t.Errorf("the router was told of a delivery after %d attempts, want 2 (the 503, then the 204)", got[0])
	}
	if f := r.failures(); len(f) != 0 {
		t.Errorf("gave up: %v", f)
	}
}

// A 4xx other than 408 and 429 is not retried, and the error names the
// endpoint without the URL's path, which may hold a token.
func TestClientErrorNotRetriedAndRedacted(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no such hook", http.StatusNotFound)
	}))
	defer srv.Close()
	r := &router{targets: []notify.Target{{Alert: "team/chat", Type: "slack",
		Provider: newProvider(t, notify.Config{Type: "slack", Address: srv.URL + "/services/T000/B000/SECRETTOKEN", PlainInsecure: true})}}}
	d := &notify.Dispatcher{Router: r, BackoffBase: time.Millisecond}
	start(t, d)
	d.Notify(event(v1alpha1.AlertEventPruned))
	waitFor(t, "give up", func() bool { return len(r.failures()) == 1 })
	if n := calls.Load(); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
	msg := r.failures()[0].Error()
	if strings.Contains(msg, "SECRETTOKEN") || !strings.Contains(msg, "404") {
		t.Errorf("error %q: want the status and no token", msg)
	}

	// A refused connection also names no path.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	p := newProvider(t, notify.Config{Type: "slack", Address: "http://" + addr + "/services/SECRETTOKEN", PlainInsecure: true})
	err := p.Send(context.Background(), event(v1alpha1.AlertEventReady))
	if err == nil || strings.Contains(err.Error(), "SECRETTOKEN") || notify.IsPermanent(err) {
		t.Errorf("refused connection: %v: want a retryable error without the token", err)
	}
}

// Deliveries that keep failing stop after MaxAttempts.
func TestRetriesStopAtMaxAttempts(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	r := &router{targets: []notify.Target{{Alert: "team/chat", Type: "teams",
		Provider: newProvider(t, notify.Config{Type: "teams", Address: srv.URL, PlainInsecure: true})}}}
	d := &notify.Dispatcher{Router: r, BackoffBase: time.Millisecond, MaxAttempts: 3}
	start(t, d)
	d.Notify(event(v1alpha1.AlertEventRolledBack))
	waitFor(t, "give up", func() bool { return len(r.failures()) == 1 })
	if n := calls.Load(); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
}

// A full queue drops its oldest item, counted; Notify never blocks.
func TestQueueDropsOldest(t *testing.T) {
	m := notify.NewMetrics(prometheus.NewRegistry())
	var got []string
	var mu sync.Mutex
	p := providerFunc(func(_ context.Context, ev notify.Event) error {
		mu.Lock()
		got = append(got, ev.Name)
		mu.Unlock()
		return nil
	})
	d := &notify.Dispatcher{Router: &router{targets: []notify.Target{{Alert: "a/b", Type: "generic", Provider: p}}}, QueueSize: 3, Workers: 1, Metrics: m}
	for _, name := range []string{"r1", "r2", "r3", "r4", "r5"} { // no worker runs yet
		ev := event(v1alpha1.AlertEventReady)
		ev.Name = name
		d.Notify(ev)
	}
	if n := testutil.ToFloat64(m.Dropped); n != 2 {
		t.Errorf("dropped = %v, want 2", n)
	}
	start(t, d)
	waitFor(t, "3 deliveries", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 })
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "r3,r4,r5" {
		t.Errorf("delivered %v, want r3,r4,r5", got)
	}
}

type providerFunc func(context.Context, notify.Event) error

func (f providerFunc) Send(ctx context.Context, ev notify.Event) error { return f(ctx, ev) }

func TestBackoffDoublesToCap(t *testing.T) {
	d := &notify.Dispatcher{BackoffBase: time.Second, BackoffMax: 5 * time.Second}
	var got []time.Duration
	for a := 1; a <= 5; a++ {
		got = append(got, notify.Backoff(d, a))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff = %v, want %v", got, want)
		}
	}
}

func TestSlackPayload(t *testing.T) {
	got := make(chan map[string]any, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Error(err)
		}
		got <- m
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	p := newProvider(t, notify.Config{Type: "slack", Address: srv.URL, PlainInsecure: true, Channel: "#deploys"})
	if err := p.Send(context.Background(), event(v1alpha1.AlertEventVerificationFailed)); err != nil {
		t.Fatal(err)
	}
	m := <-got
	if m["channel"] != "#deploys" || m["username"] != "airlock" {
		t.Errorf("channel, username = %v, %v", m["channel"], m["username"])
	}
	atts, _ := m["attachments"].([]any)
	if len(atts) != 1 {
		t.Fatalf("attachments = %v", m["attachments"])
	}
	a := atts[0].(map[string]any)
	if a["color"] != "danger" || a["title"] != "Release team/web: VerificationFailed" || !strings.Contains(a["text"].(string), "applied 0123456789ab") {
		t.Errorf("attachment = %v", a)
	}
	fields, _ := a["fields"].([]any)
	if len(fields) != 3 || fields[0].(map[string]any)["title"] != "Digest" {
		t.Errorf("fields = %v", fields)
	}
}

func TestTeamsPayload(t *testing.T) {
	got := make(chan map[string]any, 1)
	f := tlstest.New(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Error(err)
		}
		got <- m
		w.WriteHeader(http.StatusAccepted) // as Workflows answers
	}))
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()

	// Without the CA the endpoint's certificate is refused.
	p := newProvider(t, notify.Config{Type: "teams", Address: srv.URL})
	if err := p.Send(context.Background(), event(v1alpha1.AlertEventDriftCorrected)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without ca.crt: %v, want a certificate error", err)
	}
	p = newProvider(t, notify.Config{Type: "teams", Address: srv.URL, CAData: f.CAPEM})
	if err := p.Send(context.Background(), event(v1alpha1.AlertEventDriftCorrected)); err != nil {
		t.Fatal(err)
	}
	m := <-got
	atts, _ := m["attachments"].([]any)
	if m["type"] != "message" || len(atts) != 1 {
		t.Fatalf("message = %v", m)
	}
	a := atts[0].(map[string]any)
	card, _ := a["content"].(map[string]any)
	if a["contentType"] != "application/vnd.microsoft.card.adaptive" || card["type"] != "AdaptiveCard" {
		t.Fatalf("attachment = %v", a)
	}
	body, _ := json.Marshal(card["body"])
	for _, want := range []string{`"Release team/web: DriftCorrected"`, `"FactSet"`, `"sha256:0123456789abcdef`, `"main@sha1:abc"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("card body lacks %s: %s", want, body)
		}
	}
}

// syslogServer accepts connections on ln and parses octet-counted RFC
// 5424 messages with go-syslog's parser.
func syslogServer(t *testing.T, ln net.Listener) <-chan *rfc5424.SyslogMessage {
	t.Helper()
	out := make(chan *rfc5424.SyslogMessage, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				octetcounting.NewParser(syslog.WithListener(func(res *syslog.Result) {
					if res.Error != nil {
						// A stream that ends (a refused handshake, a closed
						// connection) reads as a missing MSGLEN; anything
						// else reaches the test as a message it cannot check.
						if !strings.Contains(res.Error.Error(), "EOF") {
							out <- &rfc5424.SyslogMessage{}
						}
						return
					}
					out <- res.Message.(*rfc5424.SyslogMessage)
				})).Parse(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return out
}

func checkSyslog(t *testing.T, m *rfc5424.SyslogMessage, reason string, severity uint8) {
	t.Helper()
	if m.Severity == nil || *m.Severity != severity || *m.Facility != 3 || m.Version != 1 {
		t.Errorf("severity, facility = %v, %v; want %d, 3", m.Severity, m.Facility, severity)
	}
	if m.Appname == nil || *m.Appname != "airlock-controller" || m.Hostname == nil || *m.Hostname != "ctrl-0" || m.MsgID == nil || *m.MsgID != reason {
		t.Errorf("header = %v %v %v", m.Appname, m.Hostname, m.MsgID)
	}
	if m.StructuredData == nil {
		t.Fatalf("message without structured data: %+v", m)
	}
	sd := (*m.StructuredData)[notify.SyslogSDID]
	if sd["namespace"] != "team" || sd["release"] != "web" || sd["reason"] != reason || !strings.HasPrefix(sd["digest"], "sha256:") {
		t.Errorf("structured data = %v", sd)
	}
	if m.Message == nil || !strings.HasPrefix(*m.Message, "Release team/web: "+reason+": applied") {
		t.Errorf("message = %v", m.Message)
	}
	if m.Timestamp == nil || !m.Timestamp.Equal(time.Date(2026, 12, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("timestamp = %v", m.Timestamp)
	}
}

func TestSyslogTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	msgs := syslogServer(t, ln)
	if _, err := notify.New(notify.Config{Type: "syslog", Address: "tcp://" + ln.Addr().String()}); err == nil {
		t.Fatal("tcp:// without insecure was accepted")
	}
	p := newProvider(t, notify.Config{Type: "syslog", Address: "tcp://" + ln.Addr().String(), PlainInsecure: true, Hostname: "ctrl-0"})
	for _, reason := range []string{v1alpha1.AlertEventRolledBack, v1alpha1.AlertEventPruned} {
		if err := p.Send(context.Background(), event(reason)); err != nil {
			t.Fatal(err)
		}
	}
	checkSyslog(t, <-msgs, v1alpha1.AlertEventRolledBack, 3)
	checkSyslog(t, <-msgs, v1alpha1.AlertEventPruned, 5)
}

func TestSyslogTLS(t *testing.T) {
	f := tlstest.New(t)
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	msgs := syslogServer(t, ln)
	p := newProvider(t, notify.Config{Type: "syslog", Address: "tls://" + ln.Addr().String(), Hostname: "ctrl-0"})
	if err := p.Send(context.Background(), event(v1alpha1.AlertEventReady)); err == nil {
		t.Fatal("a server certificate of an unknown CA was accepted")
	}
	p = newProvider(t, notify.Config{Type: "syslog", Address: "tls://" + ln.Addr().String(), Hostname: "ctrl-0", CAData: f.CAPEM})
	if err := p.Send(context.Background(), event(v1alpha1.AlertEventVerificationFailed)); err != nil {
		t.Fatal(err)
	}
	checkSyslog(t, <-msgs, v1alpha1.AlertEventVerificationFailed, 3)
}

// A syslog server that closed the connection gets the next message on a
// new one, not lost on the old.
func TestSyslogReconnects(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lines := make(chan string, 4)
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b := make([]byte, 4096)
			n, _ := c.Read(b)
			lines <- string(b[:n])
			c.Close() // one message per connection
		}
	}()
	p := newProvider(t, notify.Config{Type: "syslog", Address: "tcp://" + ln.Addr().String(), PlainInsecure: true})
	for _, reason := range []string{v1alpha1.AlertEventReady, v1alpha1.AlertEventPruned} {
		if err := p.Send(context.Background(), event(reason)); err != nil {
			t.Fatal(err)
		}
		var got string
		select {
		case got = <-lines:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the server received nothing: the message was written to the closed connection", reason)
		}
		if !strings.Contains(got, " "+reason+" ") {
			t.Errorf("message %q lacks %s", got, reason)
		}
		time.Sleep(50 * time.Millisecond) // let the server's close arrive
	}
}

func TestConfigRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  notify.Config
		want string
	}{
		{"no address", notify.Config{Type: "slack"}, "no address"},
		{"plain http", notify.Config{Type: "slack", Address: "http://chat.example/hooks/x"}, "plain HTTP"},
		{"generic without key", notify.Config{Type: "generic", Address: "https://ci.example/hook"}, "no hmacKey"},
		{"not a URL", notify.Config{Type: "teams", Address: "chat.example"}, "not an http(s) URL"},
		{"syslog without port", notify.Config{Type: "syslog", Address: "tls://logs.example"}, "not a syslog address"},
		{"bad CA", notify.Config{Type: "teams", Address: "https://chat.example", CAData: []byte("nope")}, "ca.crt"},
		{"unknown type", notify.Config{Type: "pager", Address: "https://pager.example"}, "unknown provider type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := notify.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "/hooks/x") {
				t.Errorf("err %q quotes the address's path", err)
			}
		})
	}
}
