package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"
)

func testReceipt(cluster string, ref artifact.Reference, health string) *ReceiptPredicate {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &ReceiptPredicate{
		Event:      ReceiptReady,
		Cluster:    ReceiptCluster{Name: cluster, ID: "uid-" + cluster},
		Release:    ReceiptRelease{Namespace: "team", Name: "app", UID: "rel-uid", Generation: 2},
		Artifact:   ReceiptArtifact{URL: "oci://" + ref.Name(), Digest: ref.Digest, Revision: "main@sha1:abc"},
		Signers:    []ReceiptSigner{{Name: "team", Fingerprint: "ff"}},
		Rendered:   "sha256:00",
		Inventory:  ReceiptInventory{Objects: 1, Digest: InventoryDigest([]string{"v1/ConfigMap/team/a"})},
		Health:     ReceiptHealth{Result: health},
		AppliedAt:  at,
		ReadyAt:    at.Add(time.Second),
		Controller: ReceiptController{Version: "test"},
	}
}

func newTestClient(t *testing.T, ref artifact.Reference) *artifact.Client {
	t.Helper()
	c, err := artifact.NewClient(plainHTTP.For(ref))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A receipt verifies with the cluster key and not with another; two
// clusters' receipts on one digest are both listed; cosign's own
// attestation check accepts it.
func TestReceiptWriteRead(t *testing.T) {
	ctx := context.Background()
	addr := newRegistry(t)
	ref := pushTestArtifact(t, addr, "team/app", "v1", "receipt")
	c := newTestClient(t, ref)
	staging, prod, other := testKey(t, "staging"), testKey(t, "prod"), testKey(t, "other")

	w, err := WriteReceipt(ctx, c, ref, staging.priv, testReceipt("staging", ref, "Healthy"))
	if err != nil {
		t.Fatal(err)
	}
	if w.Tag != AttestationTag(ref.Digest) || !strings.HasPrefix(w.Digest, "sha256:") || w.Existing != 0 {
		t.Fatalf("written %+v", w)
	}
	if _, err := WriteReceipt(ctx, c, ref, prod.priv, testReceipt("prod", ref, "Healthy")); err != nil {
		t.Fatal(err)
	}

	rs, err := ReadReceipts(ctx, c, ref.WithDigest(""), []PublicKey{staging.pub, prod.pub})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Receipts) != 2 || len(rs.Skipped) != 0 || rs.Digest != ref.Digest {
		t.Fatalf("receipts %+v", rs)
	}
	got := map[string]string{}
	for _, r := range rs.Receipts {
		got[r.Predicate.Cluster.Name] = r.Signer.Fingerprint
	}
	if got["staging"] != staging.pub.Fingerprint || got["prod"] != prod.pub.Fingerprint {
		t.Fatalf("receipts by cluster %v", got)
	}
	if rs.Receipts[0].Digest != w.Digest && rs.Receipts[1].Digest != w.Digest {
		t.Fatalf("the written receipt %s is not listed", w.Digest)
	}

	// Another key: both are skipped, and nothing of their content is kept.
	rs, err = ReadReceipts(ctx, c, ref, []PublicKey{other.pub})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Receipts) != 0 || len(rs.Skipped) != 2 || !strings.Contains(rs.Skipped[0].Reason, "none of the cluster keys") {
		t.Fatalf("with another key: %+v", rs)
	}

	// cosign's own attestation check accepts the receipt with the staging
	// key only.
	if n, err := cosignVerifyAttestations(t, staging.pubPEM, ref.DigestRef()); err != nil || n != 1 {
		t.Fatalf("cosign verify-attestation with the staging key: %d, %v", n, err)
	}
	if n, err := cosignVerifyAttestations(t, other.pubPEM, ref.DigestRef()); err == nil {
		t.Fatalf("cosign verify-attestation with another key accepted %d", n)
	}
}

