package verify

import (
	"context"
	"testing"

	"airlock.dev/airlock/artifact"
)

// BenchmarkVerify1Key verifies one artifact with one key against the
// embedded registry on loopback: resolve, manifest, signature manifest and
// payload, then the check. Budget: 20 ms per verification.
func BenchmarkVerify1Key(b *testing.B) {
	addr := newRegistry(b)
	a := testKey(b, "a")
	ref := pushTestArtifact(b, addr, "team/app", "v1", "bench-1")
	if _, err := Sign(context.Background(), ref, a.priv, nil, plainHTTP); err != nil {
		b.Fatal(err)
	}
	benchmarkVerify(b, ref.WithTag("v1"), Policy{Keys: []PublicKey{a.pub}})
}

// BenchmarkVerify3Keys verifies 3 signatures against 3 trusted keys with a
// threshold of 3. Budget: 40 ms per verification.
func BenchmarkVerify3Keys(b *testing.B) {
	addr := newRegistry(b)
	keys := []*testKeyPair{testKey(b, "a"), testKey(b, "b"), testKey(b, "c")}
	ref := pushTestArtifact(b, addr, "team/app", "v1", "bench-3")
	p := Policy{Threshold: 3}
	for _, k := range keys {
		if _, err := Sign(context.Background(), ref, k.priv, nil, plainHTTP); err != nil {
			b.Fatal(err)
		}
		p.Keys = append(p.Keys, k.pub)
	}
	benchmarkVerify(b, ref.WithTag("v1"), p)
}

func benchmarkVerify(b *testing.B, ref artifact.Reference, p Policy) {
	ctx := context.Background()
	if _, err := Verify(ctx, ref, p, plainHTTP); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := Verify(ctx, ref, p, plainHTTP)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Signers) != len(p.Keys) {
			b.Fatalf("%d signers, want %d", len(res.Signers), len(p.Keys))
		}
	}
}
