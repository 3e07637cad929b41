package reconciler_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/internal/envtestenv"
)

// spoke is a remote cluster of the test: the test binary's spoke API
// server, with a namespace named as the harness's (where the Releases'
// objects go by default).
type spoke struct {
	h   *harness
	env *envtestenv.Env
}

func newSpoke(h *harness) *spoke {
	h.t.Helper()
	env := envtestenv.StartSpoke(h.t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns}}
	if err := env.Client.Create(h.ctx, ns); err != nil {
		h.t.Fatalf("create namespace %s on the spoke: %v", h.ns, err)
	}
	h.t.Cleanup(func() { _ = env.Client.Delete(h.ctx, ns) })
	return &spoke{h: h, env: env}
}

// kubeConfigSecret stores in Secret name, on the hub, a kubeconfig of the
// spoke for a new user of the spoke in groups.
func (s *spoke) kubeConfigSecret(name, user string, groups ...string) {
	s.h.t.Helper()
	kc, err := envtestenv.KubeConfig(s.env.AddUser(s.h.t, user, groups...), "")
	if err != nil {
		s.h.t.Fatal(err)
	}
	s.h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.h.ns}, Data: map[string][]byte{"value": kc}})
}

func (s *spoke) get(gvk schema.GroupVersionKind, name string) (*unstructured.Unstructured, bool) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	err := s.env.Client.Get(s.h.ctx, types.NamespacedName{Namespace: s.h.ns, Name: name}, u)
	return u, err == nil
}

// waitFor polls cond on the spoke until it holds.
func (s *spoke) waitFor(what string, cond func() bool) {
	s.h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			s.h.t.Fatalf("on the spoke: timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func remoteRelease(secret string) func(*v1alpha1.Release) {
	return func(r *v1alpha1.Release) {
		r.Spec.KubeConfig = &v1alpha1.KubeConfigReference{SecretRef: v1alpha1.SecretKeyReference{Name: secret}}
	}
}

// TestRemoteClusterApplyPruneDriftRollback: a Release on the hub applies
// to the spoke through spec.kubeConfig, and health, drift correction,
// prune and rollback all act there; the hub gets none of the objects.
func TestRemoteClusterApplyPruneDriftRollback(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	sp := newSpoke(h)
	sp.kubeConfigSecret("spoke-admin", "hub-"+h.ns, "system:masters")

	v1 := h.pushSigned("stable", "v1", map[string]string{
		"a.yaml": configMapYAML("a", map[string]string{"k": "1"}),
		"b.yaml": configMapYAML("b", map[string]string{"k": "2"}),
	})
	h.release("app", "stable", func(r *v1alpha1.Release) {
		remoteRelease("spoke-admin")(r)
		rollbackRelease(r)
	})
	h.readyAt("app", v1) // health read the spoke: the hub has no ConfigMap a
	for _, name := range []string{"a", "b"} {
		cm, ok := sp.get(configMapGVK, name)
		if !ok {
			t.Fatalf("ConfigMap %s is not on the spoke", name)
		}
		if cm.GetLabels()[v1alpha1.NameLabel] != "app" {
			t.Errorf("ConfigMap %s on the spoke has labels %v, want the Release's", name, cm.GetLabels())
		}
		if _, ok := h.configMap(name); ok {
			t.Errorf("ConfigMap %s was applied to the hub", name)
		}
	}

	// Drift on the spoke is corrected there.
	cm, _ := sp.get(configMapGVK, "a")
	if err := unstructured.SetNestedField(cm.Object, "changed", "data", "k"); err != nil {
		t.Fatal(err)
	}
	if err := sp.env.Client.Update(h.ctx, cm); err != nil {
		t.Fatal(err)
	}
	h.update("app", func(r *v1alpha1.Release) {
		r.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: "drift"}
	})
	sp.waitFor("ConfigMap a corrected", func() bool {
		cm, _ := sp.get(configMapGVK, "a")
		v, _, _ := unstructured.NestedString(cm.Object, "data", "k")
		return v == "1"
	})
	h.eventually("app", "a drift correction recorded", 10*time.Second, func(r *v1alpha1.Release) bool { return r.Status.DriftCorrections == 1 })

	// An object that leaves the artifact is pruned on the spoke.
	v2 := h.pushSigned("stable", "v2", map[string]string{"a.yaml": configMapYAML("a", map[string]string{"k": "1"})})
	h.update("app", func(r *v1alpha1.Release) {
		r.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: "v2"}
	})
	h.readyAt("app", v2)
	sp.waitFor("ConfigMap b pruned", func() bool { _, ok := sp.get(configMapGVK, "b"); return !ok })

	// A digest whose Deployment never becomes Current on the spoke (it
	// runs no controllers) is rolled back there, and its Deployment pruned.
	v3 := h.pushSigned("stable", "v3", map[string]string{
		"a.yaml":      configMapYAML("a", map[string]string{"k": "3"}),
		"deploy.yaml": deploymentYAML("web"),
	})
	h.update("app", func(r *v1alpha1.Release) {
		r.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: "v3"}
	})
	rel := h.failsWith("app", v1alpha1.ReasonRolledBack)
	if rel.Status.LastAppliedDigest != v2 || rel.Status.FailedDigest != v3 {
		t.Errorf("lastApplied %s failed %s, want %s and %s", rel.Status.LastAppliedDigest, rel.Status.FailedDigest, v2, v3)
	}
	sp.waitFor("Deployment web pruned by the rollback", func() bool { _, ok := sp.get(deploymentGVK, "web"); return !ok })
	sp.waitFor("ConfigMap a back at v2", func() bool {
		cm, _ := sp.get(configMapGVK, "a")
		v, _, _ := unstructured.NestedString(cm.Object, "data", "k")
		return v == "1"
	})

	// Deleting the Release prunes its objects on the spoke.
	if err := h.env.Client.Delete(h.ctx, h.get("app")); err != nil {
		t.Fatal(err)
	}
	sp.waitFor("ConfigMap a pruned when the Release is deleted", func() bool { _, ok := sp.get(configMapGVK, "a"); return !ok })
}

