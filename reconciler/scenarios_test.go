package reconciler_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
)

var configMapGVK = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}

func TestHappyPath(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	digest := h.pushSigned("v1", "main@sha1:1111111111111111111111111111111111111111", map[string]string{
		"app/a.yaml": configMapYAML("a", map[string]string{"k": "1"}),
		"app/b.yaml": configMapYAML("b", map[string]string{"k": "2"}),
	})
	h.release("app", "v1", nil)
	rel := h.readyAt("app", digest)

	want := []v1alpha1.ObjectRef{
		{Version: "v1", Kind: "ConfigMap", Namespace: h.ns, Name: "a"},
		{Version: "v1", Kind: "ConfigMap", Namespace: h.ns, Name: "b"},
	}
	if diff := cmp.Diff(want, rel.Status.Inventory); diff != "" {
		t.Errorf("inventory (-want +got):\n%s", diff)
	}
	if len(rel.Status.History) != 1 || rel.Status.History[0].Digest != digest || rel.Status.History[0].Health != v1alpha1.HealthHealthy ||
		rel.Status.History[0].Revision != "main@sha1:1111111111111111111111111111111111111111" {
		t.Errorf("history = %+v, want one healthy entry for %s", rel.Status.History, digest)
	}
	if c := condition(rel, v1alpha1.ConditionVerified); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Verified = %+v, want True", c)
	}
	if len(rel.Status.Signers) != 1 || rel.Status.Signers[0].Name != "release" || rel.Status.Signers[0].Fingerprint != h.key.Public.Fingerprint {
		t.Errorf("signers = %+v, want the release key %s", rel.Status.Signers, h.key.Public.Fingerprint)
	}
	if rel.Status.ShortDigest != strings.TrimPrefix(digest, "sha256:")[:12] {
		t.Errorf("shortDigest = %q", rel.Status.ShortDigest)
	}
	cm := h.mustConfigMap("a")
	if cm.Labels[v1alpha1.NameLabel] != "app" || cm.Labels[v1alpha1.NamespaceLabel] != h.ns {
		t.Errorf("ConfigMap a labels = %v, want the Release's", cm.Labels)
	}
	found := false
	for _, mf := range cm.ManagedFields {
		found = found || mf.Manager == "airlock"
	}
	if !found {
		t.Errorf("ConfigMap a is not managed by field manager airlock: %+v", cm.ManagedFields)
	}

	// A no-op reconcile costs one registry request and no writes.
	reconciles := counter(t, h.metrics.ReconcileDuration, nil)
	requests := h.reg.Requests()
	writes := counter(t, h.metrics.APIWrites, map[string]string{"dry_run": "false"})
	h.update("app", func(r *v1alpha1.Release) {
		r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "now"}
	})
	deadline := time.Now().Add(10 * time.Second)
	for counter(t, h.metrics.ReconcileDuration, nil) == reconciles {
		if time.Now().After(deadline) {
			t.Fatal("no reconcile after the annotation changed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := h.reg.Requests() - requests; got != 1 {
		t.Errorf("no-op reconcile made %d registry requests, want 1", got)
	}
	if got := counter(t, h.metrics.APIWrites, map[string]string{"dry_run": "false"}) - writes; got != 0 {
		t.Errorf("no-op reconcile made %v non-dry-run writes, want 0", got)
	}
	// The keys Secret did not change: its keys were parsed once.
	if got := h.rec.KeyParses(); got != 1 {
		t.Errorf("keys Secret parsed %d times, want 1", got)
	}
}

func TestNewDigestUpdatesAndPrunes(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d1 := h.pushSigned("stable", "v1", map[string]string{
		"a.yaml":    configMapYAML("a", map[string]string{"k": "1"}),
		"b.yaml":    configMapYAML("b", map[string]string{"k": "1"}),
		"keep.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\n  annotations:\n    delivery.airlock.dev/prune: disabled\n",
	})
	h.release("app", "stable", nil)
	h.readyAt("app", d1)

	d2 := h.pushSigned("stable", "v2", map[string]string{
		"a.yaml": configMapYAML("a", map[string]string{"k": "2"}),
	})
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "1"} })
	rel := h.readyAt("app", d2)

	if got := h.mustConfigMap("a").Data["k"]; got != "2" {
		t.Errorf("ConfigMap a k = %q, want 2", got)
	}
	h.eventuallyGone(configMapGVK, h.ns, "b")
	if _, ok := h.configMap("keep"); !ok {
		t.Error("ConfigMap keep, annotated prune: disabled, was pruned")
	}
	if len(rel.Status.Inventory) != 1 || len(rel.Status.History) != 2 || rel.Status.History[0].Digest != d2 || rel.Status.History[1].Digest != d1 {
		t.Errorf("inventory %+v history %+v", rel.Status.Inventory, rel.Status.History)
	}
	if rel.Status.LastAppliedRevision != "v2" {
		t.Errorf("revision = %q, want v2", rel.Status.LastAppliedRevision)
	}
}

