package build

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/resid"

	"airlock.dev/airlock/internal/sopstest"

	"airlock.dev/airlock/internal/testtree"
)

// typicalApp is an overlay over a base: a Deployment, a Service, a
// ConfigMap generator, a patch and a component, 24 objects in all.
func typicalApp() map[string]string {
	files := map[string]string{
		"base/kustomization.yaml": "resources: [deploy.yaml, svc.yaml, rbac.yaml]\nconfigMapGenerator:\n- name: settings\n  files: [app.properties]\n",
		"base/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.example/team/web:1.4.0
        ports: [{containerPort: 8080}]
        envFrom: [{configMapRef: {name: settings}}]
        resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 256Mi}}
        readinessProbe: {httpGet: {path: /healthz, port: 8080}}
`,
		"base/svc.yaml":           "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n",
		"base/app.properties":     "log.level=info\nfeature.x=true\n",
		"comp/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [pdb.yaml]\n",
		"comp/pdb.yaml":           "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec:\n  minAvailable: 1\n  selector: {matchLabels: {app: web}}\n",
		"prod/kustomization.yaml": "namespace: prod\nnamePrefix: prod-\nresources: [../base]\ncomponents: [../comp]\nimages: [{name: registry.example/team/web, newTag: 1.4.1}]\npatches: [{path: replicas.yaml}]\nlabels: [{pairs: {env: prod}}]\n",
		"prod/replicas.yaml":      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 4}\n",
	}
	var rbac strings.Builder
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&rbac, "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r%d}\nrules: [{apiGroups: [\"\"], resources: [configmaps], verbs: [get, list]}]\n---\n", i)
		fmt.Fprintf(&rbac, "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: r%d}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r%d}\nsubjects: [{kind: ServiceAccount, name: web}]\n---\n", i, i)
	}
	files["base/rbac.yaml"] = rbac.String()
	return files
}

// crdLike is one CustomResourceDefinition-like object of about size bytes:
// deep, narrow schemas, as real CRD bundles are.
func crdLike(size int) string {
	var b strings.Builder
	b.WriteString("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions:\n")
	for v := 0; b.Len() < size; v++ {
		fmt.Fprintf(&b, "  - name: v%d\n    served: true\n    storage: %t\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n", v, v == 0)
		for p := 0; p < 200 && b.Len() < size; p++ {
			fmt.Fprintf(&b, "          field%d:\n            type: object\n            description: %s\n            properties:\n              name: {type: string, maxLength: 253}\n              count: {type: integer, minimum: 0}\n              tags: {type: array, items: {type: string}}\n", p, strings.Repeat("words ", 20))
		}
	}
	return b.String()
}

// wideMappings is about size bytes of mappings of maxMappingKeys keys, the
// worst shape the bounds admit (kustomize is quadratic in a mapping's keys).
func wideMappings(size int) string {
	var b strings.Builder
	b.WriteString("apiVersion: example.com/v1\nkind: Wide\nmetadata: {name: w}\nspec:\n")
	for m := 0; b.Len() < size-maxMappingKeys*16; m++ {
		fmt.Fprintf(&b, "  m%d:\n", m)
		for k := 0; k < maxMappingKeys; k++ {
			fmt.Fprintf(&b, "    k%d: x\n", k)
		}
	}
	return b.String()
}

func BenchmarkBuild(b *testing.B) {
	cases := []struct {
		name  string
		files map[string]string
		path  string
	}{
		{"typical app", typicalApp(), "prod"},
		{"MaxObjects ConfigMaps in one file", map[string]string{"a.yaml": configMaps(DefaultMaxObjects)}, ""},
		{"CRD at MaxFileBytes", map[string]string{"crd.yaml": crdLike(DefaultMaxFileBytes - 4096)}, ""},
		{"widest mappings at MaxFileBytes", map[string]string{"w.yaml": wideMappings(DefaultMaxFileBytes)}, ""},
		{"8-level diamond", diamond(8), "l8"},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			dir := testtree.Write(b, tc.files)
			var size int
			for _, c := range tc.files {
				size += len(c)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				objs, err := Build(context.Background(), dir, tc.path, "sha256:abc", Options{})
				if err != nil || len(objs) == 0 {
					b.Fatalf("%d objects, %v", len(objs), err)
				}
			}
		})
	}
}

// siteApp is an artifact of n objects, Deployments and ConfigMaps in equal
// numbers, each with three variables (one with a default).
func siteApp(n int) map[string]string {
	var b strings.Builder
	for i := 0; i < n/2; i++ {
		fmt.Fprintf(&b, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web%d}\nspec:\n  replicas: ${REPLICAS:=1}\n  selector: {matchLabels: {app: web%d}}\n  template:\n    metadata: {labels: {app: web%d}}\n    spec:\n      containers:\n      - name: web\n        image: registry.example/team/web:1.0.0\n        env: [{name: HOST, value: \"${HOST}\"}, {name: REGION, value: \"${REGION}\"}]\n---\n", i, i, i)
		fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings%d}\ndata: {host: \"${HOST}\", region: \"${REGION}\", level: \"${LEVEL:=info}\"}\n---\n", i)
	}
	return map[string]string{"kustomization.yaml": "resources: [app.yaml]\n", "app.yaml": b.String()}
}

// sopsApp is siteApp(n-secrets) and secrets Secrets, each in its own file
// SOPS-encrypted for recipient (data and stringData only), so n objects.
func sopsApp(b *testing.B, n, secrets int, recipient string) map[string]string {
	files := siteApp(n - secrets)
	res := []string{"app.yaml"}
	for i := 0; i < secrets; i++ {
		name := fmt.Sprintf("secret%d.yaml", i)
		plain := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: db%d}\nstringData:\n  password: pw-%d\n  user: ${REGION}-user\n", i, i)
		if recipient != "" {
			files[name] = encrypt(b, plain, sopstest.YAML, sopstest.Recipients{Age: []string{recipient}}, "^(data|stringData)$")
		} else {
			files[name] = plain
		}
		res = append(res, name)
	}
	files["kustomization.yaml"] = "resources: [" + strings.Join(res, ", ") + "]\n"
	return files
}

// BenchmarkSite is the build of 500 objects without a site, with
// substitution, and with substitution and an overlay (a patch, an image
// override, a name prefix and common labels); and of 500 objects of which
// 10 or 100 are Secrets, each in its own file, plain and substituted, or
// SOPS-encrypted (age), decrypted and substituted.
func BenchmarkSite(b *testing.B) {
	sub := &Substitution{Vars: map[string]string{"HOST": "db.prod.example", "REGION": "north", "REPLICAS": "3"}, Strict: true}
	site := &Site{
		Patches:    []types.Patch{{Patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: any}\nspec: {revisionHistoryLimit: 3}\n", Target: &types.Selector{ResId: resid.ResId{Gvk: resid.Gvk{Kind: "Deployment"}}}}},
		Images:     []types.Image{{Name: "registry.example/team/web", NewTag: "1.0.1"}},
		NamePrefix: "prod-",
		Labels:     map[string]string{"site": "prod"},
	}
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"500 objects", Options{}},
		{"500 objects substituted", Options{Substitute: sub}},
		{"500 objects substituted with an overlay", Options{Substitute: sub, Site: site}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			dir := testtree.Write(b, siteApp(500))
			b.ReportAllocs()
			for b.Loop() {
				objs, err := Build(context.Background(), dir, "", "sha256:abc", tc.opts)
				if err != nil || len(objs) != 500 {
					b.Fatalf("%d objects, %v", len(objs), err)
				}
			}
		})
	}
	key := newSiteKey(b)
	for _, secrets := range []int{10, 100} {
		for _, tc := range []struct {
			name      string
			recipient string
			opts      Options
		}{
			{"plain substituted", "", Options{Substitute: sub}},
			{"SOPS decrypted substituted", key.recipient, Options{Substitute: sub, Decrypt: key.keys(b)}},
		} {
			b.Run(fmt.Sprintf("500 objects %d Secrets %s", secrets, tc.name), func(b *testing.B) {
				dir := testtree.Write(b, sopsApp(b, 500, secrets, tc.recipient))
				b.ReportAllocs()
				for b.Loop() {
					objs, err := Build(context.Background(), dir, "", "sha256:abc", tc.opts)
					if err != nil || len(objs) != 500 {
						b.Fatalf("%d objects, %v", len(objs), err)
					}
				}
			})
		}
	}
}
