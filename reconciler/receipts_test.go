package reconciler_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/reconciler"
	"airlock.dev/airlock/verify"
)

// receiptHarness is a harness whose controller writes receipts as cluster
// "staging" with a fresh cluster key, and that key's public half.
func receiptHarness(t *testing.T) (*harness, verify.PublicKey) {
	t.Helper()
	w := &reconciler.ReceiptWriter{Cluster: "staging", Version: "test-version", KeySecret: types.NamespacedName{Name: "receipt-key"},
		Attempts: 3, Backoff: 50 * time.Millisecond}
	h := newHarness(t, harnessOptions{receipts: w})
	priv, pub, err := verify.GenerateKeyPair([]byte("cluster-pw"))
	if err != nil {
		t.Fatal(err)
	}
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "receipt-key", Namespace: h.ctrlNS},
		Data: map[string][]byte{reconciler.ReceiptKeyEntry: priv, reconciler.ReceiptPasswordEntry: []byte("cluster-pw")}})
	k, err := verify.LoadPublicKey("staging", pub)
	if err != nil {
		t.Fatal(err)
	}
	return h, k
}

func (h *harness) receipts(digest string, keys ...verify.PublicKey) *verify.Receipts {
	h.t.Helper()
	ref, err := artifact.ParseReference(h.url() + "@" + digest)
	if err != nil {
		h.t.Fatal(err)
	}
	c, err := artifact.NewClient(h.remote().For(ref))
	if err != nil {
		h.t.Fatal(err)
	}
	rs, err := verify.ReadReceipts(context.Background(), c, ref, keys)
	if err != nil {
		h.t.Fatal(err)
	}
	return rs
}

// A Release that becomes Ready on a new digest gets a signed receipt next
// to the artifact, recorded in status.receipt; it verifies with the
// cluster key and not with another.
func TestReceiptWrittenOnReady(t *testing.T) {
	h, clusterKey := receiptHarness(t)
	digest := h.pushSigned("v1", "main@sha1:1111111111111111111111111111111111111111", map[string]string{
		"app/a.yaml": configMapYAML("a", map[string]string{"k": "1"}),
		"app/b.yaml": configMapYAML("b", map[string]string{"k": "2"}),
	})
	h.release("app", "v1", nil)
	h.readyAt("app", digest)
	rel := h.eventually("app", "status.receipt for "+digest, 30*time.Second, func(rel *v1alpha1.Release) bool {
		return rel.Status.Receipt != nil && rel.Status.Receipt.ArtifactDigest == digest
	})
	st := rel.Status.Receipt
	if st.Event != verify.ReceiptReady || st.Cluster != "staging" || !strings.HasPrefix(st.Digest, "sha256:") {
		t.Fatalf("status.receipt = %+v", st)
	}

	rs := h.receipts(digest, clusterKey)
	if len(rs.Receipts) != 1 || len(rs.Skipped) != 0 {
		t.Fatalf("receipts = %+v, want one", rs)
	}
	r := rs.Receipts[0]
	p := r.Predicate
	if r.Digest != st.Digest {
		t.Errorf("receipt digest %s, status says %s", r.Digest, st.Digest)
	}
	if p.Cluster.Name != "staging" || p.Cluster.ID == "" {
		t.Errorf("cluster = %+v, want staging with kube-system's UID", p.Cluster)
	}
	if p.Release.Namespace != h.ns || p.Release.Name != "app" || p.Release.UID != string(rel.UID) || p.Release.Generation != rel.Generation {
		t.Errorf("release = %+v", p.Release)
	}
	if p.Artifact.Digest != digest || p.Artifact.Revision != "main@sha1:1111111111111111111111111111111111111111" || p.Artifact.URL != h.url() {
		t.Errorf("artifact = %+v", p.Artifact)
	}
	if len(p.Signers) != 1 || p.Signers[0].Fingerprint != h.key.Public.Fingerprint {
		t.Errorf("signers = %+v, want the release key", p.Signers)
	}
	if p.Health.Result != v1alpha1.HealthHealthy || p.Inventory.Objects != 2 || !strings.HasPrefix(p.Rendered, "sha256:") || p.Controller.Version != "test-version" {
		t.Errorf("predicate = %+v", p)
	}
	if p.AppliedAt.IsZero() || p.ReadyAt.Before(p.AppliedAt) {
		t.Errorf("times: applied %s, ready %s", p.AppliedAt, p.ReadyAt)
	}
	if got := counter(t, h.metrics.Receipts, map[string]string{"result": "success"}); got != 1 {
		t.Errorf("airlock_receipts_total{result=success} = %v, want 1", got)
	}

	// Another key (the release signing key) does not verify it.
	rs = h.receipts(digest, h.key.Public)
	if len(rs.Receipts) != 0 || len(rs.Skipped) != 1 {
		t.Fatalf("with another key: %+v, want it skipped", rs)
	}

	// A reconcile of the same digest writes no second receipt.
	h.update("app", func(r *v1alpha1.Release) {
		r.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: "again"}
	})
	h.eventually("app", "the request handled", 30*time.Second, func(rel *v1alpha1.Release) bool {
		return rel.Status.LastHandledReconcileAt == "again"
	})
	time.Sleep(500 * time.Millisecond)
	if rs := h.receipts(digest, clusterKey); len(rs.Receipts) != 1 {
		t.Fatalf("after a no-op reconcile: %d receipts, want still 1", len(rs.Receipts))
	}
}

