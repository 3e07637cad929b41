package audit

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"airlock.dev/airlock/api/v1alpha1"
)

// The read-only transport sends reads and refuses every write before it
// leaves the process: the server sees the GET and nothing else.
func TestReadOnlyRefusesWrites(t *testing.T) {
	var seen atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		if r.Method != http.MethodGet {
			t.Errorf("the server got a %s %s", r.Method, r.URL.Path)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"apiVersion":"v1","kind":"ConfigMapList","items":[]}`))
	}))
	defer srv.Close()
	dyn, err := dynamic.NewForConfig(ReadOnly(&rest.Config{Host: srv.URL}))
	if err != nil {
		t.Fatal(err)
	}
	cms := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace("ns")
	ctx := context.Background()
	if _, err := cms.List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("list: %v", err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "x"}}}
	writes := map[string]func() error{
		"create": func() error { _, err := cms.Create(ctx, obj, metav1.CreateOptions{}); return err },
		"update": func() error { _, err := cms.Update(ctx, obj, metav1.UpdateOptions{}); return err },
		"patch": func() error {
			_, err := cms.Patch(ctx, "x", "application/merge-patch+json", []byte(`{}`), metav1.PatchOptions{})
			return err
		},
		"apply":  func() error { _, err := cms.Apply(ctx, "x", obj, metav1.ApplyOptions{FieldManager: "t"}); return err },
		"delete": func() error { return cms.Delete(ctx, "x", metav1.DeleteOptions{}) },
	}
	for name, write := range writes {
		if err := write(); !errors.Is(err, ErrWriteRefused) {
			t.Errorf("%s: err = %v, want ErrWriteRefused", name, err)
		}
	}
	if n := seen.Load(); n != 1 {
		t.Errorf("the server got %d requests, want the 1 list", n)
	}
}

func TestReceiptFields(t *testing.T) {
	status := map[string]any{
		"lastAppliedDigest": "sha256:aa",
		"receipt":           map[string]any{"digest": "sha256:bb", "pushedAt": "2026-12-02T03:00:00Z"},
		"lastReceiptDigest": "sha256:cc",
		"history": []any{
			map[string]any{"digest": "sha256:aa", "receiptDigest": "sha256:dd"},
			map[string]any{"digest": "sha256:ee"},
		},
	}
	want := []Field{
		{Path: "status.history[0].receiptDigest", Value: "sha256:dd"},
		{Path: "status.lastReceiptDigest", Value: "sha256:cc"},
		{Path: "status.receipt.digest", Value: "sha256:bb"},
		{Path: "status.receipt.pushedAt", Value: "2026-12-02T03:00:00Z"},
	}
	if diff := cmp.Diff(want, receiptFields(status)); diff != "" {
		t.Errorf("receipt fields (-want +got):\n%s", diff)
	}
	if got := receiptFields(map[string]any{"lastAppliedDigest": "sha256:aa"}); len(got) != 0 {
		t.Errorf("a status without receipts gave %v", got)
	}
	many := map[string]any{}
	for i := range 2 * maxReceiptFields {
		many["receipt"+string(rune('a'+i%26))+string(rune('a'+i/26))] = "x"
	}
	if got := receiptFields(many); len(got) != maxReceiptFields {
		t.Errorf("%d receipt fields kept, want the bound %d", len(got), maxReceiptFields)
	}
}

func TestDriftCorrectionsOf(t *testing.T) {
	evs := []Event{
		{Reason: v1alpha1.ReasonDriftCorrected, Message: "corrected 2 objects changed outside airlock: Deployment ns/web, ConfigMap ns/web-config"},
		{Reason: v1alpha1.ReasonDriftCorrected, Message: "corrected 1 objects changed outside airlock: Deployment ns/web-2"},
		{Reason: v1alpha1.ReasonSucceeded, Message: "applied Deployment ns/web"},
		{Reason: v1alpha1.ReasonDriftCorrected, Message: "corrected 1 objects changed outside airlock: Deployment ns/web"},
	}
	got := DriftCorrectionsOf(evs, "Deployment ns/web")
	if len(got) != 2 || got[0] != evs[0] || got[1] != evs[3] {
		t.Errorf("corrections of Deployment ns/web = %+v, want the first and the last event", got)
	}
	if got := DriftCorrectionsOf(evs, "Deployment ns/we"); len(got) != 0 {
		t.Errorf("a prefix of a name matched: %+v", got)
	}
}
