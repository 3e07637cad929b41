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
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"airlock.dev/airlock/api/v1alpha1"
)

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestServiceAccount(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "platform", Labels: map[string]string{"airlock.dev/trusted": "true"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant"}},
	).Build()
	sel := labels.SelectorFromSet(labels.Set{"airlock.dev/trusted": "true"})
	for _, tc := range []struct {
		name, ns, spec, defaultSA string
		want                      string
		wantErr                   bool
	}{
		{name: "spec.serviceAccountName wins everywhere", ns: "airlock-system", spec: "deployer", defaultSA: "default", want: "deployer"},
		{name: "the controller's namespace", ns: "airlock-system", defaultSA: "default", want: ""},
		{name: "an allowed namespace", ns: "ops", defaultSA: "default", want: ""},
		{name: "a namespace the selector allows", ns: "platform", defaultSA: "default", want: ""},
		{name: "a tenant gets the default ServiceAccount", ns: "tenant", defaultSA: "default", want: "default"},
		{name: "a tenant without a default is refused", ns: "tenant", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Reconciler{APIReader: c, DefaultServiceAccount: tc.defaultSA, ControllerNamespace: "airlock-system",
				ControllerIdentityNamespaces: []string{"ops"}, ControllerIdentityNamespaceSelector: sel}
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
	dep := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "base", Namespace: "other", Generation: 1}}
	dep.Status.ObservedGeneration = 1
	meta.SetStatusCondition(&dep.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: v1alpha1.ReasonApplyFailed, Message: "password=hunter2"})
	local := dep.DeepCopy()
	local.Namespace = "team"
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(dep, local).Build()
	r := &Reconciler{Client: c}
	for _, tc := range []struct {
		name, ns    string
		wantMessage bool
	}{
		{"same namespace", "", true},
		{"other namespace", "other", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team"},
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
