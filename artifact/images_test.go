package artifact_test

import (
	"testing"

	"sigs.k8s.io/yaml"

	"airlock.dev/airlock/artifact"
)

// TestRewriteImages: every container image of every workload kind is
// rewritten, init and ephemeral containers too, and nothing else.
func TestRewriteImages(t *testing.T) {
	docs := []string{
		"kind: Pod\nspec:\n  containers: [{image: a}]\n  initContainers: [{image: b}]\n  ephemeralContainers: [{image: c}]",
		"kind: Deployment\nspec: {template: {spec: {containers: [{image: d}], initContainers: [{image: e}]}}}",
		"kind: StatefulSet\nspec: {template: {spec: {containers: [{image: f}]}}}",
		"kind: DaemonSet\nspec: {template: {spec: {containers: [{image: g}]}}}",
		"kind: ReplicaSet\nspec: {template: {spec: {containers: [{image: h}]}}}",
		"kind: Job\nspec: {template: {spec: {containers: [{image: i}]}}}",
		"kind: CronJob\nspec: {jobTemplate: {spec: {template: {spec: {containers: [{image: j}], initContainers: [{image: k}]}}}}}",
		"kind: ConfigMap\ndata: {image: l}",
	}
	var objs []map[string]any
	for _, d := range docs {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(d), &o); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	artifact.RewriteImages(objs, func(img string) string { return "mirror/" + img + "@sha256:1" })
	got := artifact.Images(objs)
	want := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}
	if len(got) != len(want) {
		t.Fatalf("images after the rewrite = %v, want %d", got, len(want))
	}
	for i, w := range want {
		if got[i] != "mirror/"+w+"@sha256:1" {
			t.Errorf("image %d = %q, want it rewritten from %q", i, got[i], w)
		}
	}
	if objs[len(objs)-1]["data"].(map[string]any)["image"] != "l" {
		t.Error("a ConfigMap's data was rewritten")
	}
}
