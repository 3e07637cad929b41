package sopsfile

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/ProtonMail/go-crypto/openpgp"
	pgparmor "github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/google/go-cmp/cmp"

	"airlock.dev/airlock/internal/sopstest"
)

// The tests encrypt with the sops library (through sopstest, a test-only
// import) and check that this package decrypts each file to exactly what
// sops's own decrypt path gives, and refuses what sops refuses.

const secret = "s3cret-7f3a9c"

// keyring is the private keys a test holds.
type keyring struct {
	age []age.Identity
	pgp openpgp.EntityList
}

func (k keyring) open(m MasterKey) ([]byte, error) {
	switch m.Type {
	case "age":
		r, err := age.Decrypt(armor.NewReader(strings.NewReader(m.EncryptedKey)), k.age...)
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	case "pgp":
		block, err := pgparmor.Decode(strings.NewReader(m.EncryptedKey))
		if err != nil {
			return nil, err
		}
		md, err := openpgp.ReadMessage(block.Body, k.pgp, nil, nil)
		if err != nil {
			return nil, err
		}
		return io.ReadAll(md.UnverifiedBody)
	}
	return nil, errors.New("not supported")
}

type ageKey struct {
	identity  string
	recipient string
	id        age.Identity
}

func newAgeKey(t testing.TB) ageKey {
	t.Helper()
	id, r, err := sopstest.AgeKey()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := age.ParseX25519Identity(id)
	if err != nil {
		t.Fatal(err)
	}
	return ageKey{id, r, parsed}
}

