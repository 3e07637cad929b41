package reconciler

import (
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/build"
	"airlock.dev/airlock/verify"
)

// The pipeline's typed errors, and classify, which derives a condition
// reason from them (never from message text).

// DependencyError is a Release in spec.dependsOn that is not Ready.
type DependencyError struct {
	Dependency types.NamespacedName
	State      string
}

func (e *DependencyError) Error() string {
	return fmt.Sprintf("waiting for Release %s, listed in spec.dependsOn, to be Ready (%s)", e.Dependency, e.State)
}

// DowngradeError is a semver range that resolved below the applied version.
type DowngradeError struct {
	Ref, Range       string
	Version, Applied string
}

func (e *DowngradeError) Error() string {
	return fmt.Sprintf("spec.ref.semver %q resolved to %s (%s), lower than the applied version %s; refusing to downgrade (was a higher tag deleted or moved out of the range?): push a higher version, or set spec.ref.allowDowngrade to true to deploy it",
		e.Range, e.Version, e.Ref, e.Applied)
}

// EmptyArtifactError refuses to prune everything because an artifact built
// to no objects without saying it meant to.
type EmptyArtifactError struct {
	Ref       string
	Inventory int
}

func (e *EmptyArtifactError) Error() string {
	return fmt.Sprintf("%s builds to no objects; refusing to prune the %d objects applied before: check spec.path, or push the artifact with the annotation %s=true to remove them all", e.Ref, e.Inventory, v1alpha1.EmptyAnnotation)
}

// SpecError is an invalid field of the Release.
type SpecError struct {
	Field string
	Err   error
}

func (e *SpecError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *SpecError) Unwrap() error { return e.Err }

// classify derives a condition reason from err's type, and whether only a
// change by a person helps (Stalled) rather than a retry (Reconciling).
func classify(err error, stageReason string) (reason string, stalled bool) {
	var (
		verr  *VerificationRequiredError
		serr  *SecretError
		derr  *DependencyError
		ver   *verify.Error
		saerr *ServiceAccountRequiredError
		nterr *NoTrustPolicyError
		tperr *TrustPolicyError
		dgerr *DowngradeError
		berr  *build.Error
		ierr  *ImmutableFieldError
		eerr  *EmptyArtifactError
		sperr *SpecError
		merr  *ImagesMissingError
		rberr *RollbackError
		nlerr *ImageNotInLockError
		lkerr *ImagesLockError
		cverr *ValuesFromError
		kcerr *KubeConfigError
	)
	switch {
	case errors.As(err, &rberr):
		return v1alpha1.ReasonRollbackFailed, true
	case errors.As(err, &verr):
		return v1alpha1.ReasonVerificationRequired, true
	case errors.As(err, &sperr):
		return v1alpha1.ReasonInvalidSpec, true
	case errors.As(err, &kcerr):
		return v1alpha1.ReasonKubeConfigRefused, true
	case errors.As(err, &saerr):
		return v1alpha1.ReasonServiceAccountRequired, true
	case errors.As(err, &nterr):
		return v1alpha1.ReasonNoTrustPolicy, true
	case errors.As(err, &tperr):
		return v1alpha1.ReasonVerificationFailed, true
	case errors.As(err, &dgerr):
		return v1alpha1.ReasonDowngradeRefused, true
	case errors.As(err, &serr):
		return v1alpha1.ReasonSecretError, false
	case errors.As(err, &derr):
		return v1alpha1.ReasonDependencyNotReady, false
	case errors.As(err, &ver) && ver.Reason != verify.ErrRegistry, errors.Is(err, verify.ErrPolicy):
		return v1alpha1.ReasonVerificationFailed, true
	case errors.Is(err, artifact.ErrUnauthorized), errors.Is(err, artifact.ErrForbidden):
		return v1alpha1.ReasonRegistryAuthFailed, false
	case errors.Is(err, artifact.ErrNoTag), errors.Is(err, artifact.ErrNotFound), errors.Is(err, artifact.ErrNoRepository):
		return v1alpha1.ReasonArtifactNotFound, false
	case errors.Is(err, artifact.ErrTooLarge), errors.Is(err, artifact.ErrDigest):
		return v1alpha1.ReasonPullFailed, true
	case errors.Is(err, artifact.ErrUnreachable), errors.Is(err, artifact.ErrRegistryError), errors.Is(err, artifact.ErrTLS):
		return v1alpha1.ReasonRegistryUnavailable, false
	case errors.As(err, &berr):
		return v1alpha1.ReasonBuildFailed, true
	case errors.As(err, &ierr):
		return v1alpha1.ReasonImmutableField, true
	case errors.As(err, &eerr):
		return v1alpha1.ReasonEmptyArtifact, true
	case errors.As(err, &merr):
		return v1alpha1.ReasonImagesMissing, false
	case errors.As(err, &nlerr):
		return v1alpha1.ReasonImageNotInLock, false
	case errors.As(err, &lkerr):
		return v1alpha1.ReasonImagesLockUntrusted, false
	case apierrors.IsForbidden(err):
		return v1alpha1.ReasonForbidden, true
	case errors.As(err, &cverr):
		return v1alpha1.ReasonValuesFromFailed, false
	}
	return stageReason, false
}

// SecretError is a referenced Secret that is missing or unusable.
type SecretError struct {
	Secret types.NamespacedName
	Field  string // spec field that names it
	Err    error
}

func (e *SecretError) Error() string {
	return fmt.Sprintf("Secret %s (%s): %v", e.Secret, e.Field, e.Err)
}

