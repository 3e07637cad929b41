// Package schemebuilder registers an API's types in a runtime.Scheme, as
// controller-runtime's scheme.Builder does, without linking controller-runtime:
// the CLI reads Releases through api/v1alpha1 and stays small.
package schemebuilder

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Builder collects a group version's types.
type Builder struct {
	GroupVersion schema.GroupVersion
	funcs        runtime.SchemeBuilder
}

// Register adds types to the group version.
func (b *Builder) Register(objects ...runtime.Object) {
	b.funcs.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(b.GroupVersion, objects...)
		metav1.AddToGroupVersion(s, b.GroupVersion)
		return nil
	})
}

// AddToScheme adds the registered types to s.
func (b *Builder) AddToScheme(s *runtime.Scheme) error { return b.funcs.AddToScheme(s) }
