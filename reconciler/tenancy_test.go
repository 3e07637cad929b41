package reconciler_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

// escalationYAML binds cluster-admin to a ServiceAccount of the tenant: what
// a Release author must not be able to do with the controller's rights.
func escalationYAML(name, ns string) string {
	return "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: " + name +
		"\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n- kind: ServiceAccount\n  name: default\n  namespace: " + ns + "\n"
}

func TestTenantReleaseRunsAsDefaultServiceAccount(t *testing.T) {
	h := newHarness(t, harnessOptions{tenant: true, defaultServiceAccount: "default"})
	h.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: h.ns}})
	crb := h.ns + "-escalate"
	t.Cleanup(func() {
		_ = h.env.Client.Delete(h.ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: crb}})
	})
	h.pushSigned("v1", "v1", map[string]string{"crb.yaml": escalationYAML(crb, h.ns)})
	h.release("app", "v1", nil) // no spec.serviceAccountName
	rel := h.failsWith("app", v1alpha1.ReasonForbidden)
	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{"system:serviceaccount:" + h.ns + ":default", "--default-service-account"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Name: crb}, &rbacv1.ClusterRoleBinding{}); err == nil {
		t.Errorf("ClusterRoleBinding %s was created by a tenant's Release", crb)
	}
}

func TestTenantReleaseWithoutServiceAccountRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{tenant: true})
	h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", nil)})
	h.release("app", "v1", nil)
	rel := h.failsWith("app", v1alpha1.ReasonServiceAccountRequired)
	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{"spec.serviceAccountName", "--default-service-account", "--allow-controller-identity-namespaces"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say how to fix it with %s", msg, want)
		}
	}
	if c := condition(rel, v1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Stalled = %+v, want True", c)
	}
	if _, ok := h.configMap("a"); ok {
		t.Error("ConfigMap a applied as the controller in a tenant namespace")
	}
}

func TestCrossNamespaceDependsOnRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{noCrossNamespaceRefs: true})
	other := h.env.Namespace(t)
	base := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "base", Namespace: other},
		Spec: v1alpha1.ReleaseSpec{URL: "oci://registry.example.com/private/base"}}
	h.create(base)
	meta.SetStatusCondition(&base.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: v1alpha1.ReasonApplyFailed, Message: "SECRET-OF-" + other})
	if err := h.env.Client.Status().Update(h.ctx, base); err != nil {
		t.Fatal(err)
	}
	h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", nil)})
	h.release("app", "v1", func(r *v1alpha1.Release) {
		r.Spec.DependsOn = []v1alpha1.DependencyReference{{Name: "base", Namespace: other}}
	})
	rel := h.failsWith("app", v1alpha1.ReasonInvalidSpec)
	msg := condition(rel, v1alpha1.ConditionReady).Message
	if !strings.Contains(msg, "spec.dependsOn[0].namespace") || !strings.Contains(msg, "--no-cross-namespace-refs") {
		t.Errorf("message %q does not name the field and the flag", msg)
	}
	for _, c := range rel.Status.Conditions {
		if strings.Contains(c.Message, "SECRET-OF-") {
			t.Errorf("condition %s copies the other namespace's message: %s", c.Type, c.Message)
		}
	}
	if _, ok := h.configMap("a"); ok {
		t.Error("applied despite an invalid spec.dependsOn")
	}
}

// trustPolicy creates a ClusterTrustPolicy (cluster-wide: deleted when the
// test ends) whose keys Secret, in the controller's namespace, holds pub.
func (h *harness) trustPolicy(name string, repositories []string, pub []byte) {
	h.t.Helper()
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-keys", Namespace: h.ctrlNS}, Data: map[string][]byte{"k.pub": pub}})
	p := &v1alpha1.ClusterTrustPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ClusterTrustPolicySpec{Repositories: repositories, KeysSecretRef: v1alpha1.LocalObjectReference{Name: name + "-keys"}}}
	h.create(p)
	h.t.Cleanup(func() { _ = h.env.Client.Delete(h.ctx, p) })
}

// newKey is a new cosign signing key and its public key's PEM.
func newKey(t testing.TB) (*verify.PrivateKey, []byte) {
	t.Helper()
	priv, pub, err := verify.GenerateKeyPair([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := verify.LoadPrivateKey(priv, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	return k, pub
}

func TestClusterTrustPolicyRequiresItsKey(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	k, pub := newKey(t)
	policy := h.ns + "-team"
	h.trustPolicy(policy, []string{h.reg.Addr + "/" + h.ns + "/**"}, pub)

	// Signed by the namespace's own key only: the policy's key K is missing.
	d := h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", nil)})
	h.release("app", "v1", nil)
	rel := h.failsWith("app", v1alpha1.ReasonVerificationFailed)
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "ClusterTrustPolicy "+policy) {
		t.Errorf("message %q does not name the policy", msg)
	}
	if _, ok := h.configMap("a"); ok {
		t.Error("applied without the signature the ClusterTrustPolicy requires")
	}

	// Signed by K too: both the policy and spec.verify are met.
	h.sign(d, k)
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "1"} })
	rel = h.readyAt("app", d)
	if len(rel.Status.TrustPolicies) != 1 || rel.Status.TrustPolicies[0] != policy {
		t.Errorf("status.trustPolicies = %v, want [%s]", rel.Status.TrustPolicies, policy)
	}
	if len(rel.Status.Signers) != 2 {
		t.Errorf("signers = %+v, want the policy's key and the Release's", rel.Status.Signers)
	}
}

