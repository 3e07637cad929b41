package reconciler

import (
	"context"
	"strings"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
)

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
