package artifact

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
)

// A bundle is one export tarball (one OCI image layout) with several
// artifacts. Each index.json entry names the artifact it goes with
// (AnnotationBundleArtifact); bundle.json lists the artifacts with their
// images locks and, for a differential export, the blobs it left out
// because the site already has them.
const (
	// BundleFile sits beside index.json in a bundle.
	BundleFile = "bundle.json"
	// AnnotationBundleArtifact, on an index.json entry of a bundle, is the
	// index.json name of the artifact the entry goes with.
	AnnotationBundleArtifact = "dev.airlock.bundle.artifact"
	// AnnotationSiteBlobs, on index.json, lists (comma-separated) every blob
	// a site holds once the export is imported: the blobs it carries and
	// the ones it assumes. A later export --since it leaves them out.
	AnnotationSiteBlobs = "dev.airlock.site-blobs"
)

// Bounds of a bundle, on export and on import alike.
const (
	// MaxBundleArtifacts bounds the artifacts of one bundle.
	MaxBundleArtifacts = 256
	// MaxSiteBlobs bounds the blobs a --since set lists, and the blobs a
	// differential export assumes at the mirror.
	MaxSiteBlobs = 1 << 16
)

// BundleIndex is bundle.json.
type BundleIndex struct {
	Artifacts []BundledArtifact `json:"artifacts"`
	// Assumed are the blobs a differential export left out: the import
	// checks that the mirror has each before it pushes anything.
	Assumed []AssumedBlob `json:"assumed,omitempty"`
}

// BundledArtifact is one artifact of a bundle.
type BundledArtifact struct {
	// Name is its index.json name (HOST/REPO:TAG, or HOST/REPO@DIGEST).
	Name   string `json:"name"`
	Digest string `json:"digest"`
	// ImagesLock pins the images its workloads use (empty without images).
	ImagesLock ImagesLock `json:"imagesLock"`
}

// AssumedBlob is a blob a differential export left out, in the upstream
// repository (HOST/REPO) where the import needs it.
type AssumedBlob struct {
	Repository string `json:"repository"`
	MediaType  string `json:"mediaType"`
	Digest     string `json:"digest"`
	Size       int64  `json:"size"`
}

// ParseBundleIndex parses and checks bundle.json (hostile input): at most
// MaxManifestSize bytes, MaxBundleArtifacts artifacts with distinct
// names, MaxSiteBlobs assumed blobs, every digest and name well formed.
func ParseBundleIndex(b []byte) (*BundleIndex, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("%s is %d bytes: %w of %d", BundleFile, len(b), ErrTooLarge, MaxManifestSize)
	}
	var bi BundleIndex
	if err := json.Unmarshal(b, &bi); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", BundleFile, err, ErrArchiveAltered)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s: %w", BundleFile, fmt.Sprintf(format, args...), ErrArchiveAltered)
	}
	switch {
	case len(bi.Artifacts) == 0:
		return nil, bad("lists no artifact")
	case len(bi.Artifacts) > MaxBundleArtifacts:
		return nil, fmt.Errorf("%s lists %d artifacts: %w of %d", BundleFile, len(bi.Artifacts), ErrTooLarge, MaxBundleArtifacts)
	case len(bi.Assumed) > MaxSiteBlobs:
		return nil, fmt.Errorf("%s assumes %d blobs: %w of %d", BundleFile, len(bi.Assumed), ErrTooLarge, MaxSiteBlobs)
	}
	names := map[string]bool{}
	for _, a := range bi.Artifacts {
		if _, err := ParseReference(Scheme + a.Name); err != nil {
			return nil, bad("artifact %q: %v", a.Name, err)
		}
		if digest.Digest(a.Digest).Validate() != nil {
			return nil, bad("artifact %q: digest %q is not a digest", a.Name, a.Digest)
		}
		if names[a.Name] {
			return nil, bad("artifact %q is listed twice", a.Name)
		}
		names[a.Name] = true
	}
	for _, ab := range bi.Assumed {
		if r, err := ParseRepository(Scheme + ab.Repository); err != nil || r.Tag != "" || r.Digest != "" || r.Name() != ab.Repository {
			return nil, bad("assumed blob %s: repository %q is not HOST/REPO", ab.Digest, ab.Repository)
		}
		if digest.Digest(ab.Digest).Validate() != nil || ab.Size < 0 {
			return nil, bad("assumed blob %q (size %d) is not a digest and a size", ab.Digest, ab.Size)
		}
	}
	return &bi, nil
}

