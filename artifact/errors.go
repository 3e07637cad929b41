package artifact

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// Limits on what a registry can make airlock read.
const (
	// MaxManifestSize bounds a manifest or tag list: 4 MiB.
	MaxManifestSize = 4 << 20
	// DefaultMaxSize bounds an artifact's extracted content: 100 MiB.
	DefaultMaxSize = 100 << 20
)

// Typed registry failures. Callers test with errors.Is; messages come from
// RegistryError, which names the reference and what to do.
var (
	ErrUnauthorized  = errors.New("authentication required or rejected (401)")
	ErrForbidden     = errors.New("access denied (403)")
	ErrNotFound      = errors.New("not found")
	ErrNoRepository  = errors.New("no such repository")
	ErrNoTag         = errors.New("no such tag")
	ErrUnreachable   = errors.New("registry unreachable")
	ErrTLS           = errors.New("TLS verification failed")
	ErrDigest        = errors.New("content does not match its digest")
	ErrTooLarge      = errors.New("over the size limit")
	ErrRegistryError = errors.New("registry error")
)

// RegistryError is a failed registry operation on a reference.
type RegistryError struct {
	Op   string // "resolve", "push", "pull", …
	Ref  string
	Kind error // one of the Err… sentinels
	Hint string
	Err  error
}

func (e *RegistryError) Error() string {
	msg := fmt.Sprintf("%s %s: %v", e.Op, e.Ref, e.Kind)
	if e.Err != nil && e.Err.Error() != e.Kind.Error() {
		// A cause wrapped as "<kind>: detail" is not said twice.
		msg += ": " + strings.TrimPrefix(e.Err.Error(), e.Kind.Error()+": ")
	}
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

func (e *RegistryError) Unwrap() []error { return []error{e.Kind, e.Err} }

// classify turns a client error into a RegistryError that names the failure.
func classify(op string, ref Reference, err error) error {
	if err == nil {
		return nil
	}
	var re *RegistryError
	if errors.As(err, &re) {
		return err
	}
	e := &RegistryError{Op: op, Ref: ref.String(), Err: err}
	var resp *errcode.ErrorResponse
	var terr *transport.Error
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	status := 0
	codes := map[string]bool{}
	if errors.As(err, &resp) {
		status = resp.StatusCode
		for _, c := range resp.Errors {
			codes[c.Code] = true
		}
	} else if errors.As(err, &terr) {
		status = terr.StatusCode
		for _, c := range terr.Errors {
			codes[string(c.Code)] = true
		}
	}
	switch {
	case status == http.StatusUnauthorized || errors.Is(err, auth.ErrBasicCredentialNotFound):
		e.Kind, e.Hint = ErrUnauthorized, "check the credentials for "+ref.Registry+" (airlock: --creds or `docker login "+ref.Registry+"`; controller: the Release's spec.secretRef)"
	case status == http.StatusForbidden:
		e.Kind, e.Hint = ErrForbidden, "the credentials are valid but may not access "+ref.Name()
	case codes["NAME_UNKNOWN"]:
		e.Kind, e.Hint = ErrNoRepository, "check the repository path, or push to it first"
	case codes["MANIFEST_UNKNOWN"] && ref.Digest == "" && ref.Tag != "":
		e.Kind, e.Hint = ErrNoTag, "list the tags with `airlock list artifacts "+Scheme+ref.Name()+"`"
	case status == http.StatusNotFound || errors.Is(err, errdef.ErrNotFound):
		e.Kind = ErrNotFound
		if ref.Tag != "" && ref.Digest == "" {
			e.Kind, e.Hint = ErrNoTag, "list the tags with `airlock list artifacts "+Scheme+ref.Name()+"`"
		}
	case errors.As(err, &dnsErr):
		e.Kind, e.Hint = ErrUnreachable, "cannot resolve host "+ref.Registry+": check the name and DNS"
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Kind, e.Hint = ErrUnreachable, "connection refused by "+ref.Registry+": is the registry running on that port?"
	case errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &certErr):
		e.Kind, e.Hint = ErrTLS, "pass the registry's CA with --ca-file"
	case errors.As(err, &recordErr) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		e.Kind, e.Hint = ErrTLS, "the registry speaks plain HTTP: pass --insecure-registry if that is intended"
	case errors.Is(err, ErrDigest):
		e.Kind = ErrDigest
	case errors.Is(err, ErrTooLarge), errors.Is(err, errdef.ErrSizeExceedsLimit):
		e.Kind = ErrTooLarge
	case status >= 500:
		e.Kind, e.Hint = ErrRegistryError, fmt.Sprintf("the registry answered %d: retry later or check its logs", status)
	default:
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			e.Kind, e.Hint = ErrUnreachable, "cannot connect to "+ref.Registry
		} else {
			e.Kind = ErrRegistryError
		}
	}
	return e
}