func TestRequireReceipt(t *testing.T) {
	ctx := context.Background()
	addr := newRegistry(t)
	ref := pushTestArtifact(t, addr, "team/app", "v1", "require")
	c := newTestClient(t, ref)
	staging, prod := testKey(t, "staging"), testKey(t, "prod")

	// None at all.
	_, err := RequireReceipt(ctx, c, ref, ReceiptRequirement{Cluster: "staging", Keys: []PublicKey{staging.pub}})
	if !errors.Is(err, ErrNoReceipt) {
		t.Fatalf("no receipt: %v", err)
	}
	// Unhealthy, from staging; healthy from prod signed with the prod key
	// but claiming to be staging.
	if _, err := WriteReceipt(ctx, c, ref, staging.priv, testReceipt("staging", ref, "Unhealthy")); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteReceipt(ctx, c, ref, prod.priv, testReceipt("staging", ref, "Healthy")); err != nil {
		t.Fatal(err)
	}
	_, err = RequireReceipt(ctx, c, ref, ReceiptRequirement{Cluster: "staging", Keys: []PublicKey{staging.pub}})
	if !errors.Is(err, ErrNoReceipt) || !strings.Contains(err.Error(), "health Unhealthy") || !strings.Contains(err.Error(), "1 receipt(s) skipped") {
		t.Fatalf("unhealthy and forged: %v", err)
	}
	if _, err := WriteReceipt(ctx, c, ref, staging.priv, testReceipt("staging", ref, "Healthy")); err != nil {
		t.Fatal(err)
	}
	r, err := RequireReceipt(ctx, c, ref, ReceiptRequirement{Cluster: "staging", Keys: []PublicKey{staging.pub}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Signer.Fingerprint != staging.pub.Fingerprint || r.Predicate.Health.Result != "Healthy" {
		t.Fatalf("receipt %+v", r)
	}
}

// A receipt's .att manifest copied onto another digest is skipped: its
// statement names the first digest.
func TestReceiptReplayedOntoAnotherDigest(t *testing.T) {
	ctx := context.Background()
	addr := newRegistry(t)
	v1 := pushTestArtifact(t, addr, "team/app", "v1", "one")
	v2 := pushTestArtifact(t, addr, "team/app", "v2", "two")
	c := newTestClient(t, v1)
	staging := testKey(t, "staging")
	if _, err := WriteReceipt(ctx, c, v1, staging.priv, testReceipt("staging", v1, "Healthy")); err != nil {
		t.Fatal(err)
	}
	copyAttached(t, v1, v2, AttestationTag)
	rs, err := ReadReceipts(ctx, c, v2, []PublicKey{staging.pub})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Receipts) != 0 || len(rs.Skipped) != 1 || !strings.Contains(rs.Skipped[0].Reason, "another digest") {
		t.Fatalf("replayed: %+v", rs)
	}
}

func TestOpenDSSERefusesTampered(t *testing.T) {
	k := testKey(t, "staging")
	env, err := k.priv.SignDSSE(InTotoPayloadType, []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, p, err := k.pub.OpenDSSE(env); err != nil || string(p) != `{"a":1}` {
		t.Fatalf("open: %q %v", p, err)
	}
	tampered := bytes.Replace(env, []byte(`"payloadType":"application/vnd.in-toto+json"`), []byte(`"payloadType":"text/plain"`), 1)
	if _, _, err := k.pub.OpenDSSE(tampered); !errors.Is(err, ErrUntrustedSigner) {
		t.Fatalf("tampered payload type: %v", err)
	}
	if _, _, err := k.pub.OpenDSSE([]byte("not json")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: %v", err)
	}
}

func TestBlobSignature(t *testing.T) {
	k, other := testKey(t, "staging"), testKey(t, "other")
	sig, err := k.priv.SignBlob(strings.NewReader("release bits"))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.pub.VerifyBlob(strings.NewReader("release bits"), sig); err != nil {
		t.Fatal(err)
	}
	if err := k.pub.VerifyBlob(strings.NewReader("release bitz"), sig); !errors.Is(err, ErrUntrustedSigner) {
		t.Fatalf("changed blob: %v", err)
	}
	if err := other.pub.VerifyBlob(strings.NewReader("release bits"), sig); !errors.Is(err, ErrUntrustedSigner) {
		t.Fatalf("another key: %v", err)
	}
}

// BenchmarkWriteReceipt is the cost of one deployment receipt, as the
// controller's writer pays it once per Ready on a new digest (off the
// reconcile): sign and store on a digest that already holds one receipt.
// It reports the registry requests per receipt.
func BenchmarkWriteReceipt(b *testing.B) {
	ctx := context.Background()
	reg := registrytest.New(b)
	k := testKey(b, "staging")
	refs := make([]artifact.Reference, b.N)
	for i := range refs {
		refs[i] = pushTestArtifact(b, reg.Addr, "team/app", "v1", fmt.Sprintf("bench-%d", i))
	}
	c, err := artifact.NewClient(plainHTTP.For(refs[0]))
	if err != nil {
		b.Fatal(err)
	}
	for _, ref := range refs {
		if _, err := WriteReceipt(ctx, c, ref, k.priv, testReceipt("staging", ref, "Healthy")); err != nil {
			b.Fatal(err)
		}
	}
	before := reg.Requests()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := WriteReceipt(ctx, c, refs[i], k.priv, testReceipt("production", refs[i], "Healthy")); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(reg.Requests()-before)/float64(b.N), "requests/op")
}
