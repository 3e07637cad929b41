package reconciler

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// externalSecretGroup is the API group of the External Secrets Operator.
const externalSecretGroup = "external-secrets.io"

// builtinHealth is the health of the kinds airlock judges by a rule of its
// own rather than by kstatus: the External Secrets Operator's ExternalSecret.
// It returns nil for any other kind. spec.healthCheckExprs win over it.
func builtinHealth(live *unstructured.Unstructured) *status.Result {
	gvk := live.GroupVersionKind()
	if gvk.Group != externalSecretGroup || gvk.Kind != "ExternalSecret" {
		return nil
	}
	return externalSecretHealth(live)
}

// externalSecretHealth is Current when the operator reports Ready=True for
// the object's current generation; InProgress otherwise, naming the store
// the secret comes from and the operator's message (such as the store's
// error), so that a health timeout says which store failed.
func externalSecretHealth(es *unstructured.Unstructured) *status.Result {
	store := externalSecretStore(es)
	conds, _, _ := unstructured.NestedSlice(es.Object, "status", "conditions")
	var ready map[string]any
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" {
			ready = m
		}
	}
	if ready == nil {
		return &status.Result{Status: status.InProgressStatus, Message: fmt.Sprintf("not synced yet from %s: no Ready condition (is the External Secrets Operator running?)", store)}
	}
	msg, _ := ready["message"].(string)
	if ready["status"] != "True" {
		reason, _ := ready["reason"].(string)
		return &status.Result{Status: status.InProgressStatus, Message: fmt.Sprintf("%s failed: %s", store, nonEmpty(strings.TrimSpace(reason+" "+msg), "Ready is "+fmt.Sprint(ready["status"])))}
	}
	// status.syncedResourceVersion is "<generation>-<hash>": a Ready
	// condition of an older generation says nothing about this one.
	if v, ok, _ := unstructured.NestedString(es.Object, "status", "syncedResourceVersion"); ok {
		if g, _, _ := strings.Cut(v, "-"); g != strconv.FormatInt(es.GetGeneration(), 10) {
			return &status.Result{Status: status.InProgressStatus, Message: fmt.Sprintf("generation %d not synced yet from %s (synced %s)", es.GetGeneration(), store, v)}
		}
	}
	return &status.Result{Status: status.CurrentStatus, Message: "synced from " + store}
}

// externalSecretStore names the store of spec.secretStoreRef, such as
// "ClusterSecretStore enclave-vault"; the kind defaults to SecretStore.
func externalSecretStore(es *unstructured.Unstructured) string {
	name, _, _ := unstructured.NestedString(es.Object, "spec", "secretStoreRef", "name")
	kind, _, _ := unstructured.NestedString(es.Object, "spec", "secretStoreRef", "kind")
	if kind == "" {
		kind = "SecretStore"
	}
	if name == "" {
		return "its stores (spec.data[].sourceRef)"
	}
	return kind + " " + name
}