// Artifacts splits the archive into one archive per artifact, sharing the
// store: a single export is itself; a bundle gives each listed artifact
// the index.json entries that name it, and its images lock. An entry that
// names no listed artifact, or a listed artifact whose entry is not there
// under its name and digest, refuses the whole archive.
func (a *Archive) Artifacts() ([]*Archive, error) {
	if a.Bundle == nil {
		return []*Archive{a}, nil
	}
	views := map[string]*Archive{}
	var out []*Archive
	for _, ba := range a.Bundle.Artifacts {
		v := &Archive{Store: a.Store, Lock: ba.ImagesLock}
		views[ba.Name] = v
		out = append(out, v)
	}
	var errs []error
	for _, m := range a.Manifests {
		v, ok := views[m.Annotations[AnnotationBundleArtifact]]
		if !ok {
			errs = append(errs, &EntryError{Name: m.Annotations[ocispec.AnnotationRefName], Digest: m.Digest.String(), Role: m.Annotations[AnnotationRole],
				Reason: fmt.Sprintf("goes with %q, not an artifact %s lists", m.Annotations[AnnotationBundleArtifact], BundleFile)})
			continue
		}
		v.Manifests = append(v.Manifests, m)
	}
	for i, ba := range a.Bundle.Artifacts {
		desc, ref, err := out[i].Artifact()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s lists %q: %w", BundleFile, ba.Name, err))
		case desc.Annotations[ocispec.AnnotationRefName] != ba.Name || ref.Digest != ba.Digest:
			errs = append(errs, &EntryError{Name: desc.Annotations[ocispec.AnnotationRefName], Digest: ref.Digest, Role: roleArtifact,
				Reason: fmt.Sprintf("%s lists the artifact as %q %s", BundleFile, ba.Name, ba.Digest)})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// CheckImport checks, reading only the archive, what Import would refuse:
// every index.json and images.lock entry against a's one artifact and the
// images its content references.
func CheckImport(ctx context.Context, a *Archive, contentImages []string) error {
	_, _, err := a.plan(ctx, contentImages)
	return err
}

// MissingBlobsError is a differential import refused before any push: the
// mirror lacks blobs the export left out.
type MissingBlobsError struct {
	// Missing are the blobs, as MIRROR/REPO@DIGEST.
	Missing []string
	// Assumed is how many blobs the export assumed.
	Assumed int
}

func (e *MissingBlobsError) Error() string {
	list := e.Missing
	more := ""
	if len(list) > 50 {
		list, more = list[:50], fmt.Sprintf(" and %d more", len(e.Missing)-50)
	}
	return fmt.Sprintf("the differential export assumes %d blobs at the mirror, and %d are missing: %s%s: import the export it was made --since first, or export again without --since",
		e.Assumed, len(e.Missing), strings.Join(list, ", "), more)
}

// ReadAssumed checks, with one HEAD request per blob (through one client),
// that the mirror dst (oci://HOST[/PREFIX]) holds every blob and manifest a
// differential export assumes, in the repository where the import needs
// it, and then serves each of them from there: the archive's store reads
// an assumed blob from the mirror by its digest, checked against that
// digest and its size, so the import verifies, renders and checks an
// unchanged artifact as if it were carried. A missing blob is a
// *MissingBlobsError naming every missing one. A full export is left as
// it is. Call it before Artifacts, whose views share the store.
func (a *Archive) ReadAssumed(ctx context.Context, dst Reference, opts RemoteOptions) error {
	if a.Bundle == nil || len(a.Bundle.Assumed) == 0 {
		return nil
	}
	c, err := NewClient(opts.For(dst))
	if err != nil {
		return err
	}
	at := map[digest.Digest]assumedAt{}
	var missing []string
	for _, ab := range a.Bundle.Assumed {
		up, err := ParseRepository(Scheme + ab.Repository)
		if err != nil {
			return err
		}
		mirrored := MirrorImage(dst.Registry, dst.Repository, up)
		repo, err := c.Repository(mirrored)
		if err != nil {
			return err
		}
		desc := ocispec.Descriptor{MediaType: ab.MediaType, Digest: digest.Digest(ab.Digest), Size: ab.Size}
		ok, err := repo.Exists(ctx, desc)
		if err != nil {
			return classify("check the assumed blob "+ab.Digest+" in", mirrored, err)
		}
		if !ok {
			missing = append(missing, mirrored.Name()+"@"+ab.Digest)
			continue
		}
		if _, dup := at[desc.Digest]; !dup {
			at[desc.Digest] = assumedAt{repo: repo, desc: desc, name: mirrored.Name()}
		}
	}
	if len(missing) > 0 {
		return &MissingBlobsError{Missing: missing, Assumed: len(a.Bundle.Assumed)}
	}
	s := &assumedStore{ReadOnlyTarget: a.Store, at: at}
	// What an assumed manifest reaches was left out with it: each is read
	// from the same repository, found through the manifest (read once,
	// checked against its digest).
	var queue []ocispec.Descriptor
	for _, w := range at {
		queue = append(queue, w.desc)
	}
	for len(queue) > 0 {
		desc := queue[0]
		queue = queue[1:]
		if !isManifestType(desc.MediaType) {
			continue
		}
		if desc.Size > MaxManifestSize {
			return fmt.Errorf("assumed manifest %s is %d bytes: %w of %d", desc.Digest, desc.Size, ErrTooLarge, MaxManifestSize)
		}
		where := s.at[desc.Digest]
		children, err := content.Successors(ctx, s, desc)
		if err != nil {
			return fmt.Errorf("read the assumed manifest %s@%s: %w", where.name, desc.Digest, err)
		}
		for _, c := range children {
			if _, ok := s.at[c.Digest]; ok {
				continue
			}
			if len(s.at) >= MaxSiteBlobs {
				return fmt.Errorf("the assumed manifests reach more than %d blobs: %w", MaxSiteBlobs, ErrTooLarge)
			}
			s.at[c.Digest] = assumedAt{repo: where.repo, desc: c, name: where.name}
			queue = append(queue, c)
		}
	}
	a.Store = s
	return nil
}

// isManifestType says whether a media type is a manifest or an index.
func isManifestType(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex, dockerManifest, "application/vnd.docker.distribution.manifest.list.v2+json":
		return true
	}
	return false
}

// assumedAt is where the mirror holds an assumed blob.
type assumedAt struct {
	repo *remote.Repository
	desc ocispec.Descriptor
	name string // MIRROR/REPO, for messages
}

// assumedStore is an archive's store that reads the blobs a differential
// export assumes from the mirror, each checked against its digest and size
// as it is read: the import trusts them no more than the archive's own.
type assumedStore struct {
	oras.ReadOnlyTarget
	at map[digest.Digest]assumedAt
}

func (s *assumedStore) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := s.ReadOnlyTarget.Fetch(ctx, desc)
	where, assumed := s.at[desc.Digest]
	if err == nil || !assumed || !errors.Is(err, errdef.ErrNotFound) {
		return rc, err
	}
	if desc.Size != where.desc.Size {
		return nil, fmt.Errorf("assumed blob %s: %d bytes in bundle.json, %d where the archive refers to it: %w", desc.Digest, where.desc.Size, desc.Size, ErrArchiveAltered)
	}
	if desc.MediaType == "" {
		desc.MediaType = where.desc.MediaType
	}
	rc, err = where.repo.Fetch(ctx, desc)
	if err != nil {
		return nil, classify("fetch the assumed blob "+desc.Digest.String()+" from", Reference{Registry: "", Repository: where.name}, err)
	}
	return &verifiedReader{rc: rc, vr: content.NewVerifyReader(rc, desc), desc: desc, at: where.name}, nil
}

