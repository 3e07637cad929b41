package artifact

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"

	"airlock.dev/airlock/internal/progress"
)

// Annotations airlock writes into an export's index.json.
const (
	// AnnotationRole is "artifact", "signature" (a tag attached to its
	// digest), "referrer" (an OCI 1.1 referrer of it) or "image".
	AnnotationRole = "dev.airlock.role"
	// ImagesLockFile sits beside index.json in an export.
	ImagesLockFile = "images.lock"
)

// RelocateOptions configures copy, export and import. The zero value copies
// the artifact and its signatures, no images, over HTTPS.
type RelocateOptions struct {
	// Src reaches the source registry (and the images' registries).
	Src RemoteOptions
	// Dst reaches the destination registry.
	Dst RemoteOptions
	// Images are image references (pinned by digest, or resolved) to carry
	// along. nil means none.
	Images []string
	// Platform narrows the indexes of images named by tag to one platform,
	// as os/arch[/variant]. "" means every platform. An image named by
	// digest is carried whole.
	Platform string
	// KustomizePath is the directory inside the artifact whose rendering
	// listed Images; an export records it in images.lock, so an import
	// renders the same directory. "" means the artifact's root.
	KustomizePath string
	// Progress receives progress lines when it is a terminal. nil means none.
	Progress io.Writer
	// CheckImages sees every image pinned to its digest, after the walk and
	// before anything is copied; an error stops the relocation (airgap
	// verifies the images' signatures with it), given Src as bound to the
	// artifact's registry. nil means no check.
	CheckImages func(ctx context.Context, images []PinnedImage, src RemoteOptions) error
}

// PinnedImage is an image a relocation carries, pinned to its digest.
type PinnedImage struct {
	// Ref names the image by the digest carried.
	Ref Reference
	// Index is the digest of the image index the image's tag resolved to,
	// when Platform narrowed it to Ref's manifest; "" otherwise. Cosign
	// commonly signs the index.
	Index string
}

