// Package airgap carries artifacts between registries and across an air
// gap. Copy and Export pin the artifact's tag to one digest, list the images
// that digest's workloads use, and carry that one digest with them. Import
// checks an export against its upstream signatures and against what the
// signed artifact reaches, pushes it into a site mirror, and signs it for
// the site. The CLI is a thin shell over these functions.
package airgap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/build"
	"airlock.dev/airlock/build/helmrender"
	"airlock.dev/airlock/verify"
)

// RelocateOptions configures Copy and Export. The zero value carries the
// artifact, its referrers and signatures, no images, over HTTPS.
type RelocateOptions struct {
	// Src reaches the source registry (and the images' registries).
	Src artifact.RemoteOptions
	// Dst reaches the destination registry (Copy only).
	Dst artifact.RemoteOptions
	// WithImages also carries every container image the artifact's
	// workloads use, tags pinned to digests. false means no images.
	WithImages bool
	// KustomizePath is the directory inside the artifact rendered to find
	// the images. "" means its root.
	KustomizePath string
	// Platform narrows images named by tag to one platform, as
	// os/arch[/variant]. "" means every platform.
	Platform string
	// Progress receives progress lines when it is a terminal. nil means none.
	Progress io.Writer
	// ImagesPolicy, with keys, refuses a relocation whose images (WithImages)
	// are not signed under it, before anything is carried, naming each
	// image. No Keys means the images' signatures are carried unchecked.
	ImagesPolicy verify.Policy
}

// Copy copies src, with its referrers, its signatures and (WithImages) the
// images its workloads use, to dst, digests unchanged. src's tag is
// resolved once: the images listed and the artifact copied belong to that
// one digest even if the tag moves meanwhile.
func Copy(ctx context.Context, src, dst artifact.Reference, opts RelocateOptions) ([]artifact.Relocated, error) {
	src, images, err := pin(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	return artifact.Copy(ctx, src, dst, opts.relocate(images))
}

// Export writes ref, with its referrers, its signatures and (WithImages)
// the images its workloads use, as one OCI image-layout tarball at path:
// written beside it and renamed into place when whole, so path never holds
// half an export. ref's tag is resolved once, as in Copy.
func Export(ctx context.Context, ref artifact.Reference, path string, opts RelocateOptions) (*artifact.ImagesLock, []artifact.Relocated, error) {
	ref, images, err := pin(ctx, ref, opts)
	if err != nil {
		return nil, nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".airlock-export-*")
	if err != nil {
		return nil, nil, fmt.Errorf("export %s: %w", ref, err)
	}
	defer os.Remove(tmp.Name())
	lock, rel, err := artifact.Export(ctx, ref, tmp, opts.relocate(images))
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("export %s: %w", ref, cerr)
	}
	if err != nil {
		return nil, rel, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, rel, fmt.Errorf("export %s: %w", ref, err)
	}
	return lock, rel, nil
}

func (o RelocateOptions) relocate(images []string) artifact.RelocateOptions {
	ro := artifact.RelocateOptions{Src: o.Src, Dst: o.Dst, Images: images, Platform: o.Platform, KustomizePath: o.KustomizePath, Progress: o.Progress}
	if len(o.ImagesPolicy.Keys) > 0 {
		ro.CheckImages = checkImageSignatures(o.ImagesPolicy)
	}
	return ro
}

// pin resolves ref's tag to a digest once and, WithImages, lists the images
// of that digest's workloads.
func pin(ctx context.Context, ref artifact.Reference, opts RelocateOptions) (artifact.Reference, []string, error) {
	ref, err := artifact.Resolve(ctx, ref, opts.Src)
	if err != nil {
		return ref, nil, err
	}
	if !opts.WithImages {
		return ref, nil, nil
	}
	images, err := contentImages(ctx, opts.KustomizePath, func(dir string) (*artifact.PullResult, error) {
		return artifact.Pull(ctx, ref, dir, artifact.PullOptions{Remote: opts.Src, Progress: opts.Progress})
	})
	if err != nil {
		return ref, nil, fmt.Errorf("--with-images: %w", err)
	}
	return ref, images, nil
}

