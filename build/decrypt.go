package build

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/ProtonMail/go-crypto/openpgp"
	pgparmor "github.com/ProtonMail/go-crypto/openpgp/armor"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"airlock.dev/airlock/internal/sopsfile"
)

// Decryption holds the private keys that open SOPS-encrypted files of an
// artifact during a build. Only age (X25519) and PGP keys are used: no
// cloud KMS, no key service, no gpg binary, no environment variable and no
// file on disk. The keys and what they decrypt stay in memory.
type Decryption struct {
	// Source says where the keys came from, for errors, such as
	// "Secret team/sops-keys (spec.decryption.secretRef)". Empty means
	// "the decryption keys".
	Source string
	// OnDecrypt, when set, is called with the artifact path of each file
	// decrypted. nil means nothing is called.
	OnDecrypt func(file string)

	age    []age.Identity
	ageIDs []string // the recipients of age, for errors
	pgp    openpgp.EntityList
}

// maxKeys bounds the keys one Decryption holds, and the master keys one
// encrypted file may list.
const maxKeys = 100

// AddAge adds the age identities (AGE-SECRET-KEY-1… lines; # comments and
// blank lines are skipped) of the key named name. Its errors name the key,
// never its content.
func (d *Decryption) AddAge(name string, b []byte) error {
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("age key %s: not age identities (AGE-SECRET-KEY-1… lines, as age-keygen writes them)", name)
	}
	for _, id := range ids {
		x, ok := id.(*age.X25519Identity)
		if !ok {
			return fmt.Errorf("age key %s: only X25519 identities are supported", name)
		}
		d.ageIDs = append(d.ageIDs, x.Recipient().String())
	}
	d.age = append(d.age, ids...)
	if d.Len() > maxKeys {
		return fmt.Errorf("age key %s: more than %d keys in all", name, maxKeys)
	}
	return nil
}

// AddPGP adds the armored PGP private keys of the key named name. A key
// protected by a passphrase is refused: nothing could type it.
func (d *Decryption) AddPGP(name string, b []byte) error {
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("PGP key %s: not an armored PGP private key (gpg --export-secret-keys --armor)", name)
	}
	for _, e := range el {
		if e.PrivateKey == nil {
			return fmt.Errorf("PGP key %s (%s): a public key only: export the secret key", name, fingerprint(e))
		}
		if e.PrivateKey.Encrypted {
			return fmt.Errorf("PGP key %s (%s): protected by a passphrase: export it without one (gpg --export-secret-keys with an empty passphrase) and keep the Secret itself protected", name, fingerprint(e))
		}
	}
	d.pgp = append(d.pgp, el...)
	if d.Len() > maxKeys {
		return fmt.Errorf("PGP key %s: more than %d keys in all", name, maxKeys)
	}
	return nil
}

// AddKey adds a key file by its content: an armored PGP private key block,
// or else age identities.
func (d *Decryption) AddKey(name string, b []byte) error {
	if bytes.Contains(b, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----")) {
		return d.AddPGP(name, b)
	}
	return d.AddAge(name, b)
}

// DecryptionKeys reads the keys of a spec.decryption Secret's data (source
// names it in messages): every entry named *.agekey (age identities) or
// *.asc (unprotected armored PGP private keys), in the order of their
// names. Other entries are ignored; none of either kind is an error. The
// controller and the CLI's previews read a Release's keys through it.
func DecryptionKeys(source string, data map[string][]byte) (*Decryption, error) {
	keys := &Decryption{Source: source}
	names := make([]string, 0, len(data))
	for n := range data {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		var err error
		switch {
		case strings.HasSuffix(n, ".agekey"):
			err = keys.AddAge(n, data[n])
		case strings.HasSuffix(n, ".asc"):
			err = keys.AddPGP(n, data[n])
		}
		if err != nil {
			return nil, err
		}
	}
	if keys.Len() == 0 {
		return nil, fmt.Errorf("no key: it needs entries named *.agekey (age) or *.asc (PGP)")
	}
	return keys, nil
}

// Len is the number of keys held.
func (d *Decryption) Len() int {
	if d == nil {
		return 0
	}
	return len(d.age) + len(d.pgp)
}