func (o RelocateOptions) platform() (*ocispec.Platform, error) {
	if o.Platform == "" {
		return nil, nil
	}
	parts := strings.Split(o.Platform, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("--platform %q: want os/arch[/variant], for example linux/amd64", o.Platform)
	}
	p := &ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// Relocated is one reference that was copied.
type Relocated struct {
	Role   string `json:"role"`
	Source string `json:"source"`
	Target string `json:"target"`
	Digest string `json:"digest"`
}

// ImageLock pins one image reference to a digest.
type ImageLock struct {
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
}

// ImagesLock is the images.lock of an export.
type ImagesLock struct {
	Artifact string `json:"artifact"`
	// KustomizePath is the directory inside the artifact whose workloads
	// use Images. "" means its root.
	KustomizePath string      `json:"kustomizePath,omitempty"`
	Images        []ImageLock `json:"images"`
}

// Copy copies src digest-for-digest to dst with its OCI 1.1 referrers,
// its signatures and other attached tags and, when asked, its images, in
// one walk: everything is pinned to a digest first, then copied. dst's tag
// defaults to src's. A src without a digest has its tag resolved once.
func Copy(ctx context.Context, src, dst Reference, opts RelocateOptions) ([]Relocated, error) {
	opts.Src, opts.Dst = opts.Src.For(src), opts.Dst.For(dst)
	srcRepo, err := opts.Src.Repository(src)
	if err != nil {
		return nil, err
	}
	moves, _, err := walk(ctx, srcRepo, src, opts, false)
	if err != nil {
		return nil, err
	}
	src = moves.artifact
	if dst.Digest != "" && dst.Digest != src.Digest {
		return nil, fmt.Errorf("copy to %s: the destination digest differs from the source's %s: give a tag or no digest", dst, src.Digest)
	}
	if dst.Tag == "" {
		dst.Tag = src.Tag
	}
	dst.Digest = ""
	dstClient, err := NewClient(opts.Dst)
	if err != nil {
		return nil, err
	}
	return relocate(ctx, moves.list, fromRegistry(opts.Src, srcRepo), func(m move) (landing, error) {
		var to Reference
		switch m.role {
		case roleImage, roleImageSignature, roleImageReferrer:
			to = MirrorImage(dst.Registry, mirrorPrefix(dst), m.src)
		case roleArtifact:
			to = dst.WithDigest(m.src.Digest)
		default: // attached tags and referrers, beside the artifact
			to = Reference{Registry: dst.Registry, Repository: dst.Repository, Tag: m.src.Tag, Digest: m.src.Digest}
		}
		return toRegistry(dstClient, to)
	})
}

// Roles of the manifests a relocation carries (dev.airlock.role in an export).
const (
	roleArtifact  = "artifact"
	roleSignature = "signature" // a tag attached to the artifact's digest (cosign's .sig, .att, .sbom, …)
	roleReferrer  = "referrer"  // an OCI 1.1 referrer: a manifest whose subject is the artifact
	roleImage     = "image"
)

// MaxReferrers bounds the OCI 1.1 referrers a relocation carries per artifact.
const MaxReferrers = 128

// move is one manifest a relocation carries: its role, and where it is
// (Digest always set; Tag is the tag it goes by, "" for by-digest only).
type move struct {
	role   string
	src    Reference
	source string // as reported; "" means src
}

// moves is what a walk found: the list in copy order, and the artifact.
type moves struct {
	list     []move
	artifact Reference
}

// landing is where a move goes: a target, the reference to give it there
// (a tag, or the digest), and how to name it in messages and the report.
type landing struct {
	target oras.Target
	ref    string
	at     Reference
	shown  string // "" means at with the digest
}

// relocate copies every move, in order, from its source store to its
// landing: the one copy behind Copy, Export and Import.
func relocate(ctx context.Context, list []move, from func(move) (oras.ReadOnlyTarget, error), to func(move) (landing, error)) ([]Relocated, error) {
	opts := oras.DefaultCopyOptions
	opts.Concurrency = 4
	var out []Relocated
	for _, m := range list {
		src, err := from(m)
		if err != nil {
			return out, err
		}
		l, err := to(m)
		if err != nil {
			return out, err
		}
		desc, err := oras.Copy(ctx, src, m.src.Digest, l.target, l.ref, opts)
		if err != nil {
			return out, copyError(m.src, l.at, err)
		}
		if desc.Digest.String() != m.src.Digest {
			return out, classify("copy to "+l.at.String()+" from", m.src, fmt.Errorf("%w: asked for %s, copied %s", ErrDigest, m.src.Digest, desc.Digest))
		}
		source, shown := m.source, l.shown
		if source == "" {
			source = m.src.String()
		}
		if shown == "" {
			shown = l.at.WithDigest(m.src.Digest).String()
		}
		out = append(out, Relocated{Role: m.role, Source: source, Target: shown, Digest: m.src.Digest})
	}
	return out, nil
}

// fromRegistry reads the artifact's moves through repo, and images through
// a client for their own registry.
func fromRegistry(opts RemoteOptions, repo *remote.Repository) func(move) (oras.ReadOnlyTarget, error) {
	return func(m move) (oras.ReadOnlyTarget, error) {
		if !isImageRole(m.role) {
			return repo, nil
		}
		return opts.Repository(m.src)
	}
}

// toRegistry lands at ref in its registry, under its tag, or by digest,
// through c (one pool of connections for every move).
func toRegistry(c *Client, ref Reference) (landing, error) {
	repo, err := c.Repository(ref)
	if err != nil {
		return landing{}, err
	}
	tag := ref.Tag
	if tag == "" {
		tag = ref.Digest
	}
	return landing{target: repo, ref: tag, at: ref.WithDigest("")}, nil
}

// walk pins everything a relocation of ref carries, before anything is
// copied: the images (a tag resolved to a digest, narrowed to
// opts.Platform), the artifact (its tag resolved once), its OCI 1.1
// referrers (at most MaxReferrers) and the tags attached to its digest.
// For an export, the images lock of an earlier import stays behind: the
// export writes its own images.lock.
func walk(ctx context.Context, repo *remote.Repository, ref Reference, opts RelocateOptions, export bool) (moves, *ImagesLock, error) {
	platform, err := opts.platform()
	if err != nil {
		return moves{}, nil, err
	}
	var list []move
	lock := &ImagesLock{Images: []ImageLock{}}
	indexes := map[string]string{} // REPO@DIGEST of each image → its index, narrowed by platform
	for _, img := range opts.Images {
		iref, err := ParseImage(img)
		if err != nil {
			return moves{}, nil, err
		}
		irepo, err := opts.Src.Repository(iref)
		if err != nil {
			return moves{}, nil, err
		}
		// An image pinned by digest is carried whole: that digest is what
		// the workload pulls. --platform narrows images named by tag.
		// The tag is resolved once; the platform is then picked from that
		// digest, so the index recorded is the one narrowed.
		desc, err := oras.Resolve(ctx, irepo, iref.Reference(), oras.ResolveOptions{})
		if err != nil {
			return moves{}, nil, classify("resolve image", iref, err)
		}
		if iref.Digest != "" && desc.Digest.String() != iref.Digest {
			return moves{}, nil, classify("resolve image", iref, fmt.Errorf("%w: the registry answered %s", ErrDigest, desc.Digest))
		}
		index := ""
		if iref.Digest == "" && platform != nil {
			top := desc
			if desc, err = oras.Resolve(ctx, irepo, top.Digest.String(), oras.ResolveOptions{TargetPlatform: platform}); err != nil {
				return moves{}, nil, classify("resolve image", iref, err)
			}
			if desc.Digest != top.Digest {
				index = top.Digest.String()
			}
		}
		indexes[iref.Name()+"@"+desc.Digest.String()] = index
		list = append(list, move{role: roleImage, src: iref.WithDigest(desc.Digest.String())})
		side, err := imageAttachments(ctx, irepo, iref.WithDigest(desc.Digest.String()))
		if err != nil {
			return moves{}, nil, err
		}
		list = append(list, side...)
		lock.Images = append(lock.Images, ImageLock{Reference: img, Digest: desc.Digest.String()})
	}

	ref, err = resolveIn(ctx, repo, ref)
	if err != nil {
		return moves{}, nil, err
	}
	lock.Artifact = ref.String()
	desc, err := repo.Resolve(ctx, ref.Digest)
	if err != nil {
		return moves{}, nil, classify("resolve", ref, err)
	}
	list = append(list, move{role: roleArtifact, src: ref})

	n := 0
	err = repo.Referrers(ctx, desc, "", func(page []ocispec.Descriptor) error {
		for _, r := range page {
			if n++; n > MaxReferrers {
				return fmt.Errorf("%w: more than %d referrers", ErrTooLarge, MaxReferrers)
			}
			if export && r.ArtifactType == ImagesLockMediaType {
				continue
			}
			list = append(list, move{role: roleReferrer, src: ref.WithTag("").WithDigest(r.Digest.String())})
		}
		return nil
	})
	if err != nil && !errors.Is(err, errdef.ErrNotFound) {
		return moves{}, nil, classify("list the referrers of", ref, err)
	}

	for _, tag := range AttachedTags(ref.Digest) {
		// The referrers tag schema's index (sha256-<hex>) is written by the
		// destination's client as each referrer lands; copied, it could name
		// manifests that do not refer to the artifact at all.
		if tag == AttachedTag(ref.Digest, "") || export && tag == AttachedTag(ref.Digest, ImagesLockSuffix) {
			continue
		}
		d, err := repo.Resolve(ctx, tag)
		if errors.Is(err, errdef.ErrNotFound) {
			continue
		}
		if err != nil {
			return moves{}, nil, classify("resolve "+tag+" of", ref, err)
		}
		list = append(list, move{role: roleSignature, src: ref.WithTag(tag).WithDigest(d.Digest.String())})
	}
	if opts.CheckImages != nil {
		var pinned []PinnedImage
		for _, m := range list {
			if m.role == roleImage {
				pinned = append(pinned, PinnedImage{Ref: m.src, Index: indexes[m.src.DigestRef()]})
			}
		}
		if err := opts.CheckImages(ctx, pinned, opts.Src); err != nil {
			return moves{}, nil, err
		}
	}
	return moves{list: list, artifact: ref}, lock, nil
}

// CopyError names the side of a copy that failed.
func copyError(src, dst Reference, err error) error {
	var ce *oras.CopyError
	if errors.As(err, &ce) && ce.Origin == oras.CopyErrorOriginDestination {
		return classify("copy "+src.String()+" to", dst, ce.Err)
	}
	if errors.As(err, &ce) {
		return classify("copy to "+dst.String()+" from", src, ce.Err)
	}
	return classify("copy to "+dst.String()+" from", src, err)
}

// Export writes ref (a tag is resolved once), its referrers, its
// signatures and the images as one OCI image-layout tarball to w,
// streaming: blobs go from the registry straight into the tar. It is the
// same walk and copy as Copy, into a tarTarget. The index names every
// manifest by its original reference; images.lock pins each image to its digest.
func Export(ctx context.Context, ref Reference, w io.Writer, opts RelocateOptions) (*ImagesLock, []Relocated, error) {
	opts.Src = opts.Src.For(ref)
	repo, err := opts.Src.Repository(ref)
	if err != nil {
		return nil, nil, err
	}
	moves, lock, err := walk(ctx, repo, ref, opts, true)
	if err != nil {
		return nil, nil, err
	}
	lock.KustomizePath = opts.KustomizePath
	tw := newTarTarget(w, opts.Progress)
	out, err := relocate(ctx, moves.list, fromRegistry(opts.Src, repo), func(m move) (landing, error) {
		name := m.src.Name() + ":" + m.src.Tag
		if m.src.Tag == "" || m.role == roleImage {
			name = m.src.DigestRef()
		}
		return landing{target: tw.as(m.role), ref: name, at: Reference{Registry: "export"}, shown: name}, nil
	})
	if err != nil {
		return nil, out, err
	}
	lockJSON, err := json.MarshalIndent(lock, "", "  ")
	if err != nil {
		return nil, out, err
	}
	if err := tw.finish(lockJSON); err != nil {
		return nil, out, err
	}
	return lock, out, nil
}

// tarTarget is an oras.Target that streams blobs into an OCI image-layout
// tarball and writes index.json at the end.
type tarTarget struct {
	mu       sync.Mutex
	tw       *tar.Writer
	progress io.Writer
	have     map[digest.Digest]ocispec.Descriptor
	index    []ocispec.Descriptor
	err      error
}

func newTarTarget(w io.Writer, progress io.Writer) *tarTarget {
	t := &tarTarget{tw: tar.NewWriter(w), progress: progress, have: map[digest.Digest]ocispec.Descriptor{}}
	t.writeFile("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	return t
}

func (t *tarTarget) writeFile(name string, b []byte) {
	if t.err != nil {
		return
	}
	if t.err = t.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Typeflag: tar.TypeReg}); t.err == nil {
		_, t.err = t.tw.Write(b)
	}
}

