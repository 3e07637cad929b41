package reconciler

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
)

// TestClientsBounded: the clients kept per identity are bounded, the least
// recently used dropped first. With --default-service-account every
// namespace's Releases apply as their own ServiceAccount, and a client was
// kept for each namespace forever.
func TestClientsBounded(t *testing.T) {
	c := &Clients{Config: &rest.Config{Host: "https://127.0.0.1:1"}, Scheme: runtime.NewScheme(), Mapper: meta.NewDefaultRESTMapper(nil), Max: 2}
	get := func(ns string) {
		t.Helper()
		if _, err := c.For(ns, "default"); err != nil {
			t.Fatal(err)
		}
	}
	get("a")
	get("b")
	get("a") // b is now the least recently used
	get("c")
	if got := len(c.byKey); got != 2 {
		t.Fatalf("%d clients kept, want 2", got)
	}
	for key, want := range map[string]bool{"system:serviceaccount:a:default": true, "system:serviceaccount:b:default": false, "system:serviceaccount:c:default": true} {
		if _, ok := c.byKey[key]; ok != want {
			t.Errorf("client of %s kept: %v, want %v", key, ok, want)
		}
	}
	get("b") // a dropped identity gets a new client
	if _, ok := c.byKey["system:serviceaccount:b:default"]; !ok || len(c.byKey) != 2 {
		t.Errorf("after b again: %d clients, b kept %v; want 2 with b", len(c.byKey), ok)
	}

	// The controller's own client (key "") is dropped like any other.
	c = &Clients{Config: &rest.Config{Host: "https://127.0.0.1:1"}, Scheme: runtime.NewScheme(), Mapper: meta.NewDefaultRESTMapper(nil), Max: 2}
	if _, err := c.For("a", ""); err != nil {
		t.Fatal(err)
	}
	get("b")
	get("c")
	if _, ok := c.byKey[""]; ok || len(c.byKey) != 2 {
		t.Errorf("%d clients, the controller's kept %v: want 2, without the least recently used controller's", len(c.byKey), ok)
	}
}
