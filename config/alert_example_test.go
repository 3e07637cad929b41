package config_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/internal/envtestenv"
)

// TestExampleAlerts creates examples/monitoring/chat-alert.yaml with a
// server-side dry-run, so the API server's CRD schema validates each Alert.
func TestExampleAlerts(t *testing.T) {
	env := envtestenv.Start(t)
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("..", "examples", "monitoring", "chat-alert.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := bytes.Split(b, []byte("\n---\n"))
	if len(docs) != 4 {
		t.Fatalf("%d documents, want 4: one Alert of each provider type", len(docs))
	}
	types := map[string]bool{}
	for _, doc := range docs {
		var al v1alpha1.Alert
		if err := yaml.UnmarshalStrict(doc, &al); err != nil {
			t.Fatal(err)
		}
		types[al.Spec.Provider.Type] = true
		if err := env.Client.Create(ctx, &al, client.DryRunAll); err != nil {
			t.Errorf("Alert %s is refused by the CRD: %v", al.Name, err)
		}
	}
	for _, typ := range []string{v1alpha1.ProviderSlack, v1alpha1.ProviderTeams, v1alpha1.ProviderGeneric, v1alpha1.ProviderSyslog} {
		if !types[typ] {
			t.Errorf("examples/monitoring/chat-alert.yaml has no Alert of type %s", typ)
		}
	}
	// The CRD refuses a source with neither a name nor a selector.
	bad := &v1alpha1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "team-a"}, Spec: v1alpha1.AlertSpec{
		Provider:     v1alpha1.AlertProvider{Type: "slack", SecretRef: v1alpha1.LocalObjectReference{Name: "s"}},
		EventSources: []v1alpha1.AlertEventSource{{}},
	}}
	if err := env.Client.Create(ctx, bad, client.DryRunAll); err == nil {
		t.Error("an event source with neither name nor selector was accepted")
	}
}