func newPGPKey(t testing.TB) *openpgp.Entity {
	t.Helper()
	e, _, err := sopstest.PGPKey("site")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// plain files of each format, with comments, nested mappings and lists,
// numbers, booleans, nulls and keys the rules below pick.
const (
	plainYAML = `# head comment of the file
apiVersion: v1
kind: Secret # inline comment
metadata:
    name: db
    labels:
        app: web
        # sops:enc comment before the tier
        tier: backend
stringData:
    password: ` + secret + `
    port: 5432
    ratio: 0.25
    big: 1e+21
    enabled: true
    off: false
    nothing: null
    empty: ""
    date: 2024-01-02
    note_unencrypted: visible
    token_enc: ` + secret + `-enc
    hosts:
        # first host
        - a.example
        - b.example # second
        - - nested
          - 7
        - name: inner
          weight: 1.5
    multi: |
        line one
        line two
# foot comment
---
apiVersion: v1
kind: ConfigMap
metadata:
    name: second
data:
    key: value # trailing
    list: [1, 2.5, true, "x"]
`
	plainJSON = `{
	"name": "app",
	"password": "` + secret + `",
	"port": 8080,
	"ratio": 0.5,
	"huge": 1e300,
	"enabled": true,
	"nothing": null,
	"html": "<a href=\"x\">&</a>",
	"note_unencrypted": "visible",
	"nested": {"list": [1, "two", {"three": 3.25}, [false]], "empty": {}, "none": []}
}`
	plainDotenv = "# comment\nPASSWORD=" + secret + "\nMULTI=line one\\nline two\nEMPTY=\nNOTE_unencrypted=visible\n"
	plainINI    = "; file comment\n[db]\n; section key comment\npassword = " + secret + "\nport = 5432\n\n[web]\nhost = example.com ; inline\nnote_unencrypted = visible\n"
	plainBinary = "-----BEGIN CERT-----\n" + secret + "\x00\x01\xff\n-----END CERT-----\n"
)

var formats = []struct {
	name  string
	f     Format
	s     sopstest.Format
	plain string
}{
	{"yaml", YAML, sopstest.YAML, plainYAML},
	{"json", JSON, sopstest.JSON, plainJSON},
	{"dotenv", Dotenv, sopstest.Dotenv, plainDotenv},
	{"ini", INI, sopstest.INI, plainINI},
	{"binary", Binary, sopstest.Binary, plainBinary},
}

// TestMatchesSops: for every format, key setup and rule, the plain file is
// byte for byte what sops's decrypt path writes.
func TestMatchesSops(t *testing.T) {
	a1, a2, a3 := newAgeKey(t), newAgeKey(t), newAgeKey(t)
	p1 := newPGPKey(t)
	held := keyring{age: []age.Identity{a1.id, a3.id}, pgp: openpgp.EntityList{p1}}
	setups := []struct {
		name    string
		opts    sopstest.Options
		ageOnly bool
	}{
		{"age", sopstest.Options{Groups: []sopstest.Recipients{{Age: []string{a1.recipient}}}}, true},
		{"pgp", sopstest.Options{Groups: []sopstest.Recipients{{PGP: []*openpgp.Entity{p1}}}}, false},
		{"age and pgp, one group", sopstest.Options{Groups: []sopstest.Recipients{{Age: []string{a2.recipient}, PGP: []*openpgp.Entity{p1}}}}, false},
		{"three groups, threshold 2", sopstest.Options{ShamirThreshold: 2, Groups: []sopstest.Recipients{
			{Age: []string{a1.recipient}}, {Age: []string{a2.recipient}}, {PGP: []*openpgp.Entity{p1}},
		}}, false},
		{"two groups, both", sopstest.Options{Groups: []sopstest.Recipients{{Age: []string{a1.recipient}}, {Age: []string{a3.recipient}}}}, true},
	}
	to := sopstest.Options{Groups: []sopstest.Recipients{{Age: []string{a1.recipient}}}}
	rules := []struct {
		name string
		set  func(*sopstest.Options)
	}{
		{"default suffix", func(*sopstest.Options) {}},
		{"no rule at all", func(o *sopstest.Options) { o.NoDefaultSuffix = true }},
		{"unencrypted_suffix", func(o *sopstest.Options) { o.UnencryptedSuffix = "_unencrypted" }},
		{"encrypted_suffix", func(o *sopstest.Options) { o.EncryptedSuffix = "_enc" }},
		{"encrypted_regex", func(o *sopstest.Options) { o.EncryptedRegex = "^(data|stringData|password|PASSWORD|db)$" }},
		{"unencrypted_regex", func(o *sopstest.Options) { o.UnencryptedRegex = "^(metadata|kind|name|web)$" }},
		{"encrypted_comment_regex", func(o *sopstest.Options) { o.EncryptedCommentRegex = "sops:enc" }},
		{"unencrypted_comment_regex", func(o *sopstest.Options) { o.UnencryptedCommentRegex = "first host" }},
		{"mac_only_encrypted", func(o *sopstest.Options) {
			o.MACOnlyEncrypted = true
			o.EncryptedRegex = "^(stringData|password|PASSWORD|db|data)$"
		}},
		{"mac_only_encrypted, everything", func(o *sopstest.Options) { o.MACOnlyEncrypted = true }},
	}
	check := func(t *testing.T, f Format, sf sopstest.Format, plain string, o sopstest.Options, keys keyring, ageOnly bool) {
		t.Helper()
		enc, dataKey, err := sopstest.EncryptWith([]byte(plain), sf, o)
		if err != nil {
			t.Fatal(err)
		}
		want, sopsErr := sopstest.Decrypt(enc, sf, dataKey)
		file, err := Parse(enc, f)
		if err != nil {
			t.Fatalf("Parse: %v\n%s", err, enc)
		}
		key, err := file.DataKey(keys.open)
		if err != nil {
			t.Fatalf("DataKey: %v", err)
		}
		if !bytes.Equal(key, dataKey) {
			t.Fatal("DataKey is not the data key the file was encrypted with")
		}
		if ageOnly {
			t.Setenv("SOPS_AGE_KEY", a1.identity+"\n"+a3.identity)
			sopsKey, err := sopstest.DataKey(enc, sf)
			if err != nil || !bytes.Equal(sopsKey, key) {
				t.Fatalf("sops's key service recovers another data key (err %v)", err)
			}
		}
		got, err := file.Decrypt(key)
		if sopsErr != nil {
			// sops refuses some of its own files: a key ending in
			// _unencrypted encrypted without the rule that the file then
			// gets by default, or binary content that is not UTF-8, which
			// JSON changes. This package must refuse them too.
			if err == nil {
				t.Fatalf("sops refuses the file (%v), sopsfile decrypts it", sopsErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("Decrypt: %v\n%s", err, enc)
		}
		if diff := cmp.Diff(string(want), string(got)); diff != "" {
			t.Errorf("output differs from sops's (-sops +sopsfile):\n%s\nencrypted:\n%s", diff, enc)
		}
	}
	for _, fm := range formats {
		for _, s := range setups {
			t.Run(fm.name+"/"+s.name, func(t *testing.T) {
				check(t, fm.f, fm.s, fm.plain, s.opts, held, s.ageOnly)
			})
		}
		for _, r := range rules {
			t.Run(fm.name+"/"+r.name, func(t *testing.T) {
				o := to
				r.set(&o)
				check(t, fm.f, fm.s, fm.plain, o, held, true)
			})
		}
	}
	t.Run("yaml/plain file", func(t *testing.T) {
		if _, err := Parse([]byte("a: 1\nb: [sops, mac]\n"), YAML); !errors.Is(err, ErrNoMetadata) {
			t.Errorf("err = %v, want ErrNoMetadata", err)
		}
	})
}

// swapValues exchanges the ENC[…] values of two lines that start with the
// given keys.
func swapValues(t *testing.T, enc, k1, k2 string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^(\s*(` + regexp.QuoteMeta(k1) + `|` + regexp.QuoteMeta(k2) + `): )(ENC\[[^\]]*\])`)
	m := re.FindAllStringSubmatch(enc, -1)
	if len(m) != 2 {
		t.Fatalf("found %d of the two values to swap", len(m))
	}
	i := 0
	return re.ReplaceAllStringFunc(enc, func(s string) string {
		sm := re.FindStringSubmatch(s)
		other := m[1-i][3]
		i++
		return sm[1] + other
	})
}

// TestRefusals: what sops refuses, this package refuses, with a typed error
// that shows no value.
func TestRefusals(t *testing.T) {
	k1, k2 := newAgeKey(t), newAgeKey(t)
	held := keyring{age: []age.Identity{k1.id}}
	to := sopstest.Options{Groups: []sopstest.Recipients{{Age: []string{k1.recipient}}}}
	plain := "user: admin\npassword: " + secret + "\nother: " + secret + "-other\n"
	enc, dataKey, err := sopstest.EncryptWith([]byte(plain), sopstest.YAML, to)
	if err != nil {
		t.Fatal(err)
	}
	regexEnc, regexKey, err := sopstest.EncryptWith([]byte(plain), sopstest.YAML, sopstest.Options{Groups: to.Groups, EncryptedRegex: "^password$"})
	if err != nil {
		t.Fatal(err)
	}
	kmsOnly, _, err := sopstest.EncryptWith([]byte(plain), sopstest.YAML, sopstest.Options{Groups: []sopstest.Recipients{{KMS: []string{"arn:aws:kms:eu-west-1:111122223333:key/0b1c"}}}})
	if err != nil {
		t.Fatal(err)
	}
	ivRe := regexp.MustCompile(`iv:([A-Za-z0-9+/])`)
	tagRe := regexp.MustCompile(`tag:([A-Za-z0-9+/])`)
	flip := func(re *regexp.Regexp, s string) string {
		done := false
		return re.ReplaceAllStringFunc(s, func(m string) string {
			if done {
				return m
			}
			done = true
			c := m[len(m)-1]
			r := byte('A')
			if c == 'A' {
				r = 'B'
			}
			return m[:len(m)-1] + string(r)
		})
	}
	cases := []struct {
		name    string
		in      string
		key     []byte
		keys    keyring
		wantKey error // from DataKey
		want    error // from Decrypt
	}{
		{"changed clear value", strings.Replace(string(regexEnc), "user: admin", "user: root", 1), regexKey, held, nil, ErrMACMismatch},
		{"values swapped between keys", swapValues(t, string(enc), "password", "other"), dataKey, held, nil, ErrValue},
		{"tampered iv", flip(ivRe, string(enc)), dataKey, held, nil, ErrValue},
		{"tampered tag", flip(tagRe, string(enc)), dataKey, held, nil, ErrValue},
		{"tampered MAC", strings.Replace(string(enc), "mac: ENC[AES256_GCM,data:", "mac: ENC[AES256_GCM,data:AAAA", 1), dataKey, held, nil, ErrMACDecrypt},
		{"wrong key", string(enc), nil, keyring{age: []age.Identity{k2.id}}, ErrNoKey, nil},
		{"KMS only", string(kmsOnly), nil, held, ErrNoKey, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.key != nil {
				if _, err := sopstest.Decrypt([]byte(tc.in), sopstest.YAML, tc.key); err == nil {
					t.Fatal("sops decrypts it: the case does not test a refusal")
				}
			}
			file, err := Parse([]byte(tc.in), YAML)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			key, err := file.DataKey(tc.keys.open)
			if tc.wantKey != nil {
				if !errors.Is(err, tc.wantKey) {
					t.Fatalf("DataKey err = %v, want %v", err, tc.wantKey)
				}
				return
			}
			if err != nil {
				t.Fatalf("DataKey: %v", err)
			}
			_, err = file.Decrypt(key)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decrypt err = %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "admin") {
				t.Errorf("the error shows a value: %v", err)
			}
		})
	}
	t.Run("KMS only lists its key", func(t *testing.T) {
		file, err := Parse(kmsOnly, YAML)
		if err != nil {
			t.Fatal(err)
		}
		if got := file.Metadata.KeyGroups; len(got) != 1 || len(got[0]) != 1 || got[0][0].Type != "kms" {
			t.Errorf("key groups %+v, want one kms key", got)
		}
	})
	t.Run("threshold not met", func(t *testing.T) {
		in, _, err := sopstest.EncryptWith([]byte(plain), sopstest.YAML, sopstest.Options{ShamirThreshold: 2, Groups: []sopstest.Recipients{
			{Age: []string{k1.recipient}}, {Age: []string{k2.recipient}}, {KMS: []string{"arn:aws:kms:eu-west-1:111122223333:key/0b1c"}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		file, err := Parse(in, YAML)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := file.DataKey(held.open); !errors.Is(err, ErrNoKey) {
			t.Errorf("err = %v, want ErrNoKey with one of two shares", err)
		}
	})
	t.Run("two rules", func(t *testing.T) {
		in := strings.Replace(string(regexEnc), "    encrypted_regex:", "    unencrypted_suffix: _x\n    encrypted_regex:", 1)
		if _, err := sopstest.Decrypt([]byte(in), sopstest.YAML, regexKey); err == nil {
			t.Fatal("sops reads a file with two rules")
		}
		if _, err := Parse([]byte(in), YAML); err == nil {
			t.Error("a file with two rules is read")
		}
	})
}

// TestHostileYAML: an alias cycle (sops's reader would recurse until its
// stack overflows) and an alias bomb are refused, not followed.
func TestHostileYAML(t *testing.T) {
	bomb := "sops: {lastmodified: '2024-01-01T00:00:00Z', mac: '', age: [{recipient: r, enc: e}]}\n---\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
	for name, in := range map[string]string{
		"alias cycle": "sops: {mac: x}\n---\na: &x [*x, *x]\n",
		"alias bomb":  bomb,
	} {
		if _, err := Parse([]byte(in), YAML); err == nil {
			t.Errorf("%s: read", name)
		}
	}
}
