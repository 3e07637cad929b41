// Package sopsfile reads files encrypted by SOPS (getsops/sops v3) and
// decrypts them with a data key opened by the caller: YAML (one or more
// documents, comments kept), JSON, dotenv, INI and binary files.
//
// Why airlock reads the format itself: every package of the sops module that
// reads a file (the root package, its stores, aes, config, keyservice) links
// the clients of every key management service sops supports: AWS KMS, GCP
// KMS (with grpc's xds and envoy), Azure Key Vault, HuaweiCloud KMS and
// HashiCorp Vault, as well as lib/pq for sops's audit log. That is about 40
// MB of the controller's binary and of its resident memory, for code the
// controller never runs: a build opens data keys only with age and PGP keys
// held in memory. Only github.com/getsops/sops/v3/shamir, which imports
// nothing, comes from sops.
//
// What this package does is what sops's Tree.Decrypt, aes.Cipher and stores
// do on decryption, step by step: the same tree (ordered keys, comments as
// items), the same walk and additional data (the path of keys joined with
// ":" and ending in ":"), the same choice of which values are encrypted
// (unencrypted_suffix, encrypted_suffix, the regexes, comment regexes), the
// same MAC (SHA-512 over the values, mac_only_encrypted included) and the
// same output of each format. Its tests encrypt files with the real sops
// library and check that this package's output is byte for byte what sops
// decrypts, and that it refuses what sops refuses.
//
// It reads hostile input: it bounds depth and the number of values, never
// panics, and its errors never hold a key or a value of the file.
package sopsfile

import (
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/getsops/sops/v3/shamir"
)

// Format is how a SOPS file is written.
type Format int

const (
	YAML   Format = iota // one or more YAML documents of mappings
	JSON                 // a JSON object
	Dotenv               // KEY=value lines
	INI                  // INI sections
	Binary               // any bytes, stored by sops as {"data": "..."} in JSON
)

// Bounds on what one file may hold. The caller bounds the file's size.
const (
	maxDepth  = 512     // nesting of mappings and lists
	maxValues = 1 << 20 // values, keys and comments in all, after YAML aliases are expanded
)

var (
	// ErrNoMetadata is a file that has no sops metadata: not encrypted.
	ErrNoMetadata = errors.New("no sops metadata")
	// ErrNoKey is a file whose data key none of the caller's keys opens.
	ErrNoKey = errors.New("no key opens the data key")
	// ErrValue is a value that does not decrypt with the data key, or a
	// tree sops itself could not walk.
	ErrValue = errors.New("a value does not decrypt with the data key")
	// ErrMACDecrypt is a MAC that does not decrypt with the data key.
	ErrMACDecrypt = errors.New("the MAC does not decrypt")
	// ErrMACMismatch is a file changed after it was encrypted.
	ErrMACMismatch = errors.New("the MAC does not match the content")
	// ErrEmit is decrypted content that cannot be written in its format.
	ErrEmit = errors.New("the decrypted content cannot be written in its format")
)

// MasterKey is one key a file's data key (or a Shamir share of it) is
// encrypted for.
type MasterKey struct {
	// Type is sops's identifier: age, pgp, kms, gcp_kms, hckms, azure_kv
	// or hc_vault.
	Type string
	// ID is the age recipient or the PGP fingerprint; empty for other types.
	ID string
	// EncryptedKey is the data key encrypted for this key: an armored age
	// file or an armored PGP message.
	EncryptedKey string
}

// Metadata is the sops entry of a file, as sops reads it.
type Metadata struct {
	// KeyGroups are the groups of master keys; with more than one, each
	// group holds a Shamir share of the data key.
	KeyGroups       [][]MasterKey
	ShamirThreshold int
	LastModified    time.Time
	// MAC is the encrypted MAC.
	MAC                     string
	UnencryptedSuffix       string
	EncryptedSuffix         string
	UnencryptedRegex        string
	EncryptedRegex          string
	UnencryptedCommentRegex string
	EncryptedCommentRegex   string
	MACOnlyEncrypted        bool
	Version                 string
}