// as returns a view of the target that records role on the manifests it tags.
func (t *tarTarget) as(role string) oras.Target { return &roleTarget{t, role, ""} }

type roleTarget struct {
	*tarTarget
	role  string
	group string // a bundle's artifact the manifest goes with; "" outside a bundle
}

func (t *tarTarget) Push(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return t.err
	}
	if _, ok := t.have[desc.Digest]; ok {
		return nil
	}
	if err := desc.Digest.Validate(); err != nil {
		return err
	}
	name := path.Join("blobs", desc.Digest.Algorithm().String(), desc.Digest.Encoded())
	if err := t.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: desc.Size, ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
		t.err = err
		return err
	}
	vr := content.NewVerifyReader(progress.Reader(r, t.progress, "exporting "+desc.Digest.Encoded()[:12], desc.Size), desc)
	if _, err := io.CopyN(t.tw, vr, desc.Size); err != nil {
		t.err = fmt.Errorf("blob %s: %w", desc.Digest, err)
		return t.err
	}
	if err := vr.Verify(); err != nil {
		t.err = fmt.Errorf("blob %s: %w: %v", desc.Digest, ErrDigest, err)
		return t.err
	}
	t.have[desc.Digest] = desc
	return nil
}

func (t *tarTarget) Exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.have[desc.Digest]
	return ok, nil
}

