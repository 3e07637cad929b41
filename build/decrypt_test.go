package build

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"

	"airlock.dev/airlock/internal/sopstest"

	"airlock.dev/airlock/internal/testtree"
)

const (
	secretPassword = "s3cret-pw-9d1e77"
	secretToken    = "tok-4b2f8a-never-shown"
	secretCert     = "-----cert-body-71c0ee-----"
)

const plainSecret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: " + secretPassword + "\n"

// siteKey is an age identity and its recipient, made for one test.
type siteKey struct{ identity, recipient string }

func newSiteKey(t testing.TB) siteKey {
	t.Helper()
	id, r, err := sopstest.AgeKey()
	if err != nil {
		t.Fatal(err)
	}
	return siteKey{id, r}
}

func (k siteKey) keys(t testing.TB) *Decryption {
	t.Helper()
	d := &Decryption{Source: "the test's keys"}
	if err := d.AddAge("site.agekey", []byte("# test only\n"+k.identity+"\n")); err != nil {
		t.Fatal(err)
	}
	return d
}

func encrypt(t testing.TB, plain string, f sopstest.Format, to sopstest.Recipients, regex string) string {
	t.Helper()
	b, err := sopstest.Encrypt([]byte(plain), f, to, regex)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), secretPassword) || strings.Contains(string(b), secretToken) {
		t.Fatalf("the encrypted file holds a value in clear:\n%s", b)
	}
	return string(b)
}

func secretValue(t *testing.T, o map[string]any, key string) string {
	t.Helper()
	str, _ := o["stringData"].(map[string]any)
	if s, ok := str[key].(string); ok {
		return s
	}
	data, _ := o["data"].(map[string]any)
	enc, _ := data[key].(string)
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatalf("data.%s: %v", key, err)
	}
	return string(b)
}

