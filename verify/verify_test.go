package verify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"
)

func policy(threshold int, keys ...*testKeyPair) Policy {
	p := Policy{Threshold: threshold}
	for _, k := range keys {
		p.Keys = append(p.Keys, k.pub)
	}
	return p
}

func mustSign(t *testing.T, ref artifact.Reference, k *testKeyPair, ann map[string]string) *SignResult {
	t.Helper()
	res, err := Sign(context.Background(), ref, k.priv, ann, plainHTTP)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return res
}

// wantReason fails unless err is an *Error with reason and every substring.
func wantReason(t *testing.T, err, reason error, substrings ...string) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("verify passed, want %v", reason)
	}
	if !errors.Is(err, reason) {
		t.Fatalf("error %q: want reason %v", err, reason)
	}
	var e *Error
	if !errors.As(err, &e) && !errors.Is(reason, ErrPolicy) {
		t.Fatalf("error %T is not *verify.Error", err)
	}
	for _, s := range substrings {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	return e
}

func TestSignThenVerify(t *testing.T) {
	ctx := context.Background()
	addr := newRegistry(t)
	a := testKey(t, "a")
	ref := pushTestArtifact(t, addr, "team/app", "v1", "one")

	// Sign by tag: the tag is resolved and the digest signed.
	byTag := ref
	byTag.Digest = ""
	sr, err := Sign(ctx, byTag, a.priv, map[string]string{"env": "prod"}, plainHTTP)
	if err != nil {
		t.Fatal(err)
	}
	if sr.Digest != ref.Digest || sr.SignatureTag != "sha256-"+strings.TrimPrefix(ref.Digest, "sha256:")+".sig" || sr.Fingerprint != a.pub.Fingerprint {
		t.Fatalf("sign result %+v: want digest %s and key %s", sr, ref.Digest, a.pub.Fingerprint)
	}

	for _, r := range []artifact.Reference{ref, byTag} {
		res, err := Verify(ctx, r, policy(0, a), plainHTTP)
		if err != nil {
			t.Fatalf("verify %s: %v", r, err)
		}
		if res.Digest != ref.Digest || res.Threshold != 1 || res.Signatures != 1 {
			t.Errorf("result %+v: want digest %s, threshold 1, 1 signature", res, ref.Digest)
		}
		if len(res.Signers) != 1 || res.Signers[0].Fingerprint != a.pub.Fingerprint || res.Signers[0].Name != "a.pub" {
			t.Fatalf("signers %+v: want a.pub %s", res.Signers, a.pub.Fingerprint)
		}
		if got := res.Signers[0].Annotations; got["env"] != "prod" || got[SignerAnnotation] != a.pub.Fingerprint {
			t.Errorf("signer annotations %v: want env=prod and %s", got, SignerAnnotation)
		}
		if res.Source != "https://git.example.com/team/app" || !strings.HasPrefix(res.Revision, "main@sha1:") {
			t.Errorf("source %q revision %q: want the artifact's annotations", res.Source, res.Revision)
		}
	}
}

func TestSignKeepsExistingSignatures(t *testing.T) {
	ctx := context.Background()
	addr := newRegistry(t)
	a, b := testKey(t, "a"), testKey(t, "b")
	ref := pushTestArtifact(t, addr, "team/app", "v1", "one")

	mustSign(t, ref, a, nil)
	second := mustSign(t, ref, b, nil)
	if second.Existing != 1 {
		t.Errorf("existing = %d, want 1", second.Existing)
	}
	if n := signatureCount(t, ref); n != 2 {
		t.Fatalf("%d signatures after signing with two keys, want 2", n)
	}
	for _, k := range []*testKeyPair{a, b} {
		if _, err := Verify(ctx, ref, policy(1, k), plainHTTP); err != nil {
			t.Errorf("verify with %s after a second signature: %v", k.pub.Name, err)
		}
	}
	// The same key over the same payload replaces its duplicate, as cosign does.
	mustSign(t, ref, a, nil)
	if n := signatureCount(t, ref); n != 2 {
		t.Errorf("%d signatures after re-signing with the same key, want 2", n)
	}
}

