package verify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateKeyPairFormats(t *testing.T) {
	k := testKey(t, "a")
	priv, _ := pem.Decode(k.privPEM)
	pub, _ := pem.Decode(k.pubPEM)
	if priv == nil || priv.Type != "ENCRYPTED SIGSTORE PRIVATE KEY" {
		t.Errorf("private key PEM type: want ENCRYPTED SIGSTORE PRIVATE KEY, got %v", priv)
	}
	if pub == nil || pub.Type != "PUBLIC KEY" {
		t.Fatalf("public key PEM type: want PUBLIC KEY, got %v", pub)
	}
	if len(k.pub.Fingerprint) != 64 || k.priv.Public.Fingerprint != k.pub.Fingerprint {
		t.Errorf("fingerprints %q and %q: want the same 64 hex characters", k.priv.Public.Fingerprint, k.pub.Fingerprint)
	}
	parsed, err := x509.ParsePKIXPublicKey(pub.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if fp, _ := Fingerprint(parsed); fp != k.pub.Fingerprint {
		t.Errorf("Fingerprint = %s, want %s", fp, k.pub.Fingerprint)
	}
}

func TestLoadKeyErrors(t *testing.T) {
	k := testKey(t, "a")
	dir := t.TempDir()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	plainPKCS8 := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})

	cases := []struct {
		name    string
		load    func() error
		reasons []error
		want    string
	}{{
		name:    "wrong password",
		load:    func() error { _, err := LoadPrivateKey(k.privPEM, []byte("wrong")); return err },
		reasons: []error{ErrKey, ErrWrongPassword},
		want:    "COSIGN_PASSWORD",
	}, {
		name:    "missing private key file",
		load:    func() error { _, err := LoadPrivateKeyFile(filepath.Join(dir, "nope.key"), nil); return err },
		reasons: []error{ErrKey},
		want:    "does not exist: create a key pair with `airlock keygen`",
	}, {
		name:    "missing public key file",
		load:    func() error { _, err := LoadPublicKeyFile(filepath.Join(dir, "nope.pub")); return err },
		reasons: []error{ErrKey},
		want:    "nope.pub does not exist",
	}, {
		name:    "unencrypted PKCS#8 is not a cosign key",
		load:    func() error { _, err := LoadPrivateKey(plainPKCS8, nil); return err },
		reasons: []error{ErrKey},
		want:    `PEM block "PRIVATE KEY" is not a cosign private key`,
	}, {
		name:    "not PEM",
		load:    func() error { _, err := LoadPrivateKey([]byte("hello"), nil); return err },
		reasons: []error{ErrKey},
		want:    "no PEM block",
	}, {
		name:    "public key where a private key belongs",
		load:    func() error { _, err := LoadPrivateKey(k.pubPEM, nil); return err },
		reasons: []error{ErrKey},
		want:    "not a cosign private key",
	}, {
		name:    "private key where a public key belongs",
		load:    func() error { _, err := LoadPublicKey("a.key", k.privPEM); return err },
		reasons: []error{ErrKey},
		want:    "holds a private key",
	}, {
		name: "garbage public key",
		load: func() error {
			_, err := LoadPublicKey("x.pub", []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
			return err
		},
		reasons: []error{ErrKey},
		want:    "x.pub",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.load()
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			for _, r := range tc.reasons {
				if !errors.Is(err, r) {
					t.Errorf("error %q: want %v", err, r)
				}
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadPrivateKeyRightPassword(t *testing.T) {
	k := testKey(t, "a")
	pk, err := LoadPrivateKey(k.privPEM, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	if pk.Public.Fingerprint != k.pub.Fingerprint {
		t.Errorf("fingerprint %s, want %s", pk.Public.Fingerprint, k.pub.Fingerprint)
	}
}

func TestPolicyValidate(t *testing.T) {
	a, b := testKey(t, "a"), testKey(t, "b")
	cases := []struct {
		name string
		p    Policy
		want string // "" means valid
	}{
		{"one key, default threshold", Policy{Keys: []PublicKey{a.pub}}, ""},
		{"two keys, threshold 2", Policy{Keys: []PublicKey{a.pub, b.pub}, Threshold: 2}, ""},
		{"no keys", Policy{}, "no trusted public keys"},
		{"negative threshold", Policy{Keys: []PublicKey{a.pub}, Threshold: -1}, "negative"},
		{"threshold over keys", Policy{Keys: []PublicKey{a.pub}, Threshold: 2}, "more than the 1 distinct trusted keys"},
		{"duplicate keys count once", Policy{Keys: []PublicKey{a.pub, a.pub}, Threshold: 2}, "more than the 1 distinct"},
		{"key not loaded", Policy{Keys: []PublicKey{{Name: "hand-made", Fingerprint: "ab"}}}, "not loaded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want ErrPolicy containing %q", err, tc.want)
			}
		})
	}
}

// TestLoadPublicKeys: a keys Secret's data, as the controller and the CLI's
// rollback read it: only *.pub entries, sorted, named without .pub; none is
// ErrNoPublicKeys; a bad key is named.
func TestLoadPublicKeys(t *testing.T) {
	a, b := testKey(t, "a"), testKey(t, "b")
	keys, err := LoadPublicKeys(map[string][]byte{"zed.pub": b.pubPEM, "ci.pub": a.pubPEM, "README": []byte("not a key")})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Name != "ci" || keys[1].Name != "zed" || keys[0].Fingerprint != a.pub.Fingerprint {
		t.Errorf("keys %+v: want ci then zed, without .pub", keys)
	}
	if _, err := LoadPublicKeys(map[string][]byte{"README": a.pubPEM}); !errors.Is(err, ErrNoPublicKeys) {
		t.Errorf("no *.pub entry: err %v, want ErrNoPublicKeys", err)
	}
	_, err = LoadPublicKeys(map[string][]byte{"ci.pub": a.pubPEM, "bad.pub": []byte("garbage")})
	if err == nil || !strings.Contains(err.Error(), "key bad.pub") || !errors.Is(err, ErrKey) {
		t.Errorf("a bad key: err %v, want it named (key bad.pub) and ErrKey", err)
	}
}
