// Package verify signs artifacts and verifies their signatures with cosign
// keys, fully offline: no transparency log, no Fulcio, no network beyond the
// registry. Signatures are cosign's own format (a simple-signing payload on
// the sha256-<hex>.sig tag), so the cosign CLI verifies airlock's signatures
// and airlock verifies the cosign CLI's.
//
// Verification is split in two: fetching the signatures (bounded in size and
// count) and a pure check of those signatures against a Policy.
package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// The PEM types of cosign's encrypted private keys (pkg/cosign's
// SigstorePrivateKeyPemType and CosignPrivateKeyPemType). airlock reads and
// writes the format itself, as cosign does, rather than link pkg/cosign,
// which brings Rekor, TUF and Fulcio clients the offline controller never
// calls.
const (
	sigstorePrivateKeyPEMType = "ENCRYPTED SIGSTORE PRIVATE KEY"
	cosignPrivateKeyPEMType   = "ENCRYPTED COSIGN PRIVATE KEY"
)

// maxKeyFileSize bounds a key file: PEM keys are a few hundred bytes.
const maxKeyFileSize = 64 << 10

// PublicKey is a trusted public key, loaded and checked.
type PublicKey struct {
	// Name says where the key came from (a file name, a Secret's key) for messages.
	Name string
	// Fingerprint is the hex SHA-256 of the key's DER SubjectPublicKeyInfo.
	Fingerprint string
	// PEM is the key as given.
	PEM []byte

	verifier signature.Verifier
}

// LoadPublicKey parses a PEM public key, as written by `cosign
// generate-key-pair` or `airlock keygen`. name is used in messages only.
func LoadPublicKey(name string, pemBytes []byte) (PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return PublicKey{}, fmt.Errorf("%w: public key %s: no PEM block: want the .pub file written by `airlock keygen` or `cosign generate-key-pair`", ErrKey, name)
	}
	if strings.Contains(block.Type, "PRIVATE KEY") {
		return PublicKey{}, fmt.Errorf("%w: public key %s holds a private key (%s): pass the .pub file, and keep the .key file secret", ErrKey, name, block.Type)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w: public key %s: %v: want a PEM \"PUBLIC KEY\" as written by `airlock keygen` or `cosign generate-key-pair`", ErrKey, name, err)
	}
	fp, err := Fingerprint(pub)
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w: public key %s: %v", ErrKey, name, err)
	}
	// cosign's CLI verifies key signatures with SHA-256 (`cosign verify --key`).
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w: public key %s: %v: want an ECDSA, RSA or Ed25519 key", ErrKey, name, err)
	}
	return PublicKey{Name: name, Fingerprint: fp, PEM: pemBytes, verifier: v}, nil
}

// ErrNoPublicKeys is LoadPublicKeys' error for a set with no entry ending in .pub.
var ErrNoPublicKeys = errors.New("holds no key ending in .pub")

