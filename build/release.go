package build

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ktypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/resid"

	"airlock.dev/airlock/api/v1alpha1"
)

// ReleaseSite is a Release's overlay (patches, images, components, name
// prefix and suffix, common metadata) in kustomize's types.
func ReleaseSite(rel *v1alpha1.Release) *Site {
	s := &Site{
		Components: rel.Spec.Components,
		NamePrefix: rel.Spec.NamePrefix,
		NameSuffix: rel.Spec.NameSuffix,
	}
	for _, p := range rel.Spec.Patches {
		kp := ktypes.Patch{Patch: p.Patch}
		if t := p.Target; t != nil {
			kp.Target = &ktypes.Selector{
				ResId: resid.ResId{
					Gvk:       resid.Gvk{Group: t.Group, Version: t.Version, Kind: t.Kind},
					Name:      t.Name,
					Namespace: t.Namespace,
				},
				AnnotationSelector: t.AnnotationSelector,
				LabelSelector:      t.LabelSelector,
			}
		}
		s.Patches = append(s.Patches, kp)
	}
	for _, i := range rel.Spec.Images {
		s.Images = append(s.Images, ktypes.Image{Name: i.Name, NewName: i.NewName, NewTag: i.NewTag, Digest: i.Digest})
	}
	if m := rel.Spec.CommonMetadata; m != nil {
		s.Labels, s.Annotations = m.Labels, m.Annotations
	}
	return s
}

// SubstituteFromError is a ConfigMap or Secret of spec.postBuild.substituteFrom
// that cannot be read. It never carries a value.
type SubstituteFromError struct {
	Kind   string
	Object types.NamespacedName
	Err    error
}

func (e *SubstituteFromError) Error() string {
	return fmt.Sprintf("%s %s (spec.postBuild.substituteFrom): %v", e.Kind, e.Object, e.Err)
}

func (e *SubstituteFromError) Unwrap() error { return e.Err }

// FieldError is a Release field that holds a value no build can use.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// ValueReader reads the data of a ConfigMap or Secret (kind) of
// spec.postBuild.substituteFrom, a Secret's values decoded. An object that
// does not exist is an error for which apierrors.IsNotFound holds.
type ValueReader func(ctx context.Context, kind string, key types.NamespacedName) (map[string]string, error)

// SubstitutionValues merges a Release's spec.postBuild.substituteFrom in
// order, then spec.postBuild.substitute, as Flux does: a later source
// wins. An optional source that does not exist is skipped. A Release
// without spec.postBuild has none (nil).
func SubstitutionValues(ctx context.Context, rel *v1alpha1.Release, read ValueReader) (map[string]string, error) {
	pb := rel.Spec.PostBuild
	if pb == nil {
		return nil, nil
	}
	vars := map[string]string{}
	for _, ref := range pb.SubstituteFrom {
		if ref.Kind != "ConfigMap" && ref.Kind != "Secret" {
			return nil, &FieldError{Field: "spec.postBuild.substituteFrom", Err: fmt.Errorf("kind %q is neither ConfigMap nor Secret", ref.Kind)}
		}
		key := types.NamespacedName{Namespace: rel.Namespace, Name: ref.Name}
		data, err := read(ctx, ref.Kind, key)
		switch {
		case apierrors.IsNotFound(err) && ref.Optional:
			continue
		case apierrors.IsNotFound(err):
			return nil, &SubstituteFromError{Kind: ref.Kind, Object: key, Err: fmt.Errorf("not found: create it, or mark it optional")}
		case err != nil:
			return nil, &SubstituteFromError{Kind: ref.Kind, Object: key, Err: err}
		}
		for k, v := range data {
			vars[k] = v
		}
	}
	for k, v := range pb.Substitute {
		vars[k] = v
	}
	return vars, nil
}

// ReleaseOptions is base with the Release's own overlay and postBuild
// substitution (its values read through read), as the controller builds it.
func ReleaseOptions(ctx context.Context, rel *v1alpha1.Release, base Options, read ValueReader) (Options, error) {
	base.Site = ReleaseSite(rel)
	base.Substitute = nil
	if pb := rel.Spec.PostBuild; pb != nil {
		vars, err := SubstitutionValues(ctx, rel, read)
		if err != nil {
			return base, err
		}
		base.Substitute = &Substitution{Vars: vars, Strict: pb.Strict}
	}
	return base, nil
}
