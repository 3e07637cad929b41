package build

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/resid"

	"airlock.dev/airlock/internal/testtree"
)

const deployYAML = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: ${REPLICAS:=1}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.example/team/web:1.0.0
        env:
        - {name: HOST, value: "${HOST}"}
        - {name: MODE, value: "${MODE:-safe}"}
`

const optedOut = `apiVersion: v1
kind: ConfigMap
metadata:
  name: script
  annotations: {delivery.airlock.dev/substitute: disabled}
data:
  run.sh: echo ${HOME}
`

const optedOutByLabel = `apiVersion: v1
kind: ConfigMap
metadata:
  name: script2
  labels: {delivery.airlock.dev/substitute: disabled}
data:
  run.sh: echo ${HOME}
`

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s among the built objects", kind, name)
	return nil
}

func envOf(t *testing.T, d *unstructured.Unstructured) map[string]string {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	env := map[string]string{}
	for _, e := range cs[0].(map[string]any)["env"].([]any) {
		m := e.(map[string]any)
		v, _ := m["value"].(string) // an empty plain scalar is null
		env[m["name"].(string)] = v
	}
	return env
}

func TestSubstitution(t *testing.T) {
	files := map[string]string{"deploy.yaml": deployYAML, "script.yaml": optedOut, "script2.yaml": optedOutByLabel}
	tests := []struct {
		name         string
		sub          Substitution
		wantReplicas int64
		wantEnv      map[string]string
		wantErr      []string // substrings; nil means success
	}{
		{name: "values, and defaults for the rest", sub: Substitution{Vars: map[string]string{"HOST": "db.staging"}},
			wantReplicas: 1, wantEnv: map[string]string{"HOST": "db.staging", "MODE": "safe"}},
		{name: "values win over defaults; a number becomes a number", sub: Substitution{Vars: map[string]string{"HOST": "db.prod", "REPLICAS": "5", "MODE": "fast"}},
			wantReplicas: 5, wantEnv: map[string]string{"HOST": "db.prod", "MODE": "fast"}},
		{name: "not strict: an undefined variable is empty", sub: Substitution{Vars: map[string]string{}},
			wantReplicas: 1, wantEnv: map[string]string{"HOST": "", "MODE": "safe"}},
		{name: "strict: defaults still apply", sub: Substitution{Vars: map[string]string{"HOST": "h"}, Strict: true},
			wantReplicas: 1, wantEnv: map[string]string{"HOST": "h", "MODE": "safe"}},
		{name: "strict: an undefined variable names the object and the variable", sub: Substitution{Vars: map[string]string{"OTHER": "x"}, Strict: true},
			wantErr: []string{"Deployment web", `"HOST"`, "spec.postBuild.substitute"}},
		{name: "an invalid variable name", sub: Substitution{Vars: map[string]string{"not-a-name": "x"}},
			wantErr: []string{`variable name "not-a-name" is invalid`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := testtree.Write(t, files)
			objs, err := Build(context.Background(), dir, "", "sha256:abc", Options{Substitute: &tc.sub})
			if tc.wantErr != nil {
				var be *Error
				if err == nil || !errors.As(err, &be) {
					t.Fatalf("err = %v, want a build.Error", err)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v, want it to say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d := find(t, objs, "Deployment", "web")
			if r, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas"); r != tc.wantReplicas {
				t.Errorf("replicas = %d, want %d", r, tc.wantReplicas)
			}
			if diff := cmp.Diff(tc.wantEnv, envOf(t, d)); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
			for _, name := range []string{"script", "script2"} {
				if got, _, _ := unstructured.NestedString(find(t, objs, "ConfigMap", name).Object, "data", "run.sh"); got != "echo ${HOME}" {
					t.Errorf("opted-out ConfigMap %s: run.sh = %q, want it untouched", name, got)
				}
			}
		})
	}
}

// TestSubstitutionErrorsShowNoValues: a value that breaks an object's YAML
// or makes it no object fails the build without quoting the value.
func TestSubstitutionErrorsShowNoValues(t *testing.T) {
	const secret = "hunter2-s3cr3t-value"
	files := map[string]string{"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  k: ${V}\n"}
	for name, vars := range map[string]map[string]string{
		"breaks the YAML":          {"V": secret + "\n  : ["},
		"makes the object too big": {"V": secret + strings.Repeat("x", 4<<10)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Build(context.Background(), testtree.Write(t, files), "", "sha256:abc", Options{MaxFileBytes: 2 << 10, Substitute: &Substitution{Vars: vars}})
			if err == nil {
				t.Fatal("the build passed")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the value: %v", err)
			}
			if !strings.Contains(err.Error(), "ConfigMap a") {
				t.Errorf("err = %v, want it to name ConfigMap a", err)
			}
		})
	}
}

func TestValuesHash(t *testing.T) {
	a := ValuesHash(map[string]string{"A": "1", "B": "2"})
	if a != ValuesHash(map[string]string{"B": "2", "A": "1"}) {
		t.Error("the hash depends on map order")
	}
	for _, other := range []map[string]string{{"A": "1", "B": "3"}, {"A": "1"}, {"A": "1=B", "": "2"}} {
		if ValuesHash(other) == a {
			t.Errorf("%v hashes like {A:1 B:2}", other)
		}
	}
	if ValuesHash(nil) != "" || !strings.HasPrefix(a, "sha256:") {
		t.Errorf("ValuesHash(nil) = %q, ValuesHash(..) = %q", ValuesHash(nil), a)
	}
}

func TestSite(t *testing.T) {
	files := map[string]string{
		"app/kustomization.yaml":    "namePrefix: app-\nresources: [deploy.yaml, cm.yaml]\n",
		"app/deploy.yaml":           deployYAML,
		"app/cm.yaml":               cmA,
		"app/ha/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [pdb.yaml]\n",
		"app/ha/pdb.yaml":           "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec: {minAvailable: 1, selector: {matchLabels: {app: web}}}\n",
	}
	site := &Site{
		Patches: []types.Patch{
			{Patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n", Target: &types.Selector{ResId: resid.ResId{Gvk: resid.Gvk{Kind: "Deployment"}}}},
			{Patch: `[{"op": "add", "path": "/data/site", "value": "${SITE}"}]`, Target: &types.Selector{ResId: resid.ResId{Gvk: resid.Gvk{Kind: "ConfigMap"}, Name: "app-a"}}},
		},
		Images:      []types.Image{{Name: "registry.example/team/web", NewName: "mirror.site/web", Digest: "sha256:" + strings.Repeat("a", 64)}},
		Components:  []string{"ha"},
		NamePrefix:  "prod-",
		Labels:      map[string]string{"site": "prod"},
		Annotations: map[string]string{"owner": "ops"},
	}
	dir := testtree.Write(t, files)
	objs, err := Build(context.Background(), dir, "app", "sha256:abc", Options{Site: site, Substitute: &Substitution{Vars: map[string]string{"SITE": "north", "HOST": "h"}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	if diff := cmp.Diff([]string{"Deployment/prod-app-web", "ConfigMap/prod-app-a", "PodDisruptionBudget/prod-web"}, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	d := find(t, objs, "Deployment", "prod-app-web")
	if r, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas"); r != 3 {
		t.Errorf("replicas = %d, want 3 from the site's patch", r)
	}
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if img := cs[0].(map[string]any)["image"]; img != "mirror.site/web@sha256:"+strings.Repeat("a", 64) {
		t.Errorf("image = %v, want the site's override", img)
	}
	if d.GetLabels()["site"] != "prod" || d.GetAnnotations()["owner"] != "ops" {
		t.Errorf("metadata labels %v annotations %v, want the site's common metadata", d.GetLabels(), d.GetAnnotations())
	}
	tmpl, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "metadata")
	sel, _, _ := unstructured.NestedMap(d.Object, "spec", "selector", "matchLabels")
	if diff := cmp.Diff(map[string]any{"labels": map[string]any{"app": "web"}}, tmpl); diff != "" {
		t.Errorf("pod template metadata changed by commonMetadata (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"app": "web"}, sel); diff != "" {
		t.Errorf("selector changed by commonMetadata (-want +got):\n%s", diff)
	}
	if v, _, _ := unstructured.NestedString(find(t, objs, "ConfigMap", "prod-app-a").Object, "data", "site"); v != "north" {
		t.Errorf("data.site = %q, want the JSON 6902 patch's value, substituted", v)
	}

	// The same artifact without a site builds as before.
	plain, err := Build(context.Background(), dir, "app", "sha256:abc", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != 2 || plain[0].GetName() != "app-web" {
		t.Errorf("without a site: %d objects, first %s", len(plain), plain[0].GetName())
	}
}

func TestSiteRefusals(t *testing.T) {
	files := map[string]string{
		"kustomization.yaml":        "resources: [cm.yaml]\n",
		"cm.yaml":                   cmA,
		"remote/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [https://example.com/crb.yaml]\n",
	}
	for _, tc := range []struct {
		name string
		site Site
		want string
	}{
		{"a remote component", Site{Components: []string{"github.com/org/repo//comp?ref=v1"}}, "is a remote git repository"},
		{"a component that is no directory", Site{Components: []string{"cm.yaml"}}, `component "cm.yaml" is not a directory in the artifact`},
		{"a component that names remote content", Site{Components: []string{"remote"}}, `resources entry "https://example.com/crb.yaml" is a URL`},
		{"a patch given as a path", Site{Patches: []types.Patch{{Path: "cm.yaml"}}}, "written inline"},
		{"a patch that is no YAML", Site{Patches: []types.Patch{{Patch: "a: [", Target: &types.Selector{}}}}, "spec.patches[0]"},
		{"a patch whose target is missing", Site{Patches: []types.Patch{{Patch: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nope}\ndata: {x: y}\n"}}}, "spec.patches"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(context.Background(), testtree.Write(t, files), "", "sha256:abc", Options{Site: &tc.site})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}
