// Package reconciler is the Release controller: resolve, verify, pull,
// build, apply, prune and check health, then write one status.
package reconciler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unique"

	"github.com/Masterminds/semver/v3"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/build"
	"airlock.dev/airlock/notify"
	"airlock.dev/airlock/verify"
)

// Reconciler reconciles Releases. Every dependency is an explicit field.
type Reconciler struct {
	// Client is the manager's cached client; it reads Releases and writes their status.
	Client ctrl.Client
	// APIReader reads Secrets uncached, so the controller caches no Secret data.
	APIReader ctrl.Reader
	// Clients apply, read and prune a Release's objects, as the controller
	// or as the Release's ServiceAccount.
	Clients *Clients
	// Remotes are the clients of remote clusters, for Releases with
	// spec.kubeConfig. nil refuses such Releases with InvalidSpec.
	Remotes *RemoteClients
	// Source resolves and pulls artifacts.
	Source Source
	// Registries keeps registry clients across reconciles, one per registry
	// host and credentials. nil means a new client for every reconcile.
	Registries *RegistryClients
	// Verifier checks signatures. nil refuses every Release with spec.verify.
	Verifier Verifier
	// Cache keeps pulled artifacts by digest, served only to a Release whose
	// own registry served the digest's manifest.
	Cache *Cache
	// Events records an event for every state change.
	Events events.EventRecorder
	// Metrics are the Prometheus metrics.
	Metrics *Metrics
	// Clock is the time source. nil means the real clock.
	Clock clock.PassiveClock
	// AllowUnsignedInsecure applies Releases without spec.verify. false
	// refuses them with VerificationRequired.
	AllowUnsignedInsecure bool
	// MaxSize bounds an artifact's content. 0 means artifact.DefaultMaxSize.
	MaxSize int64
	// BackoffBase is the first retry delay after a failure; it doubles up to
	// the Release's retryInterval. 0 means 1s.
	BackoffBase time.Duration
	// HealthPoll is the longest wait between health checks while objects
	// progress; the first checks after an apply come sooner (healthPoll).
	// 0 means 2s.
	HealthPoll time.Duration
	// Mirrors rewrites Release URLs to site registries: the controller then
	// contacts only the mirror. nil means none.
	Mirrors artifact.Mirrors
	// DefaultServiceAccount is the ServiceAccount, in the Release's own
	// namespace, that a Release without spec.serviceAccountName applies as
	// where the controller may not apply as itself. "" refuses such a
	// Release with ServiceAccountRequired.
	DefaultServiceAccount string
	// ControllerNamespace is the namespace the controller runs in: a Release
	// there may apply as the controller, and ClusterTrustPolicies' key
	// Secrets are read there. "" means no such namespace.
	ControllerNamespace string
	// ControllerIdentityNamespaces are more namespaces where a Release
	// without spec.serviceAccountName applies as the controller itself, with
	// all its rights (UNSAFE for namespaces whose users may not have them).
	// nil means none.
	ControllerIdentityNamespaces []string
	// ControllerIdentityNamespaceSelector selects, by the namespace's labels
	// (which only cluster administrators set), more namespaces where a
	// Release applies as the controller. nil means none.
	ControllerIdentityNamespaceSelector labels.Selector
	// NoCrossNamespaceRefs refuses spec.dependsOn entries in another
	// namespace with InvalidSpec. false allows them, without ever copying
	// the other Release's message into this one's status.
	NoCrossNamespaceRefs bool
	// FinalizerTimeout bounds how long a deleted Release retries a failing
	// prune, from its deletionTimestamp; then it leaves its objects, records
	// a Warning event naming them and removes its finalizer. 0 means 10m.
	FinalizerTimeout time.Duration
	// Build bounds each kustomize build (objects, bytes, duration); the zero
	// value is build's safe defaults.
	Build build.Options
	// Receipts writes signed deployment receipts next to the artifacts;
	// nil writes none.
	Receipts *ReceiptWriter

	// Notifier is told of the changes Alerts send: a new digest Ready, a
	// verification failure, a rollback, a drift correction and a prune
	// (notify.go). It never blocks. nil means none.
	Notifier notify.Notifier

	keys       keyCache
	exprs      healthExprCache
	identities sync.Map // types.NamespacedName → who it applies as, for messages
	mu         sync.Mutex
	failures   map[types.NamespacedName]int
	desired    map[types.NamespacedName]*desiredState
	// configMapWatch is the watch of ConfigMaps, started by the first
	// Release that reads one (watchConfigMapsFor).
	configMapWatch lazyWatch
}

// desiredState is what the last successful apply of a Release applied: with
// it, a reconcile of an unchanged digest only checks drift and health. It
// holds a hash of the applied objects, not the objects: a drift check
// rebuilds them from the artifact cache (desiredObjects), so the memory a
// Release takes does not grow with its objects.
type desiredState struct {
	digest     string
	generation int64
	trust      string
	// values is the hash of the substitution values applied.
	values string
	// relocated maps each image spec.relocateImages rewrote to what was
	// applied, so that a drift check rebuilds the objects as applied.
	relocated map[string]string
	// manifest is the artifact manifest that the Release's own registry
	// served for digest when it was verified and applied: the proof the
	// artifact cache asks for (Cache.Get). It is interned: the Releases of
	// one digest keep one copy.
	manifest unique.Handle[string]
	// hash is objectsHash of the objects applied.
	hash      string
	appliedAt time.Time
}

func newDesiredState(rel *v1alpha1.Release, digest, trust, values string, relocated []v1alpha1.RelocatedImage, manifest []byte, objs []*unstructured.Unstructured, at time.Time) (*desiredState, error) {
	h, err := objectsHash(objs)
	if err != nil {
		return nil, err
	}
	d := &desiredState{digest: digest, generation: rel.Generation, trust: trust, values: values, manifest: unique.Make(string(manifest)), hash: h, appliedAt: at}
	if len(relocated) > 0 {
		d.relocated = make(map[string]string, len(relocated))
		for _, ri := range relocated {
			d.relocated[ri.From] = ri.To
		}
	}
	return d, nil
}