func TestClusterTrustPolicyVerifiesUnsignedRelease(t *testing.T) {
	h := newHarness(t, harnessOptions{allowUnsigned: true})
	_, pub := newKey(t)
	h.trustPolicy(h.ns+"-all", []string{h.reg.Addr + "/**"}, pub)
	h.push("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", nil)}, nil)
	h.release("app", "v1", func(r *v1alpha1.Release) { r.Spec.Verify = nil })
	h.failsWith("app", v1alpha1.ReasonVerificationFailed)
	if _, ok := h.configMap("a"); ok {
		t.Error("--allow-unsigned applied an artifact a ClusterTrustPolicy covers")
	}
}

func TestNoMatchingTrustPolicyRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	_, pub := newKey(t)
	policy := h.ns + "-elsewhere"
	h.trustPolicy(policy, []string{"registry.example.com/team-a/**"}, pub)
	h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", nil)})
	h.release("app", "v1", nil)
	rel := h.failsWith("app", v1alpha1.ReasonNoTrustPolicy)
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, policy) || !strings.Contains(msg, h.url()) {
		t.Errorf("message %q names neither the policies nor the URL", msg)
	}
	if _, ok := h.configMap("a"); ok {
		t.Error("applied a repository no ClusterTrustPolicy covers")
	}
}

func TestSemverNeverDowngrades(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d1 := h.pushSigned("1.0.0", "v1.0.0", map[string]string{"a.yaml": configMapYAML("a", map[string]string{"v": "1.0.0"})})
	d2 := h.pushSigned("1.1.0", "v1.1.0", map[string]string{"a.yaml": configMapYAML("a", map[string]string{"v": "1.1.0"})})
	h.release("app", "", func(r *v1alpha1.Release) { r.Spec.Ref = v1alpha1.ArtifactRef{Semver: ">=1.0.0"} })
	if rel := h.readyAt("app", d2); rel.Status.LastAppliedVersion != "1.1.0" {
		t.Errorf("lastAppliedVersion = %q, want 1.1.0", rel.Status.LastAppliedVersion)
	}

	// 1.1.0 is deleted from the registry: the range now resolves to 1.0.0.
	ref, err := artifact.ParseReference(h.url() + "@" + d2)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := h.remote().Repository(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := repo.Resolve(h.ctx, d2)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Delete(h.ctx, desc); err != nil {
		t.Fatal(err)
	}
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "1"} })
	rel := h.failsWith("app", v1alpha1.ReasonDowngradeRefused)
	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{"1.0.0", "1.1.0", "spec.ref.allowDowngrade"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
	if got := h.mustConfigMap("a").Data["v"]; got != "1.1.0" || rel.Status.LastAppliedDigest != d2 {
		t.Errorf("v = %q, lastApplied %s: want 1.1.0 kept", got, rel.Status.LastAppliedDigest)
	}

	h.update("app", func(r *v1alpha1.Release) { r.Spec.Ref.AllowDowngrade = true })
	rel = h.readyAt("app", d1)
	if rel.Status.LastAppliedVersion != "1.0.0" {
		t.Errorf("lastAppliedVersion = %q after an allowed downgrade, want 1.0.0", rel.Status.LastAppliedVersion)
	}
}

func TestFinalizerGivesUpAfterTimeout(t *testing.T) {
	h := newHarness(t, harnessOptions{finalizerTimeout: time.Millisecond})
	h.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: h.ns}})
	// Everything but delete: the prune at deletion fails.
	h.create(&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: h.ns}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
	}})
	h.create(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: h.ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "deployer"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: h.ns}}})
	d := h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", nil)})
	rel := h.release("app", "v1", func(r *v1alpha1.Release) { r.Spec.ServiceAccountName = "deployer" })
	h.readyAt("app", d)

	if err := h.env.Client.Delete(h.ctx, rel); err != nil {
		t.Fatal(err)
	}
	h.eventuallyGone(v1alpha1.GroupVersion.WithKind("Release"), h.ns, "app")
	h.mustConfigMap("a")
	h.waitEvent(v1alpha1.ReasonPruneAbandoned, "ConfigMap "+h.ns+"/a")
}

// A new ClusterTrustPolicy reconciles the Releases it covers, and a digest
// applied under the old trust is verified again under the new.
func TestClusterTrustPolicyChangeReconciles(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d := h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", nil)})
	h.release("app", "v1", nil)
	h.readyAt("app", d)

	_, pub := newKey(t)
	h.trustPolicy(h.ns+"-new", []string{h.reg.Addr + "/" + h.ns + "/*"}, pub)
	rel := h.failsWith("app", v1alpha1.ReasonVerificationFailed) // no annotation, no spec change
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "ClusterTrustPolicy "+h.ns+"-new") {
		t.Errorf("message %q does not name the new policy", msg)
	}
	if _, ok := h.configMap("a"); !ok {
		t.Error("ConfigMap a was pruned when the trust changed")
	}
}
