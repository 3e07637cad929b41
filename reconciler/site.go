package reconciler

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ktypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/resid"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/build"
)

// siteInput is what a site layers on top of the artifact for one
// reconcile: the build options that carry it, and what status records.
type siteInput struct {
	build  build.Options
	status *v1alpha1.SiteStatus // nil when the Release layers nothing
}

func (s siteInput) valuesHash() string {
	if s.status == nil {
		return ""
	}
	return s.status.ValuesHash
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

// siteFor reads the Release's substitution values and overlay. The
// ConfigMaps and Secrets of substituteFrom are read as the Release's
// ServiceAccount (uncached), so that a Release reads no value its
// ServiceAccount may not read.
func (r *Reconciler) siteFor(ctx context.Context, rel *v1alpha1.Release) (siteInput, error) {
	in := siteInput{build: r.Build}
	site := siteOf(rel)
	var sub *build.Substitution
	if pb := rel.Spec.PostBuild; pb != nil {
		vars, err := r.substitutionValues(ctx, rel, pb)
		if err != nil {
			return in, err
		}
		sub = &build.Substitution{Vars: vars, Strict: pb.Strict}
	}
	in.build.Site, in.build.Substitute = site, sub
	if site.Empty() && sub == nil {
		return in, nil
	}
	in.status = &v1alpha1.SiteStatus{OverlayHash: site.Hash(), Overlay: site.Summary()}
	if sub != nil {
		in.status.ValuesHash = build.ValuesHash(sub.Vars)
	}
	return in, nil
}

// substitutionValues merges substituteFrom in order, then substitute, as
// Flux does: a later source wins.
func (r *Reconciler) substitutionValues(ctx context.Context, rel *v1alpha1.Release, pb *v1alpha1.PostBuild) (map[string]string, error) {
	vars := map[string]string{}
	if len(pb.SubstituteFrom) > 0 {
		// Read here, as the Release's identity, also when it applies to a
		// remote cluster: the values belong to the Release's namespace.
		c, err := r.localClient(ctx, rel)
		if err != nil {
			return nil, err
		}
		for _, ref := range pb.SubstituteFrom {
			key := types.NamespacedName{Namespace: rel.Namespace, Name: ref.Name}
			var data map[string]string
			switch ref.Kind {
			case "ConfigMap":
				cm := &corev1.ConfigMap{}
				err = c.Get(ctx, key, cm)
				data = cm.Data
			case "Secret":
				s := &corev1.Secret{}
				err = c.Get(ctx, key, s)
				data = make(map[string]string, len(s.Data))
				for k, v := range s.Data {
					data[k] = string(v)
				}
			default:
				return nil, &SpecError{Field: "spec.postBuild.substituteFrom", Err: fmt.Errorf("kind %q is neither ConfigMap nor Secret", ref.Kind)}
			}
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
	}
	for k, v := range pb.Substitute {
		vars[k] = v
	}
	return vars, nil
}

// siteOf is the Release's overlay in kustomize's types.
func siteOf(rel *v1alpha1.Release) *build.Site {
	s := &build.Site{
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

// recordSite writes what the site layered on top of the applied digest to
// status and to the newest history entry, and announces new values for
// the same digest (a new digest has its own event).
func (r *Reconciler) recordSite(rel *v1alpha1.Release, prevDigest string, site siteInput) {
	st := &rel.Status
	before := st.LastAppliedSite
	st.LastAppliedSite = site.status
	if len(st.History) > 0 {
		st.History[0].Site = site.status
	}
	var was, now v1alpha1.SiteStatus
	if before != nil {
		was = *before
	}
	if site.status != nil {
		now = *site.status
	}
	if prevDigest != st.LastAppliedDigest || was == now {
		return
	}
	var changed []string
	if was.ValuesHash != now.ValuesHash {
		changed = append(changed, "substitution values (now "+shortHash(now.ValuesHash)+")")
	}
	if was.OverlayHash != now.OverlayHash {
		changed = append(changed, "overlay (now "+shortHash(now.OverlayHash)+")")
	}
	if len(changed) > 0 {
		r.event(rel, "Normal", "Applied", "Apply", "applied %s again with new %s: %d objects", shortDigest(st.LastAppliedDigest), strings.Join(changed, " and "), len(st.Inventory))
	}
}

func shortHash(h string) string {
	if h == "" {
		return "none"
	}
	return shortDigest(h)
}

// substituteFromKeys are the index keys of the ConfigMaps and Secrets a
// Release reads variables from: Kind/namespace/name.
func substituteFromKeys(rel *v1alpha1.Release) []string {
	if rel.Spec.PostBuild == nil {
		return nil
	}
	var keys []string
	for _, ref := range rel.Spec.PostBuild.SubstituteFrom {
		keys = append(keys, ref.Kind+"/"+rel.Namespace+"/"+ref.Name)
	}
	sort.Strings(keys)
	return keys
}
