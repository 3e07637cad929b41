package airgap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	"airlock.dev/airlock/artifact"
)

// MaxBundleFileSize bounds a bundle file (bundle.yaml).
const MaxBundleFileSize = 1 << 20

// Bundle is a bundle file: the artifacts one export carries.
//
//	artifacts:
//	- ref: oci://registry.example.com/team/hello:1.4.0
//	  withImages: true
//	  kustomizePath: deploy   # optional: the directory rendered for images
type Bundle struct {
	Artifacts []BundleArtifact `json:"artifacts"`
}

// BundleArtifact is one artifact of a bundle file.
type BundleArtifact struct {
	// Ref is oci://HOST/REPO:TAG or @DIGEST; a tag is resolved once.
	Ref string `json:"ref"`
	// WithImages also carries the images its workloads use.
	WithImages bool `json:"withImages,omitempty"`
	// KustomizePath is the directory inside the artifact rendered to find
	// the images. "" means its root.
	KustomizePath string `json:"kustomizePath,omitempty"`
}

// ParseBundle parses a bundle file strictly (an unknown field is an
// error), at most MaxBundleFileSize bytes and artifact.MaxBundleArtifacts
// artifacts, each reference well formed and listed once.
func ParseBundle(b []byte) (*Bundle, error) {
	if len(b) > MaxBundleFileSize {
		return nil, fmt.Errorf("bundle file is %d bytes, over the %d-byte limit", len(b), MaxBundleFileSize)
	}
	var bf Bundle
	if err := yaml.UnmarshalStrict(b, &bf); err != nil {
		return nil, fmt.Errorf("bundle file: %w", err)
	}
	if n := len(bf.Artifacts); n == 0 || n > artifact.MaxBundleArtifacts {
		return nil, fmt.Errorf("bundle file lists %d artifacts: want 1 to %d under artifacts:", n, artifact.MaxBundleArtifacts)
	}
	seen := map[string]bool{}
	for i, a := range bf.Artifacts {
		if _, err := artifact.ParseReference(a.Ref); err != nil {
			return nil, fmt.Errorf("bundle file: artifacts[%d]: %w", i, err)
		}
		if seen[a.Ref] {
			return nil, fmt.Errorf("bundle file: artifacts[%d]: %s is listed twice", i, a.Ref)
		}
		seen[a.Ref] = true
	}
	return &bf, nil
}

// ReadBundle reads and parses the bundle file at p.
func ReadBundle(p string) (*Bundle, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxBundleFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("bundle file %s: %w", p, err)
	}
	bf, err := ParseBundle(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return bf, nil
}

// BundleOptions configures ExportBundle.
type BundleOptions struct {
	// Src, Platform, Progress and ImagesPolicy are as in Copy and Export;
	// WithImages and KustomizePath come from each bundle artifact.
	RelocateOptions
	// Since is a previous export (its tarball, or its index.json): the
	// images' blobs it carried or assumed are left out, and recorded as
	// assumed at the mirror. "" means a full export.
	Since string
}

// ExportBundle writes every artifact of b, each with its referrers, its
// signatures and (withImages) its images and theirs, as one OCI
// image-layout tarball at path (written beside it and renamed into place
// when whole). Each tag is resolved once; every artifact is pinned, and
// its images listed and checked, before anything is written.
func ExportBundle(ctx context.Context, b *Bundle, path string, opts BundleOptions) (*artifact.BundleIndex, []artifact.Relocated, error) {
	bo := artifact.BundleOptions{}
	if opts.Since != "" {
		since, err := artifact.ReadSiteBlobs(opts.Since)
		if err != nil {
			return nil, nil, err
		}
		bo.Since = since
	}
	var items []artifact.BundleItem
	for _, ba := range b.Artifacts {
		ref, err := artifact.ParseReference(ba.Ref)
		if err != nil {
			return nil, nil, err
		}
		o := opts.RelocateOptions
		o.WithImages, o.KustomizePath = ba.WithImages, ba.KustomizePath
		ref, images, err := pin(ctx, ref, o)
		if err != nil {
			return nil, nil, fmt.Errorf("bundle artifact %s: %w", ba.Ref, err)
		}
		items = append(items, artifact.BundleItem{Ref: ref, Images: images, KustomizePath: ba.KustomizePath})
	}
	bo.RelocateOptions = opts.relocate(nil)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".airlock-export-*")
	if err != nil {
		return nil, nil, fmt.Errorf("export bundle: %w", err)
	}
	defer os.Remove(tmp.Name())
	bi, rel, err := artifact.ExportBundle(ctx, items, tmp, bo)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("export bundle: %w", cerr)
	}
	if err != nil {
		return nil, rel, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, rel, fmt.Errorf("export bundle: %w", err)
	}
	return bi, rel, nil
}

// ImportBundle imports an export tarball, a bundle of artifacts or a
// single export, into mirror: each artifact is verified (with a Policy),
// checked and relocated with only what it reaches, as Import does for one.
// Every blob and manifest a differential export assumes is checked at the
// mirror (HEAD), then every artifact is checked (reading what is assumed
// from the mirror, by digest), before anything is pushed: a missing blob
// refuses the whole import, naming each missing one.
func ImportBundle(ctx context.Context, path string, mirror artifact.Reference, opts ImportOptions) ([]*ImportResult, error) {
	return importArchive(ctx, path, mirror, opts, true)
}

// importArchive checks the blobs the archive at path assumes at the
// mirror, then every artifact of it, then pushes each artifact.
func importArchive(ctx context.Context, path string, mirror artifact.Reference, opts ImportOptions, bundles bool) ([]*ImportResult, error) {
	refused := func(err error) error { return fmt.Errorf("import %s refused, nothing pushed: %w", path, err) }
	if opts.SiteKey != nil && len(opts.Policy.Keys) == 0 {
		return nil, refused(errors.New("a site signature needs an upstream policy: the site signs only what verified upstream"))
	}
	a, err := artifact.OpenArchive(ctx, path)
	if err != nil {
		return nil, refused(err)
	}
	// What a differential export left out must be at the mirror before
	// anything else: the checks below read it from there, by digest.
	if err := a.ReadAssumed(ctx, mirror, opts.Dst); err != nil {
		return nil, refused(err)
	}
	parts, err := a.Artifacts()
	if err != nil {
		return nil, refused(err)
	}
	if !bundles && len(parts) > 1 {
		return nil, refused(fmt.Errorf("a bundle of %d artifacts: import it with ImportBundle (airlock import does)", len(parts)))
	}
	var preps []*prepared
	for _, part := range parts {
		p, err := prepare(ctx, part, opts)
		if err != nil {
			if len(parts) > 1 {
				_, ref, _ := part.Artifact()
				err = fmt.Errorf("bundle artifact %s: %w", ref, err)
			}
			return nil, refused(err)
		}
		preps = append(preps, p)
	}
	var out []*ImportResult
	for _, p := range preps {
		res, err := p.push(ctx, mirror, opts)
		out = append(out, res)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}
