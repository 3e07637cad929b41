package reconciler

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/build"
)

// FieldManager owns every field airlock applies.
const FieldManager = "airlock"

// objectName is "Kind namespace/name" or "Kind name".
func objectName(u *unstructured.Unstructured) string {
	if u.GetNamespace() != "" {
		return u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
	}
	return u.GetKind() + " " + u.GetName()
}

func apiMessage(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Message != "" {
		return st.Status().Message
	}
	return err.Error()
}

// isImmutableFieldError reports an apply refused because it changes an
// immutable field. The API server gives no dedicated reason or cause type for
// it (validation reports Invalid or Forbidden with "field is immutable"), so
// the cause's message is the only signal.
func isImmutableFieldError(err error) bool {
	var se apierrors.APIStatus
	if !errors.As(err, &se) || se.Status().Reason != metav1.StatusReasonInvalid {
		return false
	}
	st := se.Status()
	if st.Details != nil {
		for _, c := range st.Details.Causes {
			if strings.Contains(c.Message, "immutable") {
				return true
			}
		}
	}
	return strings.Contains(st.Message, "field is immutable")
}

func isNamespace(o *unstructured.Unstructured) bool {
	return o.GetKind() == "Namespace" && o.GroupVersionKind().Group == ""
}

// stages splits objects into what must exist first (CRDs and Namespaces,
// which define kinds and places for the rest) and everything else, each in
// the given order.
func stages(objs []*unstructured.Unstructured) (first, rest []*unstructured.Unstructured) {
	for _, o := range objs {
		if build.IsCRD(o) || isNamespace(o) {
			first = append(first, o)
		} else {
			rest = append(rest, o)
		}
	}
	return first, rest
}

// Applier applies, corrects and prunes a Release's objects with server-side apply.
type Applier struct {
	// Client acts as the controller or as the Release's ServiceAccount; uncached.
	Client client.Client
	// Mapper maps kinds as Client's cluster serves them.
	Mapper meta.RESTMapper
	// Force recreates objects whose change touches an immutable field.
	Force bool
	// Timeout bounds each wait (CRD established, object deleted).
	Timeout time.Duration
	// Poll is the wait interval. 0 means 250ms.
	Poll time.Duration
	// Metrics counts applied and pruned objects. nil means none.
	Metrics *Metrics
}

func (a *Applier) poll() time.Duration {
	if a.Poll > 0 {
		return a.Poll
	}
	return 250 * time.Millisecond
}

// Apply applies objs in two stages: CRDs and Namespaces first, waiting until
// they are established, then the rest. It stops after the first stage that
// fails and returns every object's failure.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured) error {
	first, rest := stages(objs)
	if err := a.applyAll(ctx, first); err != nil {
		return err
	}
	if err := a.waitEstablished(ctx, first); err != nil {
		return err
	}
	return a.applyAll(ctx, rest)
}

func (a *Applier) applyAll(ctx context.Context, objs []*unstructured.Unstructured) error {
	var errs []error
	for _, o := range objs {
		if err := a.applyOne(ctx, o); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (a *Applier) applyOne(ctx context.Context, desired *unstructured.Unstructured) error {
	obj := desired.DeepCopy()
	err := a.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(FieldManager), client.ForceOwnership)
	if err == nil {
		a.countApplied()
		return nil
	}
	if !isImmutableFieldError(err) {
		return &ObjectError{Op: "apply", Object: objectName(desired), Err: err}
	}
	if !a.Force {
		return &ImmutableFieldError{Object: objectName(desired), Err: err}
	}
	if err := a.deleteAndWait(ctx, desired); err != nil {
		return &ObjectError{Op: "recreate", Object: objectName(desired), Err: err}
	}
	obj = desired.DeepCopy()
	if err := a.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return &ObjectError{Op: "recreate", Object: objectName(desired), Err: err}
	}
	a.countApplied()
	return nil
}

func (a *Applier) countApplied() {
	if a.Metrics != nil {
		a.Metrics.ObjectsApplied.Inc()
	}
}

