package reconciler

import (
	"context"
	"errors"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

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
type SubstituteFromError = build.SubstituteFromError

// siteFor reads the Release's substitution values and overlay. The
// ConfigMaps and Secrets of substituteFrom are read as the Release's
// ServiceAccount (uncached), so that a Release reads no value its
// ServiceAccount may not read.
func (r *Reconciler) siteFor(ctx context.Context, rel *v1alpha1.Release) (siteInput, error) {
	in := siteInput{build: r.Build}
	read, err := r.valueReader(ctx, rel)
	if err != nil {
		return in, err
	}
	opts, err := build.ReleaseOptions(ctx, rel, r.Build, read)
	if fe := (*build.FieldError)(nil); errors.As(err, &fe) {
		return in, &SpecError{Field: fe.Field, Err: fe.Err}
	}
	if err != nil {
		return in, err
	}
	in.build = opts
	site, sub := opts.Site, opts.Substitute
	if site.Empty() && sub == nil {
		return in, nil
	}
	in.status = &v1alpha1.SiteStatus{OverlayHash: site.Hash(), Overlay: site.Summary()}
	if sub != nil {
		in.status.ValuesHash = build.ValuesHash(sub.Vars)
	}
	return in, nil
}

// valueReader reads the ConfigMaps and Secrets of substituteFrom through
// the Release's applier (nil when the Release reads none).
func (r *Reconciler) valueReader(ctx context.Context, rel *v1alpha1.Release) (build.ValueReader, error) {
	if rel.Spec.PostBuild == nil || len(rel.Spec.PostBuild.SubstituteFrom) == 0 {
		return nil, nil
	}
	a, err := r.applier(ctx, rel)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, kind string, key types.NamespacedName) (map[string]string, error) {
		if kind == "ConfigMap" {
			cm := &corev1.ConfigMap{}
			err := a.Client.Get(ctx, key, cm)
			return cm.Data, err
		}
		s := &corev1.Secret{}
		err := a.Client.Get(ctx, key, s)
		data := make(map[string]string, len(s.Data))
		for k, v := range s.Data {
			data[k] = string(v)
		}
		return data, err
	}, nil
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
