// Package reconciler is the Release controller: resolve, verify, pull,
// build, apply, prune and check health, then write one status.
package reconciler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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
	// Source resolves and pulls artifacts.
	Source Source
	// Verifier checks signatures. nil refuses every Release with spec.verify.
	Verifier Verifier
	// Cache keeps pulled artifacts by digest.
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
	// HealthPoll is how often health is checked while objects progress. 0 means 2s.
	HealthPoll time.Duration
	// Mirrors rewrites Release URLs to site registries: the controller then
	// contacts only the mirror. nil means none.
	Mirrors artifact.Mirrors
	// Build bounds each kustomize build (objects, bytes, duration); the zero
	// value is build's safe defaults.
	Build build.Options

	mu       sync.Mutex
	failures map[types.NamespacedName]int
	desired  map[types.NamespacedName]*desiredState
}

// desiredState is what the last successful apply of a Release applied: with
// it, a reconcile of an unchanged digest only checks drift and health.
type desiredState struct {
	digest     string
	generation int64
	trust      string
	objects    []*unstructured.Unstructured
	appliedAt  time.Time
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
	if err := r.checkDependencies(ctx, rel); err != nil {
		return r.fail(rel, v1alpha1.ReasonDependencyNotReady, err)
	}
	keys, err := r.trustPolicy(ctx, rel)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonVerificationFailed, err)
	}
	remote, err := r.remoteOptions(ctx, rel)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonSecretError, err)
	}

	timeoutCtx, cancel := context.WithTimeout(ctx, rel.GetTimeout())
	defer cancel()
	ref, err := r.resolve(timeoutCtx, rel, remote)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonRegistryUnavailable, err)
	}
	rel.Status.LastAttemptedDigest = ref.Digest
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("digest", ref.Digest))
	trust := trustFingerprint(keys, rel)

	if d := r.upToDate(rel, ref.Digest, trust); d != nil {
		return r.correctDrift(ctx, rel, d)
	}

	signers, err := r.verify(timeoutCtx, rel, ref, keys, remote)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonVerificationFailed, err)
	}
	art, err := r.pull(timeoutCtx, ref, remote)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonPullFailed, err)
	}
	defer art.Release()
	objs, err := build.Build(timeoutCtx, art.Dir, rel.Spec.Path, ref.Digest, r.Build)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonBuildFailed, err)
	}
	applier, err := r.applier(rel)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonApplyFailed, err)
	}
	if err := Prepare(objs, r.Clients.Mapper, rel.Spec.TargetNamespace, rel.Namespace, ctrl.ObjectKeyFromObject(rel)); err != nil {
		return r.fail(rel, v1alpha1.ReasonBuildFailed, &build.Error{Digest: ref.Digest, Path: rel.Spec.Path, Err: err})
	}
	if err := r.preflightImages(timeoutCtx, rel, ref, remote); err != nil {
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
	r.recordApplied(rel, ref, art.Result, signers, inv, pruned, pruneErr)
	r.remember(rel, &desiredState{digest: ref.Digest, generation: rel.Generation, trust: trust, objects: objs, appliedAt: r.now()})
	if pruneErr != nil {
		return r.fail(rel, v1alpha1.ReasonPruneFailed, pruneErr)
	}
	return r.checkHealth(ctx, rel, applier.Client)
}

// correctDrift is the pipeline for an unchanged digest and spec: find the
// objects changed outside airlock with a dry-run apply and apply them again.
func (r *Reconciler) correctDrift(ctx context.Context, rel *v1alpha1.Release, d *desiredState) outcome {
	applier, err := r.applier(rel)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonApplyFailed, err)
	}
	drifted, err := applier.Drifted(ctx, d.objects)
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
		d.appliedAt = r.now()
	}
	// Objects whose prune failed earlier are still in the inventory: retry.
	inv := Inventory(d.objects)
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

