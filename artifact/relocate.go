package artifact

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"

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
	// AnnotationRole is "artifact", "signature" or "image".
	AnnotationRole = "dev.airlock.role"
	// ImagesLockFile sits beside index.json in an export.
	ImagesLockFile = "images.lock"
)

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
	// Platform narrows image indexes to one platform, as os/arch[/variant].
	// "" means every platform.
	Platform string
	// Progress receives progress lines when it is a terminal. nil means none.
	Progress io.Writer
}

func (o RelocateOptions) copyOptions() (oras.CopyOptions, error) {
	opts := oras.DefaultCopyOptions
	opts.Concurrency = 4
	if o.Platform != "" {
		parts := strings.Split(o.Platform, "/")
		if len(parts) < 2 || len(parts) > 3 {
			return opts, fmt.Errorf("--platform %q: want os/arch[/variant], for example linux/amd64", o.Platform)
		}
		p := &ocispec.Platform{OS: parts[0], Architecture: parts[1]}
		if len(parts) == 3 {
			p.Variant = parts[2]
		}
		opts.WithTargetPlatform(p)
	}
	return opts, nil
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
	Artifact string      `json:"artifact"`
	Images   []ImageLock `json:"images"`
}

// Copy copies src digest-for-digest to dst with its signatures and, when
// asked, its images. dst's tag defaults to src's.
func Copy(ctx context.Context, src, dst Reference, opts RelocateOptions) ([]Relocated, error) {
	srcRepo, err := opts.Src.Repository(src)
	if err != nil {
		return nil, err
	}
	src, err = resolveIn(ctx, srcRepo, src)
	if err != nil {
		return nil, err
	}
	if dst.Digest != "" && dst.Digest != src.Digest {
		return nil, fmt.Errorf("copy to %s: the destination digest differs from the source's %s: give a tag or no digest", dst, src.Digest)
	}
	if dst.Tag == "" {
		dst.Tag = src.Tag
	}
	dstRepo, err := opts.Dst.Repository(dst)
	if err != nil {
		return nil, err
	}
	copyOpts, err := opts.copyOptions()
	if err != nil {
		return nil, err
	}
	var out []Relocated
	// The artifact and its OCI 1.1 referrers, then cosign's tags.
	dstRef := dst.Tag
	if dstRef == "" {
		dstRef = src.Digest
	}
	if _, err := oras.ExtendedCopy(ctx, srcRepo, src.Digest, dstRepo, dstRef, oras.ExtendedCopyOptions{ExtendedCopyGraphOptions: oras.ExtendedCopyGraphOptions{CopyGraphOptions: oras.DefaultCopyGraphOptions}}); err != nil {
		return nil, copyError(src, dst, err)
	}
	out = append(out, Relocated{Role: "artifact", Source: src.String(), Target: dst.WithDigest(src.Digest).String(), Digest: src.Digest})
	for _, tag := range AttachedTags(src.Digest) {
		desc, err := srcRepo.Resolve(ctx, tag)
		if errors.Is(err, errdef.ErrNotFound) {
			continue
		}
		if err != nil {
			return out, classify("resolve "+tag+" of", src, err)
		}
		if _, err := oras.Copy(ctx, srcRepo, desc.Digest.String(), dstRepo, tag, oras.DefaultCopyOptions); err != nil {
			return out, copyError(src.WithTag(tag), dst.WithTag(tag), err)
		}
		out = append(out, Relocated{Role: "signature", Source: src.WithTag(tag).String(), Target: dst.WithTag(tag).WithDigest(desc.Digest.String()).String(), Digest: desc.Digest.String()})
	}
	for _, img := range opts.Images {
		iref, err := ParseImage(img)
		if err != nil {
			return out, err
		}
		irepo, err := opts.Src.Repository(iref)
		if err != nil {
			return out, err
		}
		target := MirrorImage(dst.Registry, mirrorPrefix(dst), iref)
		trepo, err := opts.Dst.Repository(target)
		if err != nil {
			return out, err
		}
		desc, err := oras.Copy(ctx, irepo, iref.Reference(), trepo, target.Reference(), copyOpts)
		if err != nil {
			return out, copyError(iref, target, err)
		}
		out = append(out, Relocated{Role: "image", Source: iref.String(), Target: target.WithDigest(desc.Digest.String()).String(), Digest: desc.Digest.String()})
	}
	return out, nil
}

