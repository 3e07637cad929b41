package v1alpha1

// Condition types. Ready, Reconciling and Stalled follow kstatus, so kubectl
// wait, kstatus and Flux-style tools read a Release's health.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
	ConditionVerified    = "Verified"
	ConditionHealthy     = "Healthy"
)

// Condition reasons. Each names a pipeline stage and the outcome; the
// condition's message says which object, reference or digest and what to do.
const (
	ReasonSucceeded            = "ReconciliationSucceeded"
	ReasonProgressing          = "Progressing"
	ReasonSuspended            = "Suspended"
	ReasonDependencyNotReady   = "DependencyNotReady"
	ReasonInvalidSpec          = "InvalidSpec"
	ReasonSecretError          = "SecretError"
	ReasonRegistryUnavailable  = "RegistryUnavailable"
	ReasonArtifactNotFound     = "ArtifactNotFound"
	ReasonRegistryAuthFailed   = "RegistryAuthFailed"
	ReasonPullFailed           = "PullFailed"
	ReasonVerificationRequired = "VerificationRequired"
	ReasonVerificationFailed   = "VerificationFailed"
	ReasonVerified             = "Verified"
	ReasonVerificationSkipped  = "VerificationSkipped"
	ReasonBuildFailed          = "BuildFailed"
	ReasonApplyFailed          = "ApplyFailed"
	ReasonImmutableField       = "ImmutableFieldChanged"
	ReasonForbidden            = "Forbidden"
	ReasonPruneFailed          = "PruneFailed"
	ReasonEmptyArtifact        = "EmptyArtifact"
	ReasonImagesMissing        = "ImagesMissing"
	ReasonHealthy              = "Healthy"
	ReasonUnhealthy            = "HealthCheckFailed"
	ReasonWaitSkipped          = "WaitSkipped"
	ReasonDriftCorrected       = "DriftCorrected"
	ReasonPruned               = "Pruned"
	ReasonDeleted              = "Deleted"
	// ReasonServiceAccountRequired: the Release names no ServiceAccount and
	// the controller may not apply as itself in its namespace.
	ReasonServiceAccountRequired = "ServiceAccountRequired"
	// ReasonNoTrustPolicy: ClusterTrustPolicies exist and none covers spec.url.
	ReasonNoTrustPolicy = "NoMatchingTrustPolicy"
	// ReasonDowngradeRefused: spec.ref.semver resolved below status.lastAppliedVersion.
	ReasonDowngradeRefused = "DowngradeRefused"
	// ReasonPruneAbandoned: a deleted Release gave up pruning after
	// --finalizer-timeout and left its objects.
	ReasonPruneAbandoned = "PruneAbandoned"
	// ReasonRolledBack: the newly applied digest failed health and the
	// controller re-applied the newest healthy one (spec.rollback.onFailure).
	ReasonRolledBack = "RolledBack"
	// ReasonRollbackFailed: the digest failed health and re-applying the
	// earlier one failed too (verification, pull, build, apply or health).
	ReasonRollbackFailed = "RollbackFailed"
	// ReasonSubstituteFromFailed: a ConfigMap or Secret of
	// spec.postBuild.substituteFrom is missing or unreadable.
	ReasonSubstituteFromFailed = "SubstituteFromFailed"

	// ReasonValuesFromFailed: a ConfigMap or Secret of spec.chart.valuesFrom
	// is missing, unreadable, or not a YAML map of values (Helm charts).
	ReasonValuesFromFailed = "ValuesFromFailed"

	// ReasonImageNotInLock: spec.relocateImages is set and a workload image
	// is not pinned in the artifact's images lock.
	ReasonImageNotInLock = "ImageNotInLock"
	// ReasonImagesLockUntrusted: the images lock is missing, no trusted
	// signature covers its digest, or the one at the mirror is not the one
	// signed (swapped).
	ReasonImagesLockUntrusted = "ImagesLockUntrusted"

	// --- remote clusters (issue 13) ---

	// ReasonKubeConfigRefused: the kubeconfig of spec.kubeConfig does not
	// parse, or authenticates other than with a static token or a client
	// certificate held in it (an exec or auth-provider plugin, a file).
	ReasonKubeConfigRefused = "KubeConfigRefused"
)

// Reasons of SOPS decryption (issue 14 item 3).
const (
	// ReasonDecryptionKeysFailed: the Secret of spec.decryption.secretRef is
	// missing, unreadable as the Release's ServiceAccount, or holds no
	// usable key. A file that does not decrypt is a BuildFailed naming it.
	ReasonDecryptionKeysFailed = "DecryptionKeysFailed"
)

// Health values recorded in the history.
const (
	HealthHealthy     = "Healthy"
	HealthProgressing = "Progressing"
	HealthUnhealthy   = "Unhealthy"
	HealthUnknown     = "Unknown"
)
