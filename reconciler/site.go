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
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"

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
	site, sub := opts.Site, opts.Substitute
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

// valueReader reads the ConfigMaps and Secrets of substituteFrom (nil
// when the Release reads none). They are read here, as the Release's
// identity, also when it applies to a remote cluster: the values belong to
// the Release's namespace.
func (r *Reconciler) valueReader(ctx context.Context, rel *v1alpha1.Release) (build.ValueReader, error) {
	if rel.Spec.PostBuild == nil || len(rel.Spec.PostBuild.SubstituteFrom) == 0 {
		return nil, nil
	}
	c, err := r.localClient(ctx, rel)
	if err != nil {
		return nil, err
	}
	return keyedReader(c), nil
}

// keyedReader reads ConfigMaps and Secrets through c (readKeyed), for the
// build's readers of substituteFrom and chart valuesFrom.
func keyedReader(c ctrl.Reader) build.ValueReader {
	return func(ctx context.Context, kind string, key types.NamespacedName) (map[string]string, error) {
		data, err := readKeyed(ctx, c, kind, key)
		vars := make(map[string]string, len(data))
		for k, v := range data {
			vars[k] = string(v)
		}
		return vars, err
	}
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
	keys, err := build.DecryptionKeys(fmt.Sprintf("Secret %s (spec.decryption.secretRef)", key), s.Data)
	if err != nil {
		return nil, &DecryptionKeysError{Object: key, Err: err}
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