// mirrorPrefix is the repository path above an artifact's own name: for
// oci://mirror/site/team/app, with the artifact upstream at team/app, the
// images go under mirror/site. Copy keeps images beside the artifact's repository.
func mirrorPrefix(dst Reference) string {
	return path.Dir(dst.Repository)
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

// Export writes ref (a tag is resolved first), its signatures and the
// images as one OCI image-layout tarball to w, streaming: blobs go from the
// registry straight into the tar. The index names every manifest by its
// original reference; images.lock pins each image to its digest.
func Export(ctx context.Context, ref Reference, w io.Writer, opts RelocateOptions) (*ImagesLock, []Relocated, error) {
	repo, err := opts.Src.Repository(ref)
	if err != nil {
		return nil, nil, err
	}
	ref, err = resolveIn(ctx, repo, ref)
	if err != nil {
		return nil, nil, err
	}
	copyOpts, err := opts.copyOptions()
	if err != nil {
		return nil, nil, err
	}
	tw := newTarTarget(w, opts.Progress)
	var out []Relocated
	name := ref.Name() + ":" + ref.Tag
	if ref.Tag == "" {
		name = ref.DigestRef()
	}
	if _, err := oras.Copy(ctx, repo, ref.Digest, tw.as("artifact"), name, oras.DefaultCopyOptions); err != nil {
		return nil, nil, copyError(ref, Reference{Registry: "export"}, err)
	}
	out = append(out, Relocated{Role: "artifact", Source: ref.String(), Target: name, Digest: ref.Digest})
	for _, tag := range AttachedTags(ref.Digest) {
		desc, err := repo.Resolve(ctx, tag)
		if errors.Is(err, errdef.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, out, classify("resolve "+tag+" of", ref, err)
		}
		if _, err := oras.Copy(ctx, repo, desc.Digest.String(), tw.as("signature"), ref.Name()+":"+tag, oras.DefaultCopyOptions); err != nil {
			return nil, out, copyError(ref.WithTag(tag), Reference{Registry: "export"}, err)
		}
		out = append(out, Relocated{Role: "signature", Source: ref.WithTag(tag).String(), Target: ref.Name() + ":" + tag, Digest: desc.Digest.String()})
	}
	lock := &ImagesLock{Artifact: ref.String(), Images: []ImageLock{}}
	for _, img := range opts.Images {
		iref, err := ParseImage(img)
		if err != nil {
			return nil, out, err
		}
		irepo, err := opts.Src.Repository(iref)
		if err != nil {
			return nil, out, err
		}
		iname := iref.Name() + "@"
		desc, err := oras.Copy(ctx, irepo, iref.Reference(), tw.as("image"), iref.Name()+":pending", copyOpts)
		if err != nil {
			return nil, out, copyError(iref, Reference{Registry: "export"}, err)
		}
		tw.rename(iref.Name()+":pending", iname+desc.Digest.String())
		lock.Images = append(lock.Images, ImageLock{Reference: img, Digest: desc.Digest.String()})
		out = append(out, Relocated{Role: "image", Source: iref.String(), Target: iname + desc.Digest.String(), Digest: desc.Digest.String()})
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
func (t *tarTarget) as(role string) oras.Target { return &roleTarget{t, role} }

type roleTarget struct {
	*tarTarget
	role string
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
	t.index = append(t.index, d)
	return nil
}

func (t *tarTarget) Tag(ctx context.Context, desc ocispec.Descriptor, ref string) error {
	return (&roleTarget{t, "artifact"}).Tag(ctx, desc, ref)
}

func (t *tarTarget) rename(from, to string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.index {
		if t.index[i].Annotations[ocispec.AnnotationRefName] == from {
			t.index[i].Annotations[ocispec.AnnotationRefName] = to
		}
	}
}

func (t *tarTarget) finish(lock []byte) error {
	idx, err := json.MarshalIndent(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: t.index}, "", "  ")
	if err != nil {
		return err
	}
	t.writeFile("index.json", idx)
	t.writeFile(ImagesLockFile, lock)
	if t.err != nil {
		return t.err
	}
	return t.tw.Close()
}

// ImportOptions configures an import. Dst reaches the mirror.
type ImportOptions struct {
	Dst RemoteOptions
	// Progress receives progress lines when it is a terminal. nil means none.
	Progress io.Writer
}

// Archive is an opened export tarball whose every blob has been checked
// against its digest.
type Archive struct {
	Store *oci.ReadOnlyStore
	// Manifests are index.json's entries, each named by its original reference.
	Manifests []ocispec.Descriptor
	Lock      ImagesLock
}

// Artifact returns the index entry of the exported artifact.
func (a *Archive) Artifact() (ocispec.Descriptor, Reference, error) {
	for _, m := range a.Manifests {
		if m.Annotations[AnnotationRole] == "artifact" {
			ref, err := ParseReference(Scheme + m.Annotations[ocispec.AnnotationRefName])
			return m, ref.WithDigest(m.Digest.String()), err
		}
	}
	return ocispec.Descriptor{}, Reference{}, errors.New("the archive holds no artifact (no index.json entry with role artifact): was it written by airlock export?")
}

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
	switch hdr.Typeflag {
	case tar.TypeDir:
		if dir := strings.TrimSuffix(name, "/"); dir == "blobs" || dir == "blobs/sha256" {
			return ""
		}
	case tar.TypeReg:
		if name == ocispec.ImageLayoutFile || name == ocispec.ImageIndexFile || name == ImagesLockFile || blobName.MatchString(name) {
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
	return "not part of an export (only oci-layout, index.json, " + ImagesLockFile + " and blobs/sha256/ are)"
}

// OpenArchive checks every entry of the tarball at p and every blob against
// its digest, before anything is pushed, and opens it. The blobs are hashed
// as the store serves them, so what is checked is what Import pushes.
func OpenArchive(ctx context.Context, p string) (*Archive, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var indexJSON, lockJSON []byte
	seen := map[string]bool{}
	var blobs []string
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
			blobs = append(blobs, hdr.Name)
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
	if a.Store, err = oci.NewFromTar(ctx, p); err != nil {
		return nil, fmt.Errorf("archive %s: %w", p, err)
	}
	for _, name := range blobs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		want := digest.NewDigestFromEncoded(digest.SHA256, strings.TrimPrefix(name, "blobs/sha256/"))
		rc, err := a.Store.Fetch(ctx, ocispec.Descriptor{Digest: want})
		if err != nil {
			return nil, fmt.Errorf("archive %s: read blob %s: %w", p, name, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("archive %s: read blob %s: %w", p, name, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want.Encoded() {
			return nil, fmt.Errorf("archive %s: entry %q: blob %s has content with digest sha256:%s: %w: %w (or it was corrupted in transit); nothing was pushed", p, name, want, got, ErrDigest, ErrArchiveAltered)
		}
	}
	return a, nil
}

// Import pushes every manifest of the archive into the mirror dst (oci://HOST[/PREFIX]),
// keeping each repository path under the prefix and every digest unchanged.
func Import(ctx context.Context, a *Archive, dst Reference, opts ImportOptions) ([]Relocated, error) {
	var out []Relocated
	manifests := append([]ocispec.Descriptor{}, a.Manifests...)
	// Images and the artifact before signatures, so a mirror never holds a
	// signature for something it does not have.
	rank := map[string]int{"image": 0, "artifact": 1, "signature": 2}
	sort.SliceStable(manifests, func(i, j int) bool {
		return rank[manifests[i].Annotations[AnnotationRole]] < rank[manifests[j].Annotations[AnnotationRole]]
	})
	for _, m := range manifests {
		name := m.Annotations[ocispec.AnnotationRefName]
		src, err := ParseReference(Scheme + name)
		if err != nil {
			return out, fmt.Errorf("archive entry %q: %w", name, err)
		}
		target := MirrorImage(dst.Registry, dst.Repository, src)
		repo, err := opts.Dst.Repository(target)
		if err != nil {
			return out, err
		}
		tag := target.Tag
		if tag == "" {
			tag = m.Digest.String()
		}
		if _, err := oras.Copy(ctx, a.Store, m.Digest.String(), repo, tag, oras.DefaultCopyOptions); err != nil {
			return out, copyError(src, target, err)
		}
		out = append(out, Relocated{Role: m.Annotations[AnnotationRole], Source: name, Target: target.WithDigest(m.Digest.String()).String(), Digest: m.Digest.String()})
		if m.Annotations[AnnotationRole] == "artifact" && len(a.Lock.Images) > 0 {
			lockRef, err := pushImagesLock(ctx, repo, target.WithDigest(m.Digest.String()), m, a.Lock)
			if err != nil {
				return out, err
			}
			out = append(out, Relocated{Role: "images-lock", Source: name, Target: lockRef.String(), Digest: lockRef.Digest})
		}
	}
	return out, nil
}

// ImagesLockSuffix ends the tag of an artifact's images lock:
// sha256-<hex>.imageslock, beside cosign's .sig.
const ImagesLockSuffix = ".imageslock"

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
	layer := ocispec.Descriptor{MediaType: ImagesLockMediaType, Digest: digest.FromBytes(body), Size: int64(len(body))}
	cfg := ocispec.DescriptorEmptyJSON
	for _, b := range []struct {
		d ocispec.Descriptor
		c []byte
	}{{layer, body}, {cfg, cfg.Data}} {
		if ok, err := repo.Exists(ctx, b.d); err != nil {
			return artifactRef, classify("push images lock of", artifactRef, err)
		} else if !ok {
			if err := repo.Push(ctx, b.d, bytes.NewReader(b.c)); err != nil {
				return artifactRef, classify("push images lock of", artifactRef, err)
			}
		}
	}
	subj := ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m, err := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: ImagesLockMediaType, Config: cfg, Layers: []ocispec.Descriptor{layer}, Subject: &subj})
	if err != nil {
		return artifactRef, err
	}
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))}
	tag := AttachedTag(subject.Digest.String(), ImagesLockSuffix)
	if err := repo.PushReference(ctx, md, bytes.NewReader(m), tag); err != nil {
		return artifactRef, classify("push images lock of", artifactRef, err)
	}
	return artifactRef.WithTag(tag).WithDigest(md.Digest.String()), nil
}

// FetchImagesLock reads the images lock stored next to ref's digest by an
// import; nil when there is none.
func FetchImagesLock(ctx context.Context, ref Reference, opts RemoteOptions) (*ImagesLock, error) {
	repo, err := opts.Repository(ref)
	if err != nil {
		return nil, err
	}
	tag := AttachedTag(ref.Digest, ImagesLockSuffix)
	_, m, err := fetchManifest(ctx, repo, ref.WithTag(tag).WithDigest(""))
	if errors.Is(err, ErrNoTag) || errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != ImagesLockMediaType || m.Layers[0].Size > MaxManifestSize {
		return nil, fmt.Errorf("images lock %s:%s is not a single %s layer under %d bytes", ref.Name(), tag, ImagesLockMediaType, MaxManifestSize)
	}
	body, err := content.FetchAll(ctx, repo, m.Layers[0])
	if err != nil {
		return nil, classify("fetch images lock of", ref, err)
	}
	var lock ImagesLock
	if err := json.Unmarshal(body, &lock); err != nil {
		return nil, fmt.Errorf("images lock %s:%s: %v", ref.Name(), tag, err)
	}
	return &lock, nil
}
