package reconciler_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/internal/sopstest"
)

// sopsSecret is a Secret db holding password, SOPS-encrypted for the age
// recipient, with its metadata in clear as Flux advises.
func sopsSecret(t *testing.T, password, recipient string) string {
	t.Helper()
	b, err := sopstest.Encrypt([]byte("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: "+password+"\n"),
		sopstest.YAML, sopstest.Recipients{Age: []string{recipient}}, "^(data|stringData)$")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ageKey(t *testing.T) (identity, recipient string) {
	t.Helper()
	id, r, err := sopstest.AgeKey()
	if err != nil {
		t.Fatal(err)
	}
	return id, r
}

// TestSOPSDecryption: a signed artifact holding a SOPS-encrypted Secret is
// applied decrypted with the site's age key, read as the Release's
// ServiceAccount from spec.decryption.secretRef. Without the key Secret
// the Release fails naming it; a drift check decrypts again; a wrong key
// fails the build naming the file and the recipient it was encrypted for,
// and leaves the old state in place; no value or private key ever shows
// in the controller's logs, events or status.
func TestSOPSDecryption(t *testing.T) {
	const (
		password1 = "sops-pw-first-5e2a91"
		password2 = "sops-pw-second-c47d03"
		drifted   = "changed-by-hand"
	)
	siteID, siteRecipient := ageKey(t)
	wrongID, wrongRecipient := ageKey(t)
	logs := &lockedBuffer{}
	h := newHarness(t, harnessOptions{logs: logs})
	files := func(version, password string) map[string]string {
		return map[string]string{
			"kustomization.yaml": "resources: [app.yaml, secrets/db.yaml]\n",
			"app.yaml":           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {version: " + version + "}\n",
			"secrets/db.yaml":    sopsSecret(t, password, siteRecipient),
		}
	}
	d1 := h.pushSigned("v1", "v1", files("v1", password1))
	h.release("app", "v1", func(r *v1alpha1.Release) {
		r.Spec.Decryption = &v1alpha1.Decryption{Provider: v1alpha1.DecryptionProviderSOPS, SecretRef: v1alpha1.LocalObjectReference{Name: "sops-keys"}}
	})

	// The key Secret is missing: named, nothing applied.
	rel := h.failsWith("app", v1alpha1.ReasonDecryptionKeysFailed)
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "Secret "+h.ns+"/sops-keys") {
		t.Errorf("message %q does not name Secret sops-keys", msg)
	}
	keys := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sops-keys", Namespace: h.ns},
		Data:       map[string][]byte{"site.agekey": []byte("# the site's key\n" + siteID + "\n")},
	}
	h.create(keys) // the watch on the key Secret brings the next reconcile
	h.readyAt("app", d1)
	if got := string(h.secretData("db")["password"]); got != password1 {
		t.Errorf("Secret db password = %q, want the decrypted value", got)
	}

	// Drift: the check rebuilds from the artifact cache, decrypting again,
	// and puts the decrypted value back.
	sec := &corev1.Secret{}
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "db"}, sec); err != nil {
		t.Fatal(err)
	}
	sec.Data["password"] = []byte(drifted)
	if err := h.env.Client.Update(h.ctx, sec); err != nil {
		t.Fatal(err)
	}
	h.update("app", func(r *v1alpha1.Release) {
		if r.Annotations == nil {
			r.Annotations = map[string]string{}
		}
		r.Annotations[v1alpha1.ReconcileRequestAnnotation] = "drift"
	})
	h.eventually("app", "the drifted password corrected", 30*time.Second, func(*v1alpha1.Release) bool {
		return string(h.secretData("db")["password"]) == password1
	})
	h.waitEvent(v1alpha1.ReasonDriftCorrected, "Secret "+h.ns+"/db")

	// A wrong key: v2 is encrypted for the site's key, the Secret now holds
	// another one. The file and both recipients are named; v1 stays.
	keys.Data = map[string][]byte{"site.agekey": []byte(wrongID + "\n")}
	if err := h.env.Client.Update(h.ctx, keys); err != nil {
		t.Fatal(err)
	}
	d2 := h.pushSigned("v2", "v2", files("v2", password2))
	h.update("app", func(r *v1alpha1.Release) { r.Spec.Ref.Tag = "v2" })
	rel = h.failsWith("app", v1alpha1.ReasonBuildFailed)
	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{"secrets/db.yaml", "encrypted for " + siteRecipient, "open " + wrongRecipient, "Secret " + h.ns + "/sops-keys"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if got := string(h.secretData("db")["password"]); got != password1 {
		t.Errorf("after the failed decryption Secret db password = %q, want v1's", got)
	}
	if got := h.mustConfigMap("app").Data["version"]; got != "v1" {
		t.Errorf("ConfigMap app version = %q, want v1 left in place", got)
	}

	// The right key again: v2 applies.
	keys.Data = map[string][]byte{"old.agekey": []byte(wrongID + "\n"), "site.agekey": []byte(siteID + "\n")}
	if err := h.env.Client.Update(h.ctx, keys); err != nil {
		t.Fatal(err)
	}
	h.readyAt("app", d2)
	if got := string(h.secretData("db")["password"]); got != password2 {
		t.Errorf("Secret db password = %q, want v2's decrypted value", got)
	}

	h.assertNoValues(logs, password1, password2, siteID, wrongID)
}