func TestWrongKeyOrUnsignedKeepsOldState(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d1 := h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", map[string]string{"k": "1"})})
	h.release("app", "v1", nil)
	h.readyAt("app", d1)

	// Unsigned.
	d2 := h.push("v1", "v2", map[string]string{"b.yaml": configMapYAML("b", map[string]string{"k": "2"})}, nil)
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "1"} })
	rel := h.failsWith("app", v1alpha1.ReasonVerificationFailed)
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, d2) {
		t.Errorf("message %q does not name the digest %s", msg, d2)
	}

	// Signed by a key the Release does not trust.
	other, _ := newKey(t)
	h.sign(d2, other)
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "2"} })
	rel = h.eventually("app", "a verification failure naming the untrusted signer", 20*time.Second, func(r *v1alpha1.Release) bool {
		c := condition(r, v1alpha1.ConditionReady)
		return c != nil && c.Reason == v1alpha1.ReasonVerificationFailed && strings.Contains(c.Message, other.Public.Fingerprint[:12])
	})
	if c := condition(rel, v1alpha1.ConditionVerified); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Verified = %+v, want False", c)
	}
	if rel.Status.LastAppliedDigest != d1 || rel.Status.LastAttemptedDigest != d2 {
		t.Errorf("lastApplied %s lastAttempted %s, want %s and %s", rel.Status.LastAppliedDigest, rel.Status.LastAttemptedDigest, d1, d2)
	}
	if _, ok := h.configMap("a"); !ok {
		t.Error("ConfigMap a was pruned after a failed verification")
	}
	if _, ok := h.configMap("b"); ok {
		t.Error("ConfigMap b was applied from an untrusted artifact")
	}
	h.waitEvent(v1alpha1.ReasonVerificationFailed, d2)
}

func TestVerificationRequired(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.push("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", nil)}, nil)
	requests := h.reg.Requests()
	h.release("app", "v1", func(r *v1alpha1.Release) { r.Spec.Verify = nil })
	rel := h.failsWith("app", v1alpha1.ReasonVerificationRequired)
	if c := condition(rel, v1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Stalled = %+v, want True", c)
	}
	if !strings.Contains(condition(rel, v1alpha1.ConditionReady).Message, "--allow-unsigned") {
		t.Errorf("message does not say what to do: %s", condition(rel, v1alpha1.ConditionReady).Message)
	}
	if got := h.reg.Requests() - requests; got != 0 {
		t.Errorf("%d registry requests for a Release refused before resolving", got)
	}
	if _, ok := h.configMap("a"); ok {
		t.Error("ConfigMap a was applied without verification")
	}
}

func TestAllowUnsigned(t *testing.T) {
	h := newHarness(t, harnessOptions{allowUnsigned: true})
	d := h.push("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", nil)}, nil)
	h.release("app", "v1", func(r *v1alpha1.Release) { r.Spec.Verify = nil })
	rel := h.readyAt("app", d)
	if c := condition(rel, v1alpha1.ConditionVerified); c == nil || c.Reason != v1alpha1.ReasonVerificationSkipped {
		t.Errorf("Verified = %+v, want %s", c, v1alpha1.ReasonVerificationSkipped)
	}
}

