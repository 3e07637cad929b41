package reconciler

import (
	"context"
	"errors"
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
	if s.status.ChartValuesHash != "" {
		return s.status.ValuesHash + "+chart:" + s.status.ChartValuesHash
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
	chart, err := r.chartFor(ctx, rel)
	if err != nil {
		return in, err
	}
	in.build.Site, in.build.Substitute, in.build.Chart = site, sub, chart
	if d := rel.Spec.Decryption; d != nil {
		keys, err := r.decryptionKeys(ctx, rel, d)
		if err != nil {
			return in, err
		}
		in.build.Decrypt = keys
	}
	if site.Empty() && sub == nil && (chart == nil || len(chart.Values) == 0) {
		return in, nil
	}
	in.status = &v1alpha1.SiteStatus{OverlayHash: site.Hash(), Overlay: site.Summary()}
	if sub != nil {
		in.status.ValuesHash = build.ValuesHash(sub.Vars)
	}
	if chart != nil {
		in.status.ChartValuesHash = build.ChartValuesHash(chart.Values)
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
			data, err := readKeyed(ctx, c, ref.Kind, key)
			switch {
			case apierrors.IsNotFound(err) && ref.Optional:
				continue
			case apierrors.IsNotFound(err):
				return nil, &SubstituteFromError{Kind: ref.Kind, Object: key, Err: fmt.Errorf("not found: create it, or mark it optional")}
			case err != nil:
				return nil, &SubstituteFromError{Kind: ref.Kind, Object: key, Err: err}
			}
			for k, v := range data {
				vars[k] = string(v)
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
// Release reads variables from, and of its decryption keys Secret:
// Kind/namespace/name.
func substituteFromKeys(rel *v1alpha1.Release) []string {
	var keys []string
	if rel.Spec.PostBuild != nil {
		for _, ref := range rel.Spec.PostBuild.SubstituteFrom {
			keys = append(keys, ref.Kind+"/"+rel.Namespace+"/"+ref.Name)
		}
	}
	if d := rel.Spec.Decryption; d != nil {
		keys = append(keys, "Secret/"+rel.Namespace+"/"+d.SecretRef.Name)
	}
	sort.Strings(keys)
	return keys
}

// DecryptionKeysError is the Secret of spec.decryption.secretRef that cannot
// be read or holds no usable key. It never carries key material.
type DecryptionKeysError struct {
	Object types.NamespacedName
	Err    error
}

func (e *DecryptionKeysError) Error() string {
	return fmt.Sprintf("Secret %s (spec.decryption.secretRef): %v", e.Object, e.Err)
}

func (e *DecryptionKeysError) Unwrap() error { return e.Err }

// decryptionKeys reads the age (*.agekey) and PGP (*.asc) private keys of
// spec.decryption.secretRef, as the Release's ServiceAccount and uncached,
// for this reconcile only: they are not kept after it.
func (r *Reconciler) decryptionKeys(ctx context.Context, rel *v1alpha1.Release, d *v1alpha1.Decryption) (*build.Decryption, error) {
	key := types.NamespacedName{Namespace: rel.Namespace, Name: d.SecretRef.Name}
	if d.Provider != v1alpha1.DecryptionProviderSOPS {
		return nil, &SpecError{Field: "spec.decryption.provider", Err: fmt.Errorf("provider %q is not supported: use %q", d.Provider, v1alpha1.DecryptionProviderSOPS)}
	}
	// Read on this cluster as the Release's identity, also when it applies
	// to a remote cluster: the keys belong to the Release's namespace.
	c, err := r.localClient(ctx, rel)
	if err != nil {
		return nil, err
	}
	s := &corev1.Secret{}
	switch err := c.Get(ctx, key, s); {
	case apierrors.IsNotFound(err):
		return nil, &DecryptionKeysError{Object: key, Err: fmt.Errorf("not found: create it with the site's age key (kubectl create secret generic %s --from-file=site.agekey)", key.Name)}
	case err != nil:
		return nil, &DecryptionKeysError{Object: key, Err: err}
	}
	keys := &build.Decryption{Source: fmt.Sprintf("Secret %s (spec.decryption.secretRef)", key)}
	names := make([]string, 0, len(s.Data))
	for n := range s.Data {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		var err error
		switch {
		case strings.HasSuffix(n, ".agekey"):
			err = keys.AddAge(n, s.Data[n])
		case strings.HasSuffix(n, ".asc"):
			err = keys.AddPGP(n, s.Data[n])
		}
		if err != nil {
			return nil, &DecryptionKeysError{Object: key, Err: err}
		}
	}
	if keys.Len() == 0 {
		return nil, &DecryptionKeysError{Object: key, Err: fmt.Errorf("no key: it needs entries named *.agekey (age) or *.asc (PGP)")}
	}
	return keys, nil
}

// siteReason is the Ready reason of a failure to read what a site layers on
// top: its decryption keys, or its substitution values.
func siteReason(err error) string {
	if k := (*DecryptionKeysError)(nil); errors.As(err, &k) {
		return v1alpha1.ReasonDecryptionKeysFailed
	}
	return v1alpha1.ReasonSubstituteFromFailed
}
