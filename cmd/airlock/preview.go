package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/build"
	"airlock.dev/airlock/build/helmrender"
)

// digestPreview is what applying a digest to a Release changes, object by
// object.
type digestPreview struct {
	// Digest is the candidate, resolved when it was given by tag.
	Digest                    string
	Added, Unchanged, Removed []string
	Changed                   []changedObject
	// PruneDisabled is set when spec.prune is false: nothing is removed.
	PruneDisabled bool
	// Signers are the keys that signed the digest, by trust requirement.
	// Empty when the Release has no trust (unsigned).
	Signers []foundSigner
}

// changedObject is a live object and what a server-side apply of the
// candidate's version would make of it (a dry run).
type changedObject struct {
	Name      string
	Live, Dry *unstructured.Unstructured
}

func (p *digestPreview) changedNames() []string {
	var names []string
	for _, c := range p.Changed {
		names = append(names, c.Name)
	}
	return names
}

// previewDigest resolves tag (when digest is empty), verifies the digest
// under the Release's trust (refusing it when it does not verify; action
// says what is refused, "roll back to"), pulls it by digest through the
// client that verified it, builds it with the Release's own settings (its
// overlay, and its postBuild values read with the user's credentials) and
// compares it with the cluster: a server-side dry-run apply of each object
// against the live one, and the Release's status.inventory for what would
// be pruned. Nothing is written.
func previewDigest(ctx context.Context, c *kubeClient, r *v1alpha1.Release, tag, digest string, remote artifact.RemoteOptions, controllerNS, action string) (*digestPreview, error) {
	key := r.Namespace + "/" + r.Name
	repo, err := artifact.ParseRepository(r.Spec.URL)
	if err != nil {
		return nil, fmt.Errorf("Release %s spec.url: %w", key, err)
	}
	ref := repo.WithDigest(digest)
	if digest == "" {
		ref = repo.WithTag(tag)
	}
	remote.PlainHTTPInsecure = remote.PlainHTTPInsecure || r.Spec.Insecure
	rc, err := artifact.NewClient(remote.For(ref))
	if err != nil {
		return nil, err
	}
	if ref, err = rc.Resolve(ctx, ref); err != nil {
		return nil, fmt.Errorf("resolve %s: %w", ref, err)
	}
	reqs, err := releaseTrust(ctx, c, r, controllerNS)
	if err != nil {
		return nil, fmt.Errorf("refusing to %s %s for Release %s: %w", action, ref.Digest, key, err)
	}
	signers, manifest, err := verifyCandidate(ctx, rc, ref, reqs, action)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "airlock-preview-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "artifact")
	if _, err := rc.Pull(ctx, ref, dir, artifact.PullOptions{Manifest: manifest}); err != nil {
		return nil, fmt.Errorf("preview %s: %w", ref.Digest, err)
	}
	opts, err := build.ReleaseOptions(ctx, r, build.Options{ChartRenderer: helmrender.Engine{}}, substituteFromReader(c))
	if err != nil {
		return nil, fmt.Errorf("Release %s: %w", key, err)
	}
	if d := r.Spec.Decryption; d != nil {
		if opts.Decrypt, err = previewDecryption(ctx, c, r, d); err != nil {
			return nil, fmt.Errorf("Release %s: %w", key, err)
		}
	}
	if r.Spec.Chart != nil {
		if opts.Chart, err = build.ReleaseChart(ctx, r, substituteFromReader(c)); err != nil {
			return nil, fmt.Errorf("preview %s: %w", ref.Digest, err)
		}
	}
	objs, _, err := build.Render(ctx, dir, r.Spec.Path, ref.Digest, opts)
	if err != nil {
		return nil, fmt.Errorf("preview %s: %w", ref.Digest, err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(c.cfg)
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	p := &digestPreview{Digest: ref.Digest, PruneDisabled: !r.PruneEnabled(), Signers: signers}
	keep := map[v1alpha1.ObjectRef]bool{}
	var errs []error
	if err := build.Prepare(objs, mapper, r.Spec.TargetNamespace, r.Namespace, types.NamespacedName{Namespace: r.Namespace, Name: r.Name}); err != nil {
		return nil, fmt.Errorf("preview %s: %w", ref.Digest, err)
	}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		id := v1alpha1.ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: o.GetNamespace(), Name: o.GetName()}
		keep[id] = true
		name := objectRefName(id)
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			// Prepare found its kind in a CRD of the candidate that the
			// cluster does not serve yet: no such object can be live.
			p.Added = append(p.Added, name)
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: map kind: %w", name, err))
			continue
		}
		ri := c.dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		live, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("read %s: %w", name, err))
			continue
		}
		dry, derr := ri.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: "airlock", Force: true, DryRun: []string{metav1.DryRunAll}})
		if derr != nil {
			errs = append(errs, fmt.Errorf("dry-run apply %s: %w", name, derr))
			continue
		}
		switch {
		case err != nil:
			p.Added = append(p.Added, name)
		case !reflect.DeepEqual(comparableFields(live), comparableFields(dry)):
			p.Changed = append(p.Changed, changedObject{Name: name, Live: live, Dry: dry})
		default:
			p.Unchanged = append(p.Unchanged, name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("preview %s: %w", ref, err)
	}
	for _, o := range r.Status.Inventory {
		if !keep[o] {
			p.Removed = append(p.Removed, objectRefName(o))
		}
	}
	return p, nil
}