func (a *Applier) deleteAndWait(ctx context.Context, o *unstructured.Unstructured) error {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(o.GroupVersionKind())
	live.SetNamespace(o.GetNamespace())
	live.SetName(o.GetName())
	if err := a.Client.Delete(ctx, live, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete to recreate: %s", apiMessage(err))
	}
	return a.waitFor(ctx, fmt.Sprintf("%s to be deleted", objectName(o)), func(ctx context.Context) (bool, error) {
		err := a.Client.Get(ctx, client.ObjectKeyFromObject(live), live.DeepCopy())
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

func (a *Applier) waitFor(ctx context.Context, what string, cond wait.ConditionWithContextFunc) error {
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	err := wait.PollUntilContextTimeout(ctx, a.poll(), timeout, true, cond)
	if err != nil && wait.Interrupted(err) {
		return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
	}
	return err
}

// waitEstablished waits until every CRD is Established and every Namespace Active.
func (a *Applier) waitEstablished(ctx context.Context, objs []*unstructured.Unstructured) error {
	var errs []error
	for _, o := range objs {
		err := a.waitFor(ctx, objectName(o)+" to be established", func(ctx context.Context) (bool, error) {
			live := &unstructured.Unstructured{}
			live.SetGroupVersionKind(o.GroupVersionKind())
			if err := a.Client.Get(ctx, client.ObjectKeyFromObject(o), live); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			if isNamespace(o) {
				phase, _, _ := unstructured.NestedString(live.Object, "status", "phase")
				return phase == "Active", nil
			}
			conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			errs = append(errs, &ObjectError{Op: "apply", Object: objectName(o), Err: err})
		}
	}
	return errors.Join(errs...)
}

// Drifted returns the objects whose live state differs from what applying
// them would produce, found by a server-side dry-run apply: changed by
// someone else, or deleted.
func (a *Applier) Drifted(ctx context.Context, objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	var drifted []*unstructured.Unstructured
	var errs []error
	for _, o := range objs {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(o.GroupVersionKind())
		err := a.Client.Get(ctx, client.ObjectKeyFromObject(o), live)
		if apierrors.IsNotFound(err) {
			drifted = append(drifted, o)
			continue
		}
		if err != nil {
			errs = append(errs, &ObjectError{Op: "read", Object: objectName(o), Err: err})
			continue
		}
		dry := o.DeepCopy()
		err = a.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(dry), client.FieldOwner(FieldManager), client.ForceOwnership, client.DryRunAll)
		if err != nil {
			if isImmutableFieldError(err) {
				drifted = append(drifted, o)
				continue
			}
			errs = append(errs, &ObjectError{Op: "dry-run apply", Object: objectName(o), Err: err})
			continue
		}
		if !reflect.DeepEqual(comparable(live), comparable(dry)) {
			drifted = append(drifted, o)
		}
	}
	return drifted, errors.Join(errs...)
}

// comparable drops the fields that change on every write without changing
// the object: managed fields, resource version, generation.
func comparable(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "metadata", "managedFields")
	unstructured.RemoveNestedField(c.Object, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(c.Object, "metadata", "generation")
	return c.Object
}

// Prune deletes the objects of old that are not in keep, in reverse order.
// It skips objects annotated delivery.airlock.dev/prune: disabled, and
// objects no longer labelled as owner's (taken over by another Release).
// It returns the objects it deleted.
func (a *Applier) Prune(ctx context.Context, old []v1alpha1.ObjectRef, keep []v1alpha1.ObjectRef, owner types.NamespacedName) ([]v1alpha1.ObjectRef, error) {
	kept := map[v1alpha1.ObjectRef]bool{}
	for _, k := range keep {
		kept[k] = true
	}
	var pruned []v1alpha1.ObjectRef
	var errs []error
	for i := len(old) - 1; i >= 0; i-- {
		ref := old[i]
		if kept[ref] || kept[withoutVersion(ref, keep)] {
			continue
		}
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(schema.GroupVersionKind{Group: ref.Group, Version: ref.Version, Kind: ref.Kind})
		err := a.Client.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, live)
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			continue
		}
		if err != nil {
			errs = append(errs, &ObjectError{Op: "prune", Object: refName(ref), Err: err})
			continue
		}
		if live.GetAnnotations()[v1alpha1.PruneAnnotation] == v1alpha1.PruneDisabled {
			continue
		}
		l := live.GetLabels()
		if l[v1alpha1.NameLabel] != owner.Name || l[v1alpha1.NamespaceLabel] != owner.Namespace {
			continue
		}
		if err := a.Client.Delete(ctx, live, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, &ObjectError{Op: "prune", Object: refName(ref), Err: err})
			continue
		}
		if a.Metrics != nil {
			a.Metrics.ObjectsPruned.Inc()
		}
		pruned = append(pruned, ref)
	}
	return pruned, errors.Join(errs...)
}

// withoutVersion finds ref in keep ignoring the version: an object whose API
// version changed is the same object and must not be pruned.
func withoutVersion(ref v1alpha1.ObjectRef, keep []v1alpha1.ObjectRef) v1alpha1.ObjectRef {
	for _, k := range keep {
		if k.Group == ref.Group && k.Kind == ref.Kind && k.Namespace == ref.Namespace && k.Name == ref.Name {
			return k
		}
	}
	return v1alpha1.ObjectRef{}
}

func refOf(o *unstructured.Unstructured) v1alpha1.ObjectRef {
	gvk := o.GroupVersionKind()
	return v1alpha1.ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: o.GetNamespace(), Name: o.GetName()}
}

func refName(r v1alpha1.ObjectRef) string {
	if r.Namespace != "" {
		return r.Kind + " " + r.Namespace + "/" + r.Name
	}
	return r.Kind + " " + r.Name
}

// Inventory lists objs in order.
func Inventory(objs []*unstructured.Unstructured) []v1alpha1.ObjectRef {
	inv := make([]v1alpha1.ObjectRef, 0, len(objs))
	for _, o := range objs {
		inv = append(inv, refOf(o))
	}
	return inv
}