func (e *SecretError) Unwrap() error { return e.Err }

// VerificationRequiredError is a Release without a trust policy in a
// controller that requires signatures.
type VerificationRequiredError struct{ Release types.NamespacedName }

func (e *VerificationRequiredError) Error() string {
	return fmt.Sprintf("Release %s has no spec.verify and this controller requires signed artifacts: set spec.verify.keysSecretRef to a Secret holding the cosign public keys (*.pub), or run the controller with --allow-unsigned", e.Release)
}

// ServiceAccountRequiredError is a Release that names no ServiceAccount in
// a namespace where the controller does not apply as itself, with no
// --default-service-account to fall back on.
type ServiceAccountRequiredError struct {
	Release types.NamespacedName
}

func (e *ServiceAccountRequiredError) Error() string {
	return fmt.Sprintf("Release %s has no spec.serviceAccountName, and the controller applies as itself only in its own namespace and the namespaces its operator allows (--allow-controller-identity-namespaces, --allow-controller-identity-namespace-selector); "+
		"a Release author gets no more power than the ServiceAccount it runs as: set spec.serviceAccountName to a ServiceAccount in %s with the permissions the artifact needs, or run the controller with --default-service-account NAME",
		e.Release, e.Release.Namespace)
}

// NoTrustPolicyError is a Release whose repository no ClusterTrustPolicy
// covers, while some exist: it is refused rather than trusted on its own keys.
type NoTrustPolicyError struct {
	Release  types.NamespacedName
	URL      string
	Policies []string
}

func (e *NoTrustPolicyError) Error() string {
	return fmt.Sprintf("Release %s: spec.url %s matches none of the ClusterTrustPolicies (%s), and a repository no policy covers is refused: ask a cluster administrator to add the repository to a ClusterTrustPolicy's spec.repositories",
		e.Release, e.URL, strings.Join(e.Policies, ", "))
}

// TrustPolicyError is a ClusterTrustPolicy that cannot be applied (a bad
// pattern, no controller namespace to read its keys from). Every Release
// is refused until it is fixed: a broken policy never lets one through.
type TrustPolicyError struct {
	Policy string
	Err    error
}

func (e *TrustPolicyError) Error() string {
	return "ClusterTrustPolicy " + e.Policy + ": " + e.Err.Error()
}

func (e *TrustPolicyError) Unwrap() error { return e.Err }

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

// ImageNotInLockError is an artifact with workload images that its images
// lock does not pin, while spec.relocateImages is set.
type ImageNotInLockError struct {
	Ref string
	// Images are the images the lock does not pin.
	Images []string
	// Errors are images the lock pins but that cannot be rewritten.
	Errors []string
}

func (e *ImageNotInLockError) Error() string {
	var parts []string
	if len(e.Images) > 0 {
		parts = append(parts, fmt.Sprintf("%d images are not pinned in its images lock: %s", len(e.Images), strings.Join(e.Images, ", ")))
	}
	parts = append(parts, e.Errors...)
	return fmt.Sprintf("relocate the images of %s: %s: export the artifact again with `airlock export --with-images` (the export pins every image its workloads use) and import it with `airlock import --sign-key`, or unset spec.relocateImages",
		e.Ref, strings.Join(parts, "; "))
}

// ImagesLockError is an images lock the controller will not use: none next
// to the artifact, none covered by a trusted signature, or one other than
// the signed one (replaced at the mirror).
type ImagesLockError struct {
	Ref string
	// Found is the digest of the lock at the mirror; "" when there is none.
	Found string
	// Signed are the lock digests trusted signatures cover.
	Signed []string
}

func (e *ImagesLockError) Error() string {
	tag := "sha256-<hex>" + artifact.ImagesLockSuffix
	switch {
	case e.Found == "":
		return fmt.Sprintf("spec.relocateImages is set, but %s has no images lock next to it (tag %s): bring it in with `airlock import --sign-key` of an `airlock export --with-images` tarball, or unset spec.relocateImages", e.Ref, tag)
	case len(e.Signed) == 0:
		return fmt.Sprintf("spec.relocateImages is set, but no trusted signature of %s covers its images lock %s: a lock decides which images run, so only a signed one is used: import it with `airlock import --verify-key upstream.pub --sign-key site.key` (the site signature records the lock's digest) with a site key the Release trusts", e.Ref, e.Found)
	}
	return fmt.Sprintf("the images lock of %s at the mirror is %s, but the trusted signatures cover the images lock %s: it was replaced at the mirror after the import and is refused: import the artifact again with `airlock import --sign-key`, and find out who wrote tag %s",
		e.Ref, e.Found, strings.Join(e.Signed, ", "), tag)
}

// ObjectError is a failed operation on one object. Op is "apply", "prune",
// "dry-run apply" or "recreate".
type ObjectError struct {
	Op     string
	Object string // Kind namespace/name
	Err    error
}

func (e *ObjectError) Error() string { return e.Op + " " + e.Object + ": " + apiMessage(e.Err) }

func (e *ObjectError) Unwrap() error { return e.Err }

// ImmutableFieldError is a change the API server refuses because it touches
// an immutable field, while spec.force is off.
type ImmutableFieldError struct {
	Object string
	Err    error
}

func (e *ImmutableFieldError) Error() string {
	return fmt.Sprintf("apply %s: %v: the change touches an immutable field: set spec.force: true to delete and recreate the object, or revert the change in the artifact", e.Object, apiMessage(e.Err))
}

func (e *ImmutableFieldError) Unwrap() error { return e.Err }
