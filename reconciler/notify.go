package reconciler

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/notify"
)

// notify tells r.Notifier of a change that Alerts send (reason is one of
// v1alpha1.AlertEvent*). The message names objects, digests and reasons,
// never a secret value; it is queued, never waited for.
func (r *Reconciler) notify(rel *v1alpha1.Release, reason, digest, format string, args ...any) {
	if r.Notifier == nil {
		return
	}
	var revision string
	for _, h := range rel.Status.History {
		if h.Digest == digest {
			revision = h.Revision
			break
		}
	}
	r.Notifier.Notify(notify.Event{
		Time: r.now(), Namespace: rel.Namespace, Name: rel.Name,
		Reason: reason, Severity: v1alpha1.AlertEventSeverity(reason),
		Message: fmt.Sprintf(format, args...), Digest: digest, Revision: revision,
		Labels: rel.Labels,
	})
}

// notifyCondition sends the Ready condition's changes that Alerts send,
// once per change (announce calls it only when Ready changed): a
// verification failure, and a new digest that became Ready. A Release
// that turns Ready again with the digest it had (after a registry outage,
// say) sends nothing.
func (r *Reconciler) notifyCondition(before, rel *v1alpha1.Release, cur *metav1.Condition) {
	switch {
	case cur.Status == metav1.ConditionFalse && cur.Reason == v1alpha1.ReasonVerificationFailed:
		r.notify(rel, v1alpha1.AlertEventVerificationFailed, rel.Status.LastAttemptedDigest, "%s", cur.Message)
	case cur.Status == metav1.ConditionTrue && newDigestReady(before, rel):
		r.notify(rel, v1alpha1.AlertEventReady, rel.Status.LastAppliedDigest, "%s", cur.Message)
	}
}

// newDigestReady says whether rel's applied digest became Ready in this
// reconcile: it was applied now (and is Ready at once), or its health
// turned Healthy now.
func newDigestReady(before, rel *v1alpha1.Release) bool {
	d := rel.Status.LastAppliedDigest
	if d == "" {
		return false
	}
	if before.Status.LastAppliedDigest != d {
		return true
	}
	return historyHealth(before, d) != v1alpha1.HealthHealthy && historyHealth(rel, d) == v1alpha1.HealthHealthy
}

// historyHealth is the health the newest history entry records for digest.
func historyHealth(rel *v1alpha1.Release, digest string) string {
	if h := rel.Status.History; len(h) > 0 && h[0].Digest == digest {
		return h[0].Health
	}
	return ""
}