// Recipients are the public sides of the keys held: age recipients and PGP
// fingerprints. They are safe to show.
func (d *Decryption) Recipients() []string {
	if d == nil {
		return nil
	}
	out := append([]string(nil), d.ageIDs...)
	for _, e := range d.pgp {
		out = append(out, "pgp:"+fingerprint(e))
	}
	return out
}

func fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
}

func (d *Decryption) source() string {
	if d == nil || d.Source == "" {
		return "the decryption keys"
	}
	return d.Source
}

// DecryptError is a SOPS-encrypted file that the keys held do not open (or
// that is not valid SOPS). It names the file and the keys it was encrypted
// for, never a value.
type DecryptError struct {
	File string
	// EncryptedFor are the age recipients and PGP fingerprints (pgp:…) of
	// the file's SOPS metadata, and other master keys by type.
	EncryptedFor []string
	// Held are the recipients of the keys the build had.
	Held []string
	Err  error
}

func (e *DecryptError) Error() string {
	msg := fmt.Sprintf("decrypt %s: %v", e.File, e.Err)
	if len(e.EncryptedFor) > 0 {
		msg += "; it was encrypted for " + strings.Join(e.EncryptedFor, ", ")
	}
	if len(e.Held) > 0 {
		msg += "; the keys given open " + strings.Join(e.Held, ", ")
	} else {
		msg += "; no key was given"
	}
	return msg
}

func (e *DecryptError) Unwrap() error { return e.Err }

// sopsKind is how kustomize reads a file that may be SOPS-encrypted.
type sopsKind int

const (
	sopsResource sopsKind = iota // a YAML file of resources
	sopsFile                     // a secretGenerator files entry: format by extension
	sopsEnv                      // a secretGenerator envs entry: dotenv
)

// decryptFiles decrypts in mem, in place, each file of files that is
// SOPS-encrypted. Without keys, an encrypted file is an error naming it:
// kustomize would otherwise build the ciphertext into objects.
//
// Files are read by internal/sopsfile, not by the sops library: sops's
// packages link the SDK of every cloud KMS it supports (AWS, GCP, Azure,
// HuaweiCloud, Vault), a third of the controller's binary and of its
// memory, while a build opens data keys only with the age and PGP keys it
// holds. sopsfile's tests encrypt with the sops library and check that it
// decrypts what sops decrypts and refuses what sops refuses.
func decryptFiles(ctx context.Context, mem filesys.FileSystem, files map[string]sopsKind, keys *Decryption, maxBytes int64) error {
	names := make([]string, 0, len(files))
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("build stopped: %w", err)
		}
		b, err := mem.ReadFile(p)
		if err != nil {
			return err
		}
		if !mayBeSOPS(b) {
			continue
		}
		file, err := sopsfile.Parse(b, formatFor(p, files[p]))
		if errors.Is(err, sopsfile.ErrNoMetadata) {
			continue
		}
		if err != nil {
			if files[p] == sopsResource && !bytes.HasPrefix(b, []byte("sops:")) && !bytes.Contains(b, []byte("\nsops:")) {
				continue // plain YAML that merely mentions sops; kustomize reads it as it is
			}
			return &DecryptError{File: rel(p), Held: keys.Recipients(), Err: errors.New("it has SOPS metadata but cannot be read as a SOPS file of its format")}
		}
		if keys.Len() == 0 {
			return &hinted{&DecryptError{File: rel(p), EncryptedFor: masterKeys(file.Metadata), Err: errors.New("it is SOPS-encrypted and the build has no decryption keys")},
				"give the build the private key: spec.decryption {provider: sops, secretRef} in the Release, or --decrypt-key for airlock build artifact"}
		}
		out, err := decryptFile(p, file, keys)
		if err != nil {
			return &hinted{err, "add a private key for one of the recipients it was encrypted for to " + keys.source() + ", or encrypt the file again for this site's key (sops updatekeys)"}
		}
		if int64(len(out)) > maxBytes {
			return fmt.Errorf("%s decrypted is %d bytes, over the limit of %d bytes per file (--build-max-file-bytes)", rel(p), len(out), maxBytes)
		}
		if err := mem.WriteFile(p, out); err != nil {
			return err
		}
		if keys.OnDecrypt != nil {
			keys.OnDecrypt(rel(p))
		}
	}
	return nil
}

