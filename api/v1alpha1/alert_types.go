package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// --- Alert (notifications out) -------------------------------------------------

// AlertKind is the kind of the Alert type.
const AlertKind = "Alert"

// The changes of a Release an Alert can send (spec.events).
const (
	// AlertEventReady: a new digest was applied and became Ready.
	AlertEventReady = "Ready"
	// AlertEventVerificationFailed: a digest failed signature verification
	// and was not applied.
	AlertEventVerificationFailed = "VerificationFailed"
	// AlertEventRolledBack: a digest failed health and the controller
	// re-applied the newest healthy one.
	AlertEventRolledBack = "RolledBack"
	// AlertEventDriftCorrected: objects changed outside airlock were applied again.
	AlertEventDriftCorrected = "DriftCorrected"
	// AlertEventPruned: objects no longer in the artifact were deleted.
	AlertEventPruned = "Pruned"
)

// Event severities (spec.eventSeverity).
const (
	SeverityInfo  = "info"
	SeverityError = "error"
)

// Provider types (spec.provider.type).
const (
	ProviderGeneric = "generic"
	ProviderSlack   = "slack"
	ProviderTeams   = "teams"
	ProviderSyslog  = "syslog"
)

// Alert condition reasons.
const (
	// ReasonProviderConfigured: the provider's Secret holds what its type needs.
	ReasonProviderConfigured = "ProviderConfigured"
	// ReasonDeliveryFailed: a notification could not be delivered after
	// every retry (recorded as an event on the Alert).
	ReasonDeliveryFailed = "DeliveryFailed"
)

// AlertSpec says which changes of which Releases, in the Alert's own
// namespace, are sent to one provider.
type AlertSpec struct {
	// Provider is where notifications go.
	// +required
	Provider AlertProvider `json:"provider"`

	// EventSeverity is the lowest severity sent: info sends every change,
	// error only failures (a verification failure, a rollback). Empty means info.
	// +kubebuilder:validation:Enum=info;error
	// +kubebuilder:default=info
	// +optional
	EventSeverity string `json:"eventSeverity,omitempty"`

	// EventSources select the Releases, in the Alert's namespace, whose
	// changes are sent. A Release is selected when one source matches it.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +required
	EventSources []AlertEventSource `json:"eventSources"`

	// Events are the changes sent: Ready (a new digest applied and
	// Ready), VerificationFailed, RolledBack, DriftCorrected and Pruned.
	// Empty means all of them.
	// +kubebuilder:validation:MaxItems=5
	// +kubebuilder:validation:items:Enum=Ready;VerificationFailed;RolledBack;DriftCorrected;Pruned
	// +optional
	Events []string `json:"events,omitempty"`

	// Suspend stops sending; changes meanwhile are not sent later.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// AlertEventSource selects Releases in the Alert's namespace by name, by
// labels, or both (then both must match).
// +kubebuilder:validation:XValidation:rule="has(self.name) || has(self.selector)",message="name or selector is required"
type AlertEventSource struct {
	// Name is a Release's name; `*` means every Release.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Name string `json:"name,omitempty"`

	// Selector selects Releases by their labels.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// AlertProvider is one notification endpoint. Its address and secrets are
// in a Secret, never in the Alert.
type AlertProvider struct {
	// Type is generic (JSON POST signed with HMAC-SHA256 in X-Signature),
	// slack (a Slack-compatible incoming webhook: Slack, Mattermost,
	// Rocket.Chat), teams (a Microsoft Teams incoming webhook or workflow,
	// sent an Adaptive Card) or syslog (RFC 5424, octet-counted, over TLS
	// or TCP).
	// +kubebuilder:validation:Enum=generic;slack;teams;syslog
	// +required
	Type string `json:"type"`

	// SecretRef names a Secret in the Alert's namespace holding `address`
	// (the webhook URL, or tls://HOST:PORT or tcp://HOST:PORT for syslog),
	// `hmacKey` (generic: required, the HMAC-SHA256 key), and optionally
	// `ca.crt` (CA of the endpoint's certificate) and `tls.crt` and
	// `tls.key` (a client certificate).
	// +required
	SecretRef LocalObjectReference `json:"secretRef"`

	// Channel overrides a Slack-compatible webhook's channel. Empty means
	// the webhook's own.
	// +kubebuilder:validation:MaxLength=80
	// +optional
	Channel string `json:"channel,omitempty"`

	// Username overrides the name a Slack-compatible webhook posts as.
	// Empty means airlock.
	// +kubebuilder:validation:MaxLength=80
	// +optional
	Username string `json:"username,omitempty"`

	// Insecure allows an http:// webhook or tcp:// syslog address: the
	// notifications (and a generic webhook's signature) then travel
	// unencrypted. false refuses them.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
}

// AlertStatus is the Alert's observed state.
type AlertStatus struct {
	// ObservedGeneration is the generation last checked.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready is True when the provider's Secret holds what its
	// type needs; False names what is missing.
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// LastDelivery is the end of the last notification this Alert sent:
	// delivered, or given up.
	// +optional
	LastDelivery *AlertDelivery `json:"lastDelivery,omitempty"`
}

// --- Alert delivery record (status.lastDelivery) ----------------------------

// Results of a delivery (status.lastDelivery.result).
const (
	// DeliveryDelivered: the endpoint accepted the notification.
	DeliveryDelivered = "Delivered"
	// DeliveryFailed: the notification was given up, after every retry or
	// at once when the endpoint refused it for good.
	DeliveryFailed = "Failed"
)

// AlertDelivery is the end of one notification an Alert sent.
type AlertDelivery struct {
	// Time is when the delivery ended.
	// +required
	Time metav1.Time `json:"time"`

	// Result is Delivered or Failed.
	// +kubebuilder:validation:Enum=Delivered;Failed
	// +required
	Result string `json:"result"`

	// Event is the change sent: Ready, VerificationFailed, RolledBack,
	// DriftCorrected or Pruned.
	// +required
	Event string `json:"event"`

	// Release is the name of the Release, in the Alert's namespace, whose
	// change it was.
	// +required
	Release string `json:"release"`

	// Attempts is the number of attempts made.
	// +required
	Attempts int32 `json:"attempts"`

	// Message is why a Failed delivery failed (its last error). It names
	// the endpoint by scheme and host only, since a webhook URL's path is
	// often its token. Empty when Delivered.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
}

// Alert sends changes of Releases in its namespace (a new digest Ready, a
// verification failure, a rollback, a drift correction, a prune) to a
// webhook, a chat system or syslog.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=airlock
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider.type`
// +kubebuilder:printcolumn:name="Severity",type=string,JSONPath=`.spec.eventSeverity`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Last delivery",type=string,JSONPath=`.status.lastDelivery.result`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type Alert struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AlertSpec   `json:"spec,omitempty"`
	Status AlertStatus `json:"status,omitempty"`
}

// AlertList is a list of Alerts.
// +kubebuilder:object:root=true
type AlertList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Alert `json:"items"`
}

// AlertEventSeverity is the severity of a change: error for a verification failure
// or a rollback, info for the others.
func AlertEventSeverity(event string) string {
	switch event {
	case AlertEventVerificationFailed, AlertEventRolledBack:
		return SeverityError
	}
	return SeverityInfo
}

// SendsSeverity says whether an Alert with spec.eventSeverity min sends a
// change of severity sev.
func SendsSeverity(min, sev string) bool {
	return min != SeverityError || sev == SeverityError
}

// The Alert types join the scheme from their own file, so that other kinds
// of this group can be added beside them without touching one list.
func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, &Alert{}, &AlertList{})
		return nil
	})
}