// contentImages pulls an artifact into a temporary directory (pull
// extracts it safely), renders path inside it with kustomize, or with
// Helm's template engine when it is a Helm chart (chartForImages), offline,
// and lists the images of its workloads. ctx stops the build (Ctrl-C, SIGTERM).
func contentImages(ctx context.Context, path string, pull func(dir string) (*artifact.PullResult, error)) ([]string, error) {
	tmp, err := os.MkdirTemp("", "airlock-images-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	pulled, err := pull(filepath.Join(tmp, "a"))
	if err != nil {
		return nil, err
	}
	opts := build.Options{ChartRenderer: helmrender.Engine{}} // the CLI renders charts in its own process
	if build.IsChart(pulled.Path, path) {
		opts.Chart = &chartForImages
	}
	objs, info, err := build.Render(ctx, pulled.Path, path, pulled.Digest, opts)
	if err != nil {
		return nil, err
	}
	maps := make([]map[string]any, 0, len(objs))
	for _, o := range objs {
		maps = append(maps, o.Object)
	}
	images := artifact.Images(maps)
	if info != nil {
		images = union(images, info.Images)
	}
	return images, nil
}

// chartForImages is how a Helm chart is rendered to find its images: with
// its default values (what a site's values change is not known here, so
// an image only a site's values name must be listed in the chart's
// artifacthub.io/images annotation), and with its hook templates, which
// run images too.
var chartForImages = build.Chart{ReleaseName: "airlock-images", Namespace: "default", IncludeHooks: true}

// union is the members of a and b, sorted, without repeats.
func union(a, b []string) []string {
	seen := make(map[string]bool, len(a)+len(b))
	var out []string
	for _, s := range append(append([]string{}, a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// ImportOptions configures Import.
type ImportOptions struct {
	// Dst reaches the mirror.
	Dst artifact.RemoteOptions
	// Policy verifies the upstream signatures inside the archive before
	// anything is pushed. No Keys means the archive is trusted as it is,
	// unverified (ImportResult.Verified is false).
	Policy verify.Policy
	// SiteKey signs the imported artifact for the site, with the upstream
	// signers, reference and import time in the signed payload
	// (verify.ChainAnnotations). nil means no site signature. It needs Policy.
	SiteKey *verify.PrivateKey
	// Now is the import time a site signature records. nil means time.Now.
	Now func() time.Time
	// Progress receives progress lines when it is a terminal. nil means none.
	Progress io.Writer
}

// ImportResult is a finished import.
type ImportResult struct {
	// Verified says the upstream signatures verified under the policy. false
	// means the tarball was trusted as it is, unverified.
	Verified bool `json:"verified"`
	// Upstream is the upstream verification; nil when unverified.
	Upstream *verify.Result `json:"upstream,omitempty"`
	// Relocated is every reference pushed to the mirror.
	Relocated []artifact.Relocated `json:"relocated"`
}

// Import pushes the export tarball at path into mirror (oci://HOST[/PREFIX]),
// digests unchanged, and only what its one artifact reaches: the artifact,
// its signatures and other attached tags of its digest in its own
// repository, its OCI 1.1 referrers, and the images pinned in images.lock
// that the artifact's own content references (rendered offline from the
// archive), with the images' own signatures and referrers. Every blob is
// checked against its digest, the upstream signatures are verified (with a
// Policy), and every index.json entry is checked, before any request to
// the mirror: one entry the artifact does not reach refuses the whole
// import. With a SiteKey, the site signs the imported artifact. A bundle
// of several artifacts is ImportBundle's.
//
// Which digest an image tag pinned in images.lock stands for is trusted as
// exported. The site signature records the digest of the images lock the
// import stored (verify.ChainImagesLock), so the controller can tell that
// lock from one swapped at the mirror.
func Import(ctx context.Context, path string, mirror artifact.Reference, opts ImportOptions) (*ImportResult, error) {
	res, err := importArchive(ctx, path, mirror, opts, false)
	if len(res) == 0 {
		return nil, err
	}
	return res[0], err
}

// prepared is one artifact of an archive, checked and ready to push.
type prepared struct {
	a           *artifact.Archive
	upstreamRef artifact.Reference
	images      []string
	res         *ImportResult
}

// prepare checks one artifact of an archive, reading only the archive:
// its upstream signatures (with a Policy), the images its content
// references, and every entry against what it reaches.
func prepare(ctx context.Context, a *artifact.Archive, opts ImportOptions) (*prepared, error) {
	verified := len(opts.Policy.Keys) > 0
	_, upstreamRef, err := a.Artifact()
	if err != nil {
		return nil, err
	}
	p := &prepared{a: a, upstreamRef: upstreamRef, res: &ImportResult{Verified: verified}}
	if verified {
		if p.res.Upstream, err = verify.VerifyArchive(ctx, a, opts.Policy); err != nil {
			return nil, err
		}
		if p.res.Upstream.Digest != upstreamRef.Digest {
			return nil, fmt.Errorf("verified %s, but the archive's artifact is %s", p.res.Upstream.Digest, upstreamRef.Digest)
		}
	}
	if len(a.Lock.Images) > 0 {
		p.images, err = contentImages(ctx, a.Lock.KustomizePath, func(dir string) (*artifact.PullResult, error) {
			return artifact.PullFrom(ctx, a.Store, upstreamRef, dir, artifact.PullOptions{})
		})
		if err != nil {
			return nil, fmt.Errorf("list the images of %s to check %s: %w", upstreamRef, artifact.ImagesLockFile, err)
		}
	}
	if err := artifact.CheckImport(ctx, a, p.images); err != nil {
		if errors.Is(err, artifact.ErrNotReached) {
			return nil, fmt.Errorf("%w\nthe archive holds more than its artifact reaches, so it was altered after the export: export the artifact again from upstream with airlock export", err)
		}
		return nil, err
	}
	return p, nil
}

// push pushes one prepared artifact into mirror and, with a SiteKey, signs it.
func (p *prepared) push(ctx context.Context, mirror artifact.Reference, opts ImportOptions) (*ImportResult, error) {
	a, upstreamRef, res := p.a, p.upstreamRef, p.res
	var err error
	res.Relocated, err = artifact.Import(ctx, a, mirror, artifact.ImportOptions{Dst: opts.Dst, ContentImages: p.images, Progress: opts.Progress})
	if err != nil {
		return res, err
	}
	if opts.SiteKey != nil {
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		target := artifact.MirrorImage(mirror.Registry, mirror.Repository, upstreamRef)
		annotations := verify.ChainAnnotations(res.Upstream, upstreamRef.String(), now())
		for _, r := range res.Relocated {
			if r.Role == artifact.RoleImagesLock {
				// The site vouches for the lock the import stored: the
				// controller uses a lock only when a trusted signature names it.
				annotations[verify.ChainImagesLock] = r.Digest
			}
		}
		sig, err := verify.Sign(ctx, target, opts.SiteKey, annotations, opts.Dst)
		if err != nil {
			return res, fmt.Errorf("imported, but the site signature failed: %w", err)
		}
		res.Relocated = append(res.Relocated, artifact.Relocated{Role: "site-signature", Source: upstreamRef.String(), Target: target.WithTag(sig.SignatureTag).String(), Digest: sig.Digest})
	}
	return res, nil
}
