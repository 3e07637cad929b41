package reconciler

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"airlock.dev/airlock/verify"
)

// TestKeysSecretsShareOneParse: keys Secrets with the same data, as a site
// gives its signing key to each namespace, share one parse of their keys;
// a Secret with other data is parsed on its own, and a changed Secret
// stops sharing. Each namespace kept its own parse (~1.5 KiB a key) before.
func TestKeysSecretsShareOneParse(t *testing.T) {
	_, pub, err := verify.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := verify.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	c, ns := internalNamespaces(t, "a", "b", "c")
	ctx := context.Background()
	for n, key := range map[string][]byte{"a": pub, "b": pub, "c": other} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "keys", Namespace: ns[n]}, Data: map[string][]byte{"site.pub": key}}
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	r := &Reconciler{APIReader: c}
	load := func(n string) []verify.PublicKey {
		t.Helper()
		keys, err := r.loadKeys(ctx, types.NamespacedName{Namespace: ns[n], Name: "keys"}, "spec.verify")
		if err != nil || len(keys) != 1 {
			t.Fatalf("keys of %s: %v, %v", ns, keys, err)
		}
		return keys
	}
	a, b, other1 := load("a"), load("b"), load("c")
	if &a[0] != &b[0] {
		t.Error("two Secrets with the same key were parsed apart")
	}
	if a[0].Fingerprint == other1[0].Fingerprint {
		t.Error("a Secret with another key got the shared key")
	}
	if got := r.KeyParses(); got != 2 {
		t.Errorf("%d parses, want 2 (one per distinct Secret data)", got)
	}

	// Secret b changes to the other key: it shares c's parse, and a keeps its own.
	s := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns["b"], Name: "keys"}, s); err != nil {
		t.Fatal(err)
	}
	s.Data = map[string][]byte{"site.pub": other}
	if err := c.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	if b := load("b"); b[0].Fingerprint != other1[0].Fingerprint {
		t.Errorf("Secret b after its change: key %s, want %s", b[0].Fingerprint, other1[0].Fingerprint)
	}
	if a2 := load("a"); &a2[0] != &a[0] {
		t.Error("Secret a was parsed again though it did not change")
	}
	if got, want := len(r.keys.byData), 2; got != want {
		t.Errorf("%d shared parses kept, want %d", got, want)
	}
	if got := r.KeyParses(); got != 2 {
		t.Errorf("%d parses, want still 2", got)
	}
}