// comparableFields is an object without the fields that every write changes or
// that an apply does not set: managedFields, resourceVersion, generation,
// creationTimestamp and status.
func comparableFields(u *unstructured.Unstructured) map[string]any {
	o := u.DeepCopy()
	for _, f := range [][]string{
		{"metadata", "managedFields"}, {"metadata", "resourceVersion"}, {"metadata", "generation"},
		{"metadata", "creationTimestamp"}, {"status"},
	} {
		unstructured.RemoveNestedField(o.Object, f...)
	}
	return o.Object
}

// substituteFromReader reads the ConfigMaps and Secrets of a Release's
// spec.postBuild.substituteFrom with the user's credentials.
func substituteFromReader(c *kubeClient) build.ValueReader {
	return func(ctx context.Context, kind string, key types.NamespacedName) (map[string]string, error) {
		res := corev1.SchemeGroupVersion.WithResource("configmaps")
		if kind == "Secret" {
			res = secretsResource
		}
		u, err := c.dyn.Resource(res).Namespace(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		if kind == "ConfigMap" {
			var cm corev1.ConfigMap
			err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &cm)
			return cm.Data, err
		}
		var s corev1.Secret
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s); err != nil {
			return nil, err
		}
		data := make(map[string]string, len(s.Data))
		for k, v := range s.Data {
			data[k] = string(v)
		}
		return data, nil
	}
}

func objectRefName(o v1alpha1.ObjectRef) string {
	if o.Namespace != "" {
		return o.Kind + " " + o.Namespace + "/" + o.Name
	}
	return o.Kind + " " + o.Name
}

// previewDecryption reads the keys of r's spec.decryption Secret as the
// user of the CLI, as the controller reads them as the Release's identity.
func previewDecryption(ctx context.Context, c *kubeClient, r *v1alpha1.Release, d *v1alpha1.Decryption) (*build.Decryption, error) {
	if d.Provider != v1alpha1.DecryptionProviderSOPS {
		return nil, fmt.Errorf("spec.decryption.provider %q is not supported: use %q", d.Provider, v1alpha1.DecryptionProviderSOPS)
	}
	key := types.NamespacedName{Namespace: r.Namespace, Name: d.SecretRef.Name}
	data, err := substituteFromReader(c)(ctx, "Secret", key)
	if err != nil {
		return nil, fmt.Errorf("Secret %s (spec.decryption.secretRef): %w", key, err)
	}
	raw := make(map[string][]byte, len(data))
	for k, v := range data {
		raw[k] = []byte(v)
	}
	keys, err := build.DecryptionKeys(fmt.Sprintf("Secret %s (spec.decryption.secretRef)", key), raw)
	if err != nil {
		return nil, fmt.Errorf("Secret %s (spec.decryption.secretRef): %w", key, err)
	}
	return keys, nil
}