func (r *Reconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// outcome is the result of one pass of the pipeline.
type outcome struct {
	result  string // success, failure, noop, progressing, suspended
	err     error
	requeue time.Duration
}

// Reconcile runs the pipeline for one Release and writes its status.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	start := time.Now()
	logger := log.FromContext(ctx)
	rel := &v1alpha1.Release{}
	if err := r.Client.Get(ctx, req.NamespacedName, rel); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if !rel.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, rel)
	}
	if !controllerutil.ContainsFinalizer(rel, v1alpha1.Finalizer) {
		patch := ctrl.MergeFromWithOptions(rel.DeepCopy(), ctrl.MergeFromWithOptimisticLock{})
		controllerutil.AddFinalizer(rel, v1alpha1.Finalizer)
		r.Metrics.write("patch", false)
		if err := r.Client.Patch(ctx, rel, patch); err != nil {
			return reconcile.Result{}, err
		}
	}

	if err := r.watchConfigMapsFor(rel); err != nil {
		return reconcile.Result{}, err
	}
	before := rel.DeepCopy()
	out := r.pipeline(ctx, rel)
	rel.Status.ObservedGeneration = rel.Generation
	if v, ok := rel.Annotations[v1alpha1.ReconcileRequestAnnotation]; ok {
		rel.Status.LastHandledReconcileAt = v
	}
	if err := r.writeStatus(ctx, before, rel); err != nil {
		return reconcile.Result{}, err
	}
	r.announce(before, rel)
	r.queueReceipt(ctx, rel)
	r.Metrics.recordConditions(req.NamespacedName, rel.Status.Conditions)
	r.Metrics.observe(out.result, start)
	if out.err != nil {
		logger.Info("reconcile failed", "digest", rel.Status.LastAttemptedDigest,
			"reason", readyReason(rel), "error", out.err.Error(), "retryIn", out.requeue.String())
	}
	return reconcile.Result{RequeueAfter: out.requeue}, nil
}

// pipeline runs the stages in order; the first failure ends it. Nothing is
// applied before verification passes, and nothing is pruned before the
// whole new artifact is applied.
func (r *Reconciler) pipeline(ctx context.Context, rel *v1alpha1.Release) outcome {
	if rel.Spec.Suspend {
		return r.markSuspended(rel)
	}
	if err := r.checkReferences(rel); err != nil {
		return r.fail(rel, v1alpha1.ReasonInvalidSpec, err)
	}
	if _, err := r.exprs.compileHealthChecks(rel.Spec.HealthCheckExprs); err != nil {
		return r.fail(rel, v1alpha1.ReasonInvalidSpec, err)
	}
	if err := r.checkDependencies(ctx, rel); err != nil {
		return r.fail(rel, v1alpha1.ReasonDependencyNotReady, err)
	}
	tr, err := r.trustFor(ctx, rel)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonVerificationFailed, err)
	}
	repo, err := r.repository(rel)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonInvalidSpec, err)
	}
	registry, err := r.registryClient(ctx, rel, repo)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonSecretError, err)
	}

	timeoutCtx, cancel := context.WithTimeout(ctx, rel.GetTimeout())
	defer cancel()
	ref, err := r.resolve(timeoutCtx, rel, registry, repo)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonRegistryUnavailable, err)
	}
	rel.Status.LastAttemptedDigest = ref.Digest
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("digest", ref.Digest))
	if err := checkDowngrade(rel, ref); err != nil {
		return r.fail(rel, v1alpha1.ReasonDowngradeRefused, err)
	}
	trustID := tr.fingerprint()
	if out, held := r.holdFailed(ctx, rel, ref.Digest, trustID); held {
		return out
	}

	site, err := r.siteFor(ctx, rel)
	if err != nil {
		return r.fail(rel, siteReason(err), err)
	}
	// The cluster the objects go to: this one, or spec.kubeConfig's. Every
	// stage below (build's kind mapping, apply, prune, drift, health)
	// acts through it.
	applier, err := r.applier(ctx, rel)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonApplyFailed, err)
	}
	if d, objs := r.upToDate(ctx, rel, applier, ref.Digest, trustID, site); d != nil {
		return r.correctDrift(ctx, rel, applier, d, objs)
	}

	v, err := r.verify(timeoutCtx, rel, registry, ref, tr)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonVerificationFailed, err)
	}
	art, err := r.pull(timeoutCtx, registry, ref, v.manifest)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonPullFailed, err)
	}
	defer art.Release()
	objs, chart, err := r.render(timeoutCtx, rel, applier, art.Dir, ref.Digest, site.build)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonBuildFailed, err)
	}
	relocated, err := r.airGap(timeoutCtx, rel, registry, ref, objs, v)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonImagesMissing, err)
	}
	if len(objs) == 0 && len(rel.Status.Inventory) > 0 && art.Result.Annotations[v1alpha1.EmptyAnnotation] != "true" {
		return r.fail(rel, v1alpha1.ReasonEmptyArtifact, &EmptyArtifactError{Ref: ref.String(), Inventory: len(rel.Status.Inventory)})
	}
	if err := applier.Apply(timeoutCtx, objs); err != nil {
		return r.fail(rel, v1alpha1.ReasonApplyFailed, err)
	}
	inv := Inventory(objs)
	pruned, pruneErr := r.prune(timeoutCtx, rel, applier, inv)
	prev := rel.Status.LastAppliedDigest
	r.recordApplied(rel, ref, art.Result, v.signers, tr.policies, inv, pruned, pruneErr)
	r.recordSite(rel, prev, site)
	recordChart(rel, chart)
	recordAirGap(rel, v, relocated)
	r.remember(ctx, rel, ref.Digest, trustID, site.valuesHash(), relocated, art.Manifest, objs)
	if pruneErr != nil {
		return r.fail(rel, v1alpha1.ReasonPruneFailed, pruneErr)
	}
	return r.checkHealth(ctx, rel, applier.Client)
}

