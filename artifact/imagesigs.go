package artifact

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
)

// Roles of what an image carries along (dev.airlock.role in an export): its
// cosign signatures, attestations and SBOMs (the sha256-<hex>.sig, .att and
// .sbom tags of its digest) and its OCI 1.1 referrers, in its own repository.
const (
	roleImageSignature = "image-signature"
	roleImageReferrer  = "image-referrer"
)

// imageSideTags are the tags of an image digest a relocation carries:
// cosign's .sig, .att and .sbom.
var imageSideTags = []string{".sig", ".att", ".sbom"}

// isImageRole says whether a move is read from (and lands in) the image's
// own repository rather than the artifact's.
func isImageRole(role string) bool {
	return role == roleImage || role == roleImageSignature || role == roleImageReferrer
}

// imageAttachments pins what travels with the image img (pinned by
// digest) in repo: the cosign tags of its digest and its OCI 1.1 referrers
// (at most MaxReferrers; the referrers API where the registry has it, else
// the referrers tag schema). Images locks stay behind.
func imageAttachments(ctx context.Context, repo *remote.Repository, img Reference) ([]move, error) {
	desc, err := repo.Resolve(ctx, img.Digest)
	if err != nil {
		return nil, classify("resolve image", img, err)
	}
	var list []move
	n := 0
	err = repo.Referrers(ctx, desc, "", func(page []ocispec.Descriptor) error {
		for _, r := range page {
			if n++; n > MaxReferrers {
				return fmt.Errorf("%w: more than %d referrers", ErrTooLarge, MaxReferrers)
			}
			if r.ArtifactType == ImagesLockMediaType {
				continue
			}
			list = append(list, move{role: roleImageReferrer, src: img.WithTag("").WithDigest(r.Digest.String())})
		}
		return nil
	})
	if err != nil && !errors.Is(err, errdef.ErrNotFound) {
		return nil, classify("list the referrers of image", img, err)
	}
	for _, s := range imageSideTags {
		tag := AttachedTag(img.Digest, s)
		d, err := repo.Resolve(ctx, tag)
		if errors.Is(err, errdef.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, classify("resolve "+tag+" of image", img, err)
		}
		list = append(list, move{role: roleImageSignature, src: img.WithTag(tag).WithDigest(d.Digest.String())})
	}
	return list, nil
}

// imageAttachment says why the index.json entry m (named ref, role
// image-signature or image-referrer) cannot go along with the images an
// import carries; "" when it can. images maps REPO@DIGEST to the index
// entry of each image the import carries. A signature must be a cosign tag
// (.sig, .att, .sbom) of one of those images' digests, in its repository; a
// referrer must name one of them as its subject, in its repository. Both
// must be single manifests whose subject, if any, is that image.
func (a *Archive) imageAttachment(ctx context.Context, m ocispec.Descriptor, ref Reference, images map[string]ocispec.Descriptor) string {
	switch m.Annotations[AnnotationRole] {
	case roleImageSignature:
		if ref.Digest != "" || ref.Tag == "" {
			return "an image signature is named REPO:sha256-<hex>.sig (.att, .sbom), by the tag of its image's digest"
		}
		var subject, suffix string
		for _, s := range imageSideTags {
			if hexPart, ok := strings.CutSuffix(ref.Tag, s); ok && strings.HasPrefix(hexPart, "sha256-") {
				subject, suffix = "sha256:"+strings.TrimPrefix(hexPart, "sha256-"), s
			}
		}
		img, ok := images[ref.Name()+"@"+subject]
		if subject == "" || digest.Digest(subject).Validate() != nil || !ok {
			return "not a .sig, .att or .sbom tag of an image this import carries in " + ref.Name()
		}
		if why := attachedMediaType(m); why != "" {
			return why
		}
		man, why := a.readAttached(ctx, m)
		if why != "" {
			return why
		}
		if why := attachedSubject(man, img, false); why != "" {
			return why
		}
		return sideTagLayers(man, suffix)
	default: // roleImageReferrer
		if ref.Tag != "" || ref.Digest != m.Digest.String() {
			return "an image referrer is named REPO@DIGEST, by its own digest"
		}
		// Read once: the subject names the image, then the same manifest
		// is checked as any attached one.
		man, why := a.readAttached(ctx, m)
		if why != "" {
			return why
		}
		if man.Subject == nil {
			return "a referrer without a subject"
		}
		img, ok := images[ref.Name()+"@"+man.Subject.Digest.String()]
		if !ok {
			return "its subject " + man.Subject.Digest.String() + " is not an image this import carries in " + ref.Name()
		}
		if why := attachedMediaType(m); why != "" {
			return why
		}
		return attachedSubject(man, img, true)
	}
}

// Layer media types of cosign's attached tags.
const (
	cosignSignatureLayer = "application/vnd.dev.cosign.simplesigning.v1+json"
	dsseEnvelopeLayer    = "application/vnd.dsse.envelope.v1+json"
)

// sideTagLayers says why man cannot be the cosign tag of an image with the
// given suffix; "" when it can: a .sig holds cosign signatures only, an
// .att DSSE envelopes only, and an .sbom no image layers, so none of them
// can carry an image into the mirror under a cosign tag.
func sideTagLayers(man ocispec.Manifest, suffix string) string {
	for _, l := range man.Layers {
		var ok bool
		switch suffix {
		case ".sig":
			ok = l.MediaType == cosignSignatureLayer
		case ".att":
			ok = l.MediaType == dsseEnvelopeLayer
		default: // .sbom
			ok = !strings.Contains(l.MediaType, ".image.layer.") && !strings.Contains(l.MediaType, ".image.rootfs.")
		}
		if !ok {
			return fmt.Sprintf("a %s tag with a layer of media type %q (%s): it holds no cosign %s", suffix, l.MediaType, l.Digest, map[string]string{".sig": "signature", ".att": "attestation", ".sbom": "SBOM"}[suffix])
		}
	}
	return ""
}