// TestDecrypt: SOPS-encrypted Secrets and secretGenerator files (dotenv,
// YAML, binary) are decrypted in memory with an age or a PGP key, under a
// site's overlay and substitution; the files on disk stay encrypted.
func TestDecrypt(t *testing.T) {
	staging := newSiteKey(t)
	production := newSiteKey(t)
	pgpEntity, pgpPrivate, err := sopstest.PGPKey("site")
	if err != nil {
		t.Fatal(err)
	}
	toStaging := sopstest.Recipients{Age: []string{staging.recipient}}
	files := map[string]string{
		"kustomization.yaml": `resources: [app.yaml, db.yaml]
secretGenerator:
- name: api
  envs: [api.env]
  files: [tls.crt, config.yaml]
`,
		"app.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  host: ${HOST}\n",
		"db.yaml":  encrypt(t, plainSecret, sopstest.YAML, toStaging, "^(data|stringData)$"),
		"api.env":  encrypt(t, "TOKEN="+secretToken+"\n", sopstest.Dotenv, toStaging, ""),
		"tls.crt":  encrypt(t, secretCert, sopstest.Binary, toStaging, ""),
		// Another site's Secret, in a component this build does not use:
		// it is never read, so the staging key need not open it.
		"components/production/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [db.yaml]\n",
		"components/production/db.yaml":            encrypt(t, plainSecret, sopstest.YAML, sopstest.Recipients{Age: []string{production.recipient}}, "^(data|stringData)$"),
		"config.yaml":                              encrypt(t, "user: admin\npassword: "+secretPassword+"\n", sopstest.YAML, toStaging, ""),
	}
	dir := testtree.Write(t, files)
	pgpKeys := &Decryption{}
	if err := pgpKeys.AddPGP("site.asc", pgpPrivate); err != nil {
		t.Fatal(err)
	}
	pgpDir := testtree.Write(t, map[string]string{"db.yaml": encrypt(t, plainSecret, sopstest.YAML, sopstest.Recipients{PGP: []*openpgp.Entity{pgpEntity}}, "")})

	t.Run("age, with an overlay and substitution", func(t *testing.T) {
		keys := staging.keys(t)
		var decrypted []string
		keys.OnDecrypt = func(f string) { decrypted = append(decrypted, f) }
		objs, err := Build(context.Background(), dir, "", "sha256:abc", Options{
			Decrypt:    keys,
			Substitute: &Substitution{Vars: map[string]string{"HOST": "db.staging"}, Strict: true},
			Site:       &Site{NamePrefix: "staging-", Labels: map[string]string{"site": "staging"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		db := find(t, objs, "Secret", "staging-db")
		if got := secretValue(t, db.Object, "password"); got != secretPassword {
			t.Errorf("Secret db password = %q, want the decrypted value", got)
		}
		if _, ok := db.Object["sops"]; ok {
			t.Error("the decrypted Secret still has its sops metadata")
		}
		if db.GetLabels()["site"] != "staging" {
			t.Errorf("the overlay was not applied to the decrypted Secret: labels %v", db.GetLabels())
		}
		var api map[string]any
		for _, o := range objs {
			if strings.HasPrefix(o.GetName(), "staging-api-") {
				api = o.Object
			}
		}
		if api == nil {
			t.Fatal("no generated Secret api")
		}
		if got := secretValue(t, api, "TOKEN"); got != secretToken {
			t.Errorf("api TOKEN = %q, want the value of the encrypted api.env", got)
		}
		if got := secretValue(t, api, "tls.crt"); got != secretCert {
			t.Errorf("api tls.crt = %q, want the content of the encrypted binary file", got)
		}
		if got := secretValue(t, api, "config.yaml"); !strings.Contains(got, secretPassword) || strings.Contains(got, "sops") {
			t.Errorf("api config.yaml = %q, want the decrypted YAML", got)
		}
		if got := strings.Join(decrypted, ","); got != "api.env,config.yaml,db.yaml,tls.crt" {
			t.Errorf("decrypted %s, want api.env,config.yaml,db.yaml,tls.crt", got)
		}
	})

	t.Run("PGP", func(t *testing.T) {
		objs, err := Build(context.Background(), pgpDir, "", "sha256:abc", Options{Decrypt: pgpKeys})
		if err != nil {
			t.Fatal(err)
		}
		if got := secretValue(t, find(t, objs, "Secret", "db").Object, "password"); got != secretPassword {
			t.Errorf("password = %q, want the decrypted value", got)
		}
	})

	refusals := []struct {
		name     string
		dir      string
		opts     Options
		file     string
		contains []string
	}{
		{"wrong key", dir, Options{Decrypt: production.keys(t)}, "api.env",
			[]string{"decrypt api.env", "none of the keys given opens it", "encrypted for " + staging.recipient, "the keys given open " + production.recipient, "the test's keys"}},
		{"no key", dir, Options{}, "api.env",
			[]string{"api.env", "SOPS-encrypted", "encrypted for " + staging.recipient, "spec.decryption", "--decrypt-key"}},
		{"PGP file, age key", pgpDir, Options{Decrypt: staging.keys(t)}, "db.yaml",
			[]string{"decrypt db.yaml", "encrypted for pgp:" + strings.ToUpper(fingerprint(pgpEntity))}},
		{"KMS keys only", testtree.Write(t, map[string]string{
			"kustomization.yaml": "resources: [db.yaml]\n",
			"db.yaml":            encrypt(t, plainSecret, sopstest.YAML, sopstest.Recipients{KMS: []string{"arn:aws:kms:eu-west-1:111122223333:key/0b1c"}}, "^(data|stringData)$"),
		}), Options{Decrypt: staging.keys(t)}, "db.yaml",
			[]string{"decrypt db.yaml", "none of the keys given opens it", "encrypted for kms (not supported here)"}},
		{"changed after encryption", testtree.Write(t, map[string]string{
			"db.yaml": strings.Replace(files["db.yaml"], "name: db", "name: other", 1),
		}), Options{Decrypt: staging.keys(t)}, "db.yaml",
			[]string{"decrypt db.yaml", "MAC does not match"}},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(context.Background(), tc.dir, "", "sha256:abc", tc.opts)
			var be *Error
			if !errors.As(err, &be) || be.File != tc.file {
				t.Fatalf("err = %v, want a build error naming %s", err, tc.file)
			}
			for _, want := range tc.contains {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			for _, v := range []string{secretPassword, secretToken, secretCert, staging.identity, production.identity} {
				if strings.Contains(err.Error(), v) {
					t.Errorf("the error shows a secret: %q", err)
				}
			}
		})
	}
}

func TestDecryptionKeys(t *testing.T) {
	k := newSiteKey(t)
	_, pgpPrivate, err := sopstest.PGPKey("site")
	if err != nil {
		t.Fatal(err)
	}
	d := &Decryption{}
	if err := d.AddKey("a", []byte(k.identity)); err != nil {
		t.Fatal(err)
	}
	if err := d.AddKey("b", pgpPrivate); err != nil {
		t.Fatal(err)
	}
	if d.Len() != 2 || d.Recipients()[0] != k.recipient || !strings.HasPrefix(d.Recipients()[1], "pgp:") {
		t.Errorf("%d keys, recipients %v", d.Len(), d.Recipients())
	}
	for name, content := range map[string]string{
		"not a key":  "hello",
		"public key": k.recipient,
	} {
		err := (&Decryption{}).AddAge("site.agekey", []byte(content))
		if err == nil || !strings.Contains(err.Error(), "site.agekey") || strings.Contains(err.Error(), content) {
			t.Errorf("%s: err = %v, want the key named and its content not shown", name, err)
		}
	}
}