func (s *assumedStore) Exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	if _, ok := s.at[desc.Digest]; ok {
		return true, nil
	}
	return s.ReadOnlyTarget.Exists(ctx, desc)
}

// verifiedReader reads an assumed blob from the mirror and fails the read
// that reaches its end when the bytes are not the digest's.
type verifiedReader struct {
	rc   io.ReadCloser
	vr   *content.VerifyReader
	desc ocispec.Descriptor
	at   string
}

func (r *verifiedReader) Read(p []byte) (int, error) {
	n, err := r.vr.Read(p)
	if errors.Is(err, io.EOF) {
		if verr := r.vr.Verify(); verr != nil {
			return n, fmt.Errorf("assumed blob %s read from %s: %w: %v", r.desc.Digest, r.at, ErrDigest, verr)
		}
	} else if err != nil && (errors.Is(err, content.ErrMismatchedDigest) || errors.Is(err, content.ErrTrailingData)) {
		return n, fmt.Errorf("assumed blob %s read from %s: %w: %v", r.desc.Digest, r.at, ErrDigest, err)
	}
	return n, err
}

func (r *verifiedReader) Close() error { return r.rc.Close() }

// SiteBlobs is what a site holds from earlier exports: the blobs an export
// --since leaves out.
type SiteBlobs map[digest.Digest]bool

