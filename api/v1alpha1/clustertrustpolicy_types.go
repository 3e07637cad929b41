package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterTrustPolicyKind is the kind of the ClusterTrustPolicy type.
const ClusterTrustPolicyKind = "ClusterTrustPolicy"

// ClusterTrustPolicySpec says which keys must have signed the artifacts of
// some repositories, whatever the Releases that deploy them say.
type ClusterTrustPolicySpec struct {
	// Repositories are patterns of artifact repositories, HOST/PATH with or
	// without oci://: `*` matches one path segment (or part of one, as in
	// team-*), `**` any number of segments. registry.example.com/team-a/**
	// covers every repository under team-a.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MinLength=1
	// +required
	Repositories []string `json:"repositories"`

	// KeysSecretRef names a Secret in the controller's namespace; every key
	// ending in .pub is a trusted cosign public key.
	// +required
	KeysSecretRef LocalObjectReference `json:"keysSecretRef"`

	// Threshold is how many distinct keys of the Secret must have signed.
	// Empty means 1.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +optional
	Threshold int `json:"threshold,omitempty"`
}

// ClusterTrustPolicy requires signatures by its keys for every Release whose
// spec.url matches one of its repositories. A Release adds its own
// spec.verify on top and cannot weaken it; when several policies match, all
// apply; when policies exist and none matches, the Release is refused.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ctp,categories=airlock
// +kubebuilder:printcolumn:name="Keys",type=string,JSONPath=`.spec.keysSecretRef.name`
// +kubebuilder:printcolumn:name="Threshold",type=integer,JSONPath=`.spec.threshold`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterTrustPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ClusterTrustPolicySpec `json:"spec,omitempty"`
}

// ClusterTrustPolicyList is a list of ClusterTrustPolicies.
// +kubebuilder:object:root=true
type ClusterTrustPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterTrustPolicy `json:"items"`
}
