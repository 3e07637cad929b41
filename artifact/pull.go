package artifact

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"airlock.dev/airlock/internal/progress"
	"airlock.dev/airlock/internal/safetar"
)

// PullOptions bounds and steers a pull. The zero value pulls the Flux
// content layer (or the only tar+gzip layer) and allows 100 MiB.
type PullOptions struct {
	// Remote reaches the registry when Pull builds its own client; Client.Pull
	// uses its client's options instead.
	Remote RemoteOptions
	// Manifest is ref's manifest as already read through the same client
	// (by verification), so it is not fetched twice. Pull refuses it unless
	// ref has a digest and the bytes hash to it. nil means fetch it.
	Manifest []byte
	// MaxSize bounds the extracted content and the compressed layer. 0 means 100 MiB.
	MaxSize int64
	// LayerMediaType picks the layer to extract. "" means the Flux content
	// type, else the single layer whose type ends in tar+gzip.
	LayerMediaType string
	// Progress receives a progress line when it is a terminal. nil means none.
	Progress io.Writer
}

func (o PullOptions) maxSize() int64 {
	if o.MaxSize <= 0 {
		return DefaultMaxSize
	}
	return o.MaxSize
}

// PullResult describes the pulled artifact.
type PullResult struct {
	// Ref carries the tag (if any) and the digest that was pulled.
	Ref         Reference         `json:"-"`
	URL         string            `json:"url"`
	Digest      string            `json:"digest"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Source      string            `json:"source,omitempty"`
	Revision    string            `json:"revision,omitempty"`
	Created     string            `json:"created,omitempty"`
	LayerDigest string            `json:"layerDigest"`
	Path        string            `json:"path,omitempty"`
}

// Resolve returns ref with its digest set: unchanged when it has one,
// otherwise by one HEAD request for the tag.
func Resolve(ctx context.Context, ref Reference, opts RemoteOptions) (Reference, error) {
	if ref.Digest != "" {
		return ref, nil
	}
	c, err := NewClient(opts.For(ref))
	if err != nil {
		return ref, err
	}
	return c.Resolve(ctx, ref)
}

// resolveIn is Resolve through a client the caller already has.
func resolveIn(ctx context.Context, repo *remote.Repository, ref Reference) (Reference, error) {
	if ref.Digest != "" {
		return ref, nil
	}
	desc, err := repo.Resolve(ctx, ref.Tag)
	if err != nil {
		return ref, classify("resolve", ref, err)
	}
	return ref.WithDigest(desc.Digest.String()), nil
}

// Manifest fetches ref's manifest by digest (resolving a tag first), checks
// its size bound and digest, and parses it.
func Manifest(ctx context.Context, ref Reference, opts RemoteOptions) (Reference, *ocispec.Manifest, error) {
	c, err := NewClient(opts.For(ref))
	if err != nil {
		return ref, nil, err
	}
	ref, m, _, err := c.Manifest(ctx, ref)
	return ref, m, err
}

func fetchManifest(ctx context.Context, repo *remote.Repository, ref Reference) (Reference, *ocispec.Manifest, error) {
	ref, m, _, err := fetchManifestBytes(ctx, repo, ref)
	return ref, m, err
}

// fetchManifestBytes is fetchManifest that also returns the manifest's bytes.
func fetchManifestBytes(ctx context.Context, repo *remote.Repository, ref Reference) (Reference, *ocispec.Manifest, []byte, error) {
	ref, err := resolveIn(ctx, repo, ref)
	if err != nil {
		return ref, nil, nil, err
	}
	want := ref.Digest
	desc, rc, err := repo.FetchReference(ctx, want)
	if err != nil {
		return ref, nil, nil, classify("fetch manifest", ref, err)
	}
	defer rc.Close()
	if desc.Size > MaxManifestSize {
		return ref, nil, nil, classify("fetch manifest", ref, fmt.Errorf("%w: manifest is %d bytes, the limit is %d", ErrTooLarge, desc.Size, MaxManifestSize))
	}
	if desc.Digest.String() != want {
		return ref, nil, nil, classify("fetch manifest", ref, fmt.Errorf("%w: asked for %s, registry answered %s", ErrDigest, want, desc.Digest))
	}
	body, err := content.ReadAll(rc, desc)
	if err != nil {
		if errors.Is(err, content.ErrMismatchedDigest) || errors.Is(err, content.ErrTrailingData) {
			err = fmt.Errorf("%w: %v", ErrDigest, err)
		}
		return ref, nil, nil, classify("fetch manifest", ref, err)
	}
	m, err := parseArtifactManifest(ref, desc.MediaType, body)
	if err != nil {
		return ref, nil, nil, err
	}
	return ref, m, body, nil
}

// knownManifest parses body, a manifest already read for ref, after
// checking that it hashes to ref's digest.
func knownManifest(ref Reference, body []byte) (*ocispec.Manifest, error) {
	want, err := digest.Parse(ref.Digest)
	if err != nil {
		return nil, fmt.Errorf("pull %s: a manifest given without the digest it must match: pin the reference by digest", ref)
	}
	if got := want.Algorithm().FromBytes(body); got != want {
		return nil, classify("pull", ref, fmt.Errorf("%w: the manifest given hashes to %s", ErrDigest, got))
	}
	if int64(len(body)) > MaxManifestSize {
		return nil, classify("pull", ref, fmt.Errorf("%w: manifest is %d bytes, the limit is %d", ErrTooLarge, len(body), MaxManifestSize))
	}
	return parseArtifactManifest(ref, "", body)
}

// parseArtifactManifest parses a single artifact's manifest (parseManifest,
// which the fuzz target covers); mediaType is the one the registry served it
// with ("" when unknown).
func parseArtifactManifest(ref Reference, mediaType string, body []byte) (*ocispec.Manifest, error) {
	m, err := parseManifest(ocispec.Descriptor{MediaType: mediaType}, body)
	if err != nil {
		return nil, fmt.Errorf("fetch manifest %s: %w", ref, err)
	}
	return m, nil
}

// contentLayer picks the layer to extract.
func contentLayer(ref Reference, m *ocispec.Manifest, mediaType string) (ocispec.Descriptor, error) {
	var types []string
	var candidates []ocispec.Descriptor
	for _, l := range m.Layers {
		types = append(types, l.MediaType)
		switch {
		case mediaType != "" && l.MediaType == mediaType:
			return l, nil
		case mediaType == "" && l.MediaType == ContentMediaType:
			return l, nil
		case mediaType == "" && (strings.HasSuffix(l.MediaType, "tar+gzip") || strings.HasSuffix(l.MediaType, ".tar.gzip")):
			candidates = append(candidates, l)
		}
	}
	if len(candidates) == 1 {
		return candidates[0], nil
	}
	want := mediaType
	if want == "" {
		want = ContentMediaType + " or a single tar+gzip layer"
	}
	return ocispec.Descriptor{}, fmt.Errorf("artifact %s has no layer of type %s (layers: %s): pick one with --layer-media-type", ref, want, strings.Join(types, ", "))
}

// openLayer streams the content layer of ref. The reader checks the size
// and digest as it reads; its verify func must be called after reading to EOF.
func (c *Client) openLayer(ctx context.Context, ref Reference, opts PullOptions) (Reference, *ocispec.Manifest, ocispec.Descriptor, io.ReadCloser, func() error, error) {
	repo, err := c.Repository(ref)
	if err != nil {
		return ref, nil, ocispec.Descriptor{}, nil, nil, err
	}
	var m *ocispec.Manifest
	if opts.Manifest != nil {
		m, err = knownManifest(ref, opts.Manifest)
	} else {
		ref, m, err = fetchManifest(ctx, repo, ref)
	}
	if err != nil {
		return ref, nil, ocispec.Descriptor{}, nil, nil, err
	}
	return openContent(ctx, repo.Blobs(), ref, m, opts)
}

// openLayerFrom is openLayer from a store at hand (an export's archive):
// ref must carry its digest.
func openLayerFrom(ctx context.Context, store oras.ReadOnlyTarget, ref Reference, opts PullOptions) (Reference, *ocispec.Manifest, ocispec.Descriptor, io.ReadCloser, func() error, error) {
	if ref.Digest == "" {
		return ref, nil, ocispec.Descriptor{}, nil, nil, fmt.Errorf("pull %s: a digest is required", ref)
	}
	desc, body, err := oras.FetchBytes(ctx, store, ref.Digest, oras.FetchBytesOptions{MaxBytes: MaxManifestSize})
	if err != nil {
		return ref, nil, ocispec.Descriptor{}, nil, nil, classify("fetch manifest", ref, err)
	}
	m, err := parseArtifactManifest(ref, desc.MediaType, body)
	if err != nil {
		return ref, nil, ocispec.Descriptor{}, nil, nil, err
	}
	return openContent(ctx, store, ref, m, opts)
}

// openContent picks m's content layer, checks its size against the limit,
// and streams it from blobs through verifyLayer.
func openContent(ctx context.Context, blobs content.Fetcher, ref Reference, m *ocispec.Manifest, opts PullOptions) (Reference, *ocispec.Manifest, ocispec.Descriptor, io.ReadCloser, func() error, error) {
	layer, err := contentLayer(ref, m, opts.LayerMediaType)
	if err != nil {
		return ref, m, layer, nil, nil, err
	}
	if layer.Size > opts.maxSize() {
		return ref, m, layer, nil, nil, classify("pull", ref, fmt.Errorf("%w: layer %s is %d bytes compressed, the limit is %d: raise --max-size if the artifact is trusted", ErrTooLarge, layer.Digest, layer.Size, opts.maxSize()))
	}
	rc, err := blobs.Fetch(ctx, layer)
	if err != nil {
		return ref, m, layer, nil, nil, classify("fetch layer "+layer.Digest.String()+" of", ref, err)
	}
	r, verify := verifyLayer(ref, layer, rc, opts)
	return ref, m, layer, r, verify, nil
}

// verifyLayer checks rc's size and digest as it is read; verify must be
// called after reading to EOF.
func verifyLayer(ref Reference, layer ocispec.Descriptor, rc io.ReadCloser, opts PullOptions) (io.ReadCloser, func() error) {
	vr := content.NewVerifyReader(progress.Reader(rc, opts.Progress, "pulling "+ref.Name(), layer.Size), layer)
	verify := func() error {
		// Read to the end, so the digest covers every byte the registry sent.
		if _, err := io.Copy(io.Discard, vr); err != nil {
			if errors.Is(err, content.ErrMismatchedDigest) || errors.Is(err, content.ErrTrailingData) {
				return layerDigestError(ref, layer, err)
			}
			// The transfer broke (reset, short body): the registry's
			// fault, and worth a retry; not content of another digest.
			return classify("fetch layer "+layer.Digest.String()+" of", ref, err)
		}
		if err := vr.Verify(); err != nil {
			return layerDigestError(ref, layer, err)
		}
		return nil
	}
	return readCloser{vr, rc}, verify
}

func layerDigestError(ref Reference, layer ocispec.Descriptor, err error) error {
	return classify("pull", ref, fmt.Errorf("%w: layer %s: %v", ErrDigest, layer.Digest, err))
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Pull fetches ref by digest (resolving a tag first), verifies every blob's
// size and digest, and extracts the content layer into dir safely. dir must
// be missing or empty; nothing lands in it unless the whole pull succeeds.
// It builds a client from opts.Remote; Client.Pull uses one already built.
func Pull(ctx context.Context, ref Reference, dir string, opts PullOptions) (*PullResult, error) {
	c, err := NewClient(opts.Remote.For(ref))
	if err != nil {
		return nil, err
	}
	return c.Pull(ctx, ref, dir, opts)
}

// Pull is Pull through this client (opts.Remote is not used). With
// opts.Manifest, the manifest is not fetched again.
func (c *Client) Pull(ctx context.Context, ref Reference, dir string, opts PullOptions) (*PullResult, error) {
	if err := checkEmptyDir(dir); err != nil {
		return nil, err
	}
	ref, m, layer, rc, verify, err := c.openLayer(ctx, ref, opts)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return extract(ref, m, layer, rc, verify, dir, opts)
}

// PullFrom is Pull from a store at hand, such as an export's
// Archive.Store, without the network: ref must carry its digest, and
// opts.Remote is not used.
func PullFrom(ctx context.Context, store oras.ReadOnlyTarget, ref Reference, dir string, opts PullOptions) (*PullResult, error) {
	if err := checkEmptyDir(dir); err != nil {
		return nil, err
	}
	ref, m, layer, rc, verify, err := openLayerFrom(ctx, store, ref, opts)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return extract(ref, m, layer, rc, verify, dir, opts)
}

// extract unpacks the content layer rc into dir through a staging directory.
func extract(ref Reference, m *ocispec.Manifest, layer ocispec.Descriptor, rc io.Reader, verify func() error, dir string, opts PullOptions) (*PullResult, error) {

	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", parent, err)
	}
	staging, err := os.MkdirTemp(parent, ".airlock-pull-*")
	if err != nil {
		return nil, fmt.Errorf("create staging directory in %s: %w", parent, err)
	}
	defer os.RemoveAll(staging)

	gz, err := gzip.NewReader(rc)
	if err != nil {
		if derr := verify(); derr != nil {
			return nil, derr
		}
		return nil, fmt.Errorf("pull %s: layer %s is not gzip: %v", ref, layer.Digest, err)
	}
	if err := safetar.Extract(gz, staging, safetar.Options{MaxSize: opts.maxSize()}); err != nil {
		// A corrupt stream is better reported as the digest mismatch it is.
		if derr := verify(); derr != nil && !errors.Is(err, safetar.ErrTooLarge) {
			return nil, derr
		}
		return nil, fmt.Errorf("pull %s: layer %s: %w", ref, layer.Digest, err)
	}
	if err := verify(); err != nil {
		return nil, err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("replace %s: %w", dir, err)
	}
	if err := os.Rename(staging, dir); err != nil {
		return nil, fmt.Errorf("move pulled content into %s: %w", dir, err)
	}
	res := resultFromManifest(ref, m, layer)
	res.Path = dir
	return res, nil
}

func resultFromManifest(ref Reference, m *ocispec.Manifest, layer ocispec.Descriptor) *PullResult {
	return &PullResult{
		Ref:         ref,
		URL:         ref.String(),
		Digest:      ref.Digest,
		Annotations: m.Annotations,
		Source:      m.Annotations[AnnotationSource],
		Revision:    m.Annotations[AnnotationRevision],
		Created:     m.Annotations[AnnotationCreated],
		LayerDigest: layer.Digest.String(),
	}
}

func checkEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("output directory %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("output directory %s is not empty: pull into a new or empty directory, so nothing is overwritten", dir)
	}
	return nil
}