// ReadSiteBlobs reads what a site holds after importing the export at p:
// an export tarball, or its index.json. Both are read with the bounds of
// an import (index.json at most MaxManifestSize, MaxSiteBlobs blobs).
func ReadSiteBlobs(p string) (SiteBlobs, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("--since: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	head, _ := br.Peek(1)
	if len(head) == 1 && head[0] == '{' {
		return siteBlobsOf(p, io.LimitReader(br, MaxManifestSize+1), nil)
	}
	tr := tar.NewReader(br)
	set := SiteBlobs{}
	var idx SiteBlobs
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("--since %s: not an export tarball or index.json: %w", p, err)
		}
		switch {
		case blobName.MatchString(hdr.Name):
			if len(set) >= MaxSiteBlobs {
				return nil, fmt.Errorf("--since %s: more than %d blobs: %w", p, MaxSiteBlobs, ErrTooLarge)
			}
			set[digest.NewDigestFromEncoded(digest.SHA256, strings.TrimPrefix(hdr.Name, "blobs/sha256/"))] = true
		case hdr.Name == ocispec.ImageIndexFile:
			if idx, err = siteBlobsOf(p, io.LimitReader(tr, MaxManifestSize+1), set); err != nil {
				return nil, err
			}
		}
	}
	if idx == nil {
		return nil, fmt.Errorf("--since %s: the tarball has no index.json: it is not an export", p)
	}
	return idx, nil
}

// siteBlobsOf reads index.json's AnnotationSiteBlobs into set (a new one
// when nil).
func siteBlobsOf(p string, r io.Reader, set SiteBlobs) (SiteBlobs, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("--since %s: %w", p, err)
	}
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("--since %s: index.json is over %d bytes: %w", p, MaxManifestSize, ErrTooLarge)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("--since %s: index.json: %v", p, err)
	}
	if set == nil {
		set = SiteBlobs{}
	}
	list, ok := idx.Annotations[AnnotationSiteBlobs]
	if !ok && len(set) == 0 {
		return nil, fmt.Errorf("--since %s: index.json does not list the blobs it carried (%s): it comes from an older airlock; give the export tarball instead", p, AnnotationSiteBlobs)
	}
	for _, s := range strings.Split(list, ",") {
		if s == "" {
			continue
		}
		d := digest.Digest(s)
		if d.Validate() != nil {
			return nil, fmt.Errorf("--since %s: index.json lists %q, not a digest", p, s)
		}
		if len(set) >= MaxSiteBlobs {
			return nil, fmt.Errorf("--since %s: more than %d blobs: %w", p, MaxSiteBlobs, ErrTooLarge)
		}
		set[d] = true
	}
	return set, nil
}

// siteBlobs is the AnnotationSiteBlobs value: the blobs written and the
// ones assumed, sorted.
func siteBlobs(have map[digest.Digest]ocispec.Descriptor, assumed []AssumedBlob) string {
	set := map[string]bool{}
	for d := range have {
		set[d.String()] = true
	}
	for _, a := range assumed {
		set[a.Digest] = true
	}
	list := make([]string, 0, len(set))
	for d := range set {
		list = append(list, d)
	}
	sort.Strings(list)
	return strings.Join(list, ",")
}

// BundleItem is one artifact of a bundle export.
type BundleItem struct {
	Ref Reference
	// Images and KustomizePath are as in RelocateOptions.
	Images        []string
	KustomizePath string
}

// BundleOptions configures ExportBundle. The zero value exports every
// blob, over HTTPS.
type BundleOptions struct {
	// Src, Platform, Progress and CheckImages are as in RelocateOptions;
	// its Images and KustomizePath are per BundleItem.
	RelocateOptions
	// Since is what the site already holds (ReadSiteBlobs): every blob and
	// manifest in it, of the artifacts and their referrers, and the images
	// and their signatures and referrers, is left out and recorded in bundle.json
	// as assumed. index.json still names every manifest: the import reads
	// what is assumed from the mirror by digest (Archive.ReadAssumed), and
	// verifies and renders it as if it were carried. nil means a full
	// export.
	Since SiteBlobs
}