// TestRemoteClusterImpersonatesServiceAccount: with spec.serviceAccountName,
// the kubeconfig Secret is read as that ServiceAccount on the hub, and the
// spoke is asked to impersonate it, so the spoke's RBAC for it applies
// whatever the kubeconfig's user may do.
func TestRemoteClusterImpersonatesServiceAccount(t *testing.T) {
	h := newHarness(t, harnessOptions{tenant: true})
	sp := newSpoke(h)
	h.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: h.ns}})
	// The spoke's user for the hub may only impersonate the ServiceAccount.
	hubUser := "hub-" + h.ns
	sp.kubeConfigSecret("spoke", hubUser)
	spokeRBAC := []client.Object{
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "impersonate-deployer", Namespace: h.ns}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"impersonate"}, ResourceNames: []string{"deployer"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "hub-impersonates", Namespace: h.ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "impersonate-deployer"},
			Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: hubUser}}},
	}
	for _, o := range spokeRBAC {
		if err := sp.env.Client.Create(h.ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	v1 := h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", map[string]string{"k": "1"})})
	h.release("app", "v1", func(r *v1alpha1.Release) {
		remoteRelease("spoke")(r)
		r.Spec.ServiceAccountName = "deployer"
	})

	// On the hub, the ServiceAccount may not read the kubeconfig Secret yet.
	rel := h.failsWith("app", v1alpha1.ReasonSecretError)
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "ServiceAccount "+h.ns+"/deployer may not read it") {
		t.Errorf("Ready message %q does not say that the ServiceAccount may not read the Secret", msg)
	}
	h.create(&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read-kubeconfig", Namespace: h.ns}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{"spoke"}}}})
	h.create(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "deployer-reads-kubeconfig", Namespace: h.ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "read-kubeconfig"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: h.ns}}})

	// On the spoke, the impersonated ServiceAccount has no rights yet.
	h.update("app", func(r *v1alpha1.Release) {
		r.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: "rbac-hub"}
	})
	rel = h.failsWith("app", v1alpha1.ReasonForbidden)
	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{"system:serviceaccount:" + h.ns + ":deployer", "ServiceAccount " + h.ns + "/deployer on https://" + strings.TrimPrefix(sp.env.Config.Host, "https://")} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message %q does not contain %q", msg, want)
		}
	}
	if _, ok := sp.get(configMapGVK, "a"); ok {
		t.Fatal("ConfigMap a was applied on the spoke without the ServiceAccount's rights there")
	}

	grant := []client.Object{
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: h.ns}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "create", "update", "patch", "delete"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: h.ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "deployer"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: h.ns}}},
	}
	for _, o := range grant {
		if err := sp.env.Client.Create(h.ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	h.update("app", func(r *v1alpha1.Release) {
		r.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: "rbac-spoke"}
	})
	h.readyAt("app", v1)
	if _, ok := sp.get(configMapGVK, "a"); !ok {
		t.Fatal("ConfigMap a is not on the spoke")
	}
	if _, ok := h.configMap("a"); ok {
		t.Error("ConfigMap a was applied to the hub")
	}
}

// TestRemoteClusterExecPluginRefused: a kubeconfig whose user runs an exec
// plugin is refused, with the reason, and nothing is applied anywhere.
func TestRemoteClusterExecPluginRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	sp := newSpoke(h)
	kc := clientcmdapi.NewConfig()
	kc.Clusters["spoke"] = &clientcmdapi.Cluster{Server: sp.env.Config.Host, CertificateAuthorityData: sp.env.Config.CAData}
	ran := filepath.Join(t.TempDir(), "exec-ran")
	kc.AuthInfos["hub"] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{
		APIVersion: "client.authentication.k8s.io/v1", Command: "/bin/sh", Args: []string{"-c", "touch " + ran}, InteractiveMode: clientcmdapi.NeverExecInteractiveMode}}
	kc.Contexts["spoke"] = &clientcmdapi.Context{Cluster: "spoke", AuthInfo: "hub"}
	kc.CurrentContext = "spoke"
	data, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "spoke-exec", Namespace: h.ns}, Data: map[string][]byte{"value": data}})
	h.pushSigned("v1", "v1", map[string]string{"a.yaml": configMapYAML("a", nil)})
	h.release("app", "v1", remoteRelease("spoke-exec"))
	rel := h.failsWith("app", v1alpha1.ReasonKubeConfigRefused)
	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{"Secret " + h.ns + "/spoke-exec", `exec plugin "/bin/sh"`, "never runs", "static token"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message %q does not contain %q", msg, want)
		}
	}
	if c := condition(rel, v1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Stalled = %+v, want True", c)
	}
	if len(rel.Status.Inventory) != 0 {
		t.Errorf("inventory %v, want nothing applied", rel.Status.Inventory)
	}
	if _, ok := sp.get(configMapGVK, "a"); ok {
		t.Error("ConfigMap a was applied on the spoke")
	}
	if _, ok := h.configMap("a"); ok {
		t.Error("ConfigMap a was applied on the hub")
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("the exec plugin ran on the controller's host")
	}
}