// MasterKeyCount is the number of master keys in all groups.
func (m Metadata) MasterKeyCount() int {
	n := 0
	for _, g := range m.KeyGroups {
		n += len(g)
	}
	return n
}

// File is a parsed SOPS file, still encrypted.
type File struct {
	Metadata Metadata
	format   Format
	branches []branch
}

// Parse reads an encrypted file of format f. A file without sops metadata
// is ErrNoMetadata; one that is not valid in its format or whose metadata
// sops would not read is another error, which holds no content.
func Parse(in []byte, f Format) (file *File, err error) {
	defer func() {
		if r := recover(); r != nil { // a parser's panic on hostile input
			file, err = nil, errors.New("the file cannot be parsed")
		}
	}()
	var branches []branch
	var md branch
	switch f {
	case YAML:
		if branches, err = loadYAML(in); err != nil {
			return nil, err
		}
		branches, md, err = extractNested(branches)
	case JSON, Binary:
		if branches, err = loadJSON(in); err != nil {
			return nil, err
		}
		branches, md, err = extractNested(branches)
	case Dotenv:
		if branches, err = loadDotenv(in); err != nil {
			return nil, err
		}
		branches, md, err = extractFlat(branches)
	case INI:
		if branches, err = loadINI(in); err != nil {
			return nil, err
		}
		branches, md, err = extractSection(branches)
	default:
		return nil, errors.New("unknown format")
	}
	if err != nil {
		return nil, err
	}
	m, err := readMetadata(md)
	if err != nil {
		return nil, err
	}
	return &File{Metadata: m, format: f, branches: branches}, nil
}

// DataKey recovers the file's data key as sops does: in each key group, the
// first master key that open decrypts gives the group's part; with one
// group that part is the key, with more the parts of at least
// shamir_threshold groups are combined. open is called only for keys whose
// Type it may know; its errors are not kept (they could name content).
func (f *File) DataKey(open func(MasterKey) ([]byte, error)) ([]byte, error) {
	var parts [][]byte
	for _, g := range f.Metadata.KeyGroups {
		for _, k := range g {
			if part, err := open(k); err == nil && part != nil {
				parts = append(parts, part)
				break
			}
		}
	}
	if len(f.Metadata.KeyGroups) > 1 {
		if len(parts) < f.Metadata.ShamirThreshold {
			return nil, ErrNoKey
		}
		key, err := combine(parts)
		if err != nil {
			return nil, ErrNoKey
		}
		return key, nil
	}
	if len(parts) != 1 {
		return nil, ErrNoKey
	}
	return parts[0], nil
}

func combine(parts [][]byte) (key []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			key, err = nil, errors.New("shamir parts do not combine")
		}
	}()
	return shamir.Combine(parts)
}

// Decrypt decrypts the file's values with dataKey, checks its MAC and
// returns the plain file in its format, as `sops decrypt` writes it.
func (f *File) Decrypt(dataKey []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, ErrValue
		}
	}()
	w, err := newWalker(f.Metadata, dataKey)
	if err != nil {
		return nil, err
	}
	for _, b := range f.branches {
		if err := w.walkBranch(b, nil, nil, 0); err != nil {
			return nil, ErrValue
		}
	}
	mac := w.hash.Sum(nil)
	stored, err := decryptValue(f.Metadata.MAC, dataKey, f.Metadata.LastModified.Format(time.RFC3339))
	storedMAC, ok := stored.(string)
	if err != nil || !ok {
		return nil, ErrMACDecrypt
	}
	// sops compares the hex of the MAC it computes (upper case) with the
	// stored one, both decoded.
	want, err := hex.DecodeString(storedMAC)
	if err != nil || !hmac.Equal(mac, want) {
		return nil, ErrMACMismatch
	}
	out, err = emit(f.format, f.branches)
	if err != nil {
		return nil, fmt.Errorf("%w", ErrEmit)
	}
	return out, nil
}
