package verify

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/internal/registrytest"
)

// TestSignReadsSignaturesOnce: signing a digest that already has a
// signature reads its signature manifest once (cosign's read, handed to its
// mutate), and keeps the signature that was there.
func TestSignReadsSignaturesOnce(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var gets []string
	reg := registrytest.NewWithOptions(t, registry.Options{Observe: func(r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") {
			mu.Lock()
			gets = append(gets, r.URL.Path)
			mu.Unlock()
		}
	}})
	ref := pushTestArtifact(t, reg.Addr, "team/app", "v1", "signed twice")
	if _, err := Sign(ctx, ref, testKey(t, "a").priv, nil, plainHTTP); err != nil {
		t.Fatal(err)
	}
	c, err := artifact.NewClient(plainHTTP)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	gets = nil
	mu.Unlock()
	conns := reg.Connections()
	res, err := SignWith(ctx, c, ref, testKey(t, "b").priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Existing != 1 {
		t.Errorf("Existing = %d, want the 1 signature already there", res.Existing)
	}
	sigReads := 0
	for _, p := range gets {
		if !strings.HasSuffix(p, "/manifests/"+ref.Digest) {
			sigReads++
		}
	}
	if sigReads != 1 {
		t.Errorf("the second signature read the signature manifest %d times, want 1 (GETs: %v)", sigReads, gets)
	}
	// cosign's writes go through go-containerregistry on the same
	// transport, which uploads in parallel: more than one connection.
	t.Logf("second signature: %d connections, %d manifest GETs", reg.Connections()-conns, len(gets))
	v, err := Verify(ctx, ref, policy(2, testKey(t, "a"), testKey(t, "b")), plainHTTP)
	if err != nil {
		t.Fatalf("both signatures should verify: %v", err)
	}
	if len(v.Signers) != 2 {
		t.Errorf("signers = %v, want a and b", v.Signers)
	}
}