func (t *tarTarget) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	return nil, fmt.Errorf("%s: %w: an export is write-only", desc.Digest, errdef.ErrUnsupported)
}

func (t *tarTarget) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, d := range t.index {
		if d.Annotations[ocispec.AnnotationRefName] == ref {
			return d, nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("%s: %w", ref, errdef.ErrNotFound)
}

func (t *roleTarget) Tag(ctx context.Context, desc ocispec.Descriptor, ref string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, Platform: desc.Platform,
		Annotations: map[string]string{ocispec.AnnotationRefName: ref, AnnotationRole: t.role}}
	if t.group != "" {
		d.Annotations[AnnotationBundleArtifact] = t.group
	}
	t.index = append(t.index, d)
	return nil
}

func (t *tarTarget) Tag(ctx context.Context, desc ocispec.Descriptor, ref string) error {
	return (&roleTarget{t, "artifact", ""}).Tag(ctx, desc, ref)
}

func (t *tarTarget) finish(lock []byte) error {
	return t.finishWith(ImagesLockFile, lock, map[string]string{AnnotationSiteBlobs: siteBlobs(t.have, nil)})
}

// finishWith writes index.json, with annotations, and the file name
// beside it (images.lock, or bundle.json), and closes the tarball.
func (t *tarTarget) finishWith(name string, body []byte, annotations map[string]string) error {
	idx, err := json.MarshalIndent(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: t.index, Annotations: annotations}, "", "  ")
	if err != nil {
		return err
	}
	t.writeFile("index.json", idx)
	t.writeFile(name, body)
	if t.err != nil {
		return t.err
	}
	return t.tw.Close()
}

// ImportOptions configures an import. Dst reaches the mirror.
type ImportOptions struct {
	Dst RemoteOptions
	// ContentImages are the images the artifact's own content references
	// (its rendered workloads). Every images.lock entry must be one of
	// them. nil means none: an archive whose lock pins an image is refused.
	ContentImages []string
	// Progress receives progress lines when it is a terminal. nil means none.
	Progress io.Writer
}

// Archive is an opened export tarball whose every blob has been checked
// against its digest.
type Archive struct {
	// Store serves the archive's blobs; after ReadAssumed, also the blobs
	// a differential export assumes at the mirror.
	Store oras.ReadOnlyTarget
	// Manifests are index.json's entries, each named by its original reference.
	Manifests []ocispec.Descriptor
	Lock      ImagesLock
	// Bundle is bundle.json: the artifacts of a bundle, and the blobs a
	// differential export assumes at the mirror. nil for a single export.
	Bundle *BundleIndex
}

// Artifact returns the index entry of the exported artifact: the one
// entry with role artifact. An archive with none, or more than one, is refused.
func (a *Archive) Artifact() (ocispec.Descriptor, Reference, error) {
	var found []ocispec.Descriptor
	for _, m := range a.Manifests {
		if m.Annotations[AnnotationRole] == roleArtifact {
			found = append(found, m)
		}
	}
	switch len(found) {
	case 0:
		return ocispec.Descriptor{}, Reference{}, errors.New("the archive holds no artifact (no index.json entry with role artifact): was it written by airlock export?")
	case 1:
	default:
		var names []string
		for _, m := range found {
			names = append(names, fmt.Sprintf("%q (%s)", m.Annotations[ocispec.AnnotationRefName], m.Digest))
		}
		return ocispec.Descriptor{}, Reference{}, &EntryError{Name: found[1].Annotations[ocispec.AnnotationRefName], Digest: found[1].Digest.String(), Role: roleArtifact,
			Reason: "the archive holds " + fmt.Sprint(len(found)) + " artifacts (" + strings.Join(names, ", ") + "), an export holds exactly one"}
	}
	m := found[0]
	ref, err := ParseReference(Scheme + m.Annotations[ocispec.AnnotationRefName])
	if err != nil {
		return m, ref, &EntryError{Name: m.Annotations[ocispec.AnnotationRefName], Digest: m.Digest.String(), Role: roleArtifact, Reason: err.Error()}
	}
	if ref.Digest != "" && ref.Digest != m.Digest.String() {
		return m, ref, &EntryError{Name: m.Annotations[ocispec.AnnotationRefName], Digest: m.Digest.String(), Role: roleArtifact, Reason: "its name pins another digest"}
	}
	return m, ref.WithDigest(m.Digest.String()), nil
}

// ErrNotReached marks an archive entry that the archive's artifact does not
// reach: an import refuses the whole archive for it.
var ErrNotReached = errors.New("not reached by the artifact")

// EntryError is an index.json (or images.lock) entry an import refuses.
type EntryError struct {
	Name   string // its org.opencontainers.image.ref.name (or images.lock reference)
	Digest string
	Role   string
	Reason string
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("entry %q (%s, role %q): %s", e.Name, e.Digest, e.Role, e.Reason)
}

func (e *EntryError) Unwrap() error { return ErrNotReached }

// ErrArchiveAltered marks an export tarball OpenArchive refuses: an entry
// airlock export never writes (a link, a device, a name outside the OCI
// layout, a non-canonical or duplicate name), or a blob whose content does
// not match its name.
var ErrArchiveAltered = errors.New("the archive was altered or was not written by airlock export")

