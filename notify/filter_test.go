package notify_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/notify"
)

func TestSelects(t *testing.T) {
	ev := func(name, reason string, labels map[string]string) notify.Event {
		e := event(reason)
		e.Name, e.Labels = name, labels
		return e
	}
	alert := func(edit func(*v1alpha1.AlertSpec)) *v1alpha1.Alert {
		a := &v1alpha1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "a"},
			Spec: v1alpha1.AlertSpec{EventSources: []v1alpha1.AlertEventSource{{Name: "web"}}}}
		if edit != nil {
			edit(&a.Spec)
		}
		return a
	}
	prod := map[string]string{"tier": "prod"}
	for _, tc := range []struct {
		name  string
		alert *v1alpha1.Alert
		ev    notify.Event
		want  bool
	}{
		{"by name", alert(nil), ev("web", "Ready", nil), true},
		{"other name", alert(nil), ev("api", "Ready", nil), false},
		{"other namespace", alert(nil), func() notify.Event { e := ev("web", "Ready", nil); e.Namespace = "other"; return e }(), false},
		{"star", alert(func(s *v1alpha1.AlertSpec) { s.EventSources[0].Name = "*" }), ev("api", "Pruned", nil), true},
		{"selector matches", alert(func(s *v1alpha1.AlertSpec) {
			s.EventSources = []v1alpha1.AlertEventSource{{Selector: &metav1.LabelSelector{MatchLabels: prod}}}
		}), ev("api", "Ready", prod), true},
		{"selector does not match", alert(func(s *v1alpha1.AlertSpec) {
			s.EventSources = []v1alpha1.AlertEventSource{{Selector: &metav1.LabelSelector{MatchLabels: prod}}}
		}), ev("api", "Ready", map[string]string{"tier": "dev"}), false},
		{"name and selector both needed", alert(func(s *v1alpha1.AlertSpec) {
			s.EventSources[0].Selector = &metav1.LabelSelector{MatchLabels: prod}
		}), ev("web", "Ready", nil), false},
		{"second source", alert(func(s *v1alpha1.AlertSpec) {
			s.EventSources = append(s.EventSources, v1alpha1.AlertEventSource{Name: "api"})
		}), ev("api", "Ready", nil), true},
		{"severity error drops info", alert(func(s *v1alpha1.AlertSpec) { s.EventSeverity = "error" }), ev("web", "DriftCorrected", nil), false},
		{"severity error sends errors", alert(func(s *v1alpha1.AlertSpec) { s.EventSeverity = "error" }), ev("web", "RolledBack", nil), true},
		{"severity info sends errors", alert(func(s *v1alpha1.AlertSpec) { s.EventSeverity = "info" }), ev("web", "VerificationFailed", nil), true},
		{"events filter", alert(func(s *v1alpha1.AlertSpec) { s.Events = []string{"Pruned"} }), ev("web", "Ready", nil), false},
		{"events filter passes", alert(func(s *v1alpha1.AlertSpec) { s.Events = []string{"Pruned"} }), ev("web", "Pruned", nil), true},
		{"suspended", alert(func(s *v1alpha1.AlertSpec) { s.Suspend = true }), ev("web", "Ready", nil), false},
		{"empty source", alert(func(s *v1alpha1.AlertSpec) { s.EventSources = []v1alpha1.AlertEventSource{{}} }), ev("web", "Ready", nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := notify.Selects(tc.alert, tc.ev); got != tc.want {
				t.Errorf("Selects = %v, want %v", got, tc.want)
			}
		})
	}
}
