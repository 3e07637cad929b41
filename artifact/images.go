package artifact

import (
	"sort"
)

// podSpecPaths says where each workload kind keeps its pod spec.
var podSpecPaths = map[string][]string{
	"Pod":                   {"spec"},
	"Deployment":            {"spec", "template", "spec"},
	"StatefulSet":           {"spec", "template", "spec"},
	"DaemonSet":             {"spec", "template", "spec"},
	"ReplicaSet":            {"spec", "template", "spec"},
	"ReplicationController": {"spec", "template", "spec"},
	"Job":                   {"spec", "template", "spec"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template", "spec"},
}

// Images returns the container images (containers, init and ephemeral
// containers) of every workload among objs, sorted and deduplicated. objs
// are decoded Kubernetes objects (unstructured.Unstructured's Object).
func Images(objs []map[string]any) []string {
	seen := map[string]bool{}
	RewriteImages(objs, func(img string) string {
		seen[img] = true
		return img
	})
	out := make([]string, 0, len(seen))
	for img := range seen {
		out = append(out, img)
	}
	sort.Strings(out)
	return out
}

// RewriteImages replaces every container image (containers, init and
// ephemeral containers) of every workload among objs with rewrite's answer
// for it, in place: the same workloads and fields Images lists.
func RewriteImages(objs []map[string]any, rewrite func(image string) string) {
	for _, o := range objs {
		kind, _ := o["kind"].(string)
		p, ok := podSpecPaths[kind]
		if !ok {
			continue
		}
		var cur any = o
		for _, k := range p {
			m, _ := cur.(map[string]any)
			cur = m[k]
		}
		spec, _ := cur.(map[string]any)
		for _, field := range []string{"initContainers", "containers", "ephemeralContainers"} {
			list, _ := spec[field].([]any)
			for _, c := range list {
				cm, _ := c.(map[string]any)
				if img, _ := cm["image"].(string); img != "" {
					cm["image"] = rewrite(img)
				}
			}
		}
	}
}
