package verify

import (
	"context"
	"crypto"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/generate"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/sign"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/sigstore/pkg/signature"
)

// cosignGenerateKeyPair runs `cosign generate-key-pair` through the cosign
// CLI's own code in dir and returns the paths of cosign.key and cosign.pub.
func cosignGenerateKeyPair(t *testing.T, dir string) (string, string) {
	t.Helper()
	t.Setenv("COSIGN_PASSWORD", testPassword)
	prefix := filepath.Join(dir, "cosign")
	if err := generate.GenerateKeyPairCmd(context.Background(), "", prefix, nil); err != nil {
		t.Fatalf("cosign generate-key-pair: %v", err)
	}
	return prefix + ".key", prefix + ".pub"
}

// cosignSign runs `cosign sign --key KEY --tlog-upload=false -a … DIGESTREF`
// through the cosign CLI's own code.
func cosignSign(t *testing.T, keyPath, digestRef string, annotations []string) {
	t.Helper()
	t.Setenv("COSIGN_PASSWORD", testPassword)
	ro := &options.RootOptions{Timeout: time.Minute}
	ko := options.KeyOpts{KeyRef: keyPath, PassFunc: generate.GetPass, SkipConfirmation: true}
	so := options.SignOptions{
		Key:               keyPath,
		Upload:            true,
		TlogUpload:        false,
		SkipConfirmation:  true,
		Registry:          options.RegistryOptions{AllowHTTPRegistry: true},
		AnnotationOptions: options.AnnotationOptions{Annotations: annotations},
	}
	if err := sign.SignCmd(ro, ko, so, []string{digestRef}); err != nil {
		t.Fatalf("cosign sign: %v", err)
	}
}

// cosignVerify applies `cosign verify --key PUB --insecure-ignore-tlog=true`'s
// rules through the cosign library and returns how many signatures passed.
func cosignVerify(t *testing.T, pubPEM []byte, digestRef string) (int, error) {
	t.Helper()
	ref, opts := cosignCheckOpts(t, pubPEM, digestRef)
	opts.ClaimVerifier = cosign.SimpleClaimVerifier
	sigs, _, err := cosign.VerifyImageSignatures(context.Background(), ref, opts)
	return len(sigs), err
}

// cosignVerifyAttestations applies `cosign verify-attestation --key PUB
// --insecure-ignore-tlog=true`'s rules and returns how many passed.
func cosignVerifyAttestations(t *testing.T, pubPEM []byte, digestRef string) (int, error) {
	t.Helper()
	ref, opts := cosignCheckOpts(t, pubPEM, digestRef)
	opts.ClaimVerifier = cosign.IntotoSubjectClaimVerifier
	atts, _, err := cosign.VerifyImageAttestations(context.Background(), ref, opts)
	return len(atts), err
}

