package reconciler

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
)

// serviceAccount is the ServiceAccount rel applies and prunes as, in its
// own namespace; "" means the controller itself, which only its own
// namespace and the operator's allowed namespaces get.
func (r *Reconciler) serviceAccount(ctx context.Context, rel *v1alpha1.Release) (string, error) {
	key := ctrl.ObjectKeyFromObject(rel)
	sa, who := rel.Spec.ServiceAccountName, ""
	switch allowed, err := r.controllerIdentityAllowed(ctx, rel); {
	case sa != "":
		who = "ServiceAccount " + rel.Namespace + "/" + sa + " (spec.serviceAccountName)"
	case err != nil:
		return "", err
	case allowed:
		who = "the controller's ServiceAccount"
	case r.DefaultServiceAccount != "":
		sa = r.DefaultServiceAccount
		who = "ServiceAccount " + rel.Namespace + "/" + sa + " (the controller's --default-service-account, as the Release has no spec.serviceAccountName)"
	default:
		return "", &ServiceAccountRequiredError{Release: key}
	}
	r.identities.Store(key, who)
	return sa, nil
}

// identity names who the last apply of rel ran as, for messages.
func (r *Reconciler) identity(rel *v1alpha1.Release) string {
	if who, ok := r.identities.Load(ctrl.ObjectKeyFromObject(rel)); ok {
		return who.(string)
	}
	return "the Release's ServiceAccount"
}

// controllerIdentityAllowed says whether a Release without
// spec.serviceAccountName may apply as the controller: in the controller's
// namespace, a namespace of ControllerIdentityNamespaces, or one whose
// labels match ControllerIdentityNamespaceSelector. A namespace's labels,
// unlike a Release's, are set by cluster administrators.
func (r *Reconciler) controllerIdentityAllowed(ctx context.Context, rel *v1alpha1.Release) (bool, error) {
	if rel.Spec.ServiceAccountName != "" {
		return false, nil
	}
	if (r.ControllerNamespace != "" && rel.Namespace == r.ControllerNamespace) || slices.Contains(r.ControllerIdentityNamespaces, rel.Namespace) {
		return true, nil
	}
	if r.ControllerIdentityNamespaceSelector == nil || r.ControllerIdentityNamespaceSelector.Empty() {
		return false, nil
	}
	ns := &corev1.Namespace{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Name: rel.Namespace}, ns); err != nil {
		return false, fmt.Errorf("read Namespace %s for --allow-controller-identity-namespace-selector: %w", rel.Namespace, err)
	}
	return r.ControllerIdentityNamespaceSelector.Matches(labels.Set(ns.Labels)), nil
}
