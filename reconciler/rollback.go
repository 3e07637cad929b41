package reconciler

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
)

// RollbackError is a rollback that failed after the digest it rolled back
// from failed health: both failures, and the digests.
type RollbackError struct {
	Failed, Target string // digests with revisions, for messages
	Stage          string // verify, pull, build, apply or health
	Cause          error  // why Failed was rolled back
	Err            error  // why the rollback failed
}

func (e *RollbackError) Error() string {
	return fmt.Sprintf("rollback from %s to %s failed at %s: %v; the rollout of %s had failed first: %v; nothing more was pruned: fix the cause and push a new digest, or run `airlock reconcile release NAME --retry` to try %s again",
		e.Failed, e.Target, e.Stage, e.Err, e.Failed, e.Cause, e.Failed)
}

func (e *RollbackError) Unwrap() error { return e.Err }

// rollbackEnabled is spec.rollback.onFailure.
func rollbackEnabled(rel *v1alpha1.Release) bool {
	return rel.Spec.Rollback != nil && rel.Spec.Rollback.OnFailure
}

// rollback is the stage that runs where the health of the applied digest
// fails, when spec.rollback.onFailure is set. It re-applies the newest
// Healthy digest of the history, verified again under the current trust
// policy, prunes what only the failed digest added, and checks health as
// usual. A rollback that fails at any stage stalls the Release, naming both
// failures, and prunes nothing more.
func (r *Reconciler) rollback(ctx context.Context, rel *v1alpha1.Release, cause error) outcome {
	st := &rel.Status
	if len(st.History) == 0 || st.History[0].Digest != st.LastAppliedDigest {
		return r.fail(rel, v1alpha1.ReasonUnhealthy, cause)
	}
	failed := st.History[0]
	if failed.RollbackOf != "" { // the re-applied digest itself is unhealthy
		return r.rollbackFailed(rel, &RollbackError{Failed: entryName(st.History, failed.RollbackOf), Target: entryName(st.History, failed.Digest),
			Stage: "health", Cause: fmt.Errorf("not healthy"), Err: cause})
	}
	var target *v1alpha1.HistoryEntry
	for i := 1; i < len(st.History); i++ {
		e := &st.History[i]
		if e.Health == v1alpha1.HealthHealthy && e.Digest != failed.Digest && !e.RolledBack {
			target = e
			break
		}
	}
	if target == nil {
		return r.fail(rel, v1alpha1.ReasonUnhealthy, fmt.Errorf("%w; spec.rollback.onFailure is set, but status.history has no earlier Healthy digest to roll back to", cause))
	}
	st.FailedDigest = failed.Digest
	st.History[0].RolledBack = true
	rerr := &RollbackError{Failed: entryName(st.History, failed.Digest), Target: entryName(st.History, target.Digest), Cause: cause}
	r.event(rel, "Warning", v1alpha1.ReasonRolledBack, "Rollback", "%s failed health: rolling back to %s", rerr.Failed, rerr.Target)
	r.notify(rel, v1alpha1.AlertEventRolledBack, failed.Digest, "%s failed health: rolling back to %s: %v", rerr.Failed, rerr.Target, cause)

	applier, stage, err := r.reapply(ctx, rel, target.Digest, failed.Digest)
	if err != nil && stage != "prune" {
		rerr.Stage, rerr.Err = stage, err
		return r.rollbackFailed(rel, rerr)
	}
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonPruneFailed, err)
	}
	return r.rolledBackHealth(ctx, rel, applier.Client, false)
}

