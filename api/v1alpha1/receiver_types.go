package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ReceiverKind is the kind of the Receiver type.
const ReceiverKind = "Receiver"

// Receiver types: the payload a Receiver accepts and how its sender proves
// who it is.
const (
	// ReceiverGenericHMAC accepts airlock's generic JSON body (what
	// `airlock push artifact --notify` sends), signed with HMAC-SHA256 over
	// the timestamp and the body: headers X-Signature: sha256=HEX and
	// X-Airlock-Timestamp: UNIX-SECONDS.
	ReceiverGenericHMAC = "generic-hmac"
	// ReceiverDistribution accepts the CNCF distribution registry's
	// notification envelope, with the header Authorization: Bearer TOKEN.
	ReceiverDistribution = "distribution"
	// ReceiverHarbor accepts Harbor's webhook payload (the Default or the
	// CloudEvents format), with the policy's auth header set to
	// "Bearer TOKEN".
	ReceiverHarbor = "harbor"
	// ReceiverQuay accepts Quay's repository push notification. Quay sends no
	// credentials: only the unguessable path authenticates it.
	ReceiverQuay = "quay"
)

// Receiver events: what a notification says happened to a repository.
const (
	// ReceiverEventPush is a manifest or tag pushed.
	ReceiverEventPush = "push"
	// ReceiverEventDelete is a manifest or tag deleted.
	ReceiverEventDelete = "delete"
)

// ReceiverReasonReady and the other reasons of a Receiver's Ready condition.
const (
	ReceiverReasonReady = "Serving"
	// ReceiverReasonSecretError: the Secret is missing or holds no usable token.
	ReceiverReasonSecretError = "SecretError"
)

// ReceiverTokenKey is the key of the Receiver's Secret that holds the token
// (the bearer token, or the HMAC key of generic-hmac).
const ReceiverTokenKey = "token"

// ReceiverSpec says which notifications a Receiver accepts and which
// Releases of its namespace they reconcile.
type ReceiverSpec struct {
	// Type is the sender's payload format and proof of identity:
	// generic-hmac, distribution, harbor or quay.
	// +kubebuilder:validation:Enum=generic-hmac;distribution;harbor;quay
	// +required
	Type string `json:"type"`

	// SecretRef names a Secret in the Receiver's namespace whose key "token"
	// (16 bytes or more) is the bearer token, or the HMAC key of
	// generic-hmac. The webhook path is derived from it.
	// +required
	SecretRef LocalObjectReference `json:"secretRef"`

	// Events are the kinds of notification that request a reconcile: push,
	// delete. Others are answered and ignored. Empty means push.
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:items:Enum=push;delete
	// +optional
	Events []string `json:"events,omitempty"`

	// Registry is HOST[:PORT] as the Releases' resolved URLs name the
	// registry that sends the notifications. Set it when the registry knows
	// itself by another name (the Host its clients pushed to). Empty means
	// the host the notification names.
	// +kubebuilder:validation:Pattern=`^[^/@]+$`
	// +optional
	Registry string `json:"registry,omitempty"`

	// Selector narrows the Releases a notification may reconcile to those
	// whose labels match. Empty means every Release of the namespace whose
	// resolved repository matches.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// AcceptedEvents is spec.events, defaulted.
func (s ReceiverSpec) AcceptedEvents() []string {
	if len(s.Events) == 0 {
		return []string{ReceiverEventPush}
	}
	return s.Events
}

// ReceiverStatus is what the controller observed.
type ReceiverStatus struct {
	// ObservedGeneration is the generation last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// WebhookPath is where the controller's receiver endpoint
	// (--receiver-addr) accepts this Receiver's notifications:
	// /hook/ and the HMAC-SHA256, keyed by the token, of namespace/name.
	// +optional
	WebhookPath string `json:"webhookPath,omitempty"`

	// Conditions: Ready.
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Receiver accepts push notifications from a registry or a CI job, and
// requests a reconcile of the Releases of its namespace whose resolved
// repository the notification names.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rcv,categories=airlock
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Path",type=string,JSONPath=`.status.webhookPath`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Receiver struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ReceiverSpec   `json:"spec,omitempty"`
	Status ReceiverStatus `json:"status,omitempty"`
}

// ReceiverList is a list of Receivers.
// +kubebuilder:object:root=true
type ReceiverList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Receiver `json:"items"`
}

// The Receiver registers itself, as kubebuilder's types do, so that its
// file is all there is to it.
func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, &Receiver{}, &ReceiverList{})
		return nil
	})
}