func TestVerifyWrongKey(t *testing.T) {
	addr := newRegistry(t)
	a, b := testKey(t, "a"), testKey(t, "b")
	ref := pushTestArtifact(t, addr, "team/app", "v1", "one")
	mustSign(t, ref, a, nil)

	_, err := Verify(context.Background(), ref, policy(0, b), plainHTTP)
	e := wantReason(t, err, ErrUntrustedSigner,
		"found signers: "+a.pub.Fingerprint, // the signer, from airlock's annotation
		"trusted keys tried: "+b.pub.Fingerprint+" (b.pub)")
	if len(e.Found) != 1 || e.Found[0] != a.pub.Fingerprint {
		t.Errorf("Found = %v, want [%s]", e.Found, a.pub.Fingerprint)
	}
	if e.Details == nil || !strings.Contains(e.Details.Error(), "signature 1: key") {
		t.Errorf("details %v: want the per-key failure", e.Details)
	}
}

func TestVerifyTagRepointed(t *testing.T) {
	ctx := context.Background()
	addr := newRegistry(t)
	a := testKey(t, "a")
	signed := pushTestArtifact(t, addr, "team/app", "v1", "one")
	mustSign(t, signed, a, nil)

	// Someone moves the tag to an unsigned artifact.
	other := pushTestArtifact(t, addr, "team/app", "v1", "tampered")
	byTag := signed
	byTag.Digest = ""
	_, err := Verify(ctx, byTag, policy(0, a), plainHTTP)
	wantReason(t, err, ErrNoSignatures, other.Digest)

	// A reference pinned to the signed digest still verifies: the digest wins over the tag.
	if _, err := Verify(ctx, signed, policy(0, a), plainHTTP); err != nil {
		t.Errorf("verify pinned digest: %v", err)
	}
}

func TestVerifyReplayedSignature(t *testing.T) {
	addr := newRegistry(t)
	a := testKey(t, "a")
	signed := pushTestArtifact(t, addr, "team/app", "v1", "one")
	mustSign(t, signed, a, nil)
	evil := pushTestArtifact(t, addr, "team/app", "v2", "evil")
	copySignatures(t, signed, evil)

	_, err := Verify(context.Background(), evil, policy(0, a), plainHTTP)
	wantReason(t, err, ErrDigestMismatch, signed.Digest, evil.Digest)
}

func TestVerifyThreshold(t *testing.T) {
	ctx := context.Background()
	addr := newRegistry(t)
	a, b, c := testKey(t, "a"), testKey(t, "b"), testKey(t, "c")
	ref := pushTestArtifact(t, addr, "team/app", "v1", "one")
	mustSign(t, ref, a, nil)

	_, err := Verify(ctx, ref, policy(2, a, b), plainHTTP)
	e := wantReason(t, err, ErrThresholdNotMet, "1 of 2 required keys signed: missing "+b.pub.Fingerprint+" (b.pub)")
	if len(e.Missing) != 1 || e.Missing[0] != b.pub.Fingerprint {
		t.Errorf("Missing = %v, want [%s]", e.Missing, b.pub.Fingerprint)
	}

	mustSign(t, ref, b, nil)
	res, err := Verify(ctx, ref, policy(2, a, b, c), plainHTTP)
	if err != nil {
		t.Fatalf("threshold 2 with a and b signed: %v", err)
	}
	if len(res.Signers) != 2 || res.Signers[0].Name != "a.pub" || res.Signers[1].Name != "b.pub" {
		t.Errorf("signers %+v: want a.pub and b.pub", res.Signers)
	}

	// The same key listed twice counts once.
	_, err = Verify(ctx, ref, Policy{Keys: []PublicKey{a.pub, a.pub}, Threshold: 2}, plainHTTP)
	wantReason(t, err, ErrPolicy, "more than the 1 distinct trusted keys")
}