// correctDrift is the pipeline for an unchanged digest and spec: find the
// objects (objs, rebuilt as d applied them) changed outside airlock with a
// dry-run apply and apply them again.
func (r *Reconciler) correctDrift(ctx context.Context, rel *v1alpha1.Release, applier *Applier, d *desiredState, objs []*unstructured.Unstructured) outcome {
	drifted, err := applier.Drifted(ctx, objs)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonApplyFailed, err)
	}
	if len(drifted) > 0 {
		if err := applier.Apply(ctx, drifted); err != nil {
			return r.fail(rel, v1alpha1.ReasonApplyFailed, err)
		}
		names := make([]string, 0, len(drifted))
		for _, o := range drifted {
			names = append(names, objectName(o))
		}
		r.Metrics.ObjectsDrifted.WithLabelValues(rel.Namespace, rel.Name).Add(float64(len(drifted)))
		rel.Status.DriftCorrections += int64(len(drifted))
		r.event(rel, "Normal", v1alpha1.ReasonDriftCorrected, "CorrectDrift",
			"corrected %d objects changed outside airlock: %s", len(drifted), strings.Join(names, ", "))
		r.notify(rel, v1alpha1.AlertEventDriftCorrected, rel.Status.LastAppliedDigest,
			"corrected %d objects changed outside airlock: %s", len(drifted), strings.Join(names, ", "))
		r.mu.Lock()
		d.appliedAt = r.now()
		r.mu.Unlock()
	}
	// Objects whose prune failed earlier are still in the inventory: retry.
	inv := Inventory(objs)
	if len(rel.Status.Inventory) != len(inv) {
		pruned, err := r.prune(ctx, rel, applier, inv)
		rel.Status.Inventory = inventoryAfterPrune(rel.Status.Inventory, inv, pruned, err)
		if err != nil {
			return r.fail(rel, v1alpha1.ReasonPruneFailed, err)
		}
	}
	out := r.checkHealth(ctx, rel, applier.Client)
	if out.result == "success" && len(drifted) == 0 {
		out.result = "noop" // nothing changed upstream or in the cluster
	}
	return out
}

// checkHealth judges the inventory, with kstatus or spec.healthCheckExprs,
// and sets Ready and status.unhealthy.
func (r *Reconciler) checkHealth(ctx context.Context, rel *v1alpha1.Release, c ctrl.Reader) outcome {
	key := ctrl.ObjectKeyFromObject(rel)
	applied := fmt.Sprintf("applied %s%s: %d objects", shortDigest(rel.Status.LastAppliedDigest), revisionSuffix(rel), len(rel.Status.Inventory))
	rel.Status.Unhealthy = nil
	if !rel.WaitEnabled() {
		setCondition(rel, v1alpha1.ConditionHealthy, metav1.ConditionUnknown, v1alpha1.ReasonWaitSkipped, "spec.wait is false: health is not checked")
		return r.succeed(rel, applied)
	}
	checks, err := r.exprs.compileHealthChecks(rel.Spec.HealthCheckExprs)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonInvalidSpec, err)
	}
	h, err := assessHealth(ctx, c, rel.Status.Inventory, checks)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonUnhealthy, err)
	}
	rel.Status.Unhealthy = h.Unhealthy()
	if h.Healthy {
		setCondition(rel, v1alpha1.ConditionHealthy, metav1.ConditionTrue, v1alpha1.ReasonHealthy, "every object is Current")
		setHistoryHealth(rel, v1alpha1.HealthHealthy)
		return r.succeed(rel, applied+", all healthy")
	}
	appliedAt := r.appliedAt(rel)
	deadline := appliedAt.Add(rel.GetTimeout())
	if !h.Failed && r.now().Before(deadline) {
		msg := "waiting for objects to become Current: " + h.Message()
		setCondition(rel, v1alpha1.ConditionHealthy, metav1.ConditionUnknown, v1alpha1.ReasonProgressing, msg)
		setCondition(rel, v1alpha1.ConditionReady, metav1.ConditionUnknown, v1alpha1.ReasonProgressing, applied+"; "+msg)
		setCondition(rel, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonProgressing, msg)
		meta.RemoveStatusCondition(&rel.Status.Conditions, v1alpha1.ConditionStalled)
		setHistoryHealth(rel, v1alpha1.HealthProgressing)
		next := min(r.healthPoll(r.now().Sub(appliedAt)), deadline.Sub(r.now())+time.Millisecond)
		_ = key
		return outcome{result: "progressing", requeue: next}
	}
	setHistoryHealth(rel, v1alpha1.HealthUnhealthy)
	why := "not healthy"
	if !h.Failed {
		why = fmt.Sprintf("not healthy after spec.timeout (%s)", rel.GetTimeout())
	}
	err = fmt.Errorf("%s; %s: %s: check these objects' events and logs", applied, why, h.Message())
	setCondition(rel, v1alpha1.ConditionHealthy, metav1.ConditionFalse, v1alpha1.ReasonUnhealthy, h.Message())
	if rollbackEnabled(rel) {
		return r.rollback(ctx, rel, err)
	}
	return r.fail(rel, v1alpha1.ReasonUnhealthy, err)
}

// minHealthPoll is the soonest health is checked again while objects
// progress.
const minHealthPoll = 250 * time.Millisecond

// healthPoll is when to check health again, since after the apply: soon at
// first, when a small rollout is likely done (half the time since the
// apply, minHealthPoll or more), then backing off to HealthPoll (0 means
// 2s), so that a push reaches Ready well within HealthPoll of its rollout's
// end, and a long rollout costs only a few more checks.
func (r *Reconciler) healthPoll(since time.Duration) time.Duration {
	longest := 2 * time.Second
	if r.HealthPoll > 0 {
		longest = r.HealthPoll
	}
	return min(longest, max(minHealthPoll, since/2))
}

func (r *Reconciler) appliedAt(rel *v1alpha1.Release) time.Time {
	r.mu.Lock()
	d := r.desired[ctrl.ObjectKeyFromObject(rel)]
	r.mu.Unlock()
	if d != nil {
		return d.appliedAt
	}
	if len(rel.Status.History) > 0 {
		return rel.Status.History[0].AppliedAt.Time
	}
	return r.now()
}

// --- stages -----------------------------------------------------------------

