package reconciler

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/internal/envtestenv"
)

// internalNamespaces creates, on the shared envtest API server, one
// namespace per name, suffixed so that runs do not meet, and deletes them
// when the test ends. It returns the admin client and the names it made.
func internalNamespaces(t *testing.T, names ...string) (client.Client, map[string]string) {
	t.Helper()
	env := envtestenv.Start(t)
	ctx := context.Background()
	out := map[string]string{}
	for _, n := range names {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: n + "-"}}
		if err := env.Client.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		out[n] = ns.Name
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), ns) })
	}
	return env.Client, out
}

// TestReleasesReading: a change to a Secret or ConfigMap reaches the
// Releases of its namespace that read it, for whatever they read it, and
// no other, without an index of them (which kept about 1 KiB per Release).
func TestReleasesReading(t *testing.T) {
	c, ns := internalNamespaces(t, "a", "b", "c")
	rel := func(n, name string, edit func(*v1alpha1.ReleaseSpec)) *v1alpha1.Release {
		r := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns[n]}}
		r.Spec.URL = "oci://127.0.0.1:1/app"
		edit(&r.Spec)
		return r
	}
	for _, r := range []*v1alpha1.Release{
		rel("a", "keys", func(s *v1alpha1.ReleaseSpec) {
			s.Verify = &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "cosign"}}
		}),
		rel("a", "pull", func(s *v1alpha1.ReleaseSpec) { s.SecretRef = &v1alpha1.LocalObjectReference{Name: "cosign"} }),
		rel("a", "subst", func(s *v1alpha1.ReleaseSpec) {
			s.PostBuild = &v1alpha1.PostBuild{SubstituteFrom: []v1alpha1.SubstituteReference{{Kind: "ConfigMap", Name: "vars"}, {Kind: "Secret", Name: "vars"}}}
		}),
		rel("a", "decrypt", func(s *v1alpha1.ReleaseSpec) {
			s.Decryption = &v1alpha1.Decryption{Provider: "sops", SecretRef: v1alpha1.LocalObjectReference{Name: "age"}}
		}),
		rel("a", "plain", func(*v1alpha1.ReleaseSpec) {}),
		rel("b", "keys", func(s *v1alpha1.ReleaseSpec) {
			s.Verify = &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "cosign"}}
		}),
	} {
		if err := c.Create(context.Background(), r); err != nil {
			t.Fatalf("create Release %s/%s: %v", r.Namespace, r.Name, err)
		}
	}
	r := &Reconciler{Client: c}
	names := func(kind, n, name string) []string {
		obj := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ns[n], Name: name}}
		var out []string
		for _, req := range r.releasesReading(kind)(context.Background(), obj) {
			out = append(out, req.Name) // every request is in obj's namespace (checked below)
			if req.Namespace != obj.Namespace {
				t.Errorf("%s %s/%s reached a Release of namespace %s", kind, obj.Namespace, name, req.Namespace)
			}
		}
		return out
	}
	for _, tc := range []struct {
		kind, ns, name string
		want           []string
	}{
		{"Secret", "a", "cosign", []string{"keys", "pull"}},
		{"Secret", "b", "cosign", []string{"keys"}},
		{"Secret", "a", "vars", []string{"subst"}},
		{"ConfigMap", "a", "vars", []string{"subst"}},
		{"ConfigMap", "a", "cosign", nil},
		{"Secret", "a", "age", []string{"decrypt"}},
		{"Secret", "c", "cosign", nil},
	} {
		if diff := cmp.Diff(tc.want, names(tc.kind, tc.ns, tc.name)); diff != "" {
			t.Errorf("%s %s/%s (-want +got):\n%s", tc.kind, tc.ns, tc.name, diff)
		}
	}
}
