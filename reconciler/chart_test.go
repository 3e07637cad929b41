package reconciler_test

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"

	"airlock.dev/airlock/internal/testtree"
)

// pushChart pushes the Helm chart in dir (a directory, or files written to
// a new one) to the test's repository at tag, with Helm's media types.
func (h *harness) pushChart(tag, dir string, files map[string]string) string {
	h.t.Helper()
	if dir == "" {
		dir = testtree.Write(h.t, files)
	}
	ref, err := artifact.ParseReference(h.url() + ":" + tag)
	if err != nil {
		h.t.Fatal(err)
	}
	res, err := artifact.PushChart(h.ctx, ref, dir, artifact.PushOptions{Remote: h.remote()})
	if err != nil {
		h.t.Fatal(err)
	}
	return res.Digest
}

func chartValues(js string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(js)} }

// TestHelmChartDelivered: the example chart, pushed with Helm's media
// types and signed by digest, is delivered with inline values and a
// password from a Secret of valuesFrom; until that Secret exists the
// Release names it and applies nothing. The test hook is left out and
// named. A change of the Secret re-applies the same digest with the new
// value, and no value shows in logs, events or status.
func TestHelmChartDelivered(t *testing.T) {
	const (
		password1 = "chart-pw-first-5d1c7a"
		password2 = "chart-pw-second-e20b94"
	)
	logs := &lockedBuffer{}
	h := newHarness(t, harnessOptions{logs: logs})
	d := h.pushChart("1.0.0", "../examples/charts/web", nil)
	h.sign(d, h.key)
	h.release("web", "1.0.0", func(r *v1alpha1.Release) {
		r.Spec.Wait = ptr.To(false)
		r.Spec.Chart = &v1alpha1.ChartSpec{
			Values:     chartValues(`{"replicaCount": 2, "greeting": "hello from the Release"}`),
			ValuesFrom: []v1alpha1.ChartValuesReference{{Kind: "Secret", Name: "web-values"}},
		}
	})

	rel := h.failsWith("web", v1alpha1.ReasonValuesFromFailed)
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "Secret "+h.ns+"/web-values key values.yaml") {
		t.Errorf("message %q does not name the Secret and its key", msg)
	}
	if _, ok := h.configMap("web-page"); ok {
		t.Error("ConfigMap web-page was applied without the values")
	}

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-values", Namespace: h.ns},
		Data: map[string][]byte{"values.yaml": []byte("auth:\n  password: " + password1 + "\n")}}
	h.create(secret)
	rel = h.readyAt("web", d)
	if got := string(h.secretData("web-auth")["password"]); got != password1 {
		t.Errorf("Secret web-auth password = %q, want the value from Secret web-values", got)
	}
	if page := h.mustConfigMap("web-page").Data["index.html"]; !strings.Contains(page, "hello from the Release") {
		t.Errorf("page = %q, want the inline greeting", page)
	}
	dep := &appsv1.Deployment{}
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "web"}, dep); err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 2 || dep.Spec.Template.Spec.Containers[0].Image != "registry.example.com/team/web:1.27" {
		t.Errorf("Deployment web: %d replicas of %s", *dep.Spec.Replicas, dep.Spec.Template.Spec.Containers[0].Image)
	}
	pod := &corev1.Pod{}
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "web-test"}, pod); err == nil {
		t.Error("the test hook Pod web-test was applied")
	}
	ch := rel.Status.LastAppliedChart
	if ch == nil || ch.Name != "web" || ch.Version != "1.0.0" || ch.AppVersion != "1.27" || len(ch.SkippedHooks) != 1 || !strings.Contains(ch.SkippedHooks[0], "Pod/web-test (test)") {
		t.Errorf("status.lastAppliedChart = %+v", ch)
	}
	first := siteStatus(rel).ChartValuesHash
	if !strings.HasPrefix(first, "sha256:") || rel.Status.History[0].Site == nil || rel.Status.History[0].Site.ChartValuesHash != first {
		t.Fatalf("status.lastAppliedSite = %+v: want the chart values hash, in history too", rel.Status.LastAppliedSite)
	}
	if len(rel.Status.Inventory) != 4 {
		t.Errorf("inventory %v, want the Secret, ConfigMap, Service and Deployment", rel.Status.Inventory)
	}

	// A new password in the Secret re-applies the same digest (interval
	// 1h: only the watch can bring it).
	secret.Data["values.yaml"] = []byte("auth:\n  password: " + password2 + "\n")
	if err := h.env.Client.Update(h.ctx, secret); err != nil {
		t.Fatal(err)
	}
	rel = h.eventually("web", "the new password applied", 30*time.Second, func(rel *v1alpha1.Release) bool {
		return string(h.secretData("web-auth")["password"]) == password2 && siteStatus(rel).ChartValuesHash != first
	})
	if rel.Status.LastAppliedDigest != d || len(rel.Status.History) != 1 {
		t.Errorf("applied %s with %d history entries, want the same digest in one entry", rel.Status.LastAppliedDigest, len(rel.Status.History))
	}
	h.assertNoValues(logs, password1, password2)
}

