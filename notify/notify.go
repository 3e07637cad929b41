// Package notify tells people about Release state changes: it sends each
// change to the providers of the Alerts that select it (a generic webhook
// signed with HMAC-SHA256, a Slack-compatible webhook, Microsoft Teams, or
// syslog over TLS or TCP), from a bounded queue, with retries, so that a
// down endpoint never holds up a reconcile.
package notify

import (
	"context"
	"time"
)

// Event is one change of a Release. Its fields name objects, digests and
// reasons; the reconciler never puts a secret value in Message.
type Event struct {
	// Time is when the change happened.
	Time time.Time `json:"time"`
	// Namespace and Name name the Release.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Reason is one of v1alpha1.AlertEvent*: Ready, VerificationFailed,
	// RolledBack, DriftCorrected, Pruned.
	Reason string `json:"reason"`
	// Severity is v1alpha1.SeverityInfo or SeverityError.
	Severity string `json:"severity"`
	// Message says what changed, in one sentence.
	Message string `json:"message"`
	// Digest is the artifact digest the change is about, when there is one.
	Digest string `json:"digest,omitempty"`
	// Revision is the source revision the artifact records, when it does.
	Revision string `json:"revision,omitempty"`
	// Labels are the Release's labels, for the Alerts' selectors; not sent.
	Labels map[string]string `json:"-"`
}

// Notifier takes events from the reconciler. Notify must return at once:
// it never waits for a delivery.
type Notifier interface {
	Notify(Event)
}

// Provider delivers one event to one endpoint. An error wrapped in
// Permanent is not retried.
type Provider interface {
	Send(ctx context.Context, ev Event) error
}
