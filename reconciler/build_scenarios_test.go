package reconciler_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"airlock.dev/airlock/api/v1alpha1"
)

// TestBuildRefusesRemoteContentAndBounds: a signed artifact whose
// kustomization names a URL (a ClusterRoleBinding, a metadata-service
// secret) or expands to too many objects fails with BuildFailed, makes no
// request, applies nothing and prunes nothing.
func TestBuildRefusesRemoteContentAndBounds(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		fmt.Fprint(w, "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: pwned}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: ServiceAccount, name: default, namespace: default}]\n")
	}))
	defer srv.Close()

	h := newHarness(t, harnessOptions{})
	d1 := h.pushSigned("v1", "v1", map[string]string{
		"kustomization.yaml": "resources:\n- a.yaml\n",
		"a.yaml":             configMapYAML("a", nil),
	})
	h.release("app", "v1", nil)
	h.readyAt("app", d1)

	diamond := map[string]string{"kustomization.yaml": "resources: [l12]\n", "l0/kustomization.yaml": "resources: [cm.yaml]\n", "l0/cm.yaml": configMapYAML("d", nil)}
	for k := 1; k <= 12; k++ {
		diamond[fmt.Sprintf("l%d/kustomization.yaml", k)] = "resources: [a, b]\n"
		diamond[fmt.Sprintf("l%d/a/kustomization.yaml", k)] = fmt.Sprintf("namePrefix: a-\nresources: [../../l%d]\n", k-1)
		diamond[fmt.Sprintf("l%d/b/kustomization.yaml", k)] = fmt.Sprintf("namePrefix: b-\nresources: [../../l%d]\n", k-1)
	}
	for i, tc := range []struct {
		files map[string]string
		want  string
	}{
		{map[string]string{"kustomization.yaml": "resources:\n- " + srv.URL + "/crb.yaml\n"}, srv.URL + "/crb.yaml"},
		{map[string]string{"kustomization.yaml": "configMapGenerator:\n- name: c\n  files: [creds=" + srv.URL + "/latest/meta-data]\n"}, "creds=" + srv.URL},
		{diamond, "(2 × --build-max-objects)"},
	} {
		d := h.pushSigned("v1", fmt.Sprintf("bad%d", i), tc.files)
		h.update("app", func(r *v1alpha1.Release) {
			r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": fmt.Sprint(i)}
		})
		rel := h.eventually("app", "BuildFailed on "+d, 30*time.Second, func(rel *v1alpha1.Release) bool {
			c := condition(rel, v1alpha1.ConditionReady)
			return rel.Status.LastAttemptedDigest == d && c != nil && c.Reason == v1alpha1.ReasonBuildFailed
		})
		if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, tc.want) {
			t.Errorf("message %q does not say %q", msg, tc.want)
		}
		if _, ok := h.configMap("a"); !ok {
			t.Error("ConfigMap a was pruned after a refused build")
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the controller made %d requests to the URLs in the kustomization, want 0", n)
	}
	err := h.env.Client.Get(h.ctx, types.NamespacedName{Name: "pwned"}, &rbacv1.ClusterRoleBinding{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("ClusterRoleBinding pwned: %v, want NotFound", err)
	}
}