// blobName is the one name a blob has in an export: blobs/sha256/<64 lowercase hex>.
var blobName = regexp.MustCompile(`^blobs/sha256/[0-9a-f]{64}$`)

// archiveEntryError names the refused entry of archive p.
func archiveEntryError(p, entry, why string) error {
	return fmt.Errorf("archive %s: entry %q: %s: %w; nothing was pushed", p, entry, why, ErrArchiveAltered)
}

// checkArchiveEntry refuses every entry airlock export does not write. The
// store (oci.NewFromTar) serves entries by their cleaned name, the last of
// a name winning, so a name that is not exactly canonical, or comes twice,
// could make it serve other bytes than the ones checked: only the exact
// names of an OCI layout pass, each once.
func checkArchiveEntry(hdr *tar.Header) string {
	name := hdr.Name
	if _, ok := hdr.PAXRecords["size"]; ok {
		// The layout store (which reads index.json for Resolve) takes an
		// entry's size from its header block alone: a PAX size would make
		// it read other bytes than the ones checked.
		return "its size is in a PAX record, which airlock export never writes (the header block gives another)"
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if dir := strings.TrimSuffix(name, "/"); dir == "blobs" || dir == "blobs/sha256" {
			return ""
		}
	case tar.TypeReg:
		if name == ocispec.ImageLayoutFile || name == ocispec.ImageIndexFile || name == ImagesLockFile || name == BundleFile || blobName.MatchString(name) {
			return ""
		}
	default:
		return fmt.Sprintf("type %q is not a regular file or directory (links, devices and FIFOs are never in an export)", hdr.Typeflag)
	}
	clean := path.Clean(name)
	switch {
	case strings.Contains(name, `\`):
		return "name has a backslash (an export separates names with / only)"
	case clean != name && (clean != strings.TrimSuffix(name, "/") || hdr.Typeflag != tar.TypeDir):
		return fmt.Sprintf("name is not canonical (the store would read it as %q)", clean)
	case strings.HasPrefix(name, "blobs/sha256/") && hdr.Typeflag == tar.TypeReg:
		return "blob name is not a sha256 digest of 64 lowercase hex characters"
	}
	return "not part of an export (only oci-layout, index.json, " + ImagesLockFile + ", " + BundleFile + " and blobs/sha256/ are)"
}

// OpenArchive checks every entry of the tarball at p and every blob against
// its digest, before anything is pushed, and opens it. The blobs are hashed
// as the store serves them (from the offsets of one pass over the tar
// headers, several blobs at once), so what is checked is what Import pushes.
func OpenArchive(ctx context.Context, p string) (*Archive, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var indexJSON, lockJSON, bundleJSON []byte
	seen := map[string]bool{}
	blobs := map[digest.Digest]blobAt{}
	var order []digest.Digest
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("archive %s: %w", p, err)
		}
		if why := checkArchiveEntry(hdr); why != "" {
			return nil, archiveEntryError(p, hdr.Name, why)
		}
		if seen[path.Clean(hdr.Name)] {
			return nil, archiveEntryError(p, hdr.Name, "the name comes twice (the store would serve the last one)")
		}
		seen[path.Clean(hdr.Name)] = true
		switch {
		case hdr.Typeflag == tar.TypeDir:
		case strings.HasPrefix(hdr.Name, "blobs/"):
			// archive/tar stops at the entry's first byte (and skips the
			// rest of it with Seek): that is where the blob is.
			offset, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, fmt.Errorf("archive %s: %w", p, err)
			}
			d := digest.NewDigestFromEncoded(digest.SHA256, strings.TrimPrefix(hdr.Name, "blobs/sha256/"))
			blobs[d] = blobAt{name: hdr.Name, offset: offset, size: hdr.Size}
			order = append(order, d)
		default:
			if hdr.Size > MaxManifestSize {
				return nil, fmt.Errorf("archive %s: %s is %d bytes: %w", p, hdr.Name, hdr.Size, ErrTooLarge)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("archive %s: %w", p, err)
			}
			if hdr.Name == ocispec.ImageIndexFile {
				indexJSON = b
			} else if hdr.Name == ImagesLockFile {
				lockJSON = b
			} else if hdr.Name == BundleFile {
				bundleJSON = b
			}
		}
	}
	if indexJSON == nil {
		return nil, fmt.Errorf("archive %s has no index.json: it is not an OCI image layout written by airlock export", p)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(indexJSON, &idx); err != nil {
		return nil, fmt.Errorf("archive %s: index.json: %v", p, err)
	}
	a := &Archive{Manifests: idx.Manifests}
	if lockJSON != nil {
		if err := json.Unmarshal(lockJSON, &a.Lock); err != nil {
			return nil, fmt.Errorf("archive %s: %s: %v", p, ImagesLockFile, err)
		}
	}
	if bundleJSON != nil {
		if lockJSON != nil {
			return nil, archiveEntryError(p, BundleFile, "a bundle keeps its images locks in "+BundleFile+", never beside it in "+ImagesLockFile)
		}
		if a.Bundle, err = ParseBundleIndex(bundleJSON); err != nil {
			return nil, fmt.Errorf("archive %s: %w; nothing was pushed", p, err)
		}
	}
	layout, err := oci.NewFromTar(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", p, err)
	}
	store := &archiveStore{ReadOnlyTarget: layout, path: p, blobs: blobs}
	if err := store.checkBlobs(ctx, p, order); err != nil {
		return nil, err
	}
	a.Store = store
	return a, nil
}

// Import pushes the archive's artifact into the mirror dst
// (oci://HOST[/PREFIX]) with what it reaches, keeping each repository path
// under the prefix and every digest unchanged: its signatures and other
// attached tags (in its own repository, tagged for its digest), its OCI 1.1
// referrers, and the images pinned in images.lock that its content
// references (opts.ContentImages). Any other index.json entry refuses the
// whole import before any request to the mirror. The images lock is then
// stored next to the artifact.
func Import(ctx context.Context, a *Archive, dst Reference, opts ImportOptions) ([]Relocated, error) {
	opts.Dst = opts.Dst.For(dst)
	list, art, err := a.plan(ctx, opts.ContentImages)
	if err != nil {
		return nil, err
	}
	target := MirrorImage(dst.Registry, dst.Repository, art)
	c, err := NewClient(opts.Dst)
	if err != nil {
		return nil, err
	}
	out, err := relocate(ctx, list, func(move) (oras.ReadOnlyTarget, error) { return a.Store, nil }, func(m move) (landing, error) {
		return toRegistry(c, MirrorImage(dst.Registry, dst.Repository, m.src))
	})
	if err != nil {
		return out, err
	}
	tagged, err := tagImages(ctx, a, dst, c)
	out = append(out, tagged...)
	if err != nil {
		return out, err
	}
	if len(a.Lock.Images) > 0 {
		repo, err := c.Repository(target)
		if err != nil {
			return out, err
		}
		desc, _, _ := a.Artifact()
		lockRef, err := pushImagesLock(ctx, repo, target, desc, a.Lock)
		if err != nil {
			return out, err
		}
		out = append(out, Relocated{Role: RoleImagesLock, Source: art.Name() + ":" + art.Tag, Target: lockRef.String(), Digest: lockRef.Digest})
	}
	return out, nil
}

// tagImages gives each image at the mirror the tag its images.lock entry
// pinned (team/web:1.0 → the pinned digest), as the upstream registry had
// it, so a node whose container runtime mirrors upstream/team/web:1.0 to
// the site finds it there. The images were pushed by digest; plan has
// checked every lock entry, so each tag names an image just pushed.
func tagImages(ctx context.Context, a *Archive, dst Reference, c *Client) ([]Relocated, error) {
	var out []Relocated
	for _, l := range a.Lock.Images {
		iref, err := ParseImage(l.Reference)
		if err != nil {
			return out, err
		}
		if iref.Tag == "" {
			continue
		}
		at := MirrorImage(dst.Registry, dst.Repository, iref.WithDigest(""))
		repo, err := c.Repository(at)
		if err != nil {
			return out, err
		}
		desc, err := a.Store.Resolve(ctx, l.Digest)
		if err != nil {
			return out, fmt.Errorf("tag image %s at the mirror: %s is not in the archive: %w", l.Reference, l.Digest, err)
		}
		if err := repo.Tag(ctx, desc, iref.Tag); err != nil {
			return out, classify("tag image "+l.Digest+" as", at, err)
		}
		out = append(out, Relocated{Role: roleImageTag, Source: l.Reference, Target: at.WithDigest(l.Digest).String(), Digest: l.Digest})
	}
	return out, nil
}

// roleImageTag is the Relocated.Role of an image tag an import sets at the mirror.
const roleImageTag = "image-tag"

// plan checks every index.json and images.lock entry against the artifact
// and returns the moves of an import, in copy order (images, the artifact,
// its referrers, its attached tags). It reads only the archive.
func (a *Archive) plan(ctx context.Context, contentImages []string) ([]move, Reference, error) {
	artDesc, art, err := a.Artifact()
	if err != nil {
		return nil, art, err
	}
	// The images the lock pins, as index.json names them (REPO@DIGEST),
	// each one referenced by the artifact's content.
	uses := map[string]bool{}
	for _, img := range contentImages {
		uses[img] = true
	}
	var errs []error
	pinned := map[string]bool{}
	for _, l := range a.Lock.Images {
		refuse := func(reason string) {
			errs = append(errs, &EntryError{Name: l.Reference, Digest: l.Digest, Role: ImagesLockFile, Reason: reason})
		}
		iref, err := ParseImage(l.Reference)
		switch {
		case err != nil:
			refuse(err.Error())
		case !uses[l.Reference]:
			refuse("not referenced by the artifact's content (it references: " + strings.Join(contentImages, ", ") + ")")
		case iref.Digest != "" && iref.Digest != l.Digest:
			refuse("the artifact's content pins " + iref.Digest + ", the lock another digest")
		case digest.Digest(l.Digest).Validate() != nil:
			refuse("not a digest")
		default:
			pinned[iref.Name()+"@"+l.Digest] = true
		}
	}
	if a.Lock.Artifact != "" {
		if lr, err := ParseReference(a.Lock.Artifact); err != nil || lr.Digest != art.Digest {
			errs = append(errs, &EntryError{Name: a.Lock.Artifact, Role: ImagesLockFile, Reason: "images.lock is for another artifact than " + art.String()})
		}
	}

	attached := map[string]bool{}
	for _, t := range AttachedTags(art.Digest) {
		attached[t] = t != AttachedTag(art.Digest, ImagesLockSuffix) && t != AttachedTag(art.Digest, "")
	}
	byRole := map[string][]move{}
	seen := map[string]bool{}
	images := map[string]ocispec.Descriptor{}
	var sides []ocispec.Descriptor
	for _, m := range a.Manifests {
		name, role := m.Annotations[ocispec.AnnotationRefName], m.Annotations[AnnotationRole]
		refuse := func(reason string) {
			errs = append(errs, &EntryError{Name: name, Digest: m.Digest.String(), Role: role, Reason: reason})
		}
		if seen[name] {
			refuse("a second entry of the same name")
			continue
		}
		seen[name] = true
		ref, err := ParseReference(Scheme + name)
		if err != nil {
			refuse(err.Error())
			continue
		}
		if role == roleArtifact {
			if m.Digest != artDesc.Digest {
				refuse("a second artifact")
			}
			continue
		}
		inRepo := ref.Registry == art.Registry && ref.Repository == art.Repository
		switch role {
		case roleSignature:
			switch {
			case !inRepo:
				refuse("a signature outside the artifact's repository " + art.Name())
			case ref.Digest != "" || !attached[ref.Tag]:
				refuse("not a tag attached to the artifact's digest " + art.Digest + " (" + AttachedTag(art.Digest, ".sig") + ", .att, .sbom)")
			default:
				if reason := a.attachedTo(ctx, m, artDesc, false); reason != "" {
					refuse(reason)
					continue
				}
				byRole[role] = append(byRole[role], move{role: role, src: ref.WithDigest(m.Digest.String()), source: name})
			}
		case roleReferrer:
			switch {
			case !inRepo || ref.Tag != "" || ref.Digest != m.Digest.String():
				refuse("a referrer is named " + art.Name() + "@DIGEST, by its own digest")
			default:
				if reason := a.attachedTo(ctx, m, artDesc, true); reason != "" {
					refuse(reason)
					continue
				}
				byRole[role] = append(byRole[role], move{role: role, src: ref, source: name})
			}
		case roleImage:
			switch {
			case ref.Tag != "" || ref.Digest != m.Digest.String():
				refuse("an image is named REPO@DIGEST, by its own digest")
			case !pinned[name]:
				refuse("no " + ImagesLockFile + " entry that the artifact's content references pins this image")
			default:
				delete(pinned, name)
				images[name] = m
				byRole[role] = append(byRole[role], move{role: role, src: ref, source: name})
			}
		case roleImageSignature, roleImageReferrer:
			sides = append(sides, m) // checked once every image is known
		default:
			refuse("an entry that is neither the artifact nor reached by it (role artifact, signature, referrer or image)")
		}
	}
	for name := range pinned {
		errs = append(errs, &EntryError{Name: name, Role: ImagesLockFile, Reason: "pinned in images.lock, but the archive holds no such image"})
	}
	for _, m := range sides {
		name, role := m.Annotations[ocispec.AnnotationRefName], m.Annotations[AnnotationRole]
		ref, err := ParseReference(Scheme + name)
		reason := ""
		if err != nil {
			reason = err.Error()
		} else {
			reason = a.imageAttachment(ctx, m, ref, images)
		}
		if reason != "" {
			errs = append(errs, &EntryError{Name: name, Digest: m.Digest.String(), Role: role, Reason: reason})
			continue
		}
		byRole[role] = append(byRole[role], move{role: role, src: ref.WithDigest(m.Digest.String()), source: name})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, art, err
	}
	list := append(byRole[roleImage], byRole[roleImageReferrer]...)
	list = append(list, byRole[roleImageSignature]...)
	list = append(list, move{role: roleArtifact, src: art, source: artDesc.Annotations[ocispec.AnnotationRefName]})
	list = append(list, byRole[roleReferrer]...)
	return append(list, byRole[roleSignature]...), art, nil
}

// attachedTo says why the manifest m cannot go along with the artifact
// subject; "" when it can. It must be a single manifest (an index would
// carry manifests of its own), with subject as its subject (a referrer), or
// with none or subject (an attached tag): a copy carries a manifest's
// subject too.
func (a *Archive) attachedTo(ctx context.Context, m, subject ocispec.Descriptor, referrer bool) string {
	if why := attachedMediaType(m); why != "" {
		return why
	}
	man, why := a.readAttached(ctx, m)
	if why != "" {
		return why
	}
	return attachedSubject(man, subject, referrer)
}

// attachedMediaType says why m is not a single image manifest; "" when it is.
func attachedMediaType(m ocispec.Descriptor) string {
	if m.MediaType != ocispec.MediaTypeImageManifest && m.MediaType != dockerManifest {
		return fmt.Sprintf("media type %q: an attached manifest is a single image manifest", m.MediaType)
	}
	return ""
}

// readAttached reads the attached manifest m from the archive, bounded by
// MaxManifestSize; why says why it cannot, "" when it can.
func (a *Archive) readAttached(ctx context.Context, m ocispec.Descriptor) (man ocispec.Manifest, why string) {
	if m.Size > MaxManifestSize {
		return man, fmt.Sprintf("a manifest of %d bytes, over the %d-byte limit", m.Size, MaxManifestSize)
	}
	body, err := content.FetchAll(ctx, a.Store, m)
	if err != nil {
		return man, "unreadable: " + err.Error()
	}
	if err := json.Unmarshal(body, &man); err != nil {
		return man, "not a manifest: " + err.Error()
	}
	if man.MediaType != "" && man.MediaType != m.MediaType {
		return man, fmt.Sprintf("the manifest's media type is %q, the index.json entry says %q", man.MediaType, m.MediaType)
	}
	var index struct {
		Manifests json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(body, &index) == nil && index.Manifests != nil {
		return man, "an index, not a single image manifest (it lists manifests)"
	}
	return man, ""
}

// attachedSubject says why man cannot go along with subject; "" when it can.
func attachedSubject(man ocispec.Manifest, subject ocispec.Descriptor, referrer bool) string {
	switch {
	case man.Subject != nil && man.Subject.Digest != subject.Digest:
		return "its subject is " + man.Subject.Digest.String() + ", not the artifact " + subject.Digest.String()
	case referrer && man.Subject == nil:
		return "a referrer without a subject"
	case man.ArtifactType == ImagesLockMediaType:
		return "an images lock: the import writes it from images.lock"
	}
	return ""
}

// dockerManifest is the media type of a Docker v2 schema 2 manifest.
const dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"

// RoleImagesLock is the Relocated.Role of the images lock an import stores.
const RoleImagesLock = "images-lock"

// ImagesLockMediaType is the artifact type and layer type of an images lock.
const ImagesLockMediaType = "application/vnd.airlock.images-lock.v1+json"

// pushImagesLock stores lock next to the artifact (OCI 1.1 subject, and the
// sha256-<hex>.imageslock tag for registries without the referrers API), so
// the controller's preflight can find the pinned images by the artifact digest.
func pushImagesLock(ctx context.Context, repo *remote.Repository, artifactRef Reference, subject ocispec.Descriptor, lock ImagesLock) (Reference, error) {
	body, err := json.Marshal(lock)
	if err != nil {
		return artifactRef, err
	}
	layer, err := oras.PushBytes(ctx, repo, ImagesLockMediaType, body)
	if err != nil {
		return artifactRef, classify("push images lock of", artifactRef, err)
	}
	subj := ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	md, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, ImagesLockMediaType, oras.PackManifestOptions{
		Layers:  []ocispec.Descriptor{layer},
		Subject: &subj,
		// A fixed time: the same lock makes the same manifest.
		ManifestAnnotations: map[string]string{ocispec.AnnotationCreated: epoch.Format(time.RFC3339)},
	})
	if err != nil {
		return artifactRef, classify("push images lock of", artifactRef, err)
	}
	tag := AttachedTag(subject.Digest.String(), ImagesLockSuffix)
	if err := repo.Tag(ctx, md, tag); err != nil {
		return artifactRef, classify("push images lock of", artifactRef, err)
	}
	return artifactRef.WithTag(tag).WithDigest(md.Digest.String()), nil
}

// FetchImagesLock reads the images lock stored next to ref's digest by an
// import; nil when there is none.
func FetchImagesLock(ctx context.Context, ref Reference, opts RemoteOptions) (*ImagesLock, error) {
	c, err := NewClient(opts.For(ref))
	if err != nil {
		return nil, err
	}
	return c.FetchImagesLock(ctx, ref)
}

// FetchImagesLock is FetchImagesLock through this client: the lock the
// artifact's sha256-<hex>.imageslock tag points at, whoever stored it. The
// controller reads it with ImagesLockDigest and ImagesLockAt instead, and
// uses it only when a trusted signature names that digest.
func (c *Client) FetchImagesLock(ctx context.Context, ref Reference) (*ImagesLock, error) {
	d, err := c.ImagesLockDigest(ctx, ref)
	if err != nil || d == "" {
		return nil, err
	}
	return c.ImagesLockAt(ctx, ref, d)
}

// ImagesLockDigest is the manifest digest of the images lock stored next to
// ref's digest (its sha256-<hex>.imageslock tag); "" when there is none.
func (c *Client) ImagesLockDigest(ctx context.Context, ref Reference) (string, error) {
	repo, err := c.Repository(ref)
	if err != nil {
		return "", err
	}
	tag := AttachedTag(ref.Digest, ImagesLockSuffix)
	desc, err := repo.Resolve(ctx, tag)
	if errors.Is(err, errdef.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", classify("resolve the images lock of", ref.WithTag(tag).WithDigest(""), err)
	}
	return desc.Digest.String(), nil
}

// ImagesLockAt reads the images lock manifest lockDigest in ref's
// repository, checked against lockDigest, and refuses a lock whose subject
// is not ref's digest, or that is not a single images lock layer under
// MaxManifestSize.
func (c *Client) ImagesLockAt(ctx context.Context, ref Reference, lockDigest string) (*ImagesLock, error) {
	repo, err := c.Repository(ref)
	if err != nil {
		return nil, err
	}
	at := ref.WithTag("").WithDigest(lockDigest)
	_, m, err := fetchManifest(ctx, repo, at)
	if err != nil {
		return nil, err
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != ImagesLockMediaType || m.Layers[0].Size > MaxManifestSize {
		return nil, fmt.Errorf("images lock %s is not a single %s layer under %d bytes", at, ImagesLockMediaType, MaxManifestSize)
	}
	if m.Subject == nil || m.Subject.Digest.String() != ref.Digest {
		return nil, fmt.Errorf("images lock %s is not the lock of %s: its subject is another manifest", at, ref)
	}
	body, err := content.FetchAll(ctx, repo, m.Layers[0])
	if err != nil {
		return nil, classify("fetch images lock of", ref, err)
	}
	var lock ImagesLock
	if err := json.Unmarshal(body, &lock); err != nil {
		return nil, fmt.Errorf("images lock %s: %v", at, err)
	}
	return &lock, nil
}
