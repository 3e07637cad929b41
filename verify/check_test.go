package verify

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// signed builds, in memory, the signature layer airlock's Sign would store
// for dgst with k.
func signed(t testing.TB, k *testKeyPair, dgst string, ann map[string]interface{}) fetchedSignature {
	t.Helper()
	d, err := name.NewDigest("registry.example.com/team/app@" + dgst)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := (&payload.Cosign{Image: d, Annotations: ann}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return signedRaw(t, k, pl)
}

func TestEvaluate(t *testing.T) {
	a, b, c := testKey(t, "a"), testKey(t, "b"), testKey(t, "c")
	hintA := map[string]interface{}{SignerAnnotation: a.pub.Fingerprint}
	cases := []struct {
		name    string
		sigs    []fetchedSignature
		policy  Policy
		reason  error // nil means pass
		want    string
		signers int
	}{
		{"one key", []fetchedSignature{signed(t, a, digestA, nil)}, policy(0, a), nil, "", 1},
		{"one of three keys", []fetchedSignature{signed(t, c, digestA, nil)}, policy(1, a, b, c), nil, "", 1},
		{"two of two", []fetchedSignature{signed(t, a, digestA, nil), signed(t, b, digestA, nil)}, policy(2, a, b), nil, "", 2},
		{"same key twice counts once", []fetchedSignature{signed(t, a, digestA, nil), signed(t, a, digestA, nil)}, policy(2, a, b), ErrThresholdNotMet, "1 of 2 required keys signed: missing " + b.pub.Fingerprint, 0},
		{"none", nil, policy(0, a), ErrNoSignatures, "no signature on " + digestA, 0},
		{"wrong key, hinted", []fetchedSignature{signed(t, a, digestA, hintA)}, policy(0, b), ErrUntrustedSigner, "found signers: " + a.pub.Fingerprint, 0},
		{"wrong key, no hint", []fetchedSignature{signed(t, a, digestA, nil)}, policy(0, b), ErrUntrustedSigner, "found signers: unknown", 0},
		{"other digest", []fetchedSignature{signed(t, a, digestB, nil)}, policy(0, a), ErrDigestMismatch, "name another digest (" + digestB + "), not " + digestA, 0},
		{"other digest by an untrusted key", []fetchedSignature{signed(t, a, digestB, nil)}, policy(0, b), ErrUntrustedSigner, "none valid for a trusted key", 0},
		{"too many", make([]fetchedSignature, MaxSignatures+1), policy(0, a), ErrMalformed, "over the cap of 64", 0},
		{"all malformed", []fetchedSignature{{Payload: []byte("{")}}, policy(0, a), ErrMalformed, "all 1 signature(s) are malformed", 0},
		{"tampered payload", func() []fetchedSignature {
			s := signed(t, a, digestA, nil)
			s.Payload = bytes.Replace(s.Payload, []byte(`"optional":null`), []byte(`"optional":{"x":"y"}`), 1)
			return []fetchedSignature{s}
		}(), policy(0, a), ErrUntrustedSigner, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := evaluate(context.Background(), "oci://registry.example.com/team/app@"+digestA, digestA, tc.sigs, tc.policy)
			if tc.reason == nil {
				if err != nil {
					t.Fatalf("evaluate: %v", err)
				}
				if len(res.Signers) != tc.signers {
					t.Errorf("%d signers, want %d", len(res.Signers), tc.signers)
				}
				return
			}
			if !errors.Is(err, tc.reason) {
				t.Fatalf("evaluate = %v, want %v", err, tc.reason)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestCheckOptsRejectsReplayedSignature fails if checkOpts loses
// ClaimVerifier: cosign then accepts a signature over another digest.
func TestCheckOptsRejectsReplayedSignature(t *testing.T) {
	a := testKey(t, "a")
	fs := signed(t, a, digestA, nil)
	sig, err := cosignSignature(fs)
	if err != nil {
		t.Fatal(err)
	}
	hA, _ := v1.NewHash(digestA)
	hB, _ := v1.NewHash(digestB)
	ctx := context.Background()
	if _, err := cosign.VerifyImageSignature(ctx, sig, hA, checkOpts(a.pub.verifier)); err != nil {
		t.Fatalf("signature over its own digest: %v", err)
	}
	if _, err := cosign.VerifyImageSignature(ctx, sig, hB, checkOpts(a.pub.verifier)); err == nil {
		t.Fatal("checkOpts accepted a signature over another digest: is ClaimVerifier set?")
	}
	// The check above is meaningful: cosign without a claim verifier accepts it.
	loose := checkOpts(a.pub.verifier)
	loose.ClaimVerifier = nil
	if _, err := cosign.VerifyImageSignature(ctx, sig, hB, loose); err != nil {
		t.Fatalf("without ClaimVerifier cosign rejected the replay (%v): this test no longer guards checkOpts", err)
	}
	if !checkOpts(nil).IgnoreTlog {
		t.Error("checkOpts must ignore the transparency log: airlock verifies offline")
	}
}

// TestEvaluateChain: the chain check behind `verify --require-upstream` and
// spec.verify.upstream: a site signature's import record must name at
// least the upstream threshold of upstream keys whose own signatures
// verify; an images lock digest a trusted signature records is reported,
// one an untrusted signature records is not.
func TestEvaluateChain(t *testing.T) {
	site, up1, up2, other := testKey(t, "site"), testKey(t, "up1"), testKey(t, "up2"), testKey(t, "other")
	record := func(fps ...string) map[string]interface{} {
		return map[string]interface{}{ChainUpstreamSigners: strings.Join(fps, ","), ChainImportedAt: "2026-11-25T10:00:00Z", ChainImagesLock: digestB}
	}
	both := record(up1.pub.Fingerprint, up2.pub.Fingerprint)
	chain := func(threshold int, upstream ...*testKeyPair) Policy {
		p := policy(0, site)
		for _, u := range upstream {
			p.Upstream = append(p.Upstream, u.pub)
		}
		p.UpstreamThreshold = threshold
		return p
	}
	cases := []struct {
		name   string
		sigs   []fetchedSignature
		policy Policy
		want   string // "" means pass
	}{
		{"one of one", []fetchedSignature{signed(t, up1, digestA, nil), signed(t, site, digestA, record(up1.pub.Fingerprint))}, chain(0, up1), ""},
		{"two of two", []fetchedSignature{signed(t, up1, digestA, nil), signed(t, up2, digestA, nil), signed(t, site, digestA, both)}, chain(2, up1, up2), ""},
		{"two required, the site recorded one", []fetchedSignature{signed(t, up1, digestA, nil), signed(t, up2, digestA, nil), signed(t, site, digestA, record(up1.pub.Fingerprint))}, chain(2, up1, up2),
			"no trusted site signature records 2 of them"},
		{"two required, one upstream signed", []fetchedSignature{signed(t, up1, digestA, nil), signed(t, site, digestA, both)}, chain(2, up1, up2), "no valid upstream signature by 2 of the required upstream keys"},
		{"no record", []fetchedSignature{signed(t, up1, digestA, nil), signed(t, site, digestA, nil)}, chain(0, up1), "no trusted site signature records it"},
		{"the record by an untrusted key", []fetchedSignature{signed(t, up1, digestA, nil), signed(t, site, digestA, nil), signed(t, other, digestA, record(up1.pub.Fingerprint))}, chain(0, up1), "no trusted site signature records it"},
		{"upstream key not trusted", []fetchedSignature{signed(t, up1, digestA, nil), signed(t, site, digestA, record(up1.pub.Fingerprint))}, chain(0, up2), "no valid upstream signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := evaluate(context.Background(), "oci://registry.example.com/team/app@"+digestA, digestA, tc.sigs, tc.policy)
			if tc.want != "" {
				if !errors.Is(err, ErrChainNotMet) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("evaluate = %v, want ErrChainNotMet with %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Chain == nil || res.Chain.Site.Fingerprint != site.pub.Fingerprint || res.Chain.ImportedAt == "" {
				t.Fatalf("chain = %+v, want the site's import record", res.Chain)
			}
			if len(res.ImagesLocks) != 1 || res.ImagesLocks[0] != digestB {
				t.Fatalf("images locks = %v, want the one the site signed", res.ImagesLocks)
			}
		})
	}
	if _, err := evaluate(context.Background(), "x", digestA, nil, chain(3, up1, up2)); !errors.Is(err, ErrPolicy) {
		t.Fatalf("an upstream threshold over the upstream keys: %v, want ErrPolicy", err)
	}
}