// checkReferences keeps every reference in the Release's namespace when the
// controller runs with --no-cross-namespace-refs. The Secrets and the
// ServiceAccount are local by their type; spec.dependsOn may name a namespace.
func (r *Reconciler) checkReferences(rel *v1alpha1.Release) error {
	if !r.NoCrossNamespaceRefs {
		return nil
	}
	for i, d := range rel.Spec.DependsOn {
		if d.Namespace != "" && d.Namespace != rel.Namespace {
			return &SpecError{Field: fmt.Sprintf("spec.dependsOn[%d].namespace", i),
				Err: fmt.Errorf("Release %s/%s is in another namespace, and this controller runs with --no-cross-namespace-refs: remove the namespace and depend on a Release in %s", d.Namespace, d.Name, rel.Namespace)}
		}
	}
	return nil
}

func (r *Reconciler) checkDependencies(ctx context.Context, rel *v1alpha1.Release) error {
	for _, key := range rel.DependencyKeys() {
		dep := &v1alpha1.Release{}
		if err := r.Client.Get(ctx, key, dep); err != nil {
			return &DependencyError{Dependency: key, State: apiMessage(err)}
		}
		ready := meta.FindStatusCondition(dep.Status.Conditions, v1alpha1.ConditionReady)
		switch {
		case ready == nil:
			return &DependencyError{Dependency: key, State: "not reconciled yet"}
		case dep.Status.ObservedGeneration != dep.Generation:
			return &DependencyError{Dependency: key, State: "its latest spec is not reconciled yet"}
		case ready.Status != metav1.ConditionTrue && key.Namespace != rel.Namespace:
			// Another namespace's message is not this Release's to read.
			return &DependencyError{Dependency: key, State: ready.Reason}
		case ready.Status != metav1.ConditionTrue:
			return &DependencyError{Dependency: key, State: ready.Reason + ": " + ready.Message}
		}
	}
	return nil
}

// repository is spec.url, at its mirror when a rule names its host.
func (r *Reconciler) repository(rel *v1alpha1.Release) (artifact.Reference, error) {
	repo, err := artifact.ParseRepository(rel.Spec.URL)
	if err != nil {
		return repo, &SpecError{Field: "spec.url", Err: err}
	}
	return r.Mirrors.Rewrite(repo), nil
}

// registryClient is the client for repo's registry with the Release's own
// credentials and TLS material, shared with the reconciles that have the
// same ones.
func (r *Reconciler) registryClient(ctx context.Context, rel *v1alpha1.Release, repo artifact.Reference) (*artifact.Client, error) {
	opts, key, err := r.remoteOptions(ctx, rel)
	if err != nil {
		return nil, err
	}
	key.Host = repo.Registry
	c, err := r.Registries.get(key, opts)
	if err != nil {
		return nil, fmt.Errorf("registry client for %s: %w", repo.Registry, err)
	}
	return c, nil
}

// resolve turns spec.ref into a digest of repo: one HEAD request for a tag,
// a tag listing and a HEAD for a semver range, none for a digest.
func (r *Reconciler) resolve(ctx context.Context, rel *v1alpha1.Release, c *artifact.Client, repo artifact.Reference) (artifact.Reference, error) {
	switch {
	case rel.Spec.Ref.Digest != "":
		return repo.WithDigest(rel.Spec.Ref.Digest), nil
	case rel.Spec.Ref.Semver != "":
		tag, err := r.Source.LatestSemver(ctx, c, repo, rel.Spec.Ref.Semver)
		if err != nil {
			return repo, err
		}
		return r.Source.Resolve(ctx, c, repo.WithTag(tag))
	default:
		tag := rel.Spec.Ref.Tag
		if tag == "" {
			tag = "latest"
		}
		return r.Source.Resolve(ctx, c, repo.WithTag(tag))
	}
}

// checkDowngrade refuses a semver Release that resolved to a lower version
// than status.lastAppliedVersion, unless spec.ref.allowDowngrade. A digest
// pin (a rollback) is not a semver resolution and is never refused.
func checkDowngrade(rel *v1alpha1.Release, ref artifact.Reference) error {
	spec := rel.Spec.Ref
	if spec.Digest != "" || spec.Semver == "" || spec.AllowDowngrade || rel.Status.LastAppliedVersion == "" {
		return nil
	}
	applied, err1 := semver.NewVersion(rel.Status.LastAppliedVersion)
	next, err2 := semver.NewVersion(ref.Tag)
	if err1 != nil || err2 != nil || !next.LessThan(applied) {
		return nil
	}
	return &DowngradeError{Ref: ref.String(), Range: spec.Semver, Version: ref.Tag, Applied: rel.Status.LastAppliedVersion}
}

// verified is what verification established about an artifact.
type verified struct {
	signers []v1alpha1.Signer
	// manifest is the artifact manifest verification read; nil when
	// nothing was verified.
	manifest []byte
	// locks are the images lock digests that valid signatures by trusted
	// keys cover: the only images locks the controller uses.
	locks []string
	// chain is the import a trusted site signature records; nil when none.
	chain *v1alpha1.ChainOfTrust
}

