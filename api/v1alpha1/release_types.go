package v1alpha1

import (
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ReleaseKind is the kind of the Release type.
const ReleaseKind = "Release"

// Annotations and labels airlock reads or writes on applied objects and artifacts.
const (
	// PruneAnnotation set to PruneDisabled on an applied object keeps it when
	// it leaves the artifact.
	PruneAnnotation = "delivery.airlock.dev/prune"
	// PruneDisabled is the value of PruneAnnotation that keeps an object.
	PruneDisabled = "disabled"
	// EmptyAnnotation set to "true" on an artifact's manifest says that the
	// artifact is empty on purpose: without it, an artifact that builds to no
	// objects never prunes anything.
	EmptyAnnotation = "delivery.airlock.dev/empty"
	// NameLabel and NamespaceLabel mark every applied object with the Release
	// that owns it. Prune deletes only objects that still carry them.
	NameLabel      = "delivery.airlock.dev/name"
	NamespaceLabel = "delivery.airlock.dev/namespace"
	// Finalizer lets a deleted Release prune its inventory first.
	Finalizer = "delivery.airlock.dev/finalizer"
	// ReconcileRequestAnnotation set to any new value (by convention the
	// time, RFC 3339) asks for an immediate reconcile; the controller copies
	// the value to status.lastHandledReconcileAt when it has handled it.
	ReconcileRequestAnnotation = "delivery.airlock.dev/reconcile-requested-at"
	// RetryRequestAnnotation set to a new value (by convention the time,
	// RFC 3339) asks the controller, once, to try status.failedDigest again;
	// it copies the value to status.lastHandledRetryAt.
	RetryRequestAnnotation = "delivery.airlock.dev/retry-requested-at"
	// PinnedByRollbackAnnotation holds, as JSON, the spec.ref that
	// `airlock rollback release` replaced with a digest pin, so that
	// `airlock rollback release --unpin` can restore it.
	PinnedByRollbackAnnotation = "delivery.airlock.dev/rollback-previous-ref"
)

// ReleaseSpec says which artifact to deploy and how.
type ReleaseSpec struct {
	// URL is the artifact's repository, oci://HOST/REPO.
	// +kubebuilder:validation:Pattern=`^oci://[^/@:]+(:[0-9]+)?/[^:@]+$`
	// +required
	URL string `json:"url"`

	// Ref selects the artifact in the repository. A digest wins over a semver
	// range, which wins over a tag. Empty means the tag "latest".
	// +optional
	Ref ArtifactRef `json:"ref,omitempty"`

	// Interval is how often the artifact is resolved and drift corrected.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +optional
	Interval metav1.Duration `json:"interval,omitempty"`

	// RetryInterval caps the exponential backoff after a failure. Empty means
	// Interval.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +optional
	RetryInterval *metav1.Duration `json:"retryInterval,omitempty"`

	// Timeout bounds the registry operations and the health wait. Empty means 5m.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// SecretRef names a kubernetes.io/dockerconfigjson Secret in the
	// Release's namespace with the registry credentials. Empty means anonymous.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`

	// CertSecretRef names a Secret with the registry's CA (ca.crt) and
	// optionally a client certificate (tls.crt, tls.key). Empty means the
	// system roots.
	// +optional
	CertSecretRef *LocalObjectReference `json:"certSecretRef,omitempty"`

	// Insecure talks plain HTTP to the registry, without TLS.
	// +optional
	Insecure bool `json:"insecure,omitempty"`

	// Verify is the trust policy. Empty means the Release is refused unless
	// the controller runs with --allow-unsigned.
	// +optional
	Verify *VerifySpec `json:"verify,omitempty"`

	// Path is a directory inside the artifact to build. Empty means its root.
	// +optional
	Path string `json:"path,omitempty"`

	// ImagesPreflight checks, before applying, that every image pinned in the
	// images lock that `airlock import` stored next to the artifact exists in
	// the mirror (one HEAD request each). A missing image, or no images lock,
	// refuses the artifact: nothing is applied or pruned.
	// +optional
	ImagesPreflight bool `json:"imagesPreflight,omitempty"`

	// TargetNamespace sets the namespace of every namespaced object. Empty
	// means the object's own namespace, or the Release's when it has none.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	TargetNamespace string `json:"targetNamespace,omitempty"`

	// Prune deletes the objects that leave the artifact, and the inventory
	// when the Release is deleted. Empty means true.
	// +kubebuilder:default=true
	// +optional
	Prune *bool `json:"prune,omitempty"`

	// Wait makes the Release Ready only when every applied object is
	// Current by kstatus. Empty means true.
	// +kubebuilder:default=true
	// +optional
	Wait *bool `json:"wait,omitempty"`

	// Force recreates an object whose change touches an immutable field.
	// false means such a change fails and names the object.
	// +optional
	Force bool `json:"force,omitempty"`

	// Suspend stops pulling, applying and pruning; status is still written.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// ServiceAccountName is a ServiceAccount in the Release's namespace to
	// impersonate for apply and prune. Empty means the controller's
	// --default-service-account in the Release's namespace; the controller
	// applies as itself only in its own namespace and where its operator
	// allowed it (--allow-controller-identity-namespaces, -selector).
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// Rollback says what the controller does when a newly applied digest
	// fails its health check. Empty means nothing: the Release stays
	// HealthCheckFailed and the failed digest stays applied.
	// +optional
	Rollback *RollbackSpec `json:"rollback,omitempty"`

	// HealthCheckExprs judge the kinds they name with CEL expressions on the
	// object instead of kstatus, as Flux's healthCheckExprs do: for each
	// applied object of a listed apiVersion and kind, failed is evaluated
	// first, then current, then inProgress; the first that is true decides.
	// None true means in progress. An expression that does not compile makes
	// the Release Stalled (InvalidSpec) before anything is applied. Empty
	// means kstatus judges every kind.
	// +kubebuilder:validation:MaxItems=50
	// +optional
	HealthCheckExprs []HealthCheckExpr `json:"healthCheckExprs,omitempty"`

	// DependsOn lists Releases that must be Ready before this one applies.
	// A Release in another namespace is refused when the controller runs
	// with --no-cross-namespace-refs (the install's default).
	// +optional
	DependsOn []DependencyReference `json:"dependsOn,omitempty"`

	// --- One artifact, many sites (issue 14): what a site layers on top of
	// the signed artifact, in memory, without changing or re-signing it.

	// PostBuild substitutes variables (${var}, ${var:=default},
	// ${var:-default}) in the built objects, as Flux's postBuild does.
	// Empty means no substitution.
	// +optional
	PostBuild *PostBuild `json:"postBuild,omitempty"`

	// Patches are strategic merge or JSON 6902 patches, with optional
	// targets, applied by kustomize on top of the artifact's kustomization
	// (the same shape as Flux's Kustomization spec.patches). Empty means none.
	// +optional
	Patches []Patch `json:"patches,omitempty"`

	// Images overrides image names, tags and digests, as kustomize's
	// images field does, on top of the artifact's kustomization. Empty
	// means none.
	// +optional
	Images []ImageOverride `json:"images,omitempty"`

	// Components are kustomize components inside the artifact, as paths
	// relative to spec.path, layered on top of the artifact's
	// kustomization. A remote component is refused. Empty means none.
	// +optional
	Components []string `json:"components,omitempty"`

	// NamePrefix is prepended to the names of the built objects. Empty means none.
	// +kubebuilder:validation:MaxLength=200
	// +optional
	NamePrefix string `json:"namePrefix,omitempty"`

	// NameSuffix is appended to the names of the built objects. Empty means none.
	// +kubebuilder:validation:MaxLength=200
	// +optional
	NameSuffix string `json:"nameSuffix,omitempty"`

	// CommonMetadata sets labels and annotations on the metadata of every
	// built object (not on selectors or templates). Empty means none.
	// +optional
	CommonMetadata *CommonMetadata `json:"commonMetadata,omitempty"`

	// --- air-gapped sites: image relocation (issue 12) ---

	// RelocateImages rewrites, after the build and before apply, every
	// container image of the artifact's workloads (Pods and the pod templates
	// of Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and
	// CronJobs; init and ephemeral containers too) to the digest the
	// artifact's images lock pins, at the mirror: MIRROR/PATH@sha256:…. The
	// images lock is used only when a trusted signature of the artifact
	// records its digest (`airlock import --sign-key`). An image that is not
	// in the lock, or a lock no trusted signature covers, refuses the
	// artifact: nothing is applied or pruned. false applies the images as
	// the artifact names them.
	// +optional
	RelocateImages bool `json:"relocateImages,omitempty"`

	// --- Helm charts as OCI artifacts (issue 14, item 5) ---

	// Chart makes spec.url a Helm chart stored in an OCI registry
	// (oci://HOST/charts/NAME, the version in spec.ref.tag, semver or
	// digest), rendered in memory with Helm's template engine instead of
	// built with kustomize. The chart is resolved to a digest and verified
	// with spec.verify and the ClusterTrustPolicies like any artifact. No
	// Helm release Secret is written, hooks are not run, and the render
	// never reaches the network (lookup returns nothing). Empty means
	// spec.url is a kustomize artifact.
	// +optional
	Chart *ChartSpec `json:"chart,omitempty"`

	// --- SOPS decryption (issue 14 item 3) ---

	// Decryption decrypts SOPS-encrypted Secrets, and the files of
	// kustomize's secretGenerator, in memory during the build. Nothing
	// decrypted is written to disk, logged, or recorded in status or events.
	// Empty means no decryption: a SOPS-encrypted file the build reads is
	// then an error that names it.
	// +optional
	Decryption *Decryption `json:"decryption,omitempty"`
	// --- remote clusters (issue 13): one hub delivers to many spokes ---

	// KubeConfig applies the Release to another cluster, whose kubeconfig is
	// in a Secret of the Release's namespace, as Flux's spec.kubeConfig
	// does. Apply, prune, drift correction, health (with the Pods of
	// workloads) and rollback all act on that cluster; the Release and its
	// status stay here. The kubeconfig may authenticate with a static token
	// or a client certificate only: exec and auth-provider plugins and file
	// references are refused. When the Release applies as a ServiceAccount,
	// the Secret is read as that ServiceAccount here, and the remote
	// cluster is told to impersonate system:serviceaccount:NAMESPACE:NAME,
	// so that its own RBAC applies. Empty means this cluster.
	// +optional
	KubeConfig *KubeConfigReference `json:"kubeConfig,omitempty"`
}

// KubeConfigReference names the Secret that holds a remote cluster's kubeconfig.
type KubeConfigReference struct {
	// SecretRef is the Secret, in the Release's namespace, and its key.
	// +required
	SecretRef SecretKeyReference `json:"secretRef"`
}

// SecretKeyReference names a key of a Secret in the Release's namespace.
type SecretKeyReference struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// Key is the key of the kubeconfig in the Secret's data. Empty means
	// "value", then "value.yaml", as Flux reads it.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// ChartSpec is how a Helm chart is rendered for a Release.
type ChartSpec struct {
	// Values are inline values, merged over the chart's values.yaml and
	// over ValuesFrom (they win). Empty means none.
	// +optional
	Values *apiextensionsv1.JSON `json:"values,omitempty"`
	// ValuesFrom reads values files (YAML) from ConfigMaps and Secrets in
	// the Release's namespace, read as the Release's ServiceAccount, merged
	// in order: a later entry wins. The values are never logged or
	// recorded; status records their hash. Empty means none.
	// +kubebuilder:validation:MaxItems=20
	// +optional
	ValuesFrom []ChartValuesReference `json:"valuesFrom,omitempty"`
	// ReleaseName is .Release.Name in the templates. Empty means the
	// Release's name. .Release.Namespace is spec.targetNamespace, else the
	// Release's namespace.
	// +kubebuilder:validation:MaxLength=53
	// +optional
	ReleaseName string `json:"releaseName,omitempty"`
	// IncludeHooks applies the chart's hook templates (helm.sh/hook) as
	// plain objects with the rest, once, without Helm's hook ordering or
	// deletion policies. false leaves them out, and status names them.
	// +optional
	IncludeHooks bool `json:"includeHooks,omitempty"`
	// SkipCRDs leaves out the CRDs of the chart's crds/ directory. false
	// applies them first, before any other object.
	// +optional
	SkipCRDs bool `json:"skipCRDs,omitempty"`
}

// ChartValuesReference names a values file in a ConfigMap or Secret.
type ChartValuesReference struct {
	// Kind is ConfigMap or Secret.
	// +kubebuilder:validation:Enum=ConfigMap;Secret
	// +required
	Kind string `json:"kind"`
	// Name is the object's name in the Release's namespace.
	// +kubebuilder:validation:MinLength=1
	// +required
	Name string `json:"name"`
	// ValuesKey is the key holding the values file. Empty means values.yaml.
	// +optional
	ValuesKey string `json:"valuesKey,omitempty"`
	// Optional lets the object or key be missing. false makes either an error.
	// +optional
	Optional bool `json:"optional,omitempty"`
}

// ChartStatus records the Helm chart a Release applied.
type ChartStatus struct {
	// Name and Version are the chart's, from its Chart.yaml.
	Name    string `json:"name"`
	Version string `json:"version"`
	// AppVersion is the chart's appVersion.
	// +optional
	AppVersion string `json:"appVersion,omitempty"`
	// SkippedHooks names the hook templates left out (spec.chart.includeHooks
	// is false), at most 20.
	// +optional
	SkippedHooks []string `json:"skippedHooks,omitempty"`
}

// Decryption says how to decrypt SOPS-encrypted files of the artifact.
type Decryption struct {
	// Provider is the decryption provider; only sops.
	// +kubebuilder:validation:Enum=sops
	// +required
	Provider string `json:"provider"`
	// SecretRef names a Secret in the Release's namespace, read as the
	// Release's ServiceAccount, holding age private keys (keys ending in
	// .agekey, one or more AGE-SECRET-KEY-1… lines each) and, optionally,
	// unprotected armored PGP private keys (keys ending in .asc). No cloud
	// KMS is used.
	// +required
	SecretRef LocalObjectReference `json:"secretRef"`
}

// DecryptionProviderSOPS is the one provider of spec.decryption.
const DecryptionProviderSOPS = "sops"

// SubstituteAnnotation set to SubstituteDisabled, as an annotation or a
// label of an object in the artifact, leaves its ${var} references as they are.
const (
	SubstituteAnnotation = "delivery.airlock.dev/substitute"
	SubstituteDisabled   = "disabled"
)

// PostBuild is the variable substitution applied to the built objects.
type PostBuild struct {
	// Substitute holds variables and their values. It wins over SubstituteFrom.
	// +optional
	Substitute map[string]string `json:"substitute,omitempty"`
	// SubstituteFrom reads variables from the keys of ConfigMaps and
	// Secrets in the Release's namespace, read as the Release's
	// ServiceAccount; a later entry wins over an earlier one.
	// +optional
	SubstituteFrom []SubstituteReference `json:"substituteFrom,omitempty"`
	// Strict makes a variable that is not defined and has no default an
	// error that names the object and the variable: nothing is applied.
	// false replaces it with the empty string, as Flux does.
	// +optional
	Strict bool `json:"strict,omitempty"`
}

// SubstituteReference names a ConfigMap or Secret of variables.
type SubstituteReference struct {
	// Kind is ConfigMap or Secret.
	// +kubebuilder:validation:Enum=ConfigMap;Secret
	// +required
	Kind string `json:"kind"`
	// Name is the object's name in the Release's namespace.
	// +kubebuilder:validation:MinLength=1
	// +required
	Name string `json:"name"`
	// Optional lets the object be missing: its variables are then undefined.
	// false makes a missing object an error.
	// +optional
	Optional bool `json:"optional,omitempty"`
}

// Patch is a strategic merge or JSON 6902 patch and the objects it applies to.
type Patch struct {
	// Patch is the patch: a strategic merge patch (YAML) or a JSON 6902
	// patch (a YAML or JSON list of operations).
	// +kubebuilder:validation:MinLength=1
	// +required
	Patch string `json:"patch"`
	// Target selects the objects to patch. Empty means the object the
	// strategic merge patch names.
	// +optional
	Target *PatchSelector `json:"target,omitempty"`
}

// PatchSelector selects objects by kind, name, namespace and selectors, as
// kustomize's patch target does. Name and Namespace are regular expressions.
type PatchSelector struct {
	// +optional
	Group string `json:"group,omitempty"`
	// +optional
	Version string `json:"version,omitempty"`
	// +optional
	Kind string `json:"kind,omitempty"`
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// +optional
	AnnotationSelector string `json:"annotationSelector,omitempty"`
	// +optional
	LabelSelector string `json:"labelSelector,omitempty"`
}

// ImageOverride changes an image reference, as kustomize's images field does.
type ImageOverride struct {
	// Name is the image name to match, without tag or digest.
	// +kubebuilder:validation:MinLength=1
	// +required
	Name string `json:"name"`
	// NewName replaces the name. Empty keeps it.
	// +optional
	NewName string `json:"newName,omitempty"`
	// NewTag replaces the tag. Empty keeps it.
	// +optional
	NewTag string `json:"newTag,omitempty"`
	// Digest replaces the tag with a digest, sha256:<hex>. Empty keeps it.
	// +optional
	Digest string `json:"digest,omitempty"`
}

// CommonMetadata is the labels and annotations set on every built object.
type CommonMetadata struct {
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// SiteStatus records what a site layered on top of the applied artifact.
type SiteStatus struct {
	// ValuesHash is sha256 over the substitution variables, sorted by name,
	// as name=value lines ("sha256:<hex>"); the values themselves are never
	// recorded. Empty when nothing is substituted.
	// +optional
	ValuesHash string `json:"valuesHash,omitempty"`
	// OverlayHash is sha256 over spec.patches, images, components,
	// namePrefix, nameSuffix and commonMetadata. Empty when there is none.
	// +optional
	OverlayHash string `json:"overlayHash,omitempty"`
	// Overlay summarises the overlay, such as "2 patches, 1 image, namePrefix prod-".
	// +optional
	Overlay string `json:"overlay,omitempty"`
	// ChartValuesHash is sha256 over the Helm chart values of spec.chart
	// (valuesFrom merged with values), as canonical JSON ("sha256:<hex>");
	// the values themselves are never recorded. Empty when the Release is
	// not a chart. (Helm charts, issue 14 item 5.)
	// +optional
	ChartValuesHash string `json:"chartValuesHash,omitempty"`
}

// HealthCheckExpr is a custom health check for one apiVersion and kind:
// CEL expressions that read the object as `self` (for example
// `self.status.phase == 'Ready'`) and return a bool. An expression that
// reads a field the object does not have yet counts as not true.
type HealthCheckExpr struct {
	// APIVersion is the objects' apiVersion, such as example.com/v1.
	// +kubebuilder:validation:MinLength=1
	// +required
	APIVersion string `json:"apiVersion"`
	// Kind is the objects' kind.
	// +kubebuilder:validation:MinLength=1
	// +required
	Kind string `json:"kind"`
	// Current is true when the object is healthy.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +required
	Current string `json:"current"`
	// InProgress is true while the object is still progressing. Empty
	// means: in progress whenever neither failed nor current is true.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	InProgress string `json:"inProgress,omitempty"`
	// Failed is true when the object has failed: the health check fails at
	// once, without waiting for spec.timeout. Empty means never.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Failed string `json:"failed,omitempty"`
}

// ArtifactRef selects an artifact in a repository.
type ArtifactRef struct {
	// Tag is a tag such as "v1.2.3" or "latest".
	// +optional
	Tag string `json:"tag,omitempty"`
	// Semver is a range such as ">=1.2.0 <2.0.0"; the highest matching tag wins.
	// +optional
	Semver string `json:"semver,omitempty"`
	// Digest pins the artifact: sha256:<64 hex>.
	// +kubebuilder:validation:Pattern=`^sha256:[a-f0-9]{64}$`
	// +optional
	Digest string `json:"digest,omitempty"`
	// AllowDowngrade lets a semver range move to a lower version than
	// status.lastAppliedVersion (a higher tag deleted or moved out of the
	// range). false refuses it with DowngradeRefused: nothing is applied or
	// pruned. A digest pin, as a rollback sets, is never refused.
	// +optional
	AllowDowngrade bool `json:"allowDowngrade,omitempty"`
}

// RollbackSpec is the automatic rollback policy.
type RollbackSpec struct {
	// OnFailure re-applies the newest Healthy digest of status.history when
	// a newly applied digest fails health (Failed, or not Current within
	// spec.timeout). The earlier digest is verified again under the current
	// trust policy, pulled, built and applied, and what only the failed
	// digest added is pruned; the Release is then Ready=False RolledBack, and
	// the failed digest (status.failedDigest) is not applied again until
	// another digest is resolved or `airlock reconcile release NAME --retry`
	// asks for it. false (the default) leaves the failed digest applied.
	// +optional
	OnFailure bool `json:"onFailure,omitempty"`
}

// VerifySpec is the trust policy for an artifact's cosign signatures.
type VerifySpec struct {
	// KeysSecretRef names a Secret in the Release's namespace; every key
	// ending in .pub is a trusted cosign public key.
	// +required
	KeysSecretRef LocalObjectReference `json:"keysSecretRef"`
	// Threshold is how many distinct trusted keys must have signed. Empty means 1.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +optional
	Threshold int `json:"threshold,omitempty"`

	// Upstream requires a chain of trust, as `airlock verify
	// --require-upstream` does: a site signature by one of KeysSecretRef's
	// keys whose signed import record names upstream signers from this
	// Secret, and those upstream keys' own valid signatures over the same
	// digest (carried across the gap by `airlock import`). Empty means no
	// chain is required.
	// +optional
	Upstream *UpstreamVerifySpec `json:"upstream,omitempty"`
}

// UpstreamVerifySpec names the upstream keys a chain of trust must reach.
type UpstreamVerifySpec struct {
	// KeysSecretRef names a Secret in the Release's namespace; every key
	// ending in .pub is a trusted upstream cosign public key.
	// +required
	KeysSecretRef LocalObjectReference `json:"keysSecretRef"`
	// Threshold is how many distinct upstream keys must have signed, and be
	// recorded by the site signature. Empty means 1.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +optional
	Threshold int `json:"threshold,omitempty"`
}

// LocalObjectReference names an object in the Release's namespace.
type LocalObjectReference struct {
	// +kubebuilder:validation:MinLength=1
	// +required
	Name string `json:"name"`
}

// DependencyReference names another Release.
type DependencyReference struct {
	// +kubebuilder:validation:MinLength=1
	// +required
	Name string `json:"name"`
	// Namespace is empty for the Release's own namespace.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// ReleaseStatus is everything the controller knows about a Release.
type ReleaseStatus struct {
	// ObservedGeneration is the generation last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions are Ready, Reconciling, Stalled, Verified and Healthy.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// LastAttemptedDigest is the digest the last reconcile resolved.
	// +optional
	LastAttemptedDigest string `json:"lastAttemptedDigest,omitempty"`

	// LastAppliedDigest is the digest whose objects are applied.
	// +optional
	LastAppliedDigest string `json:"lastAppliedDigest,omitempty"`

	// ShortDigest is the first 12 hex digits of LastAppliedDigest, for kubectl.
	// +optional
	ShortDigest string `json:"shortDigest,omitempty"`

	// LastAppliedGeneration is the spec generation of the last successful apply.
	// +optional
	LastAppliedGeneration int64 `json:"lastAppliedGeneration,omitempty"`

	// LastAppliedSource and LastAppliedRevision are the artifact's source
	// and revision annotations (org.opencontainers.image.source/revision).
	// +optional
	LastAppliedSource string `json:"lastAppliedSource,omitempty"`
	// +optional
	LastAppliedRevision string `json:"lastAppliedRevision,omitempty"`

	// LastAppliedVersion is the tag that spec.ref.semver resolved to for the
	// applied digest; a semver Release never moves below it unless
	// spec.ref.allowDowngrade is true. Empty when the ref is not a semver range.
	// +optional
	LastAppliedVersion string `json:"lastAppliedVersion,omitempty"`

	// TrustPolicies are the ClusterTrustPolicies whose keys verified the
	// applied artifact, besides spec.verify.
	// +optional
	TrustPolicies []string `json:"trustPolicies,omitempty"`

	// Signers are the trusted keys whose signatures verified the applied artifact.
	// +optional
	Signers []Signer `json:"signers,omitempty"`

	// Inventory is every applied object, in apply order.
	// +optional
	Inventory []ObjectRef `json:"inventory,omitempty"`

	// History is the last 10 applied digests, newest first.
	// +optional
	History []HistoryEntry `json:"history,omitempty"`

	// DriftCorrections counts the objects corrected after a change outside airlock.
	// +optional
	DriftCorrections int64 `json:"driftCorrections,omitempty"`

	// LastHandledReconcileAt is the value of the ReconcileRequestAnnotation
	// that the last finished reconcile saw.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`

	// FailedDigest is a digest that failed health and was rolled back
	// (spec.rollback.onFailure): it is not applied again while spec.ref
	// resolves to it, until the RetryRequestAnnotation asks for it.
	// +optional
	FailedDigest string `json:"failedDigest,omitempty"`

	// LastHandledRetryAt is the value of the RetryRequestAnnotation that the
	// controller last honoured.
	// +optional
	LastHandledRetryAt string `json:"lastHandledRetryAt,omitempty"`

	// Unhealthy lists the objects that were not healthy at the last health
	// check, each with why: kstatus' or the health check expression's
	// verdict and, for a Deployment, StatefulSet or DaemonSet, the reasons
	// of a few of its Pods (CrashLoopBackOff, ImagePullBackOff,
	// Unschedulable...). At most 20 entries; empty when all are healthy.
	// +kubebuilder:validation:MaxItems=20
	// +optional
	Unhealthy []string `json:"unhealthy,omitempty"`

	// LastAppliedSite is what the site layered on top of the applied
	// artifact: the hash of its substitution values and its overlay. Empty
	// when the Release substitutes nothing and has no overlay.
	// +optional
	LastAppliedSite *SiteStatus `json:"lastAppliedSite,omitempty"`

	// --- Helm charts (issue 14, item 5) ---

	// LastAppliedChart is the Helm chart of the applied digest. Empty when
	// the Release is not a chart.
	// +optional
	LastAppliedChart *ChartStatus `json:"lastAppliedChart,omitempty"`

	// --- air-gapped sites (issue 12) ---

	// RelocatedImages are the images spec.relocateImages rewrote in the
	// applied artifact, at most MaxRelocatedImages of them, sorted by From.
	// +optional
	RelocatedImages []RelocatedImage `json:"relocatedImages,omitempty"`
	// RelocatedImagesTotal is how many distinct images were rewritten; more
	// than len(RelocatedImages) when the list was cut.
	// +optional
	RelocatedImagesTotal int `json:"relocatedImagesTotal,omitempty"`
	// Chain is the chain of trust of the applied artifact: set when a
	// trusted site signature records an import (`airlock import
	// --sign-key`).
	// +optional
	Chain *ChainOfTrust `json:"chain,omitempty"`

	// --- deployment receipts (issue 15, receipt_types.go) ---

	// Receipt is the last signed deployment receipt the controller stored
	// next to the artifact (--receipt-key-secret): nil when receipts are
	// off or none was written yet.
	// +optional
	Receipt *ReceiptStatus `json:"receipt,omitempty"`
}

// MaxRelocatedImages bounds status.relocatedImages.
const MaxRelocatedImages = 50

// RelocatedImage is one image reference spec.relocateImages rewrote.
type RelocatedImage struct {
	// From is the image as the artifact names it.
	From string `json:"from"`
	// To is the image as applied: MIRROR/PATH@sha256:….
	To string `json:"to"`
}

// ChainOfTrust is what a site signature recorded about an import.
type ChainOfTrust struct {
	// SiteSigner is the trusted key whose site signature records the import.
	SiteSigner Signer `json:"siteSigner"`
	// UpstreamSigners are the upstream keys the import verified. With
	// spec.verify.upstream they are the upstream keys whose own signatures
	// verified again at the site; otherwise only their fingerprints, as the
	// site signature recorded them.
	// +optional
	UpstreamSigners []Signer `json:"upstreamSigners,omitempty"`
	// UpstreamVerified is true when spec.verify.upstream required the chain
	// and the upstream signatures verified at the site.
	// +optional
	UpstreamVerified bool `json:"upstreamVerified,omitempty"`
	// UpstreamRef is the artifact's reference before the import.
	// +optional
	UpstreamRef string `json:"upstreamRef,omitempty"`
	// ImportedAt is when the site imported it, RFC 3339, as signed.
	// +optional
	ImportedAt string `json:"importedAt,omitempty"`
	// ImagesLock is the digest of the images lock the site signature covers.
	// +optional
	ImagesLock string `json:"imagesLock,omitempty"`
}

// Signer is a trusted key that signed the artifact.
type Signer struct {
	// Name is the key's name in the keys Secret, without .pub.
	Name string `json:"name"`
	// Fingerprint is the SHA-256 of the key's DER encoding, in hex.
	Fingerprint string `json:"fingerprint"`
}

// ObjectRef identifies an applied object.
type ObjectRef struct {
	// +optional
	Group   string `json:"group,omitempty"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// HistoryEntry records one applied digest.
type HistoryEntry struct {
	Digest    string      `json:"digest"`
	AppliedAt metav1.Time `json:"appliedAt"`
	// +optional
	Revision string `json:"revision,omitempty"`
	// Version is the tag spec.ref.semver resolved to for this digest. Empty
	// for a tag or digest reference.
	// +optional
	Version string `json:"version,omitempty"`
	// +optional
	Signers []string `json:"signers,omitempty"`
	// Health is Healthy, Progressing or Unhealthy, as last seen.
	// +optional
	Health string `json:"health,omitempty"`
	// RolledBack is true when this digest failed health and the controller
	// rolled back from it.
	// +optional
	RolledBack bool `json:"rolledBack,omitempty"`
	// RollbackOf is the failed digest that this entry's re-apply rolled
	// back from. Empty for an ordinary apply.
	// +optional
	RollbackOf string `json:"rollbackOf,omitempty"`
	// Site is what the site layered on top of this digest when it was
	// applied. Empty when nothing was.
	// +optional
	Site *SiteStatus `json:"site,omitempty"`
}

// Release pulls a signed OCI artifact, builds it with kustomize and applies it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rel,categories=airlock
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Digest",type=string,JSONPath=`.status.shortDigest`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.lastAppliedRevision`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type Release struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ReleaseSpec   `json:"spec,omitempty"`
	Status ReleaseStatus `json:"status,omitempty"`
}

// ReleaseList is a list of Releases.
// +kubebuilder:object:root=true
type ReleaseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Release `json:"items"`
}

// Defaults for the optional durations.
const (
	DefaultInterval = 5 * time.Minute
	DefaultTimeout  = 5 * time.Minute
	HistoryLimit    = 10
)

// GetInterval is spec.interval, or DefaultInterval when unset.
func (r *Release) GetInterval() time.Duration {
	if r.Spec.Interval.Duration > 0 {
		return r.Spec.Interval.Duration
	}
	return DefaultInterval
}

// GetRetryInterval is spec.retryInterval, or the interval when unset.
func (r *Release) GetRetryInterval() time.Duration {
	if r.Spec.RetryInterval != nil && r.Spec.RetryInterval.Duration > 0 {
		return r.Spec.RetryInterval.Duration
	}
	return r.GetInterval()
}

// GetTimeout is spec.timeout, or DefaultTimeout when unset.
func (r *Release) GetTimeout() time.Duration {
	if r.Spec.Timeout != nil && r.Spec.Timeout.Duration > 0 {
		return r.Spec.Timeout.Duration
	}
	return DefaultTimeout
}

// PruneEnabled is spec.prune; unset means true.
func (r *Release) PruneEnabled() bool { return r.Spec.Prune == nil || *r.Spec.Prune }

// WaitEnabled is spec.wait; unset means true.
func (r *Release) WaitEnabled() bool { return r.Spec.Wait == nil || *r.Spec.Wait }

// GetConditions returns the status conditions (for kstatus-style helpers).
func (r *Release) GetConditions() []metav1.Condition { return r.Status.Conditions }

// SetConditions replaces the status conditions.
func (r *Release) SetConditions(c []metav1.Condition) { r.Status.Conditions = c }

// SecretNames are the names of the Secrets the Release references, all in
// its own namespace: registry credentials, registry certificates, trusted
// keys and a remote cluster's kubeconfig, in that order, without repeats.
func (r *Release) SecretNames() []string {
	var names []string
	add := func(ref *LocalObjectReference) {
		if ref == nil || ref.Name == "" {
			return
		}
		for _, n := range names {
			if n == ref.Name {
				return
			}
		}
		names = append(names, ref.Name)
	}
	add(r.Spec.SecretRef)
	add(r.Spec.CertSecretRef)
	if r.Spec.Verify != nil {
		add(&r.Spec.Verify.KeysSecretRef)
		if r.Spec.Verify.Upstream != nil {
			add(&r.Spec.Verify.Upstream.KeysSecretRef)
		}
	}
	if r.Spec.KubeConfig != nil {
		add(&LocalObjectReference{Name: r.Spec.KubeConfig.SecretRef.Name})
	}
	return names
}

// DependencyKeys are the Releases in spec.dependsOn; an empty namespace is
// the Release's own.
func (r *Release) DependencyKeys() []types.NamespacedName {
	keys := make([]types.NamespacedName, 0, len(r.Spec.DependsOn))
	for _, d := range r.Spec.DependsOn {
		ns := d.Namespace
		if ns == "" {
			ns = r.Namespace
		}
		keys = append(keys, types.NamespacedName{Namespace: ns, Name: d.Name})
	}
	return keys
}
