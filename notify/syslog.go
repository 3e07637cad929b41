package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"airlock.dev/airlock/api/v1alpha1"
)

// SyslogSDID is the structured data element of every message:
// [airlock@32473 namespace=… release=… reason=… digest=… revision=…].
// 32473 is the enterprise number RFC 5612 reserves for examples: there is
// none registered for airlock.
const SyslogSDID = "airlock@32473"

// Syslog facility and severities (RFC 5424 §6.2.1).
const (
	syslogFacilityDaemon = 3
	syslogSeverityErr    = 3
	syslogSeverityNotice = 5
)

// Syslog sends each event as an RFC 5424 message, octet-counted (RFC 6587
// §3.4.1, as RFC 5425 frames it over TLS), over one connection it keeps
// and opens again after an error.
type Syslog struct {
	addr     string // host:port
	tls      *tls.Config
	hostname string
	timeout  time.Duration

	mu   sync.Mutex
	conn net.Conn
}

func newSyslog(cfg Config, tlsConfig *tls.Config) (*Syslog, error) {
	u, err := url.Parse(cfg.Address)
	if err != nil || u.Host == "" || u.Port() == "" || (u.Scheme != "tls" && u.Scheme != "tcp") {
		return nil, fmt.Errorf("address is not a syslog address: put tls://HOST:PORT (or tcp://HOST:PORT with spec.provider.insecure) in the Secret's key address")
	}
	s := &Syslog{addr: u.Host, hostname: cfg.Hostname, timeout: cfg.Timeout}
	switch {
	case u.Scheme == "tls":
		s.tls = tlsConfig.Clone()
		s.tls.ServerName = u.Hostname()
	case !cfg.PlainInsecure:
		return nil, fmt.Errorf("address %s is plain TCP: use tls://, or set spec.provider.insecure to send notifications unencrypted", cfg.Address)
	}
	return s, nil
}

// SyslogMessage formats ev as an RFC 5424 message (without framing).
func SyslogMessage(ev Event, hostname string) (string, error) {
	sev := syslogSeverityNotice
	if ev.Severity == v1alpha1.SeverityError {
		sev = syslogSeverityErr
	}
	m := &rfc5424.SyslogMessage{}
	m.SetPriority(uint8(syslogFacilityDaemon*8 + sev))
	m.SetVersion(1)
	m.SetTimestamp(ev.Time.UTC().Format(time.RFC3339Nano))
	if hostname != "" {
		m.SetHostname(hostname)
	}
	m.SetAppname("airlock-controller")
	m.SetMsgID(ev.Reason)
	for _, p := range [][2]string{{"namespace", ev.Namespace}, {"release", ev.Name}, {"reason", ev.Reason}, {"digest", ev.Digest}, {"revision", ev.Revision}} {
		if p[1] != "" {
			m.SetParameter(SyslogSDID, p[0], p[1])
		}
	}
	m.SetMessage(title(ev) + ": " + message(ev))
	return m.String()
}

// Send writes ev, opening the connection first when there is none.
func (s *Syslog) Send(ctx context.Context, ev Event) error {
	msg, err := SyslogMessage(ev, s.hostname)
	if err != nil {
		return Permanent(fmt.Errorf("format syslog message: %w", err))
	}
	frame := strconv.Itoa(len(msg)) + " " + msg
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && peerClosed(s.conn) {
		s.conn.Close()
		s.conn = nil
	}
	if s.conn == nil {
		d := &net.Dialer{Timeout: s.timeout}
		var c net.Conn
		if s.tls != nil {
			c, err = (&tls.Dialer{NetDialer: d, Config: s.tls}).DialContext(ctx, "tcp", s.addr)
		} else {
			c, err = d.DialContext(ctx, "tcp", s.addr)
		}
		if err != nil {
			return fmt.Errorf("syslog %s: %w", s.addr, err)
		}
		s.conn = c
	}
	deadline := time.Now().Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = s.conn.SetWriteDeadline(deadline)
	if _, err := s.conn.Write([]byte(frame)); err != nil {
		s.conn.Close()
		s.conn = nil
		return fmt.Errorf("syslog %s: %w", s.addr, err)
	}
	return nil
}

// peerClosed says whether the server closed c (or sent something, which a
// syslog server never does): a write to a closed connection can succeed
// locally and lose the message, so it is checked before each write.
func peerClosed(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	_ = c.SetReadDeadline(time.Time{})
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

// Close closes the connection.
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
