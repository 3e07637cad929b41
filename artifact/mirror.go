package artifact

import (
	"context"
	"fmt"
	"strings"
)

// Mirrors rewrites registry hosts: upstream host → mirror host[/prefix].
// The zero value rewrites nothing.
type Mirrors map[string]Reference

// ParseMirrorRule parses "upstream.example.com=mirror.site.local[/prefix]".
func ParseMirrorRule(s string) (string, Reference, error) {
	from, to, ok := strings.Cut(s, "=")
	if !ok || from == "" || to == "" || strings.Contains(from, "/") {
		return "", Reference{}, fmt.Errorf("registry mirror %q: want UPSTREAM_HOST=MIRROR_HOST[/PREFIX], for example registry.example.com=mirror.site.local/airgap", s)
	}
	m, err := ParseMirror(Scheme + strings.TrimPrefix(to, Scheme))
	if err != nil {
		return "", Reference{}, fmt.Errorf("registry mirror %q: %w", s, err)
	}
	return from, m, nil
}

// Rewrite returns ref at its mirror, with the same repository path under
// the mirror's prefix, tag and digest; ref itself when no rule names its host.
func (m Mirrors) Rewrite(ref Reference) Reference {
	to, ok := m[ref.Registry]
	if !ok {
		return ref
	}
	return MirrorImage(to.Registry, to.Repository, ref)
}

// Exists reports whether ref's digest is in its repository, with one HEAD request.
func Exists(ctx context.Context, ref Reference, opts RemoteOptions) (bool, error) {
	c, err := NewClient(opts.For(ref))
	if err != nil {
		return false, err
	}
	return c.Exists(ctx, ref)
}