// mayBeSOPS is a cheap test that rules out most files before parsing.
func mayBeSOPS(b []byte) bool {
	return bytes.Contains(b, []byte("sops")) && bytes.Contains(b, []byte("mac"))
}

// formatFor is the format sops would read p in: kustomize's kind of file,
// then the extension, as sops chooses its store.
func formatFor(p string, kind sopsKind) sopsfile.Format {
	switch kind {
	case sopsResource:
		return sopsfile.YAML
	case sopsEnv:
		return sopsfile.Dotenv
	}
	switch path.Ext(p) {
	case ".yaml", ".yml":
		return sopsfile.YAML
	case ".json":
		return sopsfile.JSON
	case ".env":
		return sopsfile.Dotenv
	case ".ini":
		return sopsfile.INI
	default:
		return sopsfile.Binary
	}
}

// decryptFile recovers the data key with keys, decrypts the file and
// checks its MAC, as sops decrypt does, and emits the plain file.
func decryptFile(p string, file *sopsfile.File, keys *Decryption) ([]byte, error) {
	fail := func(err error) error {
		return &DecryptError{File: rel(p), EncryptedFor: masterKeys(file.Metadata), Held: keys.Recipients(), Err: err}
	}
	if n := file.Metadata.MasterKeyCount(); n > maxKeys {
		return nil, fail(fmt.Errorf("it lists %d master keys, over the limit of %d", n, maxKeys))
	}
	dataKey, err := file.DataKey(keys.open)
	if err != nil {
		return nil, fail(errors.New("none of the keys given opens it"))
	}
	out, err := file.Decrypt(dataKey)
	switch {
	case errors.Is(err, sopsfile.ErrMACDecrypt):
		return nil, fail(errors.New("its MAC does not decrypt: the file is damaged"))
	case errors.Is(err, sopsfile.ErrMACMismatch):
		return nil, fail(errors.New("its MAC does not match its content: it was changed after it was encrypted; encrypt it again with sops"))
	case errors.Is(err, sopsfile.ErrEmit):
		return nil, fail(errors.New("the decrypted content cannot be written in its format"))
	case err != nil:
		return nil, fail(errors.New("a value does not decrypt with the file's data key: the file is damaged"))
	}
	return out, nil
}

// masterKeys names the keys a file's data key was encrypted for.
func masterKeys(m sopsfile.Metadata) []string {
	var out []string
	for _, g := range m.KeyGroups {
		for _, k := range g {
			switch k.Type {
			case "age":
				out = append(out, k.ID)
			case "pgp":
				out = append(out, "pgp:"+strings.ToUpper(k.ID))
			default:
				out = append(out, k.Type+" (not supported here)")
			}
			if len(out) == maxKeys {
				return out
			}
		}
	}
	return out
}

// maxDataKey bounds what one master key decrypts to: a SOPS data key (or a
// Shamir share of one) is 32 bytes.
const maxDataKey = 1024

// open decrypts the data key (or Shamir share) a master key holds, with
// the age identities and PGP keys of d, in process.
func (d *Decryption) open(k sopsfile.MasterKey) ([]byte, error) {
	var r io.Reader
	switch k.Type {
	case "age":
		if len(d.age) == 0 {
			return nil, errors.New("no age key")
		}
		ar, err := age.Decrypt(armor.NewReader(strings.NewReader(k.EncryptedKey)), d.age...)
		if err != nil {
			return nil, err
		}
		r = ar
	case "pgp":
		if len(d.pgp) == 0 {
			return nil, errors.New("no PGP key")
		}
		block, err := pgparmor.Decode(strings.NewReader(k.EncryptedKey))
		if err != nil {
			return nil, err
		}
		md, err := openpgp.ReadMessage(block.Body, d.pgp, nil, nil)
		if err != nil {
			return nil, err
		}
		r = md.UnverifiedBody
	default:
		return nil, errors.New("only age and PGP keys are used (no cloud KMS)")
	}
	b, err := io.ReadAll(io.LimitReader(r, maxDataKey+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxDataKey {
		return nil, errors.New("the data key is too long")
	}
	return b, nil
}