// checkHealth evaluates kstatus over the inventory and sets Ready.
func (r *Reconciler) checkHealth(ctx context.Context, rel *v1alpha1.Release, c ctrl.Reader) outcome {
	key := ctrl.ObjectKeyFromObject(rel)
	applied := fmt.Sprintf("applied %s%s: %d objects", shortDigest(rel.Status.LastAppliedDigest), revisionSuffix(rel), len(rel.Status.Inventory))
	if !rel.WaitEnabled() {
		setCondition(rel, v1alpha1.ConditionHealthy, metav1.ConditionUnknown, v1alpha1.ReasonWaitSkipped, "spec.wait is false: health is not checked")
		return r.succeed(rel, applied)
	}
	h, err := CheckHealth(ctx, c, rel.Status.Inventory)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonUnhealthy, err)
	}
	if h.Healthy {
		setCondition(rel, v1alpha1.ConditionHealthy, metav1.ConditionTrue, v1alpha1.ReasonHealthy, "every object is Current")
		setHistoryHealth(rel, v1alpha1.HealthHealthy)
		return r.succeed(rel, applied+", all healthy")
	}
	deadline := r.appliedAt(rel).Add(rel.GetTimeout())
	if !h.Failed && r.now().Before(deadline) {
		msg := "waiting for objects to become Current: " + h.Message()
		setCondition(rel, v1alpha1.ConditionHealthy, metav1.ConditionUnknown, v1alpha1.ReasonProgressing, msg)
		setCondition(rel, v1alpha1.ConditionReady, metav1.ConditionUnknown, v1alpha1.ReasonProgressing, applied+"; "+msg)
		setCondition(rel, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonProgressing, msg)
		meta.RemoveStatusCondition(&rel.Status.Conditions, v1alpha1.ConditionStalled)
		setHistoryHealth(rel, v1alpha1.HealthProgressing)
		next := min(r.healthPoll(), deadline.Sub(r.now())+time.Millisecond)
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
	return r.fail(rel, v1alpha1.ReasonUnhealthy, err)
}

func (r *Reconciler) healthPoll() time.Duration {
	if r.HealthPoll > 0 {
		return r.HealthPoll
	}
	return 2 * time.Second
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

// DependencyError is a Release in spec.dependsOn that is not Ready.
type DependencyError struct {
	Dependency types.NamespacedName
	State      string
}

func (e *DependencyError) Error() string {
	return fmt.Sprintf("waiting for Release %s, listed in spec.dependsOn, to be Ready (%s)", e.Dependency, e.State)
}

func (r *Reconciler) checkDependencies(ctx context.Context, rel *v1alpha1.Release) error {
	for _, d := range rel.Spec.DependsOn {
		key := types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
		if key.Namespace == "" {
			key.Namespace = rel.Namespace
		}
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
		case ready.Status != metav1.ConditionTrue:
			return &DependencyError{Dependency: key, State: ready.Reason + ": " + ready.Message}
		}
	}
	return nil
}

// trustPolicy loads the trusted keys, or refuses an unsigned Release.
func (r *Reconciler) trustPolicy(ctx context.Context, rel *v1alpha1.Release) ([]TrustedKey, error) {
	if rel.Spec.Verify == nil {
		if r.AllowUnsignedInsecure {
			return nil, nil
		}
		return nil, &VerificationRequiredError{Release: ctrl.ObjectKeyFromObject(rel)}
	}
	return r.trustedKeys(ctx, rel)
}