// A registry that refuses the push does not fail the Release: it is Ready,
// the failures are counted, and no receipt is recorded.
func TestReceiptPushRefusedReleaseReady(t *testing.T) {
	h, _ := receiptHarness(t)
	digest := h.pushSigned("v1", "", map[string]string{"app/a.yaml": configMapYAML("a", map[string]string{"k": "1"})})
	h.reg.RefuseWrites(true)
	h.release("app", "v1", nil)
	h.readyAt("app", digest)
	deadline := time.Now().Add(30 * time.Second)
	for counter(t, h.metrics.Receipts, map[string]string{"result": "dropped"}) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the refused receipt was not given up: failures %v", counter(t, h.metrics.Receipts, map[string]string{"result": "failure"}))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := counter(t, h.metrics.Receipts, map[string]string{"result": "failure"}); got != 3 {
		t.Errorf("failures = %v, want 3 (one per attempt)", got)
	}
	rel := h.readyAt("app", digest)
	if rel.Status.Receipt != nil {
		t.Errorf("status.receipt = %+v, want none", rel.Status.Receipt)
	}
}

// A rollback to a digest that is healthy again writes a Rollback receipt
// for it, naming the digest rolled back from; the failed digest gets none.
func TestReceiptWrittenOnRollback(t *testing.T) {
	h, clusterKey := receiptHarness(t)
	v1 := h.pushSigned("stable", "v1", map[string]string{"a.yaml": configMapYAML("a", map[string]string{"k": "1"})})
	h.release("app", "stable", rollbackRelease)
	h.readyAt("app", v1)
	h.eventually("app", "the Ready receipt", 30*time.Second, func(rel *v1alpha1.Release) bool {
		return rel.Status.Receipt != nil && rel.Status.Receipt.Event == verify.ReceiptReady
	})

	v2 := h.pushSigned("stable", "v2", map[string]string{
		"a.yaml":      configMapYAML("a", map[string]string{"k": "2"}),
		"deploy.yaml": deploymentYAML("web"),
	})
	h.update("app", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "1"} })
	h.failsWith("app", v1alpha1.ReasonRolledBack)
	rel := h.eventually("app", "the Rollback receipt", 30*time.Second, func(rel *v1alpha1.Release) bool {
		return rel.Status.Receipt != nil && rel.Status.Receipt.Event == verify.ReceiptRollback
	})
	if rel.Status.Receipt.ArtifactDigest != v1 {
		t.Fatalf("status.receipt = %+v, want one for %s", rel.Status.Receipt, v1)
	}
	rs := h.receipts(v1, clusterKey)
	if len(rs.Receipts) != 2 || rs.Receipts[1].Predicate.Event != verify.ReceiptRollback || rs.Receipts[1].Predicate.RollbackOf != v2 ||
		rs.Receipts[1].Predicate.Health.Result != v1alpha1.HealthHealthy {
		t.Fatalf("receipts on v1 = %+v, want Ready then Rollback of %s", rs.Receipts, v2)
	}
	if rs := h.receipts(v2, clusterKey); len(rs.Receipts) != 0 {
		t.Fatalf("the failed digest has receipts: %+v", rs.Receipts)
	}
}