func TestVerifyNoSignatures(t *testing.T) {
	addr := newRegistry(t)
	a := testKey(t, "a")
	ref := pushTestArtifact(t, addr, "team/app", "v1", "one")
	_, err := Verify(context.Background(), ref, policy(0, a), plainHTTP)
	wantReason(t, err, ErrNoSignatures, "airlock sign")
}

func TestVerifyMalformed(t *testing.T) {
	a := testKey(t, "a")
	sigAnn := func(extra map[string]string) map[string]string {
		m := map[string]string{"dev.cosignproject.cosign/signature": "MEUCIQ=="}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name   string
		forge  func(t *testing.T, ref artifact.Reference, repo content.Pusher)
		reason []error
		want   string
	}{{
		name: "payload not json",
		forge: func(t *testing.T, ref artifact.Reference, repo content.Pusher) {
			l := pushBlob(t, repo, "application/vnd.dev.cosign.simplesigning.v1+json", []byte("not json"))
			l.Annotations = sigAnn(nil)
			pushSignatureManifest(t, ref, []ocispec.Descriptor{l}, nil)
		},
		reason: []error{ErrMalformed},
		want:   "all 1 signature(s) are malformed",
	}, {
		name: "signature not base64",
		forge: func(t *testing.T, ref artifact.Reference, repo content.Pusher) {
			p := fmt.Sprintf(`{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":null}`, ref.Digest)
			l := pushBlob(t, repo, "application/vnd.dev.cosign.simplesigning.v1+json", []byte(p))
			l.Annotations = map[string]string{"dev.cosignproject.cosign/signature": "%%%"}
			pushSignatureManifest(t, ref, []ocispec.Descriptor{l}, nil)
		},
		reason: []error{ErrMalformed},
		want:   "not base64",
	}, {
		name: "payload over 1 MiB",
		forge: func(t *testing.T, ref artifact.Reference, repo content.Pusher) {
			l := pushBlob(t, repo, "application/vnd.dev.cosign.simplesigning.v1+json", make([]byte, MaxPayloadSize+1))
			l.Annotations = sigAnn(nil)
			pushSignatureManifest(t, ref, []ocispec.Descriptor{l}, nil)
		},
		reason: []error{ErrMalformed, artifact.ErrTooLarge},
		want:   "over the 1048576-byte limit",
	}, {
		name: "more than 64 signatures",
		forge: func(t *testing.T, ref artifact.Reference, repo content.Pusher) {
			l := pushBlob(t, repo, "application/vnd.dev.cosign.simplesigning.v1+json", []byte("{}"))
			l.Annotations = sigAnn(nil)
			layers := make([]ocispec.Descriptor, MaxSignatures+1)
			for i := range layers {
				layers[i] = l
			}
			pushSignatureManifest(t, ref, layers, nil)
		},
		reason: []error{ErrMalformed, artifact.ErrTooLarge},
		want:   "65 signatures, over the cap of 64 per digest",
	}, {
		name: "signature manifest over 1 MiB",
		forge: func(t *testing.T, ref artifact.Reference, repo content.Pusher) {
			l := pushBlob(t, repo, "application/vnd.dev.cosign.simplesigning.v1+json", []byte("{}"))
			l.Annotations = sigAnn(nil)
			pushSignatureManifest(t, ref, []ocispec.Descriptor{l}, map[string]string{"pad": strings.Repeat("x", MaxSignatureManifestSize)})
		},
		reason: []error{ErrMalformed, artifact.ErrTooLarge},
		want:   "over the 1048576-byte limit",
	}}
	addr := newRegistry(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := pushTestArtifact(t, addr, "team/app", "v1", fmt.Sprint("malformed", i))
			repo, err := plainHTTP.Repository(ref)
			if err != nil {
				t.Fatal(err)
			}
			tc.forge(t, ref, repo)
			_, err = Verify(context.Background(), ref, policy(0, a), plainHTTP)
			for _, r := range tc.reason {
				wantReason(t, err, r, tc.want)
			}
		})
	}

	// A malformed signature next to a valid one does not block verification.
	t.Run("malformed next to valid", func(t *testing.T) {
		ref := pushTestArtifact(t, addr, "team/app", "v1", "mixed")
		repo, err := plainHTTP.Repository(ref)
		if err != nil {
			t.Fatal(err)
		}
		l := pushBlob(t, repo, "application/vnd.dev.cosign.simplesigning.v1+json", []byte("junk"))
		l.Annotations = sigAnn(nil)
		pushSignatureManifest(t, ref, []ocispec.Descriptor{l}, nil)
		mustSign(t, ref, a, nil)
		res, err := Verify(context.Background(), ref, policy(0, a), plainHTTP)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		if res.Signatures != 2 || len(res.Signers) != 1 {
			t.Errorf("result %+v: want 2 signatures, 1 signer", res)
		}
	})
}

