// Package sopstest encrypts files as `sops --encrypt` does, with age
// recipients and PGP public keys, for tests, examples and benchmarks: no
// sops binary, gpg or key file is needed.
package sopstest

import (
	"bytes"
	"crypto/rand"
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
	"github.com/getsops/sops/v3/pgp"
	"github.com/getsops/sops/v3/stores/dotenv"
	sopsjson "github.com/getsops/sops/v3/stores/json"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
)

// Format is a SOPS file format.
type Format string

const (
	YAML   Format = "yaml"
	JSON   Format = "json"
	Dotenv Format = "dotenv"
	Binary Format = "binary"
)

// Recipients are the public keys a file is encrypted for.
type Recipients struct {
	// Age are age recipients, age1….
	Age []string
	// PGP are PGP entities; only their public keys are used.
	PGP []*openpgp.Entity
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
	store := storeFor(f)
	branches, err := store.LoadPlainFile(plain)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", f, err)
	}
	dataKey := make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		return nil, err
	}
	var group sops.KeyGroup
	for _, r := range to.Age {
		mk, err := sopsage.MasterKeyFromRecipient(r)
		if err != nil {
			return nil, err
		}
		if err := mk.Encrypt(dataKey); err != nil {
			return nil, err
		}
		group = append(group, mk)
	}
	for _, e := range to.PGP {
		mk, err := pgpMasterKey(e, dataKey)
		if err != nil {
			return nil, err
		}
		group = append(group, mk)
	}
	tree := sops.Tree{
		Branches: branches,
		Metadata: sops.Metadata{
			KeyGroups:      []sops.KeyGroup{group},
			EncryptedRegex: encryptedRegex,
			Version:        "3.13.3",
			LastModified:   time.Now().UTC().Truncate(time.Second),
		},
	}
	cipher := sopsaes.NewCipher()
	mac, err := tree.Encrypt(dataKey, cipher)
	if err != nil {
		return nil, err
	}
	tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, err
	}
	return store.EmitEncryptedFile(tree)
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
	case Binary:
		return sopsjson.NewBinaryStore(&config.JSONBinaryStoreConfig{})
	default:
		return sopsyaml.NewStore(&config.YAMLStoreConfig{})
	}
}