// TestHelmChartUnsignedRefused: a chart nobody signed is refused before
// anything is rendered or applied.
func TestHelmChartUnsignedRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d := h.pushChart("1.0.0", "../examples/charts/web", nil)
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-values", Namespace: h.ns},
		Data: map[string][]byte{"values.yaml": []byte("auth: {password: x}\n")}})
	h.release("web", "1.0.0", func(r *v1alpha1.Release) {
		r.Spec.Wait = ptr.To(false)
		r.Spec.Chart = &v1alpha1.ChartSpec{ValuesFrom: []v1alpha1.ChartValuesReference{{Kind: "Secret", Name: "web-values"}}}
	})
	rel := h.failsWith("web", v1alpha1.ReasonVerificationFailed)
	if rel.Status.LastAttemptedDigest != d || rel.Status.LastAppliedDigest != "" || len(rel.Status.Inventory) != 0 {
		t.Errorf("attempted %s, applied %q, inventory %v: want %s refused and nothing applied", rel.Status.LastAttemptedDigest, rel.Status.LastAppliedDigest, rel.Status.Inventory, d)
	}
	for _, name := range []string{"web-page"} {
		if _, ok := h.configMap(name); ok {
			t.Errorf("ConfigMap %s was applied from an unsigned chart", name)
		}
	}
	if s := h.secretData("web-auth"); s != nil {
		t.Error("Secret web-auth was applied from an unsigned chart")
	}
}

// TestHelmChartCRDsFirst: a chart's CRDs (crds/) are applied and
// established before its templates, so a custom resource of the chart's own
// CRD applies in the same reconcile; a dependency that is not vendored is
// an error naming it, and nothing of that digest is applied.
func TestHelmChartCRDsFirst(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	group := strings.ReplaceAll(h.ns, "-", "") + ".example.com"
	crd := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gauges.` + group + `
spec:
  group: ` + group + `
  names: {kind: Gauge, plural: gauges, singular: gauge, listKind: GaugeList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`
	d := h.pushChart("1.0.0", "", map[string]string{
		"Chart.yaml":           "apiVersion: v2\nname: gauges\nversion: 1.0.0\n",
		"values.yaml":          "level: 3\n",
		"crds/gauges.yaml":     crd,
		"templates/cm.yaml":    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: gauge-config}\ndata: {level: {{ .Values.level | quote }}}\n",
		"templates/gauge.yaml": "apiVersion: " + group + "/v1\nkind: Gauge\nmetadata: {name: main}\nspec: {level: {{ .Values.level }}}\n",
	})
	h.sign(d, h.key)
	h.release("gauges", "1.0.0", func(r *v1alpha1.Release) {
		r.Spec.Wait = ptr.To(false)
		r.Spec.Chart = &v1alpha1.ChartSpec{}
	})
	rel := h.readyAt("gauges", d)
	g := &unstructured.Unstructured{}
	g.SetGroupVersionKind(schema.GroupVersionKind{Group: group, Version: "v1", Kind: "Gauge"})
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "main"}, g); err != nil {
		t.Fatalf("Gauge main: %v", err)
	}
	if lvl, _, _ := unstructured.NestedInt64(g.Object, "spec", "level"); lvl != 3 {
		t.Errorf("Gauge main level = %d, want 3", lvl)
	}
	if first := rel.Status.Inventory[0]; first.Kind != "CustomResourceDefinition" {
		t.Errorf("inventory starts with %v, want the CRD", first)
	}

	// v2 needs a dependency it does not vendor: refused, v1 stays.
	d2 := h.pushChart("2.0.0", "", map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: gauges\nversion: 2.0.0\ndependencies:\n- name: redis\n  version: 18.0.0\n  repository: oci://registry-1.docker.io/bitnamicharts\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: gauge-config}\ndata: {level: v2}\n",
	})
	h.sign(d2, h.key)
	h.update("gauges", func(r *v1alpha1.Release) { r.Spec.Ref.Tag = "2.0.0" })
	rel = h.failsWith("gauges", v1alpha1.ReasonBuildFailed)
	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{"not vendored in charts/", "redis 18.0.0 from oci://registry-1.docker.io/bitnamicharts", "helm dependency build"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if rel.Status.LastAppliedDigest != d || h.mustConfigMap("gauge-config").Data["level"] != "3" {
		t.Errorf("applied %s, level %q: want v1 left in place", rel.Status.LastAppliedDigest, h.mustConfigMap("gauge-config").Data["level"])
	}
}
