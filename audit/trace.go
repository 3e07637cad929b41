package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"airlock.dev/airlock/api/v1alpha1"
)

// FieldManager is the server-side apply field manager the controller
// applies with (reconciler.FieldManager).
const FieldManager = "airlock"

// Trace is the way back from an applied object to what put it there.
type Trace struct {
	// Object is the traced object.
	Object TracedObject `json:"object"`
	// Release is the Release whose labels the object carries.
	Release ReleaseRef `json:"release"`
	// InInventory is true when the Release's status.inventory lists the
	// object; false when the object carries the labels but the Release no
	// longer applies it (it was kept with prune disabled, or copied).
	InInventory bool `json:"inInventory"`
	// Digest, Version, Revision and Source are the applied artifact's:
	// its digest, the tag a semver range chose, and the source commit
	// and repository it was packed from.
	Digest   string `json:"digest,omitempty"`
	Version  string `json:"version,omitempty"`
	Revision string `json:"revision,omitempty"`
	Source   string `json:"source,omitempty"`
	// Signers are the trusted keys whose signatures verified the digest.
	Signers []v1alpha1.Signer `json:"signers,omitempty"`
	// Chain is the chain of trust, when the artifact came through an import.
	Chain *v1alpha1.ChainOfTrust `json:"chain,omitempty"`
	// DigestAppliedAt is when the Release applied the digest (its history entry).
	DigestAppliedAt *time.Time `json:"digestAppliedAt,omitempty"`
	// LastApplied is when airlock last changed the object: the time of the
	// airlock field manager's Apply entry in its managedFields.
	LastApplied *time.Time `json:"lastApplied,omitempty"`
	// Ready is the Release's Ready condition: status, reason and message.
	Ready *metav1.Condition `json:"ready,omitempty"`
	// DriftCorrections are the Release's DriftCorrected events that name
	// the object, oldest first; the API server keeps events for an hour by
	// default. ReleaseDriftCorrections is the Release's count of all the
	// objects it corrected, ever.
	DriftCorrections        []Event `json:"driftCorrections"`
	ReleaseDriftCorrections int64   `json:"releaseDriftCorrections"`
	// Receipts are the Release's receipt fields (see Release.Receipts).
	Receipts []Field `json:"receipts,omitempty"`
}

// TracedObject names the traced object.
type TracedObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// String is "Kind namespace/name", as the controller's events name objects.
func (o TracedObject) String() string {
	if o.Namespace != "" {
		return o.Kind + " " + o.Namespace + "/" + o.Name
	}
	return o.Kind + " " + o.Name
}

// ReleaseRef names a Release.
type ReleaseRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// ErrBadReference: the object to trace is not named as KIND/NAME, or the
// cluster serves no such kind.
var ErrBadReference = errors.New("no such object reference")

// ErrNotApplied: the object carries no airlock Release labels.
var ErrNotApplied = fmt.Errorf("not applied by airlock: it has no %s and %s labels", v1alpha1.NameLabel, v1alpha1.NamespaceLabel)

