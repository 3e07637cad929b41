package build

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"airlock.dev/airlock/api/v1alpha1"
)

// Prepare sets each object's namespace (targetNamespace for namespaced
// objects, else their own, else defaultNamespace), clears it on
// cluster-scoped ones, and labels every object with its Release. CRDs in the
// same set define the scope of their kinds before they are applied.
func Prepare(objs []*unstructured.Unstructured, mapper meta.RESTMapper, targetNamespace, defaultNamespace string, owner types.NamespacedName) error {
	crdScope := map[schema.GroupKind]bool{}
	for _, o := range objs {
		if IsCRD(o) {
			g, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			k, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
			s, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
			crdScope[schema.GroupKind{Group: g, Kind: k}] = s == "Namespaced"
		}
	}
	seen := map[v1alpha1.ObjectRef]bool{}
	var errs []error
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		if gvk.Kind == "" || gvk.Version == "" || o.GetName() == "" {
			errs = append(errs, fmt.Errorf("object %q of kind %q has no apiVersion, kind or name", o.GetName(), gvk.Kind))
			continue
		}
		namespaced, ok := crdScope[gvk.GroupKind()]
		if !ok {
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				if meta.IsNoMatchError(err) {
					errs = append(errs, fmt.Errorf("%s: the API server does not serve %s and no CRD in the artifact defines it: add the CRD to the artifact or install it first", kindName(o), gvk))
				} else {
					errs = append(errs, fmt.Errorf("%s: map kind %s: %w", kindName(o), gvk, err))
				}
				continue
			}
			namespaced = m.Scope.Name() == meta.RESTScopeNameNamespace
		}
		switch {
		case !namespaced:
			o.SetNamespace("")
		case targetNamespace != "":
			o.SetNamespace(targetNamespace)
		case o.GetNamespace() == "":
			o.SetNamespace(defaultNamespace)
		}
		labels := o.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[v1alpha1.NameLabel] = owner.Name
		labels[v1alpha1.NamespaceLabel] = owner.Namespace
		o.SetLabels(labels)
		id := v1alpha1.ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: o.GetNamespace(), Name: o.GetName()}
		if seen[id] {
			errs = append(errs, fmt.Errorf("%s appears twice in the artifact", kindName(o)))
		}
		seen[id] = true
	}
	return errors.Join(errs...)
}

// IsCRD reports whether o is a CustomResourceDefinition.
func IsCRD(o *unstructured.Unstructured) bool {
	return o.GetKind() == "CustomResourceDefinition" && o.GroupVersionKind().Group == "apiextensions.k8s.io"
}

// kindName is "Kind namespace/name" or "Kind name".
func kindName(u *unstructured.Unstructured) string {
	if u.GetNamespace() != "" {
		return u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
	}
	return u.GetKind() + " " + u.GetName()
}