// reapply applies digest, an entry of the history, again: verified under
// the current trust policy, pulled by digest, built and applied; then what
// the inventory holds beyond it is pruned. rollbackOf marks the history
// entry. It returns the stage that failed (verify, pull, build, apply or
// prune); nothing is pruned unless everything before succeeded.
func (r *Reconciler) reapply(ctx context.Context, rel *v1alpha1.Release, digest, rollbackOf string) (*Applier, string, error) {
	tr, err := r.trustFor(ctx, rel)
	if err != nil {
		return nil, "verify", err
	}
	repo, err := r.repository(rel)
	if err != nil {
		return nil, "resolve", err
	}
	registry, err := r.registryClient(ctx, rel, repo)
	if err != nil {
		return nil, "pull", err
	}
	timeoutCtx, cancel := context.WithTimeout(ctx, rel.GetTimeout())
	defer cancel()
	ref := repo.WithDigest(digest)
	v, err := r.verify(timeoutCtx, rel, registry, ref, tr)
	if err != nil {
		return nil, "verify", err
	}
	art, err := r.pull(timeoutCtx, registry, ref, v.manifest)
	if err != nil {
		return nil, "pull", err
	}
	defer art.Release()
	site, err := r.siteFor(ctx, rel)
	if err != nil {
		return nil, "build", err
	}
	applier, err := r.applier(ctx, rel)
	if err != nil {
		return nil, "apply", err
	}
	objs, chart, err := r.render(timeoutCtx, rel, applier, art.Dir, ref.Digest, site.build)
	if err != nil {
		return nil, "build", err
	}
	relocated, err := r.airGap(timeoutCtx, rel, registry, ref, objs, v)
	if err != nil {
		return nil, "build", err
	}
	if err := applier.Apply(timeoutCtx, objs); err != nil {
		return nil, "apply", err
	}
	inv := Inventory(objs)
	pruned, pruneErr := r.prune(timeoutCtx, rel, applier, inv)
	prev := rel.Status.LastAppliedDigest
	r.recordApplied(rel, ref, art.Result, v.signers, tr.policies, inv, pruned, pruneErr)
	r.recordSite(rel, prev, site)
	recordChart(rel, chart)
	recordAirGap(rel, v, relocated)
	rel.Status.History[0].RollbackOf = rollbackOf
	r.remember(ctx, rel, ref.Digest, tr.fingerprint(), site.valuesHash(), relocated, art.Manifest, objs)
	if pruneErr != nil {
		return applier, "prune", pruneErr
	}
	return applier, "", nil
}

// rolledBackHealth checks the health of the re-applied digest: when it is
// healthy the Release is Ready=False RolledBack, naming both digests.
func (r *Reconciler) rolledBackHealth(ctx context.Context, rel *v1alpha1.Release, c ctrl.Reader, reported bool) outcome {
	var prev metav1.Condition
	if c := meta.FindStatusCondition(rel.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		prev = *c
	}
	out := r.checkHealth(ctx, rel, c)
	if out.result != "success" && out.result != "noop" {
		return out
	}
	st := &rel.Status
	msg := fmt.Sprintf("rolled back: %s failed health, and %s is applied again and healthy (spec.rollback.onFailure); %s is not applied again until spec.ref resolves to another digest or `airlock reconcile release %s -n %s --retry`",
		entryName(st.History, st.FailedDigest), entryName(st.History, st.LastAppliedDigest), shortDigest(st.FailedDigest), rel.Name, rel.Namespace)
	setCondition(rel, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonRolledBack, msg)
	if prev.Status == metav1.ConditionFalse && prev.Reason == v1alpha1.ReasonRolledBack && prev.Message == msg {
		// checkHealth set Ready True on the way: keep the time of the rollback.
		meta.FindStatusCondition(rel.Status.Conditions, v1alpha1.ConditionReady).LastTransitionTime = prev.LastTransitionTime
	}
	if !reported {
		r.Metrics.Rollbacks.WithLabelValues(rel.Namespace, rel.Name, "success").Inc()
	}
	return outcome{result: "failure", err: fmt.Errorf("%s", msg), requeue: rel.GetInterval()}
}

func (r *Reconciler) rollbackFailed(rel *v1alpha1.Release, err *RollbackError) outcome {
	r.Metrics.Rollbacks.WithLabelValues(rel.Namespace, rel.Name, "failure").Inc()
	return r.fail(rel, v1alpha1.ReasonRollbackFailed, err)
}