// LoadPublicKeys parses every entry of data whose name ends in .pub (a keys
// Secret's data), sorted by name, as a key named without the suffix. It
// returns ErrNoPublicKeys when there is none, and every key that does not
// parse, each named, joined.
func LoadPublicKeys(data map[string][]byte) ([]PublicKey, error) {
	names := make([]string, 0, len(data))
	for k := range data {
		if strings.HasSuffix(k, ".pub") {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return nil, ErrNoPublicKeys
	}
	sort.Strings(names)
	keys := make([]PublicKey, 0, len(names))
	var errs []error
	for _, n := range names {
		k, err := LoadPublicKey(strings.TrimSuffix(n, ".pub"), data[n])
		if err != nil {
			errs = append(errs, fmt.Errorf("key %s: %w", n, err))
			continue
		}
		keys = append(keys, k)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return keys, nil
}

// LoadPublicKeyFile reads and parses a PEM public key file. The key's Name is
// the file's base name.
func LoadPublicKeyFile(path string) (PublicKey, error) {
	b, err := readKeyFile(path, "public")
	if err != nil {
		return PublicKey{}, err
	}
	return LoadPublicKey(filepath.Base(path), b)
}

// Fingerprint is the hex SHA-256 of pub's DER SubjectPublicKeyInfo.
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// PrivateKey is a decrypted cosign private key, ready to sign.
type PrivateKey struct {
	// Public is the matching public key; its Name is the private key's name.
	Public PublicKey

	signer signature.SignerVerifier
}

// LoadPrivateKey decrypts a cosign private key ("ENCRYPTED SIGSTORE PRIVATE
// KEY" or the older "ENCRYPTED COSIGN PRIVATE KEY" PEM) with password. A
// wrong password is ErrWrongPassword (and ErrKey).
func LoadPrivateKey(pemBytes, password []byte) (*PrivateKey, error) {
	return loadPrivateKey("private key", pemBytes, password)
}

// LoadPrivateKeyFile reads and decrypts a cosign private key file.
func LoadPrivateKeyFile(path string, password []byte) (*PrivateKey, error) {
	b, err := readKeyFile(path, "private")
	if err != nil {
		return nil, err
	}
	return loadPrivateKey(filepath.Base(path), b, password)
}

func loadPrivateKey(name string, pemBytes, password []byte) (*PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("%w: %s: no PEM block: want the .key file written by `airlock keygen` or `cosign generate-key-pair`", ErrKey, name)
	}
	if block.Type != sigstorePrivateKeyPEMType && block.Type != cosignPrivateKeyPEMType {
		return nil, fmt.Errorf("%w: %s: PEM block %q is not a cosign private key (want %q): create one with `airlock keygen`, or import a key with `cosign import-key-pair`",
			ErrKey, name, block.Type, sigstorePrivateKeyPEMType)
	}
	// As cosign.LoadPrivateKey: the block is a securesystemslib encrypted
	// box (scrypt and NaCl secretbox) around a PKCS #8 key, loaded with
	// cosign's default options (Ed25519 keys sign in pre-hashed mode).
	der, err := encrypted.Decrypt(block.Bytes, password)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w (or the key file is corrupted): set COSIGN_PASSWORD to the password given when the key was generated", ErrKey, name, ErrWrongPassword)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: parsing private key: %v", ErrKey, name, err)
	}
	sv, err := signature.LoadDefaultSignerVerifier(key, options.WithED25519ph())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKey, name, err)
	}
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: public key: %v", ErrKey, name, err)
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: public key: %v", ErrKey, name, err)
	}
	pk, err := LoadPublicKey(name, pubPEM)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{Public: pk, signer: sv}, nil
}

// GenerateKeyPair makes an ECDSA P-256 key pair in the formats of `cosign
// generate-key-pair`: the private key encrypted with password ("ENCRYPTED
// SIGSTORE PRIVATE KEY") and the public key ("PUBLIC KEY"). An empty password
// is allowed, as in cosign. It writes what cosign.GenerateKeyPair writes: a
// PKCS #8 key sealed by securesystemslib's encrypted.Encrypt with its default
// scrypt parameters (N=65536, r=8, p=1), as cosign does.
func GenerateKeyPair(password []byte) (privPEM, pubPEM []byte, err error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key pair: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key pair: encode private key: %w", err)
	}
	if password == nil {
		password = []byte{}
	}
	sealed, err := encrypted.Encrypt(der, password)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key pair: encrypt private key: %w", err)
	}
	pubPEM, err = cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("generate key pair: encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: sigstorePrivateKeyPEMType, Bytes: sealed}), pubPEM, nil
}

func readKeyFile(path, kind string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s key file %s does not exist: create a key pair with `airlock keygen`, or check the path", ErrKey, kind, path)
		}
		return nil, fmt.Errorf("%w: read %s key: %w", ErrKey, kind, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s key %s: %w", ErrKey, kind, path, err)
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("%w: %s key file %s is over %d bytes: it is not a PEM key", ErrKey, kind, path, maxKeyFileSize)
	}
	return b, nil
}
