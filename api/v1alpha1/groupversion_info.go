// Package v1alpha1 holds the Release API: one object that pulls a signed OCI
// artifact by digest, verifies it, builds it with kustomize and applies it.
//
// +kubebuilder:object:generate=true
// +groupName=delivery.airlock.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"

	"airlock.dev/airlock/internal/schemebuilder"
)

var (
	// GroupVersion is delivery.airlock.dev/v1alpha1.
	GroupVersion = schema.GroupVersion{Group: "delivery.airlock.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the Release types. It is controller-runtime's
	// scheme.Builder without controller-runtime, which the CLI does not link.
	SchemeBuilder = &schemebuilder.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the Release types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
