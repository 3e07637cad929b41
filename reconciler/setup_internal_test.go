package reconciler

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"airlock.dev/airlock/api/v1alpha1"
)

// TestReleasesReading: a change to a Secret or ConfigMap reaches the
// Releases of its namespace that read it, for whatever they read it, and
// no other, without an index of them (which kept about 1 KiB per Release).
func TestReleasesReading(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	rel := func(ns, name string, edit func(*v1alpha1.ReleaseSpec)) *v1alpha1.Release {
		r := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		edit(&r.Spec)
		return r
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		rel("a", "keys", func(s *v1alpha1.ReleaseSpec) {
			s.Verify = &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "cosign"}}
		}),
		rel("a", "pull", func(s *v1alpha1.ReleaseSpec) { s.SecretRef = &v1alpha1.LocalObjectReference{Name: "cosign"} }),
		rel("a", "subst", func(s *v1alpha1.ReleaseSpec) {
			s.PostBuild = &v1alpha1.PostBuild{SubstituteFrom: []v1alpha1.SubstituteReference{{Kind: "ConfigMap", Name: "vars"}, {Kind: "Secret", Name: "vars"}}}
		}),
		rel("a", "decrypt", func(s *v1alpha1.ReleaseSpec) {
			s.Decryption = &v1alpha1.Decryption{SecretRef: v1alpha1.LocalObjectReference{Name: "age"}}
		}),
		rel("a", "plain", func(*v1alpha1.ReleaseSpec) {}),
		rel("b", "keys", func(s *v1alpha1.ReleaseSpec) {
			s.Verify = &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "cosign"}}
		}),
	).Build()
	r := &Reconciler{Client: c}
	names := func(kind, ns, name string) []string {
		obj := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		var out []string
		for _, req := range r.releasesReading(kind)(context.Background(), obj) {
			out = append(out, req.String())
		}
		return out
	}
	for _, tc := range []struct {
		kind, ns, name string
		want           []string
	}{
		{"Secret", "a", "cosign", []string{"a/keys", "a/pull"}},
		{"Secret", "b", "cosign", []string{"b/keys"}},
		{"Secret", "a", "vars", []string{"a/subst"}},
		{"ConfigMap", "a", "vars", []string{"a/subst"}},
		{"ConfigMap", "a", "cosign", nil},
		{"Secret", "a", "age", []string{"a/decrypt"}},
		{"Secret", "c", "cosign", nil},
	} {
		if diff := cmp.Diff(tc.want, names(tc.kind, tc.ns, tc.name)); diff != "" {
			t.Errorf("%s %s/%s (-want +got):\n%s", tc.kind, tc.ns, tc.name, diff)
		}
	}
}
