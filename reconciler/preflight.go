package reconciler

import (
	"context"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
)

// airGap is the stage between the build and apply of an artifact brought
// in with `airlock import`, when the Release asks for it: it reads the
// images lock stored next to the artifact (only one whose digest a trusted
// signature covers, for spec.relocateImages), rewrites every workload image
// of objs in place to its pinned digest at the mirror
// (spec.relocateImages), and checks that every pinned image is in the
// mirror (spec.imagesPreflight). It returns the rewrites. On failure
// nothing has been applied, and nothing is pruned.
func (r *Reconciler) airGap(ctx context.Context, rel *v1alpha1.Release, c *artifact.Client, ref artifact.Reference, objs []*unstructured.Unstructured, v *verified) ([]v1alpha1.RelocatedImage, error) {
	if !rel.Spec.RelocateImages && !rel.Spec.ImagesPreflight {
		return nil, nil
	}
	lock, err := imagesLock(ctx, c, ref, v.locks, rel.Spec.RelocateImages)
	if err != nil {
		return nil, err
	}
	if lock == nil {
		return nil, &ImagesMissingError{Ref: ref.String(), NoLock: true}
	}
	at := imageLocator(r.Mirrors, ref, lock)
	var relocated []v1alpha1.RelocatedImage
	if rel.Spec.RelocateImages {
		if relocated, err = relocateImages(ref, objs, lock, at); err != nil {
			return nil, err
		}
	}
	if rel.Spec.ImagesPreflight {
		if err := preflightImages(ctx, c, ref, lock, at); err != nil {
			return nil, err
		}
	}
	return relocated, nil
}

// imagesLock reads the images lock stored next to ref. signed are the lock
// digests that valid signatures by trusted keys cover (`airlock import
// --sign-key` records it). A lock at the mirror that is not one of them
// while some are signed was replaced there, and is refused. With
// requireSigned (spec.relocateImages: the lock then decides what runs), a
// lock no trusted signature covers is refused too; without it (a preflight
// that only checks presence) it is used as it is. nil means there is none.
func imagesLock(ctx context.Context, c *artifact.Client, ref artifact.Reference, signed []string, requireSigned bool) (*artifact.ImagesLock, error) {
	found, err := c.ImagesLockDigest(ctx, ref)
	if err != nil {
		return nil, err
	}
	switch {
	case found == "" && requireSigned:
		return nil, &ImagesLockError{Ref: ref.String(), Signed: signed}
	case found == "":
		return nil, nil
	case len(signed) == 0 && requireSigned:
		return nil, &ImagesLockError{Ref: ref.String(), Found: found}
	case len(signed) > 0 && !contains(signed, found):
		return nil, &ImagesLockError{Ref: ref.String(), Found: found, Signed: signed}
	}
	// Read by digest: what is read is what was signed.
	return c.ImagesLockAt(ctx, ref, found)
}

// imageLocator returns where an image pinned in lock sits at the mirror,
// by digest: through the controller's --registry-mirror rule for the
// image's host when there is one, else where `airlock import` put it,
// under the same mirror prefix as the artifact, at its own repository path.
func imageLocator(mirrors artifact.Mirrors, ref artifact.Reference, lock *artifact.ImagesLock) func(img artifact.Reference, digest string) artifact.Reference {
	prefix := ""
	if up, err := artifact.ParseReference(lock.Artifact); err == nil && strings.HasSuffix(ref.Repository, "/"+up.Repository) {
		prefix = strings.TrimSuffix(ref.Repository, "/"+up.Repository)
	}
	return func(img artifact.Reference, digest string) artifact.Reference {
		img.Tag, img.Digest = "", digest
		if _, ok := mirrors[img.Registry]; ok {
			return mirrors.Rewrite(img)
		}
		return artifact.MirrorImage(ref.Registry, prefix, img)
	}
}

// relocateImages rewrites every workload image of objs to the digest lock
// pins for it, at the mirror: MIRROR/PATH@sha256:…. An image the lock does
// not pin refuses the artifact, with every such image named.
func relocateImages(ref artifact.Reference, objs []*unstructured.Unstructured, lock *artifact.ImagesLock, at func(artifact.Reference, string) artifact.Reference) ([]v1alpha1.RelocatedImage, error) {
	pinned := map[string]string{}
	for _, l := range lock.Images {
		pinned[l.Reference] = l.Digest
	}
	maps := make([]map[string]any, 0, len(objs))
	for _, o := range objs {
		maps = append(maps, o.Object)
	}
	rewritten := map[string]string{}
	missing := map[string]bool{}
	var errs []string
	artifact.RewriteImages(maps, func(img string) string {
		if to, ok := rewritten[img]; ok {
			return to
		}
		d, ok := pinned[img]
		if !ok {
			missing[img] = true
			return img
		}
		iref, err := artifact.ParseImage(img)
		if err != nil {
			errs = append(errs, err.Error())
			return img
		}
		if iref.Digest != "" && iref.Digest != d {
			errs = append(errs, img+" names "+iref.Digest+", the images lock pins "+d)
			return img
		}
		to := at(iref, d).DigestRef()
		rewritten[img] = to
		return to
	})
	if len(missing) > 0 || len(errs) > 0 {
		return nil, &ImageNotInLockError{Ref: ref.String(), Images: sortedKeys(missing), Errors: errs}
	}
	out := make([]v1alpha1.RelocatedImage, 0, len(rewritten))
	for from, to := range rewritten {
		out = append(out, v1alpha1.RelocatedImage{From: from, To: to})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From < out[j].From })
	return out, nil
}

// preflightImages checks that every image pinned in lock exists at the
// mirror: one HEAD request each.
func preflightImages(ctx context.Context, c *artifact.Client, ref artifact.Reference, lock *artifact.ImagesLock, at func(artifact.Reference, string) artifact.Reference) error {
	var missing []string
	for _, img := range lock.Images {
		iref, err := artifact.ParseImage(img.Reference)
		if err != nil {
			return err
		}
		where := at(iref, img.Digest)
		ok, err := c.Exists(ctx, where)
		if err != nil {
			return err
		}
		if !ok {
			missing = append(missing, img.Reference+" ("+where.String()+")")
		}
	}
	if len(missing) > 0 {
		return &ImagesMissingError{Ref: ref.String(), Missing: missing}
	}
	return nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