func TestRegistryDown(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d := h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", nil)})
	h.release("app", "v1", nil)
	h.readyAt("app", d)

	h.reg.FailWith(http.StatusInternalServerError)
	before := h.reg.Requests()
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "1"} })
	rel := h.failsWith("app", v1alpha1.ReasonRegistryUnavailable)
	msg := condition(rel, v1alpha1.ConditionReady).Message
	if !strings.Contains(msg, "500") || !strings.Contains(msg, h.reg.Addr) {
		t.Errorf("message %q names neither the status nor the registry", msg)
	}
	if c := condition(rel, v1alpha1.ConditionReconciling); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Reconciling = %+v, want True (retrying)", c)
	}
	// Backoff: the controller retries by itself.
	first := h.reg.Requests()
	deadline := time.Now().Add(10 * time.Second)
	for h.reg.Requests() <= first {
		if time.Now().After(deadline) {
			t.Fatalf("no retry after the failure (requests before %d, after failure %d)", before, first)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, ok := h.configMap("a"); !ok {
		t.Error("ConfigMap a was pruned while the registry was down")
	}
	if got := h.get("app").Status.LastAppliedDigest; got != d {
		t.Errorf("lastAppliedDigest = %s, want %s kept", got, d)
	}

	h.reg.FailWith(0)
	h.readyAt("app", d)
}

func TestBrokenKustomization(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d1 := h.pushSigned("v1", "v1", map[string]string{
		"kustomization.yaml": "resources:\n- a.yaml\n",
		"a.yaml":             configMapYAML("a", nil),
	})
	h.release("app", "v1", nil)
	h.readyAt("app", d1)

	h.pushSigned("v1", "v2", map[string]string{
		"kustomization.yaml": "resources:\n- b.yaml\n",
		"b.yaml":             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata: [unclosed\n",
	})
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "1"} })
	rel := h.failsWith("app", v1alpha1.ReasonBuildFailed)
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "b.yaml") {
		t.Errorf("message %q does not name the broken file b.yaml", msg)
	}
	if _, ok := h.configMap("a"); !ok {
		t.Error("ConfigMap a was pruned after a failed build")
	}
}