func TestVerifyRegistryFailure(t *testing.T) {
	a := testKey(t, "a")
	reg := registrytest.New(t)
	ref := pushTestArtifact(t, reg.Addr, "team/app", "v1", "one")
	mustSign(t, ref, a, nil)

	reg.FailWith(http.StatusServiceUnavailable)
	_, err := Verify(context.Background(), ref, policy(0, a), plainHTTP)
	wantReason(t, err, ErrRegistry)
	reg.FailWith(0)

	// A closed port: unreachable is an error, never a pass.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	deadRef := ref
	deadRef.Registry = dead
	_, err = Verify(context.Background(), deadRef, policy(0, a), plainHTTP)
	wantReason(t, err, ErrRegistry, "registry unreachable")
	if !errors.Is(err, artifact.ErrUnreachable) {
		t.Errorf("error %q: want artifact.ErrUnreachable", err)
	}
	_, err = Sign(context.Background(), deadRef, a.priv, nil, plainHTTP)
	wantReason(t, err, ErrRegistry, "registry unreachable")
}

func TestSignErrors(t *testing.T) {
	addr := newRegistry(t)
	a := testKey(t, "a")
	ref := pushTestArtifact(t, addr, "team/app", "v1", "one")

	_, err := Sign(context.Background(), ref, nil, nil, plainHTTP)
	wantReason(t, err, ErrKey)
	_, err = Sign(context.Background(), ref, a.priv, map[string]string{SignerAnnotation: "forged"}, plainHTTP)
	wantReason(t, err, ErrKey, SignerAnnotation)

	missing := ref.WithTag("nope")
	_, err = Sign(context.Background(), missing, a.priv, nil, plainHTTP)
	wantReason(t, err, ErrRegistry, "no such tag")
	if !errors.Is(err, artifact.ErrNoTag) {
		t.Errorf("error %q: want artifact.ErrNoTag", err)
	}
}

func TestSignRefusesPastSignatureCap(t *testing.T) {
	addr := newRegistry(t)
	a := testKey(t, "a")
	ref := pushTestArtifact(t, addr, "team/app", "v1", "one")
	repo, err := plainHTTP.Repository(ref)
	if err != nil {
		t.Fatal(err)
	}
	l := pushBlob(t, repo, "application/vnd.dev.cosign.simplesigning.v1+json", []byte("{}"))
	layers := make([]ocispec.Descriptor, MaxSignatures)
	for i := range layers {
		layers[i] = l
	}
	pushSignatureManifest(t, ref, layers, nil)
	_, err = Sign(context.Background(), ref, a.priv, nil, plainHTTP)
	wantReason(t, err, ErrMalformed, "the cap per digest is 64")
}
