package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/envtestenv"
	"airlock.dev/airlock/internal/sopstest"
	"airlock.dev/airlock/verify"
)

// `airlock diff release` on a Release the controller applied from a signed
// v1: against v2 it lists the ConfigMap v2 adds, a diff of the ConfigMap
// and the Secret it changes (the Secret's values masked, in the text and
// in the JSON), and the ConfigMap it prunes, and exits 1; against v1 it
// finds nothing (the Release's substitution applied, as the controller
// does) and exits 0; an unsigned candidate is refused with exit 2.
func TestDiffRelease(t *testing.T) {
	env := envtestenv.Start(t)
	ctx := context.Background()
	ns, kubeconfig, url, key := signedRepo(t, env, "ci")
	const oldSecret, newSecret = "hunter2-old-value", "s3cret-new-value"
	secretYAML := func(password string) string {
		return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  user: admin\n  password: " + password + "\n"
	}
	// same holds a variable of spec.postBuild: were the candidate built
	// without it, same would differ from the applied one.
	same := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: same\ndata:\n  greeting: ${GREETING}\n"
	pushSigned := func(tag string, files map[string]string) string {
		d := pushDir(t, url+":"+tag, tag, files)
		if _, err := verify.Sign(ctx, mustParse(t, url+"@"+d), key, nil, artifact.RemoteOptions{PlainHTTPInsecure: true}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	v1 := pushSigned("v1", map[string]string{"same.yaml": same, "settings.yaml": cmYAML("settings", "1"), "old.yaml": cmYAML("old", "0"), "creds.yaml": secretYAML(oldSecret)})
	pushSigned("v2", map[string]string{"same.yaml": same, "settings.yaml": cmYAML("settings", "2"), "extra.yaml": cmYAML("extra", "0"), "creds.yaml": secretYAML(newSecret)})
	// v4 adds a CRD and an object of its kind, which the cluster does not
	// serve yet: both are to be added.
	crd := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.diffrel.example.com
spec:
  group: diffrel.example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`
	widget := "apiVersion: diffrel.example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n"
	pushSigned("v4", map[string]string{"same.yaml": same, "settings.yaml": cmYAML("settings", "1"), "old.yaml": cmYAML("old", "0"), "creds.yaml": secretYAML(oldSecret), "crd.yaml": crd, "widget.yaml": widget})
	unsigned := pushDir(t, url+":v3", "v3", map[string]string{"same.yaml": same})
	startController(t, env, ns)
	wait := false
	rel := &v1alpha1.Release{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: v1alpha1.ReleaseSpec{
			URL: url, Ref: v1alpha1.ArtifactRef{Tag: "v1"}, Insecure: true, Wait: &wait,
			Interval:  metav1.Duration{Duration: time.Hour},
			Verify:    &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "cosign-keys"}},
			PostBuild: &v1alpha1.PostBuild{Substitute: map[string]string{"GREETING": "hello"}},
		},
	}
	createUntilCleanup(t, env, rel)
	rel = waitReady(t, env, rel, v1)
	base := []string{"diff", "release", "app", "-n", ns, "--kubeconfig", kubeconfig, "--controller-namespace", ns}
	noSecret := func(what, out string) {
		t.Helper()
		for _, s := range []string{oldSecret, newSecret} {
			if strings.Contains(out, s) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(s))) {
				t.Errorf("%s shows a Secret's value %q:\n%s", what, s, out)
			}
		}
	}

	out, stderr, code := airlock(t, append(base, "--ref", "v2")...)
	if code != 1 {
		t.Fatalf("diff against v2 exited %d, want 1: %s%s", code, out, stderr)
	}
	noSecret("the diff", out)
	var d releaseDiff
	jout, stderr, code := airlock(t, append(base, "--ref", "v2", "-o", "json")...)
	if code != 1 {
		t.Fatalf("diff -o json against v2 exited %d, want 1: %s%s", code, jout, stderr)
	}
	noSecret("the JSON diff", jout)
	if err := json.Unmarshal([]byte(jout), &d); err != nil {
		t.Fatalf("decode %s: %v", jout, err)
	}
	var changed []string
	for _, c := range d.Changed {
		changed = append(changed, c.Object)
	}
	if !reflect.DeepEqual(d.Added, []string{"ConfigMap " + ns + "/extra"}) ||
		!reflect.DeepEqual(changed, []string{"ConfigMap " + ns + "/settings", "Secret " + ns + "/creds"}) && !reflect.DeepEqual(changed, []string{"Secret " + ns + "/creds", "ConfigMap " + ns + "/settings"}) ||
		!reflect.DeepEqual(d.Pruned, []string{"ConfigMap " + ns + "/old"}) || d.Unchanged != 1 {
		t.Errorf("diff = added %v, changed %v, pruned %v, unchanged %d", d.Added, changed, d.Pruned, d.Unchanged)
	}
	if len(d.Signers) != 1 || d.Signers[0].Name != "ci" || d.Signers[0].For != "spec.verify" {
		t.Errorf("signers = %+v, want ci for spec.verify", d.Signers)
	}
	for _, c := range d.Changed {
		if strings.HasPrefix(c.Object, "Secret") && (!strings.Contains(c.Diff, "-  password: '*** (old value)'") || !strings.Contains(c.Diff, "+  password: '*** (new value)'") || strings.Contains(c.Diff, "user:") && !strings.Contains(c.Diff, " user: '*** (unchanged)'")) {
			t.Errorf("the Secret's diff does not mark the changed value and the unchanged one:\n%s", c.Diff)
		}
	}
	fp := d.Signers[0].Fingerprint
	placeholders := strings.NewReplacer(ns, "NS", d.Digest, "DIGEST", shortHex(d.Digest), "SHORT", fp, "FP", shortFingerprint(fp), "FP")
	golden(t, "diff", placeholders.Replace(out))
	golden(t, "diff.json", placeholders.Replace(jout))

	// The applied digest changes nothing: exit 0.
	out, stderr, code = airlock(t, append(base, "--ref", "@"+v1)...)
	if code != 0 || !strings.Contains(out, "Unchanged: 4 objects") {
		t.Errorf("diff against the applied %s exited %d, want 0 and 4 unchanged: %s%s", v1, code, out, stderr)
	}

	jout, stderr, code = airlock(t, append(base, "--ref", "v4", "-o", "json")...)
	d = releaseDiff{}
	if err := json.Unmarshal([]byte(jout), &d); code != 1 || err != nil {
		t.Fatalf("diff against v4 exited %d (%v), want 1: %s%s", code, err, jout, stderr)
	}
	sort.Strings(d.Added)
	if want := []string{"CustomResourceDefinition widgets.diffrel.example.com", "Widget " + ns + "/w1"}; !reflect.DeepEqual(d.Added, want) || len(d.Changed)+len(d.Pruned) != 0 {
		t.Errorf("diff against v4: added %v, changed %v, pruned %v; want only %v added", d.Added, d.Changed, d.Pruned, want)
	}

	// An unsigned candidate is refused, named, with exit 2.
	out, stderr, code = airlock(t, append(base, "--ref", "v3")...)
	if code != 2 || strings.Contains(out, "Added") || !strings.Contains(stderr, unsigned) || !strings.Contains(stderr, "no signatures") {
		t.Errorf("diff against the unsigned %s exited %d: %s%s\nwant 2, refused naming the digest and why", unsigned, code, out, stderr)
	}
}

// `airlock diff release` builds a candidate with the Release's
// spec.decryption keys, read as the user, as the controller does: the
// applied SOPS-encrypted v1 is unchanged (exit 0), and v2's new password
// is a masked change (exit 1) that never shows either value. Without the
// keys the build refuses the encrypted file and the diff exits 2.
func TestDiffReleaseDecrypts(t *testing.T) {
	env := envtestenv.Start(t)
	ctx := context.Background()
	ns, kubeconfig, url, key := signedRepo(t, env, "ci")
	identity, recipient, err := sopstest.AgeKey()
	if err != nil {
		t.Fatal(err)
	}
	const oldSecret, newSecret = "sops-old-value-1", "sops-new-value-2"
	encrypted := func(password string) string {
		b, err := sopstest.Encrypt([]byte("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: "+password+"\n"),
			sopstest.YAML, sopstest.Recipients{Age: []string{recipient}}, "^(data|stringData)$")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	pushSigned := func(tag string, files map[string]string) string {
		d := pushDir(t, url+":"+tag, tag, files)
		if _, err := verify.Sign(ctx, mustParse(t, url+"@"+d), key, nil, artifact.RemoteOptions{PlainHTTPInsecure: true}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	v1 := pushSigned("v1", map[string]string{"db.yaml": encrypted(oldSecret)})
	pushSigned("v2", map[string]string{"db.yaml": encrypted(newSecret)})
	if err := env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sops-keys", Namespace: ns}, Data: map[string][]byte{"site.agekey": []byte(identity)}}); err != nil {
		t.Fatal(err)
	}
	startController(t, env, ns)
	wait := false
	rel := &v1alpha1.Release{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: v1alpha1.ReleaseSpec{
			URL: url, Ref: v1alpha1.ArtifactRef{Tag: "v1"}, Insecure: true, Wait: &wait,
			Interval:   metav1.Duration{Duration: time.Hour},
			Verify:     &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "cosign-keys"}},
			Decryption: &v1alpha1.Decryption{Provider: v1alpha1.DecryptionProviderSOPS, SecretRef: v1alpha1.LocalObjectReference{Name: "sops-keys"}},
		},
	}
	createUntilCleanup(t, env, rel)
	waitReady(t, env, rel, v1)
	base := []string{"diff", "release", "app", "-n", ns, "--kubeconfig", kubeconfig, "--controller-namespace", ns}
	for _, c := range []struct {
		ref  string
		code int
		want string
	}{
		{"@" + v1, 0, "Unchanged: 1 objects"},
		{"v2", 1, "*** (new value)"},
	} {
		out, stderr, code := airlock(t, append(base, "--ref", c.ref)...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("diff against %s exited %d, want %d and %q: %s%s", c.ref, code, c.code, c.want, out, stderr)
		}
		for _, s := range []string{oldSecret, newSecret, identity} {
			if strings.Contains(out+stderr, s) || strings.Contains(out+stderr, base64.StdEncoding.EncodeToString([]byte(s))) {
				t.Errorf("diff against %s shows a secret %q:\n%s%s", c.ref, s, out, stderr)
			}
		}
	}
}

// createUntilCleanup creates rel and, when the test ends, deletes it and
// waits until it is gone, while the test's controller still runs to
// remove its finalizer: the API server is shared by the package's tests,
// and `get releases -A` in a later one must not list it.
func createUntilCleanup(t *testing.T, env *envtestenv.Env, rel *v1alpha1.Release) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, rel); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: rel.Namespace, Name: rel.Name}
	t.Cleanup(func() {
		if err := env.Client.Delete(ctx, &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete Release %s: %v", key, err)
			return
		}
		for deadline := time.Now().Add(clusterWait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if err := env.Client.Get(ctx, key, &v1alpha1.Release{}); apierrors.IsNotFound(err) {
				return
			}
		}
		t.Errorf("Release %s is still there %s after its deletion", key, clusterWait)
	})
}
