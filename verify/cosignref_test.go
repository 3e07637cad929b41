package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature"
)

// checkOpts are cosign's verification rules for `cosign verify --key KEY
// --insecure-ignore-tlog=true`: offline, no SCT, and the claim in the
// payload must name the digest being verified. airlock applies them in
// verifyOne without linking pkg/cosign; the tests hold verifyOne to
// cosign.VerifyImageSignature under these options.
func checkOpts(v signature.Verifier) *cosign.CheckOpts {
	return &cosign.CheckOpts{
		SigVerifier: v,
		IgnoreTlog:  true,
		IgnoreSCT:   true,
		// Without it cosign never compares the signed digest with the
		// artifact's digest, and a signature copied from another artifact passes.
		ClaimVerifier: cosign.SimpleClaimVerifier,
	}
}

// testCert is a self-signed certificate valid from notBefore to notAfter,
// PEM encoded, as cosign attaches one to a signature.
func testCert(t *testing.T, notBefore, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signer"}, NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// cosignSignature is cosign's view of fs, as cosign reads a signature layer
// from the registry (its annotations, certificate and chain).
func cosignSignature(fs fetchedSignature) (oci.Signature, error) {
	opts := []static.Option{static.WithAnnotations(fs.Annotations)}
	if c := fs.Annotations[static.CertificateAnnotationKey]; c != "" {
		opts = append(opts, static.WithCertChain([]byte(c), []byte(fs.Annotations[static.ChainAnnotationKey])))
	}
	if fs.MediaType != "" {
		opts = append(opts, static.WithLayerMediaType(types.MediaType(fs.MediaType)))
	}
	return static.NewSignature(fs.Payload, fs.Annotations[static.SignatureAnnotationKey], opts...)
}

// layerOf is airlock's view of fs, as evaluate passes it to verifyOne. A
// payload parsePayload refuses (another type) is decoded without it.
func layerOf(t *testing.T, fs fetchedSignature) sigLayer {
	t.Helper()
	if _, l, err := parseSignature(fs); err == nil {
		return l
	}
	raw, err := base64.StdEncoding.DecodeString(fs.Annotations[static.SignatureAnnotationKey])
	if err != nil {
		t.Fatal(err)
	}
	return sigLayer{payload: fs.Payload, signature: raw}
}

// signedRaw signs pl with k as a cosign signature layer would carry it.
func signedRaw(t testing.TB, k *testKeyPair, pl []byte) fetchedSignature {
	t.Helper()
	raw, err := k.priv.signer.SignMessage(bytes.NewReader(pl))
	if err != nil {
		t.Fatal(err)
	}
	return fetchedSignature{
		Payload:     pl,
		Annotations: map[string]string{static.SignatureAnnotationKey: base64.StdEncoding.EncodeToString(raw)},
		MediaType:   "application/vnd.dev.cosign.simplesigning.v1+json",
	}
}

// TestVerifyOneMatchesCosign: airlock's own check of one signature and key
// accepts and refuses exactly what cosign.VerifyImageSignature does with
// `cosign verify --key --insecure-ignore-tlog=true`'s options.
func TestVerifyOneMatchesCosign(t *testing.T) {
	a, b := testKey(t, "a"), testKey(t, "b")
	now := time.Now()
	good := signed(t, a, digestA, map[string]interface{}{"env": "prod"})
	withCert := func(fs fetchedSignature, cert []byte) fetchedSignature {
		ann := map[string]string{static.CertificateAnnotationKey: string(cert)}
		for k, v := range fs.Annotations {
			ann[k] = v
		}
		fs.Annotations = ann
		return fs
	}
	otherType := signedRaw(t, a, bytes.Replace(good.Payload, []byte(`cosign container image signature`), []byte(`atomic container signature`), 1))
	badSig := signed(t, a, digestA, nil)
	badSig.Annotations = map[string]string{static.SignatureAnnotationKey: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 70))}
	tampered := signed(t, a, digestA, nil)
	tampered.Payload = bytes.Replace(tampered.Payload, []byte(`"optional":null`), []byte(`"optional":{"x":"y"}`), 1)

	cases := []struct {
		name   string
		sig    fetchedSignature
		digest string
		key    *testKeyPair
		ok     bool
	}{
		{"valid", good, digestA, a, true},
		{"another digest", good, digestB, a, false},
		{"another key", good, digestA, b, false},
		{"bad signature", badSig, digestA, a, false},
		{"tampered payload", tampered, digestA, a, false},
		// cosign's claim check reads the digest only; parsePayload refuses
		// the type before (TestEvaluateRefusesAsCosign).
		{"another payload type", otherType, digestA, a, true},
		{"certificate valid now", withCert(good, testCert(t, now.Add(-time.Hour), now.Add(time.Hour))), digestA, a, true},
		{"certificate expired", withCert(good, testCert(t, now.Add(-2*time.Hour), now.Add(-time.Hour))), digestA, a, false},
		{"certificate not yet valid", withCert(good, testCert(t, now.Add(time.Hour), now.Add(2*time.Hour))), digestA, a, false},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := v1.NewHash(tc.digest)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := cosignSignature(tc.sig)
			if err != nil {
				t.Fatal(err)
			}
			ours := verifyOne(ctx, layerOf(t, tc.sig), h, tc.key.pub)
			_, theirs := cosign.VerifyImageSignature(ctx, sig, h, checkOpts(tc.key.pub.verifier))
			if (ours == nil) != (theirs == nil) {
				t.Fatalf("airlock: %v; cosign: %v", ours, theirs)
			}
			if (ours == nil) != tc.ok {
				t.Fatalf("verdict %v, want ok=%v (cosign agrees: %v)", ours, tc.ok, theirs)
			}
		})
	}
}