func trustFingerprint(keys []TrustedKey, rel *v1alpha1.Release) string {
	if rel.Spec.Verify == nil {
		return "unsigned"
	}
	h := sha256.New()
	fmt.Fprintf(h, "threshold=%d\n", rel.Spec.Verify.Threshold)
	for _, k := range keys {
		fmt.Fprintf(h, "%s\n%s\n", k.Name, k.PEM)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// resolve turns spec.url and spec.ref into a digest: one HEAD request for a
// tag, a tag listing and a HEAD for a semver range, none for a digest.
func (r *Reconciler) resolve(ctx context.Context, rel *v1alpha1.Release, remote artifact.RemoteOptions) (artifact.Reference, error) {
	repo, err := artifact.ParseRepository(rel.Spec.URL)
	if err != nil {
		return repo, &SpecError{Field: "spec.url", Err: err}
	}
	repo = r.Mirrors.Rewrite(repo)
	switch {
	case rel.Spec.Ref.Digest != "":
		return repo.WithDigest(rel.Spec.Ref.Digest), nil
	case rel.Spec.Ref.Semver != "":
		tag, err := r.Source.LatestSemver(ctx, repo, rel.Spec.Ref.Semver, remote)
		if err != nil {
			return repo, err
		}
		return r.Source.Resolve(ctx, repo.WithTag(tag), remote)
	default:
		tag := rel.Spec.Ref.Tag
		if tag == "" {
			tag = "latest"
		}
		return r.Source.Resolve(ctx, repo.WithTag(tag), remote)
	}
}

// VerificationError is an artifact whose signatures do not satisfy the
// Release's trust policy.
type VerificationError struct {
	Ref string
	// Found are the fingerprints of the keys that signed, trusted or not.
	Found []string
	Err   error
	// cause is the verifier's own typed error, for errors.Is on its reasons.
	cause error
}

func (e *VerificationError) Error() string {
	msg := fmt.Sprintf("verify %s: %v", e.Ref, e.Err)
	if len(e.Found) > 0 {
		msg += fmt.Sprintf(" (signers found: %s)", strings.Join(e.Found, ", "))
	}
	return msg
}
func (e *VerificationError) Unwrap() []error { return []error{e.Err, e.cause} }

func (r *Reconciler) verify(ctx context.Context, rel *v1alpha1.Release, ref artifact.Reference, keys []TrustedKey, remote artifact.RemoteOptions) ([]v1alpha1.Signer, error) {
	if rel.Spec.Verify == nil {
		setCondition(rel, v1alpha1.ConditionVerified, metav1.ConditionFalse, v1alpha1.ReasonVerificationSkipped,
			"not verified: the Release has no spec.verify and the controller runs with --allow-unsigned")
		return nil, nil
	}
	if r.Verifier == nil {
		return nil, &VerificationError{Ref: ref.String(), Err: errors.New("this controller has no signature verifier")}
	}
	threshold := rel.Spec.Verify.Threshold
	if threshold < 1 {
		threshold = 1
	}
	signers, err := r.Verifier.Verify(ctx, ref, keys, threshold, remote)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(signers))
	for _, s := range signers {
		names = append(names, s.Name+" ("+shortFingerprint(s.Fingerprint)+")")
	}
	setCondition(rel, v1alpha1.ConditionVerified, metav1.ConditionTrue, v1alpha1.ReasonVerified,
		fmt.Sprintf("%s signed by %s", shortDigest(ref.Digest), strings.Join(names, ", ")))
	return signers, nil
}

func (r *Reconciler) pull(ctx context.Context, ref artifact.Reference, remote artifact.RemoteOptions) (*CachedArtifact, error) {
	return r.Cache.Get(ctx, ref.Digest, func(ctx context.Context, dir string) (*artifact.PullResult, error) {
		return r.Source.Pull(ctx, ref, dir, artifact.PullOptions{Remote: remote, MaxSize: r.MaxSize})
	})
}

func (r *Reconciler) applier(rel *v1alpha1.Release) (*Applier, error) {
	c, err := r.Clients.For(rel.Namespace, rel.Spec.ServiceAccountName)
	if err != nil {
		return nil, err
	}
	return &Applier{Client: c, Force: rel.Spec.Force, Timeout: rel.GetTimeout(), Metrics: r.Metrics}, nil
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
func (r *Reconciler) recordApplied(rel *v1alpha1.Release, ref artifact.Reference, res *artifact.PullResult, signers []v1alpha1.Signer, inv, pruned []v1alpha1.ObjectRef, pruneErr error) {
	st := &rel.Status
	newDigest := st.LastAppliedDigest != ref.Digest
	st.Inventory = inventoryAfterPrune(st.Inventory, inv, pruned, pruneErr)
	st.LastAppliedDigest = ref.Digest
	st.ShortDigest = shortDigest(ref.Digest)
	st.LastAppliedGeneration = rel.Generation
	st.LastAppliedSource = res.Source
	st.LastAppliedRevision = res.Revision
	st.Signers = signers
	names := make([]string, 0, len(signers))
	for _, s := range signers {
		names = append(names, s.Name)
	}
	entry := v1alpha1.HistoryEntry{Digest: ref.Digest, AppliedAt: metav1.NewTime(r.now()), Revision: res.Revision, Signers: names, Health: v1alpha1.HealthUnknown}
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
		a, err := r.applier(rel)
		if err == nil {
			var pruned []v1alpha1.ObjectRef
			pruned, err = a.Prune(ctx, rel.Status.Inventory, nil, key)
			if len(pruned) > 0 {
				r.event(rel, "Normal", v1alpha1.ReasonDeleted, "Prune", "Release deleted: pruned %d objects", len(pruned))
			}
		}
		if err != nil {
			before := rel.DeepCopy()
			out := r.fail(rel, v1alpha1.ReasonPruneFailed, fmt.Errorf("Release %s is being deleted but its objects cannot be pruned: %w: fix the permissions, or remove the finalizer %s to leave them", key, err, v1alpha1.Finalizer))
			if werr := r.writeStatus(ctx, before, rel); werr != nil {
				return reconcile.Result{}, werr
			}
			r.announce(before, rel)
			return reconcile.Result{RequeueAfter: out.requeue}, nil
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

// --- in-memory state ----------------------------------------------------------

func (r *Reconciler) upToDate(rel *v1alpha1.Release, digest, trust string) *desiredState {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.desired[ctrl.ObjectKeyFromObject(rel)]
	if d == nil || d.digest != digest || d.generation != rel.Generation || d.trust != trust ||
		rel.Status.LastAppliedDigest != digest || rel.Status.LastAppliedGeneration != rel.Generation {
		return nil
	}
	return d
}

func (r *Reconciler) remember(rel *v1alpha1.Release, d *desiredState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.desired == nil {
		r.desired = map[types.NamespacedName]*desiredState{}
	}
	r.desired[ctrl.ObjectKeyFromObject(rel)] = d
}

func (r *Reconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	delete(r.desired, key)
	delete(r.failures, key)
	r.mu.Unlock()
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
		who := "the controller's ServiceAccount"
		if sa := rel.Spec.ServiceAccountName; sa != "" {
			who = "ServiceAccount " + rel.Namespace + "/" + sa + " (spec.serviceAccountName)"
		}
		msg += ": grant " + who + " these permissions with a Role and RoleBinding, or remove the objects from the artifact"
	}
	setCondition(rel, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	switch reason {
	case v1alpha1.ReasonVerificationFailed, v1alpha1.ReasonVerificationRequired:
		setCondition(rel, v1alpha1.ConditionVerified, metav1.ConditionFalse, reason, msg)
		if ve := (*VerificationError)(nil); errors.As(err, &ve) {
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

// classify derives a condition reason from err's type, and whether only a
// change by a person helps (Stalled) rather than a retry (Reconciling).
func classify(err error, stageReason string) (reason string, stalled bool) {
	var (
		verr  *VerificationRequiredError
		serr  *SecretError
		derr  *DependencyError
		ver   *VerificationError
		berr  *build.Error
		ierr  *ImmutableFieldError
		eerr  *EmptyArtifactError
		sperr *SpecError
		merr  *ImagesMissingError
	)
	switch {
	case errors.As(err, &verr):
		return v1alpha1.ReasonVerificationRequired, true
	case errors.As(err, &sperr):
		return v1alpha1.ReasonInvalidSpec, true
	case errors.As(err, &serr):
		return v1alpha1.ReasonSecretError, false
	case errors.As(err, &derr):
		return v1alpha1.ReasonDependencyNotReady, false
	case errors.As(err, &ver):
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
	case apierrors.IsForbidden(err):
		return v1alpha1.ReasonForbidden, true
	}
	return stageReason, false
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