// Trace finds what applied the object KIND/NAME (for example
// deployment/web, deploy/web or deployments.apps/web) in namespace, the
// namespace being ignored for a cluster-scoped kind.
func (c *Client) Trace(ctx context.Context, namespace, kindName string) (*Trace, error) {
	kind, name, ok := strings.Cut(kindName, "/")
	if !ok || kind == "" || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("trace %q: %w: want KIND/NAME, such as deployment/web", kindName, ErrBadReference)
	}
	mapping, err := c.mapping(kind)
	if err != nil {
		return nil, err
	}
	if mapping.Scope.Name() != meta.RESTScopeNameNamespace {
		namespace = ""
	} else if namespace == "" {
		return nil, fmt.Errorf("trace %s: %s is namespaced: pass -n NAMESPACE", kindName, mapping.GroupVersionKind.Kind)
	}
	obj, err := c.dyn.Resource(mapping.Resource).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, c.apiError("get "+describe(mapping.GroupVersionKind.Kind, namespace, name), err)
	}
	t := &Trace{Object: TracedObject{APIVersion: obj.GetAPIVersion(), Kind: obj.GetKind(), Namespace: obj.GetNamespace(), Name: obj.GetName()}}
	labels := obj.GetLabels()
	t.Release = ReleaseRef{Namespace: labels[v1alpha1.NamespaceLabel], Name: labels[v1alpha1.NameLabel]}
	if t.Release.Name == "" || t.Release.Namespace == "" {
		return nil, fmt.Errorf("trace %s: %w", t.Object, ErrNotApplied)
	}
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager == FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply && mf.Subresource == "" && mf.Time != nil {
			if t.LastApplied == nil || mf.Time.After(*t.LastApplied) {
				tm := mf.Time.UTC()
				t.LastApplied = &tm
			}
		}
	}
	rel, err := c.Release(ctx, t.Release.Namespace, t.Release.Name)
	if err != nil {
		return nil, fmt.Errorf("trace %s: its labels name Release %s/%s: %w", t.Object, t.Release.Namespace, t.Release.Name, err)
	}
	st := &rel.Status
	gv, _ := schema.ParseGroupVersion(t.Object.APIVersion)
	for _, ref := range st.Inventory {
		if ref.Group == gv.Group && ref.Kind == t.Object.Kind && ref.Namespace == t.Object.Namespace && ref.Name == t.Object.Name {
			t.InInventory = true
			break
		}
	}
	t.Digest, t.Revision, t.Source, t.Version = st.LastAppliedDigest, st.LastAppliedRevision, st.LastAppliedSource, st.LastAppliedVersion
	t.Signers, t.Chain, t.Ready = st.Signers, st.Chain, rel.Ready()
	t.ReleaseDriftCorrections, t.Receipts = st.DriftCorrections, rel.Receipts
	for _, h := range st.History {
		if h.Digest == st.LastAppliedDigest {
			at := h.AppliedAt.UTC()
			t.DigestAppliedAt = &at
			break
		}
	}
	evs, err := c.Events(ctx, &rel.Release)
	if err != nil {
		return nil, fmt.Errorf("trace %s: %w", t.Object, err)
	}
	t.DriftCorrections = DriftCorrectionsOf(evs, t.Object.String())
	return t, nil
}

// DriftCorrectionsOf picks the DriftCorrected events that name object
// ("Kind namespace/name"). The controller writes them as "corrected N
// objects changed outside airlock: A, B".
func DriftCorrectionsOf(evs []Event, object string) []Event {
	out := []Event{}
	for _, e := range evs {
		if e.Reason != v1alpha1.ReasonDriftCorrected {
			continue
		}
		_, names, ok := strings.Cut(e.Message, ": ")
		if !ok {
			continue
		}
		for _, n := range strings.Split(names, ", ") {
			if n == object {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

// mapping resolves a kind as kubectl does: deployment, deployments,
// Deployment, deploy, deployments.apps or deployments.v1.apps.
func (c *Client) mapping(kind string) (*meta.RESTMapping, error) {
	var gvk schema.GroupVersionKind
	var err error
	if full, gr := schema.ParseResourceArg(strings.ToLower(kind)); full != nil {
		if gvk, err = c.mapper.KindFor(*full); err != nil {
			gvk, err = c.mapper.KindFor(gr.WithVersion(""))
		}
	} else {
		gvk, err = c.mapper.KindFor(gr.WithVersion(""))
	}
	if err != nil {
		return nil, fmt.Errorf("trace: %w: the cluster at %s serves no kind %q (%v): name it as kubectl does, such as deployment or deployments.apps", ErrBadReference, c.host, kind, err)
	}
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("trace: map %s: %w", gvk, err)
	}
	return m, nil
}

func describe(kind, namespace, name string) string {
	return TracedObject{Kind: kind, Namespace: namespace, Name: name}.String()
}
