package reconciler

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/internal/envtestenv"
)

func TestServiceAccount(t *testing.T) {
	env := envtestenv.Start(t)
	ctx := context.Background()
	ctrlNS, ops, platform, tenant := env.Namespace(t), env.Namespace(t), env.Namespace(t), env.Namespace(t)
	ns := &corev1.Namespace{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: platform}, ns); err != nil {
		t.Fatal(err)
	}
	ns.Labels = map[string]string{"airlock.dev/trusted": "true"}
	if err := env.Client.Update(ctx, ns); err != nil {
		t.Fatal(err)
	}
	sel := labels.SelectorFromSet(labels.Set{"airlock.dev/trusted": "true"})
	for _, tc := range []struct {
		name, ns, spec, defaultSA string
		want                      string
		wantErr                   bool
	}{
		{name: "spec.serviceAccountName wins everywhere", ns: ctrlNS, spec: "deployer", defaultSA: "default", want: "deployer"},
		{name: "the controller's namespace", ns: ctrlNS, defaultSA: "default", want: ""},
		{name: "an allowed namespace", ns: ops, defaultSA: "default", want: ""},
		{name: "a namespace the selector allows", ns: platform, defaultSA: "default", want: ""},
		{name: "a tenant gets the default ServiceAccount", ns: tenant, defaultSA: "default", want: "default"},
		{name: "a tenant without a default is refused", ns: tenant, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Reconciler{APIReader: env.Client, DefaultServiceAccount: tc.defaultSA, ControllerNamespace: ctrlNS,
				ControllerIdentityNamespaces: []string{ops}, ControllerIdentityNamespaceSelector: sel}
			rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: tc.ns}, Spec: v1alpha1.ReleaseSpec{ServiceAccountName: tc.spec}}
			got, err := r.serviceAccount(context.Background(), rel)
			var sae *ServiceAccountRequiredError
			if tc.wantErr {
				if !errors.As(err, &sae) || !strings.Contains(err.Error(), "--default-service-account") {
					t.Fatalf("err = %v, want a ServiceAccountRequiredError naming the flag", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("serviceAccount = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// A dependency in another namespace, allowed without
// --no-cross-namespace-refs, is waited for without reading its message.
func TestCrossNamespaceDependencyHidesMessage(t *testing.T) {
	env := envtestenv.Start(t)
	ctx := context.Background()
	team, other := env.Namespace(t), env.Namespace(t)
	for _, ns := range []string{team, other} {
		dep := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "base", Namespace: ns},
			Spec: v1alpha1.ReleaseSpec{URL: "oci://registry.example.com/team/base"}}
		if err := env.Client.Create(ctx, dep); err != nil {
			t.Fatal(err)
		}
		dep.Status.ObservedGeneration = dep.Generation
		meta.SetStatusCondition(&dep.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
			Reason: v1alpha1.ReasonApplyFailed, Message: "password=hunter2"})
		if err := env.Client.Status().Update(ctx, dep); err != nil {
			t.Fatal(err)
		}
	}
	r := &Reconciler{Client: env.Client}
	for _, tc := range []struct {
		name, ns    string
		wantMessage bool
	}{
		{"same namespace", "", true},
		{"other namespace", other, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: team},
				Spec: v1alpha1.ReleaseSpec{DependsOn: []v1alpha1.DependencyReference{{Name: "base", Namespace: tc.ns}}}}
			err := r.checkDependencies(context.Background(), rel)
			if err == nil || !strings.Contains(err.Error(), v1alpha1.ReasonApplyFailed) {
				t.Fatalf("err = %v, want the dependency's reason", err)
			}
			if got := strings.Contains(err.Error(), "hunter2"); got != tc.wantMessage {
				t.Errorf("message copied = %v, want %v: %v", got, tc.wantMessage, err)
			}
		})
	}
}