// verify checks ref against every requirement, through the Release's
// client: each ClusterTrustPolicy that covers it, and spec.verify (with
// spec.verify.upstream, the chain of trust). The first unmet one fails it.
func (r *Reconciler) verify(ctx context.Context, rel *v1alpha1.Release, c *artifact.Client, ref artifact.Reference, tr *trust) (*verified, error) {
	v := &verified{}
	if len(tr.requirements) == 0 {
		setCondition(rel, v1alpha1.ConditionVerified, metav1.ConditionFalse, v1alpha1.ReasonVerificationSkipped,
			"not verified: the Release has no spec.verify, no ClusterTrustPolicy covers it, and the controller runs with --allow-unsigned")
		return v, nil
	}
	if r.Verifier == nil {
		return nil, fmt.Errorf("verify %s: %w: this controller has no signature verifier", ref, verify.ErrPolicy)
	}
	seen := map[string]bool{}
	for _, req := range tr.requirements {
		res, err := r.Verifier.Verify(ctx, c, ref, req.policy)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", req.source, err)
		}
		if v.manifest == nil {
			v.manifest = res.Manifest // every requirement reads through the same client
		}
		for _, s := range res.Signers {
			if !seen[s.Fingerprint] {
				seen[s.Fingerprint] = true
				v.signers = append(v.signers, v1alpha1.Signer{Name: s.Name, Fingerprint: s.Fingerprint})
			}
		}
		for _, l := range res.ImagesLocks {
			if !contains(v.locks, l) {
				v.locks = append(v.locks, l)
			}
		}
		if res.Chain != nil && (v.chain == nil || len(req.policy.Upstream) > 0) {
			v.chain = chainOfTrust(res, len(req.policy.Upstream) > 0)
		}
	}
	names := make([]string, 0, len(v.signers))
	for _, s := range v.signers {
		names = append(names, s.Name+" ("+shortFingerprint(s.Fingerprint)+")")
	}
	msg := fmt.Sprintf("%s signed by %s", shortDigest(ref.Digest), strings.Join(names, ", "))
	if len(tr.policies) > 0 {
		msg += "; ClusterTrustPolicies met: " + strings.Join(tr.policies, ", ")
	}
	if c := v.chain; c != nil && c.UpstreamVerified {
		ups := make([]string, 0, len(c.UpstreamSigners))
		for _, s := range c.UpstreamSigners {
			ups = append(ups, s.Name+" ("+shortFingerprint(s.Fingerprint)+")")
		}
		msg += fmt.Sprintf("; chain of trust: imported %s by site key %s after upstream %s signed", c.ImportedAt, c.SiteSigner.Name, strings.Join(ups, ", "))
	}
	setCondition(rel, v1alpha1.ConditionVerified, metav1.ConditionTrue, v1alpha1.ReasonVerified, msg)
	return v, nil
}

// chainOfTrust is the status view of res's import record; upstream says
// that the policy required the chain, so res.Upstream verified at the site.
func chainOfTrust(res *verify.Result, upstream bool) *v1alpha1.ChainOfTrust {
	c := res.Chain
	out := &v1alpha1.ChainOfTrust{
		SiteSigner:  v1alpha1.Signer{Name: c.Site.Name, Fingerprint: c.Site.Fingerprint},
		UpstreamRef: c.UpstreamRef, ImportedAt: c.ImportedAt, ImagesLock: c.ImagesLock,
		UpstreamVerified: upstream && len(res.Upstream) > 0,
	}
	if out.UpstreamVerified {
		for _, s := range res.Upstream {
			out.UpstreamSigners = append(out.UpstreamSigners, v1alpha1.Signer{Name: s.Name, Fingerprint: s.Fingerprint})
		}
		return out
	}
	for _, fp := range c.UpstreamSigners {
		out.UpstreamSigners = append(out.UpstreamSigners, v1alpha1.Signer{Fingerprint: fp})
	}
	return out
}

// recordAirGap writes what the air-gap stage established about the applied
// artifact: its chain of trust, and the images relocated (at most
// v1alpha1.MaxRelocatedImages of them).
func recordAirGap(rel *v1alpha1.Release, v *verified, relocated []v1alpha1.RelocatedImage) {
	rel.Status.Chain = v.chain
	rel.Status.RelocatedImagesTotal = len(relocated)
	if len(relocated) > v1alpha1.MaxRelocatedImages {
		relocated = relocated[:v1alpha1.MaxRelocatedImages]
	}
	rel.Status.RelocatedImages = relocated
}

// pull gets the artifact from the cache or the registry. Either way the
// Release's own registry, through its own client, serves the manifest first
// (verify has read it, or it is read here): the cache holds content by
// digest, and a digest is no permission to read it.
func (r *Reconciler) pull(ctx context.Context, c *artifact.Client, ref artifact.Reference, manifest []byte) (*CachedArtifact, error) {
	if manifest == nil {
		var err error
		if manifest, err = r.Source.Manifest(ctx, c, ref); err != nil {
			return nil, err
		}
	}
	return r.Cache.Get(ctx, ref.Digest, manifest, func(ctx context.Context, dir string) (*artifact.PullResult, error) {
		return r.Source.Pull(ctx, c, ref, dir, artifact.PullOptions{MaxSize: r.MaxSize, Manifest: manifest})
	})
}

// applier acts on the cluster rel's objects go to, as rel's identity:
// this cluster as its ServiceAccount (or the controller), or the remote
// cluster of spec.kubeConfig.
func (r *Reconciler) applier(ctx context.Context, rel *v1alpha1.Release) (*Applier, error) {
	sa, err := r.serviceAccount(ctx, rel)
	if err != nil {
		return nil, err
	}
	a := &Applier{Force: rel.Spec.Force, Timeout: rel.GetTimeout(), Metrics: r.Metrics}
	if rel.Spec.KubeConfig != nil {
		rc, err := r.remoteTarget(ctx, rel, sa)
		if err != nil {
			return nil, err
		}
		a.Client, a.Mapper = rc.client, rc.mapper
		return a, nil
	}
	if a.Client, err = r.Clients.For(rel.Namespace, sa); err != nil {
		return nil, err
	}
	a.Mapper = r.Clients.Mapper
	return a, nil
}

// localClient reads this cluster as rel's identity (its ServiceAccount or
// the controller), whichever cluster rel applies to: for the objects a
// Release references in its own namespace.
func (r *Reconciler) localClient(ctx context.Context, rel *v1alpha1.Release) (ctrl.Client, error) {
	sa, err := r.serviceAccount(ctx, rel)
	if err != nil {
		return nil, err
	}
	return r.Clients.For(rel.Namespace, sa)
}

// prune deletes what the previous inventory had and inv lacks, when spec.prune is on.
func (r *Reconciler) prune(ctx context.Context, rel *v1alpha1.Release, a *Applier, inv []v1alpha1.ObjectRef) ([]v1alpha1.ObjectRef, error) {
	if !rel.PruneEnabled() {
		return nil, nil
	}
	pruned, err := a.Prune(ctx, rel.Status.Inventory, inv, ctrl.ObjectKeyFromObject(rel))
	if len(pruned) > 0 {
		names := make([]string, 0, len(pruned))
		for _, p := range pruned {
			names = append(names, refName(p))
		}
		r.event(rel, "Normal", v1alpha1.ReasonPruned, "Prune", "pruned %d objects no longer in the artifact: %s", len(pruned), strings.Join(names, ", "))
		r.notify(rel, v1alpha1.AlertEventPruned, rel.Status.LastAttemptedDigest, "pruned %d objects no longer in the artifact: %s", len(pruned), strings.Join(names, ", "))
	}
	return pruned, err
}

