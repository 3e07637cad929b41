package ui

import (
	"strings"
	"time"

	"airlock.dev/airlock/audit"
)

// The pages' links. Every value from the cluster goes into a link through
// escapeURLPart, so that a name cannot end its path segment or its query
// value, nor start another; templ then escapes the link for its attribute
// and refuses a scheme other than http(s), mailto, tel and ftp(s).

// namespaceURL is the list filtered to namespace ns.
func namespaceURL(ns string) string { return "/?namespace=" + escapeURLPart(ns) }

// releaseURL is the page of the Release ns/name.
func releaseURL(ns, name string) string {
	return "/releases/" + escapeURLPart(ns) + "/" + escapeURLPart(name)
}

// traceURL is the trace of object (KIND.GROUP/NAME) in namespace ns.
func traceURL(object, ns string) string {
	return "/trace?object=" + escapeURLPart(object) + "&namespace=" + escapeURLPart(ns)
}

// escapeURLPart percent-encodes every byte of s but RFC 3986's unreserved
// characters (A-Z a-z 0-9 - . _ ~), in lower-case hex: what html/template
// wrote for a value in a URL's query, so the links read as they did.
func escapeURLPart(s string) string {
	const hex = "0123456789abcdef"
	unreserved := func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
	}
	i := 0
	for i < len(s) && unreserved(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		if c := s[i]; unreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// orDefault is s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// rfc3339 is t in UTC, as RFC 3339.
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// digestNote follows a traced object's digest: " (version V), applied T",
// each part when known.
func digestNote(t *audit.Trace) string {
	var s string
	if t.Version != "" {
		s = " (version " + t.Version + ")"
	}
	if t.DigestAppliedAt != nil {
		s += ", applied " + rfc3339(*t.DigestAppliedAt)
	}
	return s
}
