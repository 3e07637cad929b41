// Package sopstest encrypts files as `sops --encrypt` does, with age
// recipients and PGP public keys, for tests, examples and benchmarks: no
// sops binary, gpg or key file is needed. It uses the sops library itself,
// and must be imported only by tests: the sops packages link the SDK of
// every cloud KMS (airlock's own code reads SOPS files with
// internal/sopsfile), and test imports are not linked into binaries.
package sopstest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/ProtonMail/go-crypto/openpgp"
	pgparmor "github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/getsops/sops/v3"
	sopsaes "github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keys"
	"github.com/getsops/sops/v3/kms"
	"github.com/getsops/sops/v3/pgp"
	"github.com/getsops/sops/v3/shamir"
	"github.com/getsops/sops/v3/stores/dotenv"
	"github.com/getsops/sops/v3/stores/ini"
	sopsjson "github.com/getsops/sops/v3/stores/json"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
)

// Format is a SOPS file format.
type Format string

const (
	YAML   Format = "yaml"
	JSON   Format = "json"
	Dotenv Format = "dotenv"
	INI    Format = "ini"
	Binary Format = "binary"
)

// Recipients are the public keys a file is encrypted for.
type Recipients struct {
	// Age are age recipients, age1….
	Age []string
	// PGP are PGP entities; only their public keys are used.
	PGP []*openpgp.Entity
	// KMS are AWS KMS key ARNs. The data key is not encrypted for them (no
	// AWS is reached): their entries hold random bytes, for tests of files
	// that list keys a build cannot use.
	KMS []string
}

// AgeKey returns a new age identity (AGE-SECRET-KEY-1…) and its recipient.
func AgeKey() (identity, recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", "", err
	}
	return id.String(), id.Recipient().String(), nil
}

// PGPKey returns a new PGP entity without a passphrase and its private key,
// armored.
func PGPKey(name string) (*openpgp.Entity, []byte, error) {
	e, err := openpgp.NewEntity(name, "test only", name+"@example.com", nil)
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	w, err := pgparmor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, nil, err
	}
	if err := e.SerializePrivate(w, nil); err != nil {
		return nil, nil, err
	}
	if err := w.Close(); err != nil {
		return nil, nil, err
	}
	return e, buf.Bytes(), nil
}

// Encrypt encrypts plain, of format f, for to, as `sops --encrypt` does.
// encryptedRegex, when not empty, limits encryption to the keys it
// matches (for a Secret, "^(data|stringData)$" keeps its metadata in
// clear, as Flux advises).
func Encrypt(plain []byte, f Format, to Recipients, encryptedRegex string) ([]byte, error) {
	out, _, err := EncryptWith(plain, f, Options{Groups: []Recipients{to}, EncryptedRegex: encryptedRegex, NoDefaultSuffix: true})
	return out, err
}

// Options are how EncryptWith encrypts, as sops's flags and creation rules
// say it.
type Options struct {
	// Groups are the key groups. With one, every key encrypts the data
	// key; with more, each group encrypts a Shamir share of it.
	Groups []Recipients
	// ShamirThreshold is the number of groups that recover the data key;
	// 0 means all of them.
	ShamirThreshold int
	// The rules that choose the values encrypted; at most one is set. None
	// means unencrypted_suffix _unencrypted, as the sops command sets it,
	// unless NoDefaultSuffix.
	UnencryptedSuffix, EncryptedSuffix             string
	UnencryptedRegex, EncryptedRegex               string
	UnencryptedCommentRegex, EncryptedCommentRegex string
	NoDefaultSuffix                                bool
	// MACOnlyEncrypted computes the MAC over the encrypted values only.
	MACOnlyEncrypted bool
}