func TestCRDAndCR(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	crd := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.airlock.dev
spec:
  group: example.airlock.dev
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
`
	cr := "apiVersion: example.airlock.dev/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 3\n"
	d := h.pushSigned("v1", "v1", map[string]string{"crd.yaml": crd, "widget.yaml": cr})
	h.release("app", "v1", nil)
	rel := h.readyAt("app", d)
	if len(rel.Status.Inventory) != 2 || rel.Status.Inventory[0].Kind != "CustomResourceDefinition" {
		t.Errorf("inventory = %+v, want the CRD first", rel.Status.Inventory)
	}
	w := &unstructured.Unstructured{}
	w.SetGroupVersionKind(schema.GroupVersionKind{Group: "example.airlock.dev", Version: "v1", Kind: "Widget"})
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "w"}, w); err != nil {
		t.Fatalf("Widget: %v", err)
	}
	// The CRD is cluster-wide and shared by the whole test binary: delete it.
	t.Cleanup(func() {
		_ = h.env.Client.Delete(h.ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": map[string]any{"name": "widgets.example.airlock.dev"}}})
	})
}

func TestImmutableField(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	immutable := func(v string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\nimmutable: true\ndata:\n  k: \"" + v + "\"\n"
	}
	d1 := h.pushSigned("v1", "v1", map[string]string{"frozen.yaml": immutable("1")})
	h.release("app", "v1", nil)
	h.readyAt("app", d1)
	uid := h.mustConfigMap("frozen").UID

	d2 := h.pushSigned("v1", "v2", map[string]string{"frozen.yaml": immutable("2")})
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "1"} })
	rel := h.failsWith("app", v1alpha1.ReasonImmutableField)
	msg := condition(rel, v1alpha1.ConditionReady).Message
	if !strings.Contains(msg, "ConfigMap "+h.ns+"/frozen") || !strings.Contains(msg, "spec.force") {
		t.Errorf("message %q should name the object and spec.force", msg)
	}
	if got := h.mustConfigMap("frozen").Data["k"]; got != "1" {
		t.Errorf("k = %q, want the old 1", got)
	}

	h.update("app", func(r *v1alpha1.Release) { r.Spec.Force = true })
	h.readyAt("app", d2)
	cm := h.mustConfigMap("frozen")
	if cm.Data["k"] != "2" || cm.UID == uid {
		t.Errorf("frozen: k=%q uid changed=%v, want 2 and a new object", cm.Data["k"], cm.UID != uid)
	}
}

func TestDriftCorrected(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d := h.pushSigned("v1", "v1", map[string]string{
		"a.yaml": configMapYAML("a", map[string]string{"k": "1"}),
		"b.yaml": configMapYAML("b", map[string]string{"k": "1"}),
	})
	h.release("app", "v1", nil)
	h.readyAt("app", d)

	cm := h.mustConfigMap("a")
	cm.Data["k"] = "changed by hand"
	if err := h.env.Client.Update(h.ctx, cm); err != nil {
		t.Fatal(err)
	}
	if err := h.env.Client.Delete(h.ctx, h.mustConfigMap("b")); err != nil {
		t.Fatal(err)
	}
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "1"} })
	rel := h.eventually("app", "two drift corrections", 20*time.Second, func(r *v1alpha1.Release) bool { return r.Status.DriftCorrections == 2 })
	if got := h.mustConfigMap("a").Data["k"]; got != "1" {
		t.Errorf("ConfigMap a k = %q after drift correction, want 1", got)
	}
	h.mustConfigMap("b")
	if got := counter(t, h.metrics.ObjectsDrifted, map[string]string{"name": "app"}); got != 2 {
		t.Errorf("drift metric = %v, want 2", got)
	}
	h.waitEvent(v1alpha1.ReasonDriftCorrected, "ConfigMap "+h.ns+"/a")
	if c := condition(rel, v1alpha1.ConditionReady); c.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %+v", c)
	}
}

func TestSuspendResume(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d1 := h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", map[string]string{"k": "1"})})
	h.release("app", "v1", nil)
	h.readyAt("app", d1)

	h.update("app", func(r *v1alpha1.Release) { r.Spec.Suspend = true })
	h.eventually("app", "Suspended", 10*time.Second, func(r *v1alpha1.Release) bool {
		c := condition(r, v1alpha1.ConditionReconciling)
		return c != nil && c.Reason == v1alpha1.ReasonSuspended && r.Status.ObservedGeneration == r.Generation
	})
	requests := h.reg.Requests()
	d2 := h.pushSigned("v1", "v2", map[string]string{"a.yaml": configMapYAML("a", map[string]string{"k": "2"})})
	pushed := h.reg.Requests()
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "1"} })
	time.Sleep(time.Second)
	if got := h.mustConfigMap("a").Data["k"]; got != "1" {
		t.Errorf("a suspended Release applied: k = %q", got)
	}
	if pushed-requests == 0 || h.reg.Requests() != pushed {
		t.Errorf("a suspended Release made %d registry requests", h.reg.Requests()-pushed)
	}

	h.update("app", func(r *v1alpha1.Release) { r.Spec.Suspend = false })
	h.readyAt("app", d2)
	if got := h.mustConfigMap("a").Data["k"]; got != "2" {
		t.Errorf("after resume k = %q, want 2", got)
	}
}

func TestDeletionPrunes(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d := h.pushSigned("v1", "v1", map[string]string{
		"a.yaml": configMapYAML("a", nil),
		"b.yaml": configMapYAML("b", nil),
	})
	rel := h.release("app", "v1", nil)
	h.readyAt("app", d)
	if err := h.env.Client.Delete(h.ctx, rel); err != nil {
		t.Fatal(err)
	}
	h.eventuallyGone(configMapGVK, h.ns, "a")
	h.eventuallyGone(configMapGVK, h.ns, "b")
	h.eventuallyGone(v1alpha1.GroupVersion.WithKind("Release"), h.ns, "app")

	// With prune off, deleting the Release leaves its objects.
	d2 := h.pushSigned("v2", "v2", map[string]string{"c.yaml": configMapYAML("c", nil)})
	rel = h.release("keeper", "v2", func(r *v1alpha1.Release) { r.Spec.Prune = ptr.To(false) })
	h.readyAt("keeper", d2)
	if err := h.env.Client.Delete(h.ctx, rel); err != nil {
		t.Fatal(err)
	}
	h.eventuallyGone(v1alpha1.GroupVersion.WithKind("Release"), h.ns, "keeper")
	h.mustConfigMap("c")
}

func TestDependsOn(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	base := h.pushSigned("base", "v1", map[string]string{"base.yaml": configMapYAML("base", nil)})
	app := h.pushSigned("app", "v1", map[string]string{"app.yaml": configMapYAML("app", nil)})
	h.release("app", "app", func(r *v1alpha1.Release) {
		r.Spec.DependsOn = []v1alpha1.DependencyReference{{Name: "base"}}
	})
	rel := h.failsWith("app", v1alpha1.ReasonDependencyNotReady)
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, h.ns+"/base") {
		t.Errorf("message %q does not name the dependency", msg)
	}
	if _, ok := h.configMap("app"); ok {
		t.Error("applied before its dependency was Ready")
	}
	h.release("base", "base", nil)
	h.readyAt("base", base)
	h.readyAt("app", app)
}

func TestImpersonationDenied(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d := h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", nil)})
	h.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: h.ns}})
	h.release("app", "v1", func(r *v1alpha1.Release) { r.Spec.ServiceAccountName = "deployer" })
	rel := h.failsWith("app", v1alpha1.ReasonForbidden)
	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{"ConfigMap " + h.ns + "/a", "system:serviceaccount:" + h.ns + ":deployer", "RoleBinding"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
	if _, ok := h.configMap("a"); ok {
		t.Error("ConfigMap a applied despite RBAC")
	}

	// Granting the permission lets it through.
	h.create(&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: h.ns}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
	}})
	h.create(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: h.ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "deployer"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: h.ns}}})
	h.readyAt("app", d)
}

// waitEvent waits for an events.k8s.io event in the test's namespace with
// reason and a note containing substr.
func (h *harness) waitEvent(reason, substr string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var list eventsv1.EventList
		if err := h.env.Client.List(h.ctx, &list, client.InNamespace(h.ns)); err != nil {
			h.t.Fatal(err)
		}
		var seen []string
		for _, e := range list.Items {
			if e.Reason == reason && strings.Contains(e.Note, substr) {
				return
			}
			seen = append(seen, e.Type+" "+e.Reason+": "+e.Note)
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no event %s naming %q; events:\n%s", reason, substr, strings.Join(seen, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestEmptyArtifactNeverPrunesWithoutMarker(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d1 := h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", nil)})
	h.release("app", "v1", nil)
	h.readyAt("app", d1)

	empty := h.push("v1", "v2", map[string]string{"README.md": "nothing to deploy"}, nil)
	h.sign(empty, h.key)
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "1"} })
	rel := h.failsWith("app", v1alpha1.ReasonEmptyArtifact)
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, v1alpha1.EmptyAnnotation) {
		t.Errorf("message %q does not name the marker annotation", msg)
	}
	h.mustConfigMap("a")

	marked := h.push("v1", "v3", map[string]string{"README.md": "retired"}, map[string]string{v1alpha1.EmptyAnnotation: "true"})
	h.sign(marked, h.key)
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "2"} })
	rel = h.readyAt("app", marked)
	h.eventuallyGone(configMapGVK, h.ns, "a")
	if len(rel.Status.Inventory) != 0 {
		t.Errorf("inventory = %+v, want empty", rel.Status.Inventory)
	}
}

func TestSemverPicksHighestTag(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.pushSigned("1.0.0", "v1.0.0", map[string]string{"a.yaml": configMapYAML("a", map[string]string{"v": "1.0.0"})})
	want := h.pushSigned("1.2.0", "v1.2.0", map[string]string{"a.yaml": configMapYAML("a", map[string]string{"v": "1.2.0"})})
	h.pushSigned("2.0.0", "v2.0.0", map[string]string{"a.yaml": configMapYAML("a", map[string]string{"v": "2.0.0"})})
	h.release("app", "", func(r *v1alpha1.Release) { r.Spec.Ref = v1alpha1.ArtifactRef{Semver: ">=1.0.0 <2.0.0"} })
	h.readyAt("app", want)
	if got := h.mustConfigMap("a").Data["v"]; got != "1.2.0" {
		t.Errorf("v = %q, want 1.2.0", got)
	}
}