// holdFailed keeps status.failedDigest from being applied again while
// spec.ref resolves to it: it honours the RetryRequestAnnotation once, and
// forgets the failed digest when another one is resolved. When it holds,
// it corrects drift and checks the health of the digest rolled back to.
func (r *Reconciler) holdFailed(ctx context.Context, rel *v1alpha1.Release, digest, trustID string) (outcome, bool) {
	st := &rel.Status
	if v, ok := rel.Annotations[v1alpha1.RetryRequestAnnotation]; ok && v != st.LastHandledRetryAt {
		st.LastHandledRetryAt = v
		if st.FailedDigest != "" {
			r.event(rel, "Normal", "RetryRequested", "Rollback", "retrying %s, which was rolled back, as requested by %s", shortDigest(st.FailedDigest), v1alpha1.RetryRequestAnnotation)
			st.FailedDigest = ""
		}
	}
	if st.FailedDigest == "" {
		return outcome{}, false
	}
	if st.FailedDigest != digest {
		st.FailedDigest = ""
		return outcome{}, false
	}
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionStalled); c != nil && c.Reason == v1alpha1.ReasonRollbackFailed {
		return outcome{result: "failure", requeue: rel.GetInterval()}, true // a person must act
	}
	reported := readyReason(rel) == v1alpha1.ReasonRolledBack
	site, err := r.siteFor(ctx, rel)
	if err != nil {
		// Unreadable values: the digest is not up to date as applied;
		// reapply fails on them and names them.
		site = siteInput{status: &v1alpha1.SiteStatus{ValuesHash: "unreadable"}}
	}
	applier, err := r.applier(ctx, rel)
	if err != nil {
		return r.fail(rel, v1alpha1.ReasonApplyFailed, err), true
	}
	d, objs := r.upToDate(ctx, rel, applier, st.LastAppliedDigest, trustID, site)
	if d == nil {
		// The digest rolled back to is not in memory as applied with this
		// spec and trust (a restart, a spec change, a changed trust
		// policy): apply it again, as the pipeline would any digest.
		rollbackOf := ""
		if len(st.History) > 0 && st.History[0].Digest == st.LastAppliedDigest {
			rollbackOf = st.History[0].RollbackOf
		}
		applier, stage, err := r.reapply(ctx, rel, st.LastAppliedDigest, rollbackOf)
		if err != nil {
			return r.fail(rel, stageReasons[stage], err), true
		}
		return r.rolledBackHealth(ctx, rel, applier.Client, reported), true
	}
	if out := r.correctDriftOnly(ctx, rel, applier, objs); out != nil {
		return *out, true
	}
	return r.rolledBackHealth(ctx, rel, applier.Client, reported), true
}

// correctDriftOnly re-applies the objects of objs changed outside airlock;
// it returns an outcome only when that failed.
func (r *Reconciler) correctDriftOnly(ctx context.Context, rel *v1alpha1.Release, applier *Applier, objs []*unstructured.Unstructured) *outcome {
	drifted, err := applier.Drifted(ctx, objs)
	if err == nil && len(drifted) > 0 {
		err = applier.Apply(ctx, drifted)
		if err == nil {
			rel.Status.DriftCorrections += int64(len(drifted))
			r.Metrics.ObjectsDrifted.WithLabelValues(rel.Namespace, rel.Name).Add(float64(len(drifted)))
		}
	}
	if err != nil {
		out := r.fail(rel, v1alpha1.ReasonApplyFailed, err)
		return &out
	}
	return nil
}

// stageReasons is the fallback reason of each stage of reapply.
var stageReasons = map[string]string{
	"verify": v1alpha1.ReasonVerificationFailed, "resolve": v1alpha1.ReasonInvalidSpec, "pull": v1alpha1.ReasonPullFailed,
	"build": v1alpha1.ReasonBuildFailed, "apply": v1alpha1.ReasonApplyFailed, "prune": v1alpha1.ReasonPruneFailed,
}

// entryName is a digest with its revision from the history, for messages.
func entryName(history []v1alpha1.HistoryEntry, digest string) string {
	for _, e := range history {
		if e.Digest == digest && e.Revision != "" {
			return digest + " (" + e.Revision + ")"
		}
	}
	return digest
}
