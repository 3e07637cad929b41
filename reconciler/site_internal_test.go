package reconciler

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/build"
)

// TestSitesExample builds examples/sites/app as each of its Releases would,
// in strict mode, with the values the example gives, a password standing in
// for each site's Secret, and the site's test-only age key: each site's
// SOPS-encrypted Secret decrypts with its own key and not with the other's.
func TestSitesExample(t *testing.T) {
	for site, want := range map[string]struct {
		replicas int64
		image    string
		objects  int
	}{
		"staging":    {1, "registry.example.com/team/shop:2.3.0", 5},
		"production": {3, "mirror.prod.internal/team/shop@sha256:4f0c4e3b8a6e1f2d9c7b5a3e1d0f9e8c7b6a5d4c3b2a1f0e9d8c7b6a5f4e3d2c", 7},
	} {
		t.Run(site, func(t *testing.T) {
			b, err := os.ReadFile("../examples/sites/releases/" + site + ".yaml")
			if err != nil {
				t.Fatal(err)
			}
			var rel v1alpha1.Release
			vars := map[string]string{"DB_PASSWORD": "example"}
			for _, doc := range bytes.Split(b, []byte("\n---\n")) {
				var cm corev1.ConfigMap
				if err := yaml.Unmarshal(doc, &cm); err != nil {
					t.Fatal(err)
				}
				switch cm.Kind {
				case "ConfigMap":
					for k, v := range cm.Data {
						vars[k] = v
					}
				case v1alpha1.ReleaseKind:
					if err := yaml.UnmarshalStrict(doc, &rel); err != nil {
						t.Fatal(err)
					}
				}
			}
			for k, v := range rel.Spec.PostBuild.Substitute {
				vars[k] = v
			}
			if rel.Spec.Decryption == nil || rel.Spec.Decryption.Provider != v1alpha1.DecryptionProviderSOPS {
				t.Fatalf("the %s Release has no SOPS decryption", site)
			}
			keysOf := func(site string) *build.Decryption {
				b, err := os.ReadFile("../examples/sites/test-keys/" + site + ".agekey")
				if err != nil {
					t.Fatal(err)
				}
				keys := &build.Decryption{}
				if err := keys.AddAge(site+".agekey", b); err != nil {
					t.Fatal(err)
				}
				return keys
			}
			opts := build.Options{Site: build.ReleaseSite(&rel), Substitute: &build.Substitution{Vars: vars, Strict: rel.Spec.PostBuild.Strict}}
			other := map[string]string{"staging": "production", "production": "staging"}[site]
			opts.Decrypt = keysOf(other)
			_, err = build.Build(context.Background(), "../examples/sites/app", rel.Spec.Path, "sha256:example", opts)
			if file := "components/secrets-" + site + "/api-credentials.yaml"; err == nil || !strings.Contains(err.Error(), "decrypt "+file) {
				t.Errorf("with the %s key: err = %v, want %s named", other, err, file)
			}
			opts.Decrypt = keysOf(site)
			objs, err := build.Build(context.Background(), "../examples/sites/app", rel.Spec.Path, "sha256:example", opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				if o.GetKind() == "Secret" && o.GetName() == "shop-api" {
					if tok, _, _ := unstructured.NestedString(o.Object, "stringData", "API_TOKEN"); tok != "example-"+site+"-token-not-a-real-one" {
						t.Errorf("shop-api API_TOKEN = %q, want %s's decrypted token", tok, site)
					}
				}
			}
			if len(objs) != want.objects {
				t.Errorf("%d objects, want %d", len(objs), want.objects)
			}
			for _, o := range objs {
				if o.GetKind() != "Deployment" {
					continue
				}
				r, _, _ := unstructured.NestedInt64(o.Object, "spec", "replicas")
				cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
				if img := cs[0].(map[string]any)["image"]; r != want.replicas || img != want.image {
					t.Errorf("Deployment: replicas %d image %v, want %d %s", r, img, want.replicas, want.image)
				}
			}
			for _, o := range objs {
				if o.GetName() == "shop-scripts" {
					if s, _, _ := unstructured.NestedString(o.Object, "data", "migrate.sh"); !strings.Contains(s, "${DB_PASSWORD}") {
						t.Errorf("the opted-out script was substituted: %q", s)
					}
				}
			}
		})
	}
}