// inventoryAfterPrune is inv plus the old objects a failed prune left behind.
func inventoryAfterPrune(old, inv, pruned []v1alpha1.ObjectRef, err error) []v1alpha1.ObjectRef {
	if err == nil {
		return inv
	}
	keep := map[v1alpha1.ObjectRef]bool{}
	for _, o := range inv {
		keep[o] = true
	}
	for _, p := range pruned {
		keep[p] = true
	}
	out := append([]v1alpha1.ObjectRef{}, inv...)
	for _, o := range old {
		if !keep[o] {
			out = append(out, o)
		}
	}
	return out
}

// recordApplied writes the applied digest, inventory and history.
func (r *Reconciler) recordApplied(rel *v1alpha1.Release, ref artifact.Reference, res *artifact.PullResult, signers []v1alpha1.Signer, policies []string, inv, pruned []v1alpha1.ObjectRef, pruneErr error) {
	st := &rel.Status
	newDigest := st.LastAppliedDigest != ref.Digest
	st.Inventory = inventoryAfterPrune(st.Inventory, inv, pruned, pruneErr)
	st.LastAppliedDigest = ref.Digest
	st.ShortDigest = shortDigest(ref.Digest)
	st.LastAppliedGeneration = rel.Generation
	st.LastAppliedSource = res.Source
	st.LastAppliedRevision = res.Revision
	st.Signers = signers
	st.TrustPolicies = policies
	st.LastAppliedVersion = appliedVersion(rel, ref)
	names := make([]string, 0, len(signers))
	for _, s := range signers {
		names = append(names, s.Name)
	}
	entry := v1alpha1.HistoryEntry{Digest: ref.Digest, AppliedAt: metav1.NewTime(r.now()), Revision: res.Revision, Version: st.LastAppliedVersion, Signers: names, Health: v1alpha1.HealthUnknown}
	if len(st.History) > 0 && st.History[0].Digest == ref.Digest {
		st.History[0] = entry
	} else {
		st.History = append([]v1alpha1.HistoryEntry{entry}, st.History...)
		if len(st.History) > v1alpha1.HistoryLimit {
			st.History = st.History[:v1alpha1.HistoryLimit]
		}
	}
	if newDigest {
		r.event(rel, "Normal", "Applied", "Apply", "applied %s%s: %d objects, %d pruned", ref.String(), revisionSuffix(rel), len(inv), len(pruned))
	}
}

// appliedVersion is the semver version ref stands for: the tag a semver
// range resolved to, or, for a re-apply by digest (a rollback), the version
// history recorded for that digest, so that the downgrade guard keeps
// working after a rollback. "" for a Release that follows no semver range.
func appliedVersion(rel *v1alpha1.Release, ref artifact.Reference) string {
	if rel.Spec.Ref.Semver == "" {
		return ""
	}
	if rel.Spec.Ref.Digest == "" && ref.Tag != "" {
		return ref.Tag
	}
	for _, h := range rel.Status.History {
		if h.Digest == ref.Digest && h.Version != "" {
			return h.Version
		}
	}
	return ""
}

func setHistoryHealth(rel *v1alpha1.Release, health string) {
	if len(rel.Status.History) > 0 && rel.Status.History[0].Digest == rel.Status.LastAppliedDigest {
		rel.Status.History[0].Health = health
	}
}

// --- deletion -----------------------------------------------------------------

