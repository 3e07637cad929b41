package reconciler_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"airlock.dev/airlock/api/v1alpha1"
)

const externalSecretYAML = `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: shop-payments
spec:
  refreshInterval: 1h
  secretStoreRef:
    kind: ClusterSecretStore
    name: enclave-vault
  target:
    name: shop-payments
  data:
  - secretKey: API_KEY
    remoteRef: {key: shop/payments, property: api-key}
`

// TestExternalSecret: an artifact holding the ExternalSecret CRD and an
// ExternalSecret applies the CRD first (waiting until it is established),
// then the ExternalSecret; health waits for its Ready condition, naming the
// store and the operator's message while it fails, and is Ready once the
// operator (here the test) reports Ready=True for its generation.
func TestExternalSecret(t *testing.T) {
	crd, err := os.ReadFile("testdata/externalsecret-crd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{})
	d := h.pushSigned("v1", "v1", map[string]string{
		"kustomization.yaml":  "resources: [crd.yaml, externalsecret.yaml]\n",
		"crd.yaml":            string(crd),
		"externalsecret.yaml": externalSecretYAML,
	})
	h.release("app", "v1", func(r *v1alpha1.Release) {
		r.Spec.Wait = ptr.To(true)
		r.Spec.Timeout = &metav1.Duration{Duration: time.Minute}
	})

	// Applied (after its CRD), and waiting: no Ready condition yet.
	rel := h.eventually("app", "waiting for the ExternalSecret", 30*time.Second, func(rel *v1alpha1.Release) bool {
		c := condition(rel, v1alpha1.ConditionReady)
		return c != nil && strings.Contains(c.Message, "ClusterSecretStore enclave-vault")
	})
	if c := condition(rel, v1alpha1.ConditionReady); c.Reason != v1alpha1.ReasonProgressing || !strings.Contains(c.Message, "no Ready condition") {
		t.Errorf("Ready = %s %q, want Progressing waiting for the operator", c.Reason, c.Message)
	}

	es := &unstructured.Unstructured{}
	es.SetGroupVersionKind(schema.GroupVersionKind{Group: "external-secrets.io", Version: "v1", Kind: "ExternalSecret"})
	key := types.NamespacedName{Namespace: h.ns, Name: "shop-payments"}
	setReady := func(status, reason, message string) {
		t.Helper()
		if err := h.env.Client.Get(h.ctx, key, es); err != nil {
			t.Fatal(err)
		}
		_ = unstructured.SetNestedSlice(es.Object, []any{map[string]any{
			"type": "Ready", "status": status, "reason": reason, "message": message,
			"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
		}}, "status", "conditions")
		_ = unstructured.SetNestedField(es.Object, strconv.FormatInt(es.GetGeneration(), 10)+"-0a1b2c", "status", "syncedResourceVersion")
		if err := h.env.Client.Status().Update(h.ctx, es); err != nil {
			t.Fatal(err)
		}
	}

	// The store fails: the message names it and says why.
	setReady("False", "SecretSyncedError", `could not get secret data from provider: ClusterSecretStore "enclave-vault" is not ready`)
	rel = h.eventually("app", "the failing store named", 30*time.Second, func(rel *v1alpha1.Release) bool {
		c := condition(rel, v1alpha1.ConditionReady)
		return c != nil && strings.Contains(c.Message, "SecretSyncedError")
	})
	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{"ExternalSecret " + h.ns + "/shop-payments", "ClusterSecretStore enclave-vault failed", "is not ready"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}

	// Synced: Ready.
	setReady("True", "SecretSynced", "secret synced")
	h.readyAt("app", d)
}