// TestEvaluateRefusesAsCosign: a payload over another digest, of another
// type, with a bad signature or an expired certificate is refused, each
// with its reason, as before airlock checked signatures without pkg/cosign.
func TestEvaluateRefusesAsCosign(t *testing.T) {
	a := testKey(t, "a")
	good := signed(t, a, digestA, nil)
	otherType := signedRaw(t, a, bytes.Replace(good.Payload, []byte(`cosign container image signature`), []byte(`atomic container signature`), 1))
	badSig := signed(t, a, digestA, nil)
	badSig.Annotations = map[string]string{static.SignatureAnnotationKey: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 70))}
	expired := signed(t, a, digestA, nil)
	expired.Annotations[static.CertificateAnnotationKey] = string(testCert(t, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)))
	badCert := signed(t, a, digestA, nil)
	badCert.Annotations[static.CertificateAnnotationKey] = "not a certificate"
	cases := []struct {
		name   string
		sig    fetchedSignature
		reason error
		want   string
	}{
		{"another digest", signed(t, a, digestB, nil), ErrDigestMismatch, "name another digest (" + digestB + ")"},
		{"another type", otherType, ErrMalformed, `payload type "atomic container signature" is not "cosign container image signature"`},
		{"bad signature", badSig, ErrUntrustedSigner, "none valid for a trusted key"},
		{"expired certificate", expired, ErrUntrustedSigner, "certificate is not valid now"},
		{"unreadable certificate", badCert, ErrMalformed, "certificate annotation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := evaluate(context.Background(), "oci://registry.example.com/team/app@"+digestA, digestA, []fetchedSignature{tc.sig}, policy(0, a))
			if !errors.Is(err, tc.reason) {
				t.Fatalf("evaluate = %v, want %v", err, tc.reason)
			}
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(err.Error()+" "+errString(e.Details), tc.want) {
				t.Errorf("error %v (details %v): want it to contain %q", err, e.Details, tc.want)
			}
		})
	}
	if _, err := evaluate(context.Background(), "x", digestA, []fetchedSignature{good}, policy(0, a)); err != nil {
		t.Fatalf("the unaltered signature: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestCosignLibraryKeys: a key pair made by cosign's own library loads in
// airlock and signs what cosign verifies; airlock's key pair loads in
// cosign and signs what airlock verifies; both seal the private key with
// the same scrypt parameters; the older "ENCRYPTED COSIGN PRIVATE KEY" type
// loads too.
func TestCosignLibraryKeys(t *testing.T) {
	ctx := context.Background()
	h, _ := v1.NewHash(digestA)
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte(testPassword), nil })
	if err != nil {
		t.Fatal(err)
	}
	priv, err := LoadPrivateKey(kb.PrivateBytes, []byte(testPassword))
	if err != nil {
		t.Fatalf("airlock loads cosign's key: %v", err)
	}
	pub, err := LoadPublicKey("cosign.pub", kb.PublicBytes)
	if err != nil {
		t.Fatal(err)
	}
	if priv.Public.Fingerprint != pub.Fingerprint {
		t.Fatalf("private key's public half %s, cosign.pub %s", priv.Public.Fingerprint, pub.Fingerprint)
	}
	ours := signed(t, &testKeyPair{priv: priv, pub: pub}, digestA, nil)
	sig, err := cosignSignature(ours)
	if err != nil {
		t.Fatal(err)
	}
	cosignPub, err := cosign.PemToECDSAKey(kb.PublicBytes)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := signature.LoadECDSAVerifier(cosignPub, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cosign.VerifyImageSignature(ctx, sig, h, checkOpts(cv)); err != nil {
		t.Fatalf("cosign verifies airlock's signature with cosign's key: %v", err)
	}
	if _, err := LoadPrivateKey(kb.PrivateBytes, []byte("wrong")); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("cosign's key with a wrong password: %v, want ErrWrongPassword", err)
	}

	// The other way: airlock's key in cosign's loader.
	a := testKey(t, "a")
	sv, err := cosign.LoadPrivateKey(a.privPEM, []byte(testPassword), nil)
	if err != nil {
		t.Fatalf("cosign loads airlock's key: %v", err)
	}
	theirs := signedWith(t, sv, digestA)
	if _, err := evaluate(ctx, "x", digestA, []fetchedSignature{theirs}, policy(0, a)); err != nil {
		t.Fatalf("airlock verifies a signature by cosign's signer over airlock's key: %v", err)
	}

	if got, want := kdfParams(t, a.privPEM), kdfParams(t, kb.PrivateBytes); got != want {
		t.Errorf("scrypt parameters: airlock %s, cosign %s", got, want)
	}

	blk, _ := pem.Decode(kb.PrivateBytes)
	old := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED COSIGN PRIVATE KEY", Bytes: blk.Bytes})
	if _, err := LoadPrivateKey(old, []byte(testPassword)); err != nil {
		t.Errorf("the older PEM type: %v", err)
	}
}

// signedWith signs a payload for dgst with a cosign signer.
func signedWith(t *testing.T, sv signature.Signer, dgst string) fetchedSignature {
	t.Helper()
	fs := signed(t, testKey(t, "a"), dgst, nil)
	raw, err := sv.SignMessage(bytes.NewReader(fs.Payload))
	if err != nil {
		t.Fatal(err)
	}
	fs.Annotations = map[string]string{static.SignatureAnnotationKey: base64.StdEncoding.EncodeToString(raw)}
	return fs
}

// kdfParams reads the scrypt parameters of an encrypted cosign key.
func kdfParams(t *testing.T, privPEM []byte) string {
	t.Helper()
	blk, _ := pem.Decode(privPEM)
	if blk == nil {
		t.Fatal("no PEM block")
	}
	var box struct {
		KDF struct {
			Name   string          `json:"name"`
			Params json.RawMessage `json:"params"`
		} `json:"kdf"`
		Cipher struct {
			Name string `json:"name"`
		} `json:"cipher"`
	}
	if err := json.Unmarshal(blk.Bytes, &box); err != nil {
		t.Fatal(err)
	}
	return box.KDF.Name + " " + string(box.KDF.Params) + " " + box.Cipher.Name
}
