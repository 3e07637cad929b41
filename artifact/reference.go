package artifact

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
	orasregistry "oras.land/oras-go/v2/registry"
)

// Scheme prefixes every artifact reference, as in Flux.
const Scheme = "oci://"

// Reference names an artifact: oci://HOST/REPO[:TAG][@sha256:HEX].
type Reference struct {
	// Registry is host[:port].
	Registry string
	// Repository is the path inside the registry.
	Repository string
	// Tag is "" when the reference is by digest only.
	Tag string
	// Digest is "" when the reference is by tag only. A digest wins over a tag.
	Digest string
}

var tagPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// ValidTag reports whether s is a valid OCI tag.
func ValidTag(s string) bool { return tagPattern.MatchString(s) }

// ParseReference parses oci://HOST/REPO[:TAG][@DIGEST]. A reference with
// neither tag nor digest is an error unless allowBare is set (for commands
// that take a repository, such as list).
func ParseReference(s string) (Reference, error) {
	return parseReference(s, false)
}

// ParseRepository parses oci://HOST/REPO, a repository without tag or digest.
func ParseRepository(s string) (Reference, error) {
	r, err := parseReference(s, true)
	if err != nil {
		return r, err
	}
	if r.Tag != "" || r.Digest != "" {
		return Reference{}, fmt.Errorf("reference %q: want a repository (oci://HOST/REPO) without tag or digest", s)
	}
	return r, nil
}

func parseReference(s string, allowBare bool) (Reference, error) {
	if !strings.HasPrefix(s, Scheme) {
		return Reference{}, fmt.Errorf("reference %q: must start with %s, for example oci://registry.example.com/team/app:v1", s, Scheme)
	}
	rest := strings.TrimPrefix(s, Scheme)
	var r Reference
	if i := strings.Index(rest, "@"); i >= 0 {
		d, err := digest.Parse(rest[i+1:])
		if err != nil {
			return Reference{}, fmt.Errorf("reference %q: invalid digest %q: %v (want sha256:<64 hex>)", s, rest[i+1:], err)
		}
		r.Digest = d.String()
		rest = rest[:i]
	}
	slash := strings.Index(rest, "/")
	if slash <= 0 {
		return Reference{}, fmt.Errorf("reference %q: missing repository, want oci://HOST/REPO:TAG", s)
	}
	// A tag follows the last colon after the last slash (a port's colon comes before it).
	if c := strings.LastIndex(rest, ":"); c > strings.LastIndex(rest, "/") {
		r.Tag = rest[c+1:]
		rest = rest[:c]
		if !ValidTag(r.Tag) {
			return Reference{}, fmt.Errorf("reference %q: invalid tag %q: a tag is 1 to 128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'", s, r.Tag)
		}
	}
	r.Registry, r.Repository = rest[:slash], rest[slash+1:]
	probe := r.Registry + "/" + r.Repository
	if _, err := orasregistry.ParseReference(probe); err != nil {
		return Reference{}, fmt.Errorf("reference %q: %v", s, err)
	}
	if !allowBare && r.Tag == "" && r.Digest == "" {
		return Reference{}, fmt.Errorf("reference %q: missing tag or digest, want oci://HOST/REPO:TAG or oci://HOST/REPO@sha256:…", s)
	}
	return r, nil
}

// Name is HOST/REPO.
func (r Reference) Name() string { return r.Registry + "/" + r.Repository }

// Reference is the tag or digest oras-go resolves: the digest when set.
func (r Reference) Reference() string {
	if r.Digest != "" {
		return r.Digest
	}
	return r.Tag
}

// WithDigest returns a copy pinned to d, keeping the tag for display.
func (r Reference) WithDigest(d string) Reference { r.Digest = d; return r }

// WithTag returns a copy with tag t and no digest.
func (r Reference) WithTag(t string) Reference { r.Tag, r.Digest = t, ""; return r }

// String is the oci:// form.
func (r Reference) String() string {
	s := Scheme + r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// DigestRef is HOST/REPO@DIGEST, the form cosign and go-containerregistry take.
func (r Reference) DigestRef() string { return r.Name() + "@" + r.Digest }
