package artifact

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry/remote"

	"airlock.dev/airlock/internal/progress"
)

// emptyConfig is the config blob of every airlock artifact, as in Flux.
var emptyConfig = []byte("{}")

// PushOptions describes an artifact to push. The zero value pushes with no
// source or revision annotation, created at the Unix epoch (or
// SOURCE_DATE_EPOCH), over HTTPS with docker's credentials.
type PushOptions struct {
	Remote RemoteOptions
	Pack   PackOptions
	// Source is the git URL, recorded as org.opencontainers.image.source. "" omits it.
	Source string
	// Revision is BRANCH@sha1:COMMIT, recorded as org.opencontainers.image.revision. "" omits it.
	Revision string
	// Annotations are added to the manifest. nil means none.
	Annotations map[string]string
	// Created is recorded as org.opencontainers.image.created. Zero means
	// $SOURCE_DATE_EPOCH, else the Unix epoch, so the digest stays reproducible.
	Created time.Time
	// Progress receives a progress line when it is a terminal. nil means none.
	Progress io.Writer
}

// PushResult is what was pushed.
type PushResult struct {
	// Ref carries the tag and the manifest digest.
	Ref         Reference         `json:"-"`
	Digest      string            `json:"digest"`
	URL         string            `json:"url"`
	Tag         string            `json:"tag"`
	Source      string            `json:"source,omitempty"`
	Revision    string            `json:"revision,omitempty"`
	Annotations map[string]string `json:"annotations"`
	LayerDigest string            `json:"layerDigest"`
	LayerSize   int64             `json:"layerSize"`
	Files       int               `json:"files"`
	// Skipped lists paths left out of the layer (symlinks, sockets).
	Skipped []string `json:"skipped,omitempty"`
}

// CreatedTime returns t in UTC, or the Unix epoch when t is zero, so that
// the same content without a time has the same digest. (The CLI reads
// SOURCE_DATE_EPOCH; a library reads no environment.)
func CreatedTime(t time.Time) time.Time {
	if !t.IsZero() {
		return t.UTC()
	}
	return epoch
}

// Push packs path and pushes it to ref's tag as a Flux-compatible artifact.
// It returns once the registry holds the manifest under the tag. It builds
// a client from opts.Remote; Client.Push uses one already built.
func Push(ctx context.Context, ref Reference, path string, opts PushOptions) (*PushResult, error) {
	c, err := NewClient(opts.Remote.For(ref))
	if err != nil {
		return nil, err
	}
	return c.Push(ctx, ref, path, opts)
}

// Push is Push through this client (opts.Remote is not used).
func (c *Client) Push(ctx context.Context, ref Reference, path string, opts PushOptions) (*PushResult, error) {
	return c.push(ctx, ref, path, opts, mediaTypes{config: ConfigMediaType, configBody: emptyConfig, layer: ContentMediaType})
}

// mediaTypes are what an artifact's manifest says its config and layer are.
type mediaTypes struct {
	config     string
	configBody []byte
	layer      string
}

func (c *Client) push(ctx context.Context, ref Reference, path string, opts PushOptions, types mediaTypes) (*PushResult, error) {
	if ref.Digest != "" {
		return nil, fmt.Errorf("push %s: push takes a tag, not a digest (the digest comes from the content)", ref)
	}
	if ref.Tag == "" {
		return nil, fmt.Errorf("push %s: a tag is required, for example %s", ref, ref.WithTag("latest"))
	}
	created := CreatedTime(opts.Created)
	layerFile, packed, err := PackFile(ctx, path, opts.Pack)
	if err != nil {
		return nil, err
	}
	defer os.Remove(layerFile.Name())
	defer layerFile.Close()

	annotations := map[string]string{}
	for k, v := range opts.Annotations {
		annotations[k] = v
	}
	if opts.Source != "" {
		annotations[AnnotationSource] = opts.Source
	}
	if opts.Revision != "" {
		annotations[AnnotationRevision] = opts.Revision
	}
	annotations[AnnotationCreated] = created.Format(time.RFC3339)

	repo, err := c.Repository(ref)
	if err != nil {
		return nil, err
	}
	configDesc := ocispec.Descriptor{MediaType: types.config, Digest: digest.FromBytes(types.configBody), Size: int64(len(types.configBody))}
	layerDesc := ocispec.Descriptor{MediaType: types.layer, Digest: packed.Digest, Size: packed.Size}

	if err := pushBlob(ctx, repo, configDesc, bytes.NewReader(types.configBody)); err != nil {
		return nil, classify("push config of", ref, err)
	}
	body := progress.Reader(layerFile, opts.Progress, "pushing "+ref.Name(), packed.Size)
	if err := pushBlob(ctx, repo, layerDesc, body); err != nil {
		return nil, classify("push layer "+packed.Digest.String()+" of", ref, err)
	}

	// oras-go's packer builds the manifest (image-spec 1.1; the Flux config
	// type needs no artifactType), and pushes it under the tag in one request.
	manifestDesc, err := oras.PackManifest(ctx, tagPusher{repo, ref.Tag}, oras.PackManifestVersion1_1, "", oras.PackManifestOptions{
		ConfigDescriptor:    &configDesc,
		Layers:              []ocispec.Descriptor{layerDesc},
		ManifestAnnotations: annotations,
	})
	if err != nil {
		return nil, classify("push manifest of", ref, err)
	}
	// Exit 0 only when the registry serves the manifest under the tag.
	got, err := repo.Resolve(ctx, ref.Tag)
	if err != nil {
		return nil, classify("confirm push of", ref, err)
	}
	if got.Digest != manifestDesc.Digest {
		return nil, fmt.Errorf("push %s: the registry now serves %s for the tag, not the pushed %s: another push raced this one; retry", ref, got.Digest, manifestDesc.Digest)
	}
	pushed := ref.WithDigest(manifestDesc.Digest.String())
	return &PushResult{
		Ref:         pushed,
		Digest:      pushed.Digest,
		URL:         pushed.String(),
		Tag:         ref.Tag,
		Source:      opts.Source,
		Revision:    opts.Revision,
		Annotations: annotations,
		LayerDigest: packed.Digest.String(),
		LayerSize:   packed.Size,
		Files:       packed.Files,
		Skipped:     packed.Skipped,
	}, nil
}

// pushBlob uploads a blob unless the registry already has it.
func pushBlob(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, r io.Reader) error {
	ok, err := repo.Blobs().Exists(ctx, desc)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	return repo.Blobs().Push(ctx, desc, r)
}

// tagPusher pushes what oras-go's packer gives it (the manifest only: the
// config and layer are pushed before) under a tag, in one request.
type tagPusher struct {
	repo *remote.Repository
	tag  string
}

func (p tagPusher) Push(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	return p.repo.PushReference(ctx, desc, r, p.tag)
}
