package notify

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"airlock.dev/airlock/api/v1alpha1"
)

// Selects says whether a sends ev: the Alert is not suspended, is in the
// Release's namespace, takes ev's reason and severity, and one of its
// sources selects the Release by name and labels. A source whose selector
// does not parse selects nothing.
func Selects(a *v1alpha1.Alert, ev Event) bool {
	if a.Spec.Suspend || a.Namespace != ev.Namespace {
		return false
	}
	if len(a.Spec.Events) > 0 && !slices.Contains(a.Spec.Events, ev.Reason) {
		return false
	}
	if !v1alpha1.SendsSeverity(a.Spec.EventSeverity, ev.Severity) {
		return false
	}
	for _, s := range a.Spec.EventSources {
		if s.Name != "" && s.Name != "*" && s.Name != ev.Name {
			continue
		}
		if s.Selector != nil {
			sel, err := metav1.LabelSelectorAsSelector(s.Selector)
			if err != nil || !sel.Matches(labels.Set(ev.Labels)) {
				continue
			}
		}
		if s.Name == "" && s.Selector == nil {
			continue
		}
		return true
	}
	return false
}
