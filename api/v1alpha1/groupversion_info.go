// Package v1alpha1 holds the Release API: one object that pulls a signed OCI
// artifact by digest, verifies it, builds it with kustomize and applies it,
// and the cluster-wide ClusterTrustPolicy that says which keys must have
// signed the artifacts of a repository.
//
// +kubebuilder:object:generate=true
// +groupName=delivery.airlock.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is delivery.airlock.dev/v1alpha1.
	GroupVersion = schema.GroupVersion{Group: "delivery.airlock.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types, as k8s.io/api's packages do: with
	// apimachinery alone, so the CLI, which reads Releases, links no
	// controller-runtime package.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Release{}, &ReleaseList{}, &ClusterTrustPolicy{}, &ClusterTrustPolicyList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