// EncryptWith encrypts plain, of format f, as `sops --encrypt` does with
// the options o, and returns the data key too.
func EncryptWith(plain []byte, f Format, o Options) (out, dataKey []byte, err error) {
	store := storeFor(f)
	branches, err := store.LoadPlainFile(plain)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", f, err)
	}
	dataKey = make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		return nil, nil, err
	}
	parts := [][]byte{dataKey}
	threshold := o.ShamirThreshold
	if len(o.Groups) > 1 {
		if threshold == 0 {
			threshold = len(o.Groups)
		}
		if parts, err = shamir.Split(dataKey, len(o.Groups), threshold); err != nil {
			return nil, nil, err
		}
	}
	var groups []sops.KeyGroup
	for i, to := range o.Groups {
		group, err := keyGroup(to, parts[i])
		if err != nil {
			return nil, nil, err
		}
		groups = append(groups, group)
	}
	md := sops.Metadata{
		KeyGroups:               groups,
		ShamirThreshold:         threshold,
		UnencryptedSuffix:       o.UnencryptedSuffix,
		EncryptedSuffix:         o.EncryptedSuffix,
		UnencryptedRegex:        o.UnencryptedRegex,
		EncryptedRegex:          o.EncryptedRegex,
		UnencryptedCommentRegex: o.UnencryptedCommentRegex,
		EncryptedCommentRegex:   o.EncryptedCommentRegex,
		MACOnlyEncrypted:        o.MACOnlyEncrypted,
		Version:                 "3.13.3",
		LastModified:            time.Now().UTC().Truncate(time.Second),
	}
	if !o.NoDefaultSuffix && md.UnencryptedSuffix+md.EncryptedSuffix+md.UnencryptedRegex+md.EncryptedRegex+md.UnencryptedCommentRegex+md.EncryptedCommentRegex == "" {
		md.UnencryptedSuffix = sops.DefaultUnencryptedSuffix
	}
	tree := sops.Tree{Branches: branches, Metadata: md}
	cipher := sopsaes.NewCipher()
	mac, err := tree.Encrypt(dataKey, cipher)
	if err != nil {
		return nil, nil, err
	}
	tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, nil, err
	}
	out, err = store.EmitEncryptedFile(tree)
	return out, dataKey, err
}

func keyGroup(to Recipients, part []byte) (sops.KeyGroup, error) {
	var group sops.KeyGroup
	for _, r := range to.Age {
		mk, err := sopsage.MasterKeyFromRecipient(r)
		if err != nil {
			return nil, err
		}
		if err := mk.Encrypt(part); err != nil {
			return nil, err
		}
		group = append(group, mk)
	}
	for _, e := range to.PGP {
		mk, err := pgpMasterKey(e, part)
		if err != nil {
			return nil, err
		}
		group = append(group, mk)
	}
	for _, arn := range to.KMS {
		mk := kms.NewMasterKeyFromArn(arn, nil, "")
		placeholder := make([]byte, 32)
		if _, err := rand.Read(placeholder); err != nil {
			return nil, err
		}
		mk.EncryptedKey = base64.StdEncoding.EncodeToString(placeholder)
		mk.CreationDate = time.Now().UTC().Truncate(time.Second)
		group = append(group, mk)
	}
	return group, nil
}

// Decrypt decrypts an encrypted file of format f with its data key by
// sops's own path (its store, Tree.Decrypt, its MAC check and the store's
// plain output), to compare another reader with.
func Decrypt(in []byte, f Format, dataKey []byte) ([]byte, error) {
	store := storeFor(f)
	tree, err := store.LoadEncryptedFile(in)
	if err != nil {
		return nil, err
	}
	cipher := sopsaes.NewCipher()
	mac, err := tree.Decrypt(dataKey, cipher)
	if err != nil {
		return nil, err
	}
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, err
	}
	if s, ok := stored.(string); !ok || s != mac {
		return nil, fmt.Errorf("MAC mismatch")
	}
	return store.EmitPlainFile(tree.Branches)
}

// DataKey recovers the data key of an encrypted file by sops's own key
// service, as `sops decrypt` does, with the age identities in
// SOPS_AGE_KEY (a test sets it with t.Setenv).
func DataKey(in []byte, f Format) ([]byte, error) {
	tree, err := storeFor(f).LoadEncryptedFile(in)
	if err != nil {
		return nil, err
	}
	return tree.Metadata.GetDataKey()
}

func pgpMasterKey(e *openpgp.Entity, dataKey []byte) (keys.MasterKey, error) {
	var buf bytes.Buffer
	aw, err := pgparmor.Encode(&buf, "PGP MESSAGE", nil)
	if err != nil {
		return nil, err
	}
	w, err := openpgp.Encrypt(aw, []*openpgp.Entity{e}, nil, nil, nil)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(dataKey); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	mk := pgp.NewMasterKeyFromFingerprint(strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint)))
	mk.EncryptedKey = buf.String()
	return mk, nil
}

func storeFor(f Format) sops.Store {
	switch f {
	case JSON:
		return sopsjson.NewStore(&config.JSONStoreConfig{})
	case Dotenv:
		return dotenv.NewStore(&config.DotenvStoreConfig{})
	case INI:
		return ini.NewStore(&config.INIStoreConfig{})
	case Binary:
		return sopsjson.NewBinaryStore(&config.JSONBinaryStoreConfig{})
	default:
		return sopsyaml.NewStore(&config.YAMLStoreConfig{})
	}
}