// finalize prunes the inventory of a deleted Release (when spec.prune is on
// and it is not suspended), then lets it go.
func (r *Reconciler) finalize(ctx context.Context, rel *v1alpha1.Release) (reconcile.Result, error) {
	key := ctrl.ObjectKeyFromObject(rel)
	if !controllerutil.ContainsFinalizer(rel, v1alpha1.Finalizer) {
		return reconcile.Result{}, nil
	}
	if rel.PruneEnabled() && !rel.Spec.Suspend && len(rel.Status.Inventory) > 0 {
		var pruned []v1alpha1.ObjectRef
		a, err := r.applier(ctx, rel)
		if err == nil {
			pruned, err = a.Prune(ctx, rel.Status.Inventory, nil, key)
			if len(pruned) > 0 {
				r.event(rel, "Normal", v1alpha1.ReasonDeleted, "Prune", "Release deleted: pruned %d objects", len(pruned))
				r.notify(rel, v1alpha1.AlertEventPruned, rel.Status.LastAppliedDigest, "Release deleted: pruned %d objects", len(pruned))
			}
		}
		if err != nil {
			waited := r.now().Sub(rel.DeletionTimestamp.Time)
			if waited < r.finalizerTimeout() {
				before := rel.DeepCopy()
				out := r.fail(rel, v1alpha1.ReasonPruneFailed, fmt.Errorf("Release %s is being deleted but its objects cannot be pruned: %w: fix the permissions within %s (--finalizer-timeout), after which the objects are left behind", key, err, r.finalizerTimeout()-waited.Truncate(time.Second)))
				if werr := r.writeStatus(ctx, before, rel); werr != nil {
					return reconcile.Result{}, werr
				}
				r.announce(before, rel)
				return reconcile.Result{RequeueAfter: min(out.requeue, r.finalizerTimeout()-waited+time.Millisecond)}, nil
			}
			r.abandonPrune(rel, pruned, err)
		}
	}
	patch := ctrl.MergeFromWithOptions(rel.DeepCopy(), ctrl.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(rel, v1alpha1.Finalizer)
	r.Metrics.write("patch", false)
	if err := r.Client.Patch(ctx, rel, patch); err != nil {
		return reconcile.Result{}, ctrl.IgnoreNotFound(err)
	}
	r.forget(key)
	return reconcile.Result{}, nil
}

func (r *Reconciler) finalizerTimeout() time.Duration {
	if r.FinalizerTimeout > 0 {
		return r.FinalizerTimeout
	}
	return 10 * time.Minute
}

// abandonPrune gives up the prune of a deleted Release after
// --finalizer-timeout, so that its namespace can terminate, and records
// which objects it left behind.
//
// For the README: the manual escape, to let a deleted Release go at once, is
//
//	kubectl -n NS patch release NAME --type=merge -p '{"metadata":{"finalizers":null}}'
//
// which leaves every object of its status.inventory in place: delete them by
// hand if they should go.
func (r *Reconciler) abandonPrune(rel *v1alpha1.Release, pruned []v1alpha1.ObjectRef, err error) {
	gone := map[v1alpha1.ObjectRef]bool{}
	for _, p := range pruned {
		gone[p] = true
	}
	var left []string
	for _, o := range rel.Status.Inventory {
		if !gone[o] {
			left = append(left, refName(o))
		}
	}
	r.event(rel, "Warning", v1alpha1.ReasonPruneAbandoned, "Prune",
		"Release deleted, but pruning failed for longer than %s (--finalizer-timeout): %v; left behind %d objects, delete them by hand if they should go: %s",
		r.finalizerTimeout(), err, len(left), strings.Join(left, ", "))
}

// --- in-memory state ----------------------------------------------------------

// upToDate returns what the last apply of rel applied, and its objects
// rebuilt from the artifact cache, when rel's digest, spec, trust and
// substitution values are unchanged since. It returns nil, and the pipeline
// applies the digest in full (verified, pulled, built, applied, pruned),
// when they changed, when the rebuild fails, or when it no longer yields the
// objects applied.
func (r *Reconciler) upToDate(ctx context.Context, rel *v1alpha1.Release, a *Applier, digest, trust string, site siteInput) (*desiredState, []*unstructured.Unstructured) {
	key := ctrl.ObjectKeyFromObject(rel)
	r.mu.Lock()
	d := r.desired[key]
	r.mu.Unlock()
	if d == nil || d.digest != digest || d.generation != rel.Generation || d.trust != trust || d.values != site.valuesHash() ||
		rel.Status.LastAppliedDigest != digest || rel.Status.LastAppliedGeneration != rel.Generation {
		return nil, nil
	}
	objs, err := r.desiredObjects(ctx, rel, a, d, site.build)
	if err != nil {
		log.FromContext(ctx).Info("rebuilding the applied objects from the artifact cache failed: applying the digest in full", "error", err.Error())
		return nil, nil
	}
	return d, objs
}

// desiredObjects rebuilds the objects d applied: the artifact of d's digest
// from the cache (pulled again by digest through the Release's own registry
// client when the cache has evicted it), built and prepared as the
// pipeline did, and checked against d's hash.
func (r *Reconciler) desiredObjects(ctx context.Context, rel *v1alpha1.Release, a *Applier, d *desiredState, opts build.Options) ([]*unstructured.Unstructured, error) {
	ctx, cancel := context.WithTimeout(ctx, rel.GetTimeout())
	defer cancel()
	repo, err := r.repository(rel)
	if err != nil {
		return nil, err
	}
	ref := repo.WithDigest(d.digest)
	manifest := []byte(d.manifest.Value())
	art, err := r.Cache.Get(ctx, d.digest, manifest, func(ctx context.Context, dir string) (*artifact.PullResult, error) {
		registry, err := r.registryClient(ctx, rel, repo)
		if err != nil {
			return nil, err
		}
		return r.Source.Pull(ctx, registry, ref, dir, artifact.PullOptions{MaxSize: r.MaxSize, Manifest: manifest})
	})
	if err != nil {
		return nil, err
	}
	defer art.Release()
	objs, _, err := r.render(ctx, rel, a, art.Dir, d.digest, opts)
	if err != nil {
		return nil, err
	}
	if len(d.relocated) > 0 {
		maps := make([]map[string]any, 0, len(objs))
		for _, o := range objs {
			maps = append(maps, o.Object)
		}
		artifact.RewriteImages(maps, func(img string) string {
			if to, ok := d.relocated[img]; ok {
				return to
			}
			return img
		})
	}
	h, err := objectsHash(objs)
	if err != nil {
		return nil, err
	}
	if h != d.hash {
		return nil, fmt.Errorf("the objects rebuilt from %s differ from the ones applied (hash %s, applied %s)", ref, h, d.hash)
	}
	return objs, nil
}

// render builds the artifact extracted in dir at spec.path and prepares
// the objects for rel, with the kinds as a's cluster serves them: the one
// place a digest becomes objects, for the pipeline, a rollback and a drift
// check alike.
//
// A Helm chart (opts.Chart) is rendered instead of built, and info says
// what was rendered; info is nil for a kustomize build.
func (r *Reconciler) render(ctx context.Context, rel *v1alpha1.Release, a *Applier, dir, digest string, opts build.Options) (objs []*unstructured.Unstructured, info *build.ChartInfo, err error) {
	objs, info, err = build.Render(ctx, dir, rel.Spec.Path, digest, opts)
	if err != nil {
		return nil, nil, err
	}
	if err := build.Prepare(objs, a.Mapper, rel.Spec.TargetNamespace, rel.Namespace, ctrl.ObjectKeyFromObject(rel)); err != nil {
		return nil, nil, &build.Error{Digest: digest, Path: rel.Spec.Path, Err: err}
	}
	return objs, info, nil
}

// objectsHash is the SHA-256 of objs, in order, as JSON.
func objectsHash(objs []*unstructured.Unstructured) (string, error) {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, o := range objs {
		if err := enc.Encode(o.Object); err != nil {
			return "", fmt.Errorf("hash %s: %w", objectName(o), err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// remember keeps what rel's apply of digest applied (objs), as a hash. When
// the hash cannot be computed it forgets rel's state: the next reconcile
// then applies in full.
func (r *Reconciler) remember(ctx context.Context, rel *v1alpha1.Release, digest, trust, values string, relocated []v1alpha1.RelocatedImage, manifest []byte, objs []*unstructured.Unstructured) {
	key := ctrl.ObjectKeyFromObject(rel)
	d, err := newDesiredState(rel, digest, trust, values, relocated, manifest, objs, r.now())
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		log.FromContext(ctx).Info("the applied objects cannot be hashed: the next reconcile applies them in full", "error", err.Error())
		delete(r.desired, key)
		return
	}
	if r.desired == nil {
		r.desired = map[types.NamespacedName]*desiredState{}
	}
	r.desired[key] = d
}

func (r *Reconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	delete(r.desired, key)
	delete(r.failures, key)
	r.mu.Unlock()
	r.identities.Delete(key)
	r.Metrics.forget(key)
}

// backoff returns the next retry delay for key: BackoffBase doubling per
// consecutive failure, capped at limit.
func (r *Reconciler) backoff(key types.NamespacedName, limit time.Duration) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failures == nil {
		r.failures = map[types.NamespacedName]int{}
	}
	n := r.failures[key]
	r.failures[key] = n + 1
	base := r.BackoffBase
	if base <= 0 {
		base = time.Second
	}
	d := base
	for i := 0; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

func (r *Reconciler) resetBackoff(key types.NamespacedName) {
	r.mu.Lock()
	delete(r.failures, key)
	r.mu.Unlock()
}

// --- status -------------------------------------------------------------------

func (r *Reconciler) writeStatus(ctx context.Context, before, rel *v1alpha1.Release) error {
	if equality.Semantic.DeepEqual(before.Status, rel.Status) {
		return nil
	}
	r.Metrics.write("status", false)
	return r.Client.Status().Patch(ctx, rel, ctrl.MergeFrom(before))
}

// announce records an event when Ready changes.
func (r *Reconciler) announce(before, rel *v1alpha1.Release) {
	old := meta.FindStatusCondition(before.Status.Conditions, v1alpha1.ConditionReady)
	cur := meta.FindStatusCondition(rel.Status.Conditions, v1alpha1.ConditionReady)
	if cur == nil || (old != nil && old.Status == cur.Status && old.Reason == cur.Reason && old.Message == cur.Message) {
		return
	}
	typ := "Normal"
	if cur.Status == metav1.ConditionFalse {
		typ = "Warning"
	}
	r.event(rel, typ, cur.Reason, "Reconcile", "%s", cur.Message)
	r.notifyCondition(before, rel, cur)
}

func (r *Reconciler) event(rel *v1alpha1.Release, typ, reason, action, format string, args ...any) {
	if r.Events == nil {
		return
	}
	note := fmt.Sprintf(format, args...)
	if len(note) > 1000 { // the events API refuses notes over 1 kB
		note = note[:997] + "..."
	}
	r.Events.Eventf(rel, nil, typ, reason, action, "%s", note)
}

func (r *Reconciler) markSuspended(rel *v1alpha1.Release) outcome {
	setCondition(rel, v1alpha1.ConditionReconciling, metav1.ConditionFalse, v1alpha1.ReasonSuspended, "spec.suspend is true: nothing is pulled, applied or pruned")
	meta.RemoveStatusCondition(&rel.Status.Conditions, v1alpha1.ConditionStalled)
	if meta.FindStatusCondition(rel.Status.Conditions, v1alpha1.ConditionReady) == nil {
		setCondition(rel, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSuspended, "spec.suspend is true")
	}
	return outcome{result: "suspended"}
}

func (r *Reconciler) succeed(rel *v1alpha1.Release, msg string) outcome {
	setCondition(rel, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, msg)
	meta.RemoveStatusCondition(&rel.Status.Conditions, v1alpha1.ConditionReconciling)
	meta.RemoveStatusCondition(&rel.Status.Conditions, v1alpha1.ConditionStalled)
	r.resetBackoff(ctrl.ObjectKeyFromObject(rel))
	return outcome{result: "success", requeue: rel.GetInterval()}
}

// fail records err in Ready and in Stalled or Reconciling, and schedules a
// retry with backoff. The reason comes from err's type; stageReason is the
// fallback for an error of no known type.
func (r *Reconciler) fail(rel *v1alpha1.Release, stageReason string, err error) outcome {
	reason, stalled := classify(err, stageReason)
	msg := err.Error()
	if reason == v1alpha1.ReasonForbidden {
		who := r.identity(rel)
		msg += ": grant " + who + " these permissions with a Role and RoleBinding, or remove the objects from the artifact"
	}
	setCondition(rel, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	switch reason {
	case v1alpha1.ReasonVerificationFailed, v1alpha1.ReasonVerificationRequired:
		setCondition(rel, v1alpha1.ConditionVerified, metav1.ConditionFalse, reason, msg)
		if ve := (*verify.Error)(nil); errors.As(err, &ve) {
			r.event(rel, "Warning", reason, "Verify", "%s", msg)
		}
	}
	if stalled {
		setCondition(rel, v1alpha1.ConditionStalled, metav1.ConditionTrue, reason, msg)
		meta.RemoveStatusCondition(&rel.Status.Conditions, v1alpha1.ConditionReconciling)
	} else {
		setCondition(rel, v1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, "retrying: "+msg)
		meta.RemoveStatusCondition(&rel.Status.Conditions, v1alpha1.ConditionStalled)
	}
	out := outcome{result: "failure", err: err}
	if reason != v1alpha1.ReasonVerificationRequired { // only a spec change or a restart helps
		out.requeue = r.backoff(ctrl.ObjectKeyFromObject(rel), rel.GetRetryInterval())
	}
	return out
}

func setCondition(rel *v1alpha1.Release, typ string, status metav1.ConditionStatus, reason, msg string) {
	if len(msg) > 32000 {
		msg = msg[:32000]
	}
	meta.SetStatusCondition(&rel.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: rel.Generation,
	})
}

func readyReason(rel *v1alpha1.Release) string {
	if c := meta.FindStatusCondition(rel.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

func shortDigest(d string) string {
	_, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) < 12 {
		return d
	}
	return hex[:12]
}

func shortFingerprint(f string) string {
	if len(f) > 12 {
		return f[:12]
	}
	return f
}

func revisionSuffix(rel *v1alpha1.Release) string {
	if rel.Status.LastAppliedRevision != "" {
		return " (" + rel.Status.LastAppliedRevision + ")"
	}
	return ""
}