// ExportBundle writes several artifacts as one OCI image-layout tarball to
// w: each is walked and pinned as in Export (every walk before anything is
// written), then copied into the one tarball, each index.json entry
// naming its artifact; bundle.json lists the artifacts with their images
// locks, and the blobs left out for opts.Since.
func ExportBundle(ctx context.Context, items []BundleItem, w io.Writer, opts BundleOptions) (*BundleIndex, []Relocated, error) {
	if len(items) == 0 || len(items) > MaxBundleArtifacts {
		return nil, nil, fmt.Errorf("a bundle holds 1 to %d artifacts, not %d", MaxBundleArtifacts, len(items))
	}
	type walked struct {
		opts  RelocateOptions
		from  func(move) (oras.ReadOnlyTarget, error)
		moves moves
		group string
	}
	var all []walked
	bi := &BundleIndex{}
	groups := map[string]bool{}
	for _, it := range items {
		ro := opts.RelocateOptions
		ro.Src, ro.Images, ro.KustomizePath = ro.Src.For(it.Ref), it.Images, it.KustomizePath
		repo, err := ro.Src.Repository(it.Ref)
		if err != nil {
			return nil, nil, err
		}
		mv, lock, err := walk(ctx, repo, it.Ref, ro, true)
		if err != nil {
			return nil, nil, err
		}
		lock.KustomizePath = it.KustomizePath
		art := mv.artifact
		group := art.Name() + ":" + art.Tag
		if art.Tag == "" {
			group = art.DigestRef()
		}
		if groups[group] {
			return nil, nil, fmt.Errorf("the bundle lists %s twice", group)
		}
		groups[group] = true
		all = append(all, walked{opts: ro, from: fromRegistry(ro.Src, repo), moves: mv, group: group})
		bi.Artifacts = append(bi.Artifacts, BundledArtifact{Name: group, Digest: art.Digest, ImagesLock: *lock})
	}

	tw := newTarTarget(w, opts.Progress)
	assumed := &assumedBlobs{seen: map[string]bool{}}
	var out []Relocated
	for _, wk := range all {
		rel, err := relocate(ctx, wk.moves.list, wk.from, func(m move) (landing, error) {
			name := m.src.Name() + ":" + m.src.Tag
			if m.src.Tag == "" || m.role == roleImage {
				name = m.src.DigestRef()
			}
			var target oras.Target = &roleTarget{tw, m.role, wk.group}
			// The artifact's own signatures always travel: they are small,
			// and a site signature moves the .sig tag at the mirror off the
			// upstream manifest, which registry gc --delete-untagged may
			// then delete.
			if len(opts.Since) > 0 && m.role != roleSignature {
				target = &sinceTarget{Target: target, since: opts.Since, repository: m.src.Name(), assumed: assumed}
			}
			return landing{target: target, ref: name, at: Reference{Registry: "export"}, shown: name}, nil
		})
		out = append(out, rel...)
		if err != nil {
			return nil, out, err
		}
	}
	bi.Assumed = assumed.list
	if len(bi.Assumed) > MaxSiteBlobs {
		return nil, out, fmt.Errorf("the export assumes %d blobs at the site: %w of %d; export without --since", len(bi.Assumed), ErrTooLarge, MaxSiteBlobs)
	}
	body, err := json.MarshalIndent(bi, "", "  ")
	if err != nil {
		return nil, out, err
	}
	if err := tw.finishWith(BundleFile, body, map[string]string{AnnotationSiteBlobs: siteBlobs(tw.have, bi.Assumed)}); err != nil {
		return nil, out, err
	}
	return bi, out, nil
}

// sinceTarget leaves out of an export every blob and manifest the site
// already holds: it reports them present, so the copy skips them (and,
// for a manifest, everything under it), and records each as assumed in its
// repository. The index.json entry of a manifest left out stays, so the
// import knows what it stands for and reads it from the mirror.
type sinceTarget struct {
	oras.Target
	since      SiteBlobs
	repository string
	assumed    *assumedBlobs
}

func (t *sinceTarget) Exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	if t.since[desc.Digest] {
		t.assumed.add(t.repository, desc)
		return true, nil
	}
	return t.Target.Exists(ctx, desc)
}

// assumedBlobs collects the blobs an export leaves out, once per repository.
type assumedBlobs struct {
	mu   sync.Mutex
	seen map[string]bool
	list []AssumedBlob
}

func (a *assumedBlobs) add(repository string, desc ocispec.Descriptor) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := repository + "@" + desc.Digest.String()
	if a.seen[key] {
		return
	}
	a.seen[key] = true
	a.list = append(a.list, AssumedBlob{Repository: repository, MediaType: desc.MediaType, Digest: desc.Digest.String(), Size: desc.Size})
}
