package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
)

// cosign's storage format, written here as cosign writes it (pkg/oci/static,
// pkg/oci/mutate, pkg/oci/remote) without linking those packages: they
// bring cosign's Rekor bundle types, and with them the Rekor, TUF,
// sigstore-go and CT clients that an offline controller never calls.
// TestCosignCLIKeysAndSignatures and TestAirlockSignaturesPassCosignRules
// check the result with cosign's own code.
const (
	// sigAnnotation holds a layer's base64 signature (static.SignatureAnnotationKey).
	sigAnnotation = "dev.cosignproject.cosign/signature"
	// certAnnotation and chainAnnotation hold a signing certificate and its
	// chain, PEM (static.CertificateAnnotationKey, static.ChainAnnotationKey).
	certAnnotation  = "dev.sigstore.cosign/certificate"
	chainAnnotation = "dev.sigstore.cosign/chain"
	// simpleSigningMediaType is a signature layer's type (types.SimpleSigningMediaType).
	simpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// dssePayloadType is an attestation layer's type (types.DssePayloadType).
	dssePayloadType = "application/vnd.dsse.envelope.v1+json"
)

// attachedLayer is a layer to add to a .sig or .att manifest.
type attachedLayer struct {
	MediaType   string
	Blob        []byte
	Annotations map[string]string
}

// attachedManifest is the manifest on a .sig or .att tag as read: nil body
// when the tag does not exist.
type attachedManifest struct {
	Layers []ocispec.Descriptor
}

// errMalformedAttached: the manifest on a .sig or .att tag is not an image manifest.
var errMalformedAttached = errors.New("not an image manifest")

// readAttached reads the manifest on tag, bounded by
// MaxSignatureManifestSize; a missing tag is an empty manifest.
func readAttached(ctx context.Context, repo *remote.Repository, tag string) (attachedManifest, error) {
	_, body, err := fetchManifest(ctx, repo, tag, MaxSignatureManifestSize)
	if errors.Is(err, errdef.ErrNotFound) {
		return attachedManifest{}, nil
	}
	if err != nil {
		return attachedManifest{}, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return attachedManifest{}, fmt.Errorf("%w: %v", errMalformedAttached, err)
	}
	return attachedManifest{Layers: m.Layers}, nil
}

// appendLayer stores m plus l on tag as cosign's mutate.Append and
// remote.Write do: the layer blob, an image config listing every layer as
// a diff ID, and an OCI image manifest whose layers carry their
// annotations, tagged tag.
func appendLayer(ctx context.Context, repo *remote.Repository, tag string, m attachedManifest, l attachedLayer) error {
	layer := ocispec.Descriptor{
		MediaType:   l.MediaType,
		Digest:      digest.FromBytes(l.Blob),
		Size:        int64(len(l.Blob)),
		Annotations: l.Annotations,
	}
	layers := append(append([]ocispec.Descriptor{}, m.Layers...), layer)
	cfg := v1.ConfigFile{RootFS: v1.RootFS{Type: "layers"}}
	for _, d := range layers {
		h, err := v1.NewHash(d.Digest.String())
		if err != nil {
			return fmt.Errorf("layer %s: %w", d.Digest, err)
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, h)
		cfg.History = append(cfg.History, v1.History{})
	}
	cfgBytes, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	config := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfgBytes), Size: int64(len(cfgBytes))}
	for _, b := range []struct {
		d    ocispec.Descriptor
		blob []byte
	}{{layer, l.Blob}, {config, cfgBytes}} {
		if ok, err := repo.Exists(ctx, b.d); err == nil && ok {
			continue
		}
		if err := repo.Push(ctx, b.d, bytes.NewReader(b.blob)); err != nil {
			return fmt.Errorf("push blob %s: %w", b.d.Digest, err)
		}
	}
	body, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config,
		Layers:    layers,
	})
	if err != nil {
		return err
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(body), Size: int64(len(body))}
	if err := repo.PushReference(ctx, desc, bytes.NewReader(body), tag); err != nil {
		return fmt.Errorf("push manifest %s: %w", tag, err)
	}
	return nil
}
