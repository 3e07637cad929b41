package sopsfile

import (
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/ProtonMail/go-crypto/openpgp"

	"airlock.dev/airlock/internal/sopstest"
)

// FuzzDecrypt reads fuzzed files in every format, seeded with real files
// that the sops library encrypted (comments, lists, key groups, rules): no
// input may panic, and no error may show a value of the file.
func FuzzDecrypt(f *testing.F) {
	k := newAgeKey(f)
	p := newPGPKey(f)
	keys := keyring{age: []age.Identity{k.id}, pgp: openpgp.EntityList{p}}
	one := []sopstest.Recipients{{Age: []string{k.recipient}}}
	for _, fm := range formats {
		for _, o := range []sopstest.Options{
			{Groups: one},
			{Groups: []sopstest.Recipients{{Age: []string{k.recipient}}, {PGP: []*openpgp.Entity{p}}}, ShamirThreshold: 2},
			{Groups: one, EncryptedRegex: "^(password|stringData|db)$", MACOnlyEncrypted: true},
			{Groups: one, EncryptedCommentRegex: "sops:enc"},
		} {
			enc, _, err := sopstest.EncryptWith([]byte(fm.plain), fm.s, o)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(enc, uint8(fm.f))
		}
		f.Add([]byte(fm.plain), uint8(fm.f))
	}
	f.Add([]byte("a: &x [*x, *x]\nsops: {mac: x}\n"), uint8(YAML))
	f.Add([]byte("sops_mac=x\nsops_age__list_99999999999__map_enc=x\n"), uint8(Dotenv))
	f.Fuzz(func(t *testing.T, in []byte, format uint8) {
		file, err := Parse(in, Format(format%5))
		if err != nil {
			noValue(t, err)
			return
		}
		key, err := file.DataKey(keys.open)
		if err != nil {
			return
		}
		if _, err := file.Decrypt(key); err != nil {
			noValue(t, err)
		}
	})
}

func noValue(t *testing.T, err error) {
	t.Helper()
	if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "ENC[") {
		t.Fatalf("the error shows a value: %v", err)
	}
}