func cosignCheckOpts(t *testing.T, pubPEM []byte, digestRef string) (name.Reference, *cosign.CheckOpts) {
	t.Helper()
	pub, err := cosign.PemToECDSAKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(digestRef, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ropts, err := plainHTTP.GGCROptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ref, &cosign.CheckOpts{
		SigVerifier:        v,
		IgnoreTlog:         true,
		IgnoreSCT:          true,
		RegistryClientOpts: []ociremote.Option{ociremote.WithRemoteOptions(ropts...)},
	}
}

// TestCosignCLIKeysAndSignatures: a key pair from `cosign generate-key-pair`
// and a signature from `cosign sign --tlog-upload=false` work in airlock.
func TestCosignCLIKeysAndSignatures(t *testing.T) {
	ctx := context.Background()
	addr := newRegistry(t)
	ref := pushTestArtifact(t, addr, "team/app", "v1", "cosign-made")
	keyPath, pubPath := cosignGenerateKeyPair(t, t.TempDir())

	cosignSign(t, keyPath, ref.DigestRef(), []string{"team=platform"})

	pub, err := LoadPublicKeyFile(pubPath)
	if err != nil {
		t.Fatalf("airlock loads cosign.pub: %v", err)
	}
	res, err := Verify(ctx, ref, Policy{Keys: []PublicKey{pub}}, plainHTTP)
	if err != nil {
		t.Fatalf("airlock verifies a cosign CLI signature: %v", err)
	}
	if len(res.Signers) != 1 || res.Signers[0].Name != "cosign.pub" || res.Signers[0].Annotations["team"] != "platform" {
		t.Errorf("signers %+v: want cosign.pub with team=platform", res.Signers)
	}

	// The cosign CLI's private key signs in airlock too, next to cosign's signature.
	priv, err := LoadPrivateKeyFile(keyPath, []byte(testPassword))
	if err != nil {
		t.Fatalf("airlock loads cosign.key: %v", err)
	}
	if priv.Public.Fingerprint != pub.Fingerprint {
		t.Fatalf("cosign.key fingerprint %s, cosign.pub %s", priv.Public.Fingerprint, pub.Fingerprint)
	}
	if _, err := Sign(ctx, ref, priv, nil, plainHTTP); err != nil {
		t.Fatal(err)
	}
	if n := signatureCount(t, ref); n != 2 {
		t.Errorf("%d signatures, want cosign's and airlock's", n)
	}
	// A wrong password for cosign's key is the typed error.
	if _, err := LoadPrivateKeyFile(keyPath, []byte("nope")); err == nil {
		t.Error("cosign.key loaded with a wrong password")
	}
	// A cosign signature is refused when the key is not trusted.
	other := testKey(t, "b")
	if _, err := Verify(ctx, ref, Policy{Keys: []PublicKey{other.pub}}, plainHTTP); err == nil {
		t.Error("verify with an untrusted key passed")
	}
}

// TestAirlockSignaturesPassCosignRules: airlock's signatures verify with the
// cosign CLI's rules (offline, --insecure-ignore-tlog=true), and a signature
// replayed onto another digest does not.
func TestAirlockSignaturesPassCosignRules(t *testing.T) {
	addr := newRegistry(t)
	a, b := testKey(t, "a"), testKey(t, "b")
	ref := pushTestArtifact(t, addr, "team/app", "v1", "airlock-made")
	mustSign(t, ref, a, map[string]string{"env": "prod"})
	mustSign(t, ref, b, nil)

	n, err := cosignVerify(t, a.pubPEM, ref.DigestRef())
	if err != nil || n != 1 {
		t.Fatalf("cosign rules with a.pub: %d signatures, %v; want 1", n, err)
	}
	if n, err := cosignVerify(t, testKey(t, "c").pubPEM, ref.DigestRef()); err == nil {
		t.Errorf("cosign rules accepted %d signatures for an unrelated key", n)
	}

	evil := pushTestArtifact(t, addr, "team/app", "v2", "evil")
	copySignatures(t, ref, evil)
	if _, err := cosignVerify(t, a.pubPEM, evil.DigestRef()); err == nil {
		t.Error("cosign rules accepted a signature replayed onto another digest")
	}
}

// TestCosignKeygenFilesMatch: airlock keygen's files are the same kind as
// cosign's (both PEM types), so either tool reads the other's keys.
func TestCosignKeygenFilesMatch(t *testing.T) {
	keyPath, pubPath := cosignGenerateKeyPair(t, t.TempDir())
	cosignPriv, _ := os.ReadFile(keyPath)
	cosignPub, _ := os.ReadFile(pubPath)
	ours := testKey(t, "a")
	if pemType(cosignPriv) != pemType(ours.privPEM) || pemType(cosignPub) != pemType(ours.pubPEM) {
		t.Errorf("PEM types differ: cosign %s/%s, airlock %s/%s", pemType(cosignPriv), pemType(cosignPub), pemType(ours.privPEM), pemType(ours.pubPEM))
	}
	// cosign's own loader opens airlock's private key.
	if _, err := cosign.LoadPrivateKey(ours.privPEM, []byte(testPassword), nil); err != nil {
		t.Errorf("cosign.LoadPrivateKey on airlock's key: %v", err)
	}
}

func pemType(b []byte) string {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "(not PEM)"
	}
	return blk.Type
}
