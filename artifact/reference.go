package artifact

// This file is all of airlock's registry naming: artifact references, the
// tags attached to a digest, image names as Kubernetes writes them, and the
// mirror rules that move either to a site registry.

import (
	"fmt"
	"path"
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

// attachedSuffixes are the tags stored next to a digest: cosign's
// signatures, attestations and SBOMs, and airlock's images lock.
var attachedSuffixes = []string{".sig", ".att", ".sbom", ImagesLockSuffix}

// AttachedTags are the tags where cosign (and the OCI 1.1 referrers tag
// schema) store what belongs to digest d: signatures, attestations, SBOMs.
func AttachedTags(d string) []string {
	tags := []string{}
	for _, s := range attachedSuffixes {
		tags = append(tags, AttachedTag(d, s))
	}
	return append(tags, AttachedTag(d, ""))
}

// AttachedTag is the tag of what is stored next to digest d:
// sha256:<hex> → sha256-<hex><suffix> (".sig" for cosign's signatures).
func AttachedTag(d, suffix string) string {
	return strings.Replace(d, ":", "-", 1) + suffix
}

// ImagesLockSuffix ends the tag of an artifact's images lock:
// sha256-<hex>.imageslock, beside cosign's .sig.
const ImagesLockSuffix = ".imageslock"

// ParseImage parses a container image reference as Kubernetes writes it
// (docker.io implied, library/ for official images), into a Reference.
func ParseImage(s string) (Reference, error) {
	name := s
	var dgst string
	if i := strings.Index(name, "@"); i >= 0 {
		name, dgst = name[:i], name[i+1:]
	}
	var tag string
	if c := strings.LastIndex(name, ":"); c > strings.LastIndex(name, "/") {
		name, tag = name[:c], name[c+1:]
	}
	first, _, hasSlash := strings.Cut(name, "/")
	if !hasSlash || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		if !strings.Contains(name, "/") {
			name = "library/" + name
		}
		name = "docker.io/" + name
	}
	if tag == "" && dgst == "" {
		tag = "latest"
	}
	out := Scheme + name
	if tag != "" {
		out += ":" + tag
	}
	if dgst != "" {
		out += "@" + dgst
	}
	ref, err := ParseReference(out)
	if err != nil {
		return ref, fmt.Errorf("image %q: %w", s, err)
	}
	if ref.Registry == "docker.io" {
		// docker.io is served from registry-1.docker.io.
		ref.Registry = "registry-1.docker.io"
	}
	return ref, nil
}

// MirrorImage is where an image lives in a mirror: the same repository path
// under host/prefix, so a registry mirror rule (host swap) finds it.
func MirrorImage(host, prefix string, img Reference) Reference {
	repo := img.Repository
	if prefix != "" && prefix != "." {
		repo = prefix + "/" + repo
	}
	return Reference{Registry: host, Repository: repo, Tag: img.Tag, Digest: img.Digest}
}

// mirrorPrefix is the repository path above an artifact's own name: for
// oci://mirror/site/team/app, with the artifact upstream at team/app, the
// images go under mirror/site. Copy keeps images beside the artifact's repository.
func mirrorPrefix(dst Reference) string {
	return path.Dir(dst.Repository)
}

// ParseMirror parses oci://HOST[/PREFIX], the destination of an import.
func ParseMirror(s string) (Reference, error) {
	ref, err := parseReference(s+"/x", true)
	if err != nil || ref.Tag != "" || ref.Digest != "" {
		return Reference{}, fmt.Errorf("mirror %q: want oci://HOST[/PREFIX] without tag or digest", s)
	}
	ref.Repository = ref.Repository[:len(ref.Repository)-len("x")]
	if len(ref.Repository) > 0 {
		ref.Repository = ref.Repository[:len(ref.Repository)-1]
	}
	return ref, nil
}

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
