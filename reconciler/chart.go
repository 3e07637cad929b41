package reconciler

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/build"
)

// ValuesFromError is a ConfigMap or Secret of spec.chart.valuesFrom that
// cannot be read or parsed. It never carries a value.
type ValuesFromError = build.ValuesFromError

// chartFor is how rel's chart is rendered: its values read from
// spec.chart.valuesFrom (as the Release's ServiceAccount, uncached) and
// merged with spec.chart.values. nil when rel is not a chart.
func (r *Reconciler) chartFor(ctx context.Context, rel *v1alpha1.Release) (*build.Chart, error) {
	if rel.Spec.Chart == nil {
		return nil, nil
	}
	var read build.ValueReader
	if len(rel.Spec.Chart.ValuesFrom) > 0 {
		// Read on this cluster as the Release's identity, also when it
		// applies to a remote cluster: the values belong to its namespace.
		c, err := r.localClient(ctx, rel)
		if err != nil {
			return nil, err
		}
		read = keyedReader(c)
	}
	return build.ReleaseChart(ctx, rel, read)
}

// readKeyed reads the data of a ConfigMap (not its binaryData) or a
// Secret through c.
func readKeyed(ctx context.Context, c ctrl.Reader, kind string, key types.NamespacedName) (map[string][]byte, error) {
	switch kind {
	case "ConfigMap":
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, key, cm); err != nil {
			return nil, err
		}
		data := make(map[string][]byte, len(cm.Data))
		for k, v := range cm.Data {
			data[k] = []byte(v)
		}
		return data, nil
	case "Secret":
		s := &corev1.Secret{}
		if err := c.Get(ctx, key, s); err != nil {
			return nil, err
		}
		return s.Data, nil
	}
	return nil, &SpecError{Field: "kind", Err: fmt.Errorf("kind %q is neither ConfigMap nor Secret", kind)}
}

// recordChart writes the applied chart to status; nil clears it.
func recordChart(rel *v1alpha1.Release, info *build.ChartInfo) {
	if info == nil {
		rel.Status.LastAppliedChart = nil
		return
	}
	rel.Status.LastAppliedChart = &v1alpha1.ChartStatus{Name: info.Name, Version: info.Version, AppVersion: info.AppVersion, SkippedHooks: info.SkippedHooks}
}

// chartValuesFromKeys are the index keys (Kind/namespace/name) of the
// ConfigMaps and Secrets of spec.chart.valuesFrom.
func chartValuesFromKeys(rel *v1alpha1.Release) []string {
	if rel.Spec.Chart == nil {
		return nil
	}
	var keys []string
	for _, ref := range rel.Spec.Chart.ValuesFrom {
		keys = append(keys, ref.Kind+"/"+rel.Namespace+"/"+ref.Name)
	}
	return keys
}
