package airgap

import (
	"context"
	"errors"
	"fmt"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

// ImageSignatureError is an export refused because some of its images are
// not signed as ImagesPolicy requires. Failures keeps each image's own
// verification error, each naming the image.
type ImageSignatureError struct {
	Images   int
	Failures []error
}

func (e *ImageSignatureError) Error() string {
	return fmt.Sprintf("%d of %d images are not signed as --verify-images-key requires, nothing was exported: %v\nsign each image upstream with one of the keys (cosign sign --key KEY IMAGE@DIGEST), or export without --verify-images-key",
		len(e.Failures), e.Images, errors.Join(e.Failures...))
}

func (e *ImageSignatureError) Unwrap() []error { return e.Failures }

// checkImageSignatures verifies, under p, the cosign signatures of every
// image pinned by digest, before anything is carried: the signature must
// be over the digest carried (cosign's sha256-<hex>.sig tag) or, for an
// image that --platform narrowed, over the index its tag resolved to, as
// cosign commonly signs the index. Each image that fails is named in the
// error, with both digests.
func checkImageSignatures(p verify.Policy) func(ctx context.Context, images []artifact.PinnedImage, src artifact.RemoteOptions) error {
	return func(ctx context.Context, images []artifact.PinnedImage, src artifact.RemoteOptions) error {
		c, err := artifact.NewClient(src)
		if err != nil {
			return err
		}
		var failed []error
		for _, img := range images {
			_, err := verify.VerifyWith(ctx, c, img.Ref, p)
			if err == nil {
				continue
			}
			if img.Index == "" {
				failed = append(failed, fmt.Errorf("image %s: %w", img.Ref.DigestRef(), err))
				continue
			}
			index := img.Ref.WithDigest(img.Index)
			if _, ierr := verify.VerifyWith(ctx, c, index, p); ierr != nil {
				failed = append(failed, fmt.Errorf("image %s (platform manifest of index %s): %w; its index: %w", img.Ref.DigestRef(), img.Index, err, ierr))
			}
		}
		if len(failed) > 0 {
			return &ImageSignatureError{Images: len(images), Failures: failed}
		}
		return nil
	}
}
