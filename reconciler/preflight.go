package reconciler

import (
	"context"
	"fmt"
	"strings"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
)

// ImagesMissingError is an artifact whose pinned images are not all in the
// mirror, or that has no images lock to check.
type ImagesMissingError struct {
	Ref     string
	Missing []string
	// NoLock is set when the artifact has no images lock at all.
	NoLock bool
}

func (e *ImagesMissingError) Error() string {
	if e.NoLock {
		return fmt.Sprintf("spec.imagesPreflight is set, but %s has no images lock next to it (tag sha256-<hex>%s): bring it in with `airlock import` of an `airlock export --with-images` tarball, or unset spec.imagesPreflight",
			e.Ref, artifact.ImagesLockSuffix)
	}
	return fmt.Sprintf("images preflight of %s: %d images pinned in its images lock are missing from the mirror: %s: relocate them with `airlock export --with-images` and `airlock import`, then reconcile",
		e.Ref, len(e.Missing), strings.Join(e.Missing, ", "))
}

// preflightImages checks, when the Release asks, that every image in the
// artifact's images lock exists in the mirror: one HEAD request each. The
// images sit where `airlock import` put them: under the same mirror prefix
// as the artifact, at their own repository path.
func (r *Reconciler) preflightImages(ctx context.Context, rel *v1alpha1.Release, c *artifact.Client, ref artifact.Reference) error {
	if !rel.Spec.ImagesPreflight {
		return nil
	}
	lock, err := c.FetchImagesLock(ctx, ref)
	if err != nil {
		return err
	}
	if lock == nil {
		return &ImagesMissingError{Ref: ref.String(), NoLock: true}
	}
	prefix := ""
	if up, err := artifact.ParseReference(lock.Artifact); err == nil && strings.HasSuffix(ref.Repository, "/"+up.Repository) {
		prefix = strings.TrimSuffix(ref.Repository, "/"+up.Repository)
	}
	var missing []string
	for _, img := range lock.Images {
		iref, err := artifact.ParseImage(img.Reference)
		if err != nil {
			return err
		}
		iref.Tag, iref.Digest = "", img.Digest
		at := artifact.MirrorImage(ref.Registry, prefix, iref)
		ok, err := c.Exists(ctx, at)
		if err != nil {
			return err
		}
		if !ok {
			missing = append(missing, img.Reference+" ("+at.String()+")")
		}
	}
	if len(missing) > 0 {
		return &ImagesMissingError{Ref: ref.String(), Missing: missing}
	}
	return nil
}
