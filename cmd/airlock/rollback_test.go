package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/internal/testtree"
	"airlock.dev/airlock/verify"
)

func TestHistoryRelease(t *testing.T) {
	f := releaseFixture(t)
	out, stderr, code := airlock(t, "history", "release", "hello", "--kubeconfig", f.kubeconfig)
	if code != 0 {
		t.Fatalf("history exited %d: %s", code, stderr)
	}
	golden(t, "hello", out)

	out, stderr, code = airlock(t, "history", "release", "hello", "--kubeconfig", f.kubeconfig, "-o", "json")
	var entries []v1alpha1.HistoryEntry
	if code != 0 || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 2 || entries[0].Digest != digestA || entries[1].Digest != digestB {
		t.Errorf("history -o json exited %d, printed %q %q; want the two entries", code, out, stderr)
	}
	_, stderr, code = airlock(t, "history", "release", "fresh", "--kubeconfig", f.kubeconfig)
	if code != 0 || !strings.Contains(stderr, "has applied nothing yet") {
		t.Errorf("history of a fresh Release exited %d: %s", code, stderr)
	}
}

// pushDir pushes files to ref and returns the digest.
func pushDir(t *testing.T, ref string, revision string, files map[string]string) string {
	t.Helper()
	dir := testtree.Write(t, files)
	res, err := artifact.Push(context.Background(), mustParse(t, ref), dir, artifact.PushOptions{Remote: artifact.RemoteOptions{PlainHTTPInsecure: true}, Revision: revision})
	if err != nil {
		t.Fatal(err)
	}
	return res.Digest
}

func cmYAML(name, value string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  k: \"" + value + "\"\n"
}

func TestRollbackRelease(t *testing.T) {
	f := releaseFixture(t)
	ctx := context.Background()
	ns := f.env.Namespace(t)
	reg := registrytest.New(t)
	url := "oci://" + reg.Addr + "/team/app"
	v1 := pushDir(t, url+":v1", "v1", map[string]string{"a.yaml": cmYAML("a", "1"), "b.yaml": cmYAML("b", "1")})
	v2 := pushDir(t, url+":v2", "v2", map[string]string{"a.yaml": cmYAML("a", "2"), "c.yaml": cmYAML("c", "2")})
	// Both signed by the key the Release trusts: the preview verifies v1.
	priv, pub, err := verify.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := verify.LoadPrivateKey(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	ci, err := verify.LoadPublicKey("ci", pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{v1, v2} {
		if _, err := verify.Sign(ctx, mustParse(t, url+"@"+d), key, nil, artifact.RemoteOptions{PlainHTTPInsecure: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cosign-keys", Namespace: ns}, Data: map[string][]byte{"ci.pub": pub}}); err != nil {
		t.Fatal(err)
	}

	// The cluster as the controller left it after applying v2.
	labels := map[string]string{v1alpha1.NameLabel: "app", v1alpha1.NamespaceLabel: ns}
	for _, name := range []string{"a", "c"} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}, Data: map[string]string{"k": "2"}}
		if err := f.env.Client.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: v1alpha1.ReleaseSpec{URL: url, Ref: v1alpha1.ArtifactRef{Tag: "v2"}, Insecure: true,
			Verify: &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "cosign-keys"}}}}
	if err := f.env.Client.Create(ctx, rel); err != nil {
		t.Fatal(err)
	}
	fixed := now()
	rel.Status = v1alpha1.ReleaseStatus{
		LastAppliedDigest: v2, LastAppliedRevision: "v2",
		Inventory:    []v1alpha1.ObjectRef{{Version: "v1", Kind: "ConfigMap", Namespace: ns, Name: "a"}, {Version: "v1", Kind: "ConfigMap", Namespace: ns, Name: "c"}},
		FailedDigest: v2,
		History: []v1alpha1.HistoryEntry{
			{Digest: v2, AppliedAt: metav1.NewTime(fixed.Add(-10 * time.Minute)), Revision: "v2", Signers: []string{"ci"}, Health: v1alpha1.HealthUnhealthy, RolledBack: true},
			{Digest: v1, AppliedAt: metav1.NewTime(fixed.Add(-2 * time.Hour)), Revision: "v1", Signers: []string{"ci"}, Health: v1alpha1.HealthHealthy},
		},
	}
	// v2 is applied and unhealthy, and its automatic rollback failed: a
	// person rolls back by hand.
	if err := f.env.Client.Status().Update(ctx, rel); err != nil {
		t.Fatal(err)
	}
	get := func() *v1alpha1.Release {
		t.Helper()
		r := &v1alpha1.Release{}
		if err := f.env.Client.Get(ctx, client.ObjectKeyFromObject(rel), r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	anonymize := func(s string) string {
		// Placeholders as long as what they replace keep the columns aligned.
		d1, d2 := "sha256:"+strings.Repeat("1", 64), "sha256:"+strings.Repeat("2", 64)
		return strings.NewReplacer(v1, d1, v2, d2, shortHex(v1), shortHex(d1), shortHex(v2), shortHex(d2), ci.Fingerprint[:12], "fingerprint1", ns, "NS", reg.Addr, "REGISTRY").Replace(s)
	}
	base := []string{"rollback", "release", "app", "-n", ns, "--kubeconfig", f.kubeconfig}

	// Not confirmed: the preview, and nothing changes.
	out, stderr, code := airlock(t, append(base, "--to", v1)...)
	if code != 1 || !strings.Contains(stderr, "not confirmed") {
		t.Errorf("rollback without --yes and no answer exited %d: %s", code, stderr)
	}
	golden(t, "preview", anonymize(out))
	if r := get(); r.Spec.Ref.Digest != "" || r.Annotations[v1alpha1.PinnedByRollbackAnnotation] != "" {
		t.Fatalf("an unconfirmed rollback changed the Release: ref %+v annotations %v", r.Spec.Ref, r.Annotations)
	}
	if cm := (&corev1.ConfigMap{}); f.env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "a"}, cm) != nil || cm.Data["k"] != "2" {
		t.Errorf("the dry-run changed ConfigMap a: %v", cm.Data)
	}

	// History, with the rolled-back marker.
	out, stderr, code = airlock(t, "history", "release", "app", "-n", ns, "--kubeconfig", f.kubeconfig)
	if code != 0 {
		t.Fatalf("history exited %d: %s", code, stderr)
	}
	golden(t, "history", anonymize(out))

	// --retry asks the controller, once, to apply the held digest again.
	if out, stderr, code := airlock(t, "reconcile", "release", "app", "-n", ns, "--retry", "--kubeconfig", f.kubeconfig); code != 0 {
		t.Fatalf("reconcile --retry exited %d: %s%s", code, out, stderr)
	}
	if a := get().Annotations; a[v1alpha1.RetryRequestAnnotation] == "" || a[v1alpha1.RetryRequestAnnotation] != a[v1alpha1.ReconcileRequestAnnotation] {
		t.Errorf("reconcile --retry set annotations %v; want %s equal to %s", a, v1alpha1.RetryRequestAnnotation, v1alpha1.ReconcileRequestAnnotation)
	}

	// A digest the Release never applied is refused.
	if _, stderr, code := airlock(t, append(base, "--to", digestC, "--yes")...); code != 1 || !strings.Contains(stderr, "not in status.history") {
		t.Errorf("rollback to an unknown digest exited %d: %s", code, stderr)
	}

	// Confirmed: pinned to v1, the previous ref kept.
	if out, stderr, code := airlock(t, append(base, "--to", v1, "--yes")...); code != 0 || !strings.Contains(out, "--unpin") {
		t.Fatalf("rollback --yes exited %d: %s%s", code, out, stderr)
	}
	r := get()
	if r.Spec.Ref.Digest != v1 || r.Spec.Ref.Tag != "" || r.Annotations[v1alpha1.PinnedByRollbackAnnotation] != `{"tag":"v2"}` {
		t.Errorf("after rollback: ref %+v, annotation %q; want digest %s and the tag v2 recorded", r.Spec.Ref, r.Annotations[v1alpha1.PinnedByRollbackAnnotation], v1)
	}
	out, _, _ = airlock(t, "describe", "release", "app", "-n", ns, "--kubeconfig", f.kubeconfig)
	if !strings.Contains(out, "Pinned:") || !strings.Contains(out, "Rolled back from:") || !strings.Contains(out, "airlock rollback release app -n "+ns+" --unpin") {
		t.Errorf("describe does not show the pin and how to un-pin:\n%s", out)
	}

	// Un-pinned: the tag is back.
	if out, stderr, code := airlock(t, append(base, "--unpin")...); code != 0 {
		t.Fatalf("--unpin exited %d: %s%s", code, out, stderr)
	}
	r = get()
	if r.Spec.Ref.Digest != "" || r.Spec.Ref.Tag != "v2" || r.Annotations[v1alpha1.PinnedByRollbackAnnotation] != "" {
		t.Errorf("after --unpin: ref %+v, annotations %v; want tag v2 and no annotation", r.Spec.Ref, r.Annotations)
	}
}

func TestRollbackTarget(t *testing.T) {
	h := func(d, rev string) v1alpha1.HistoryEntry { return v1alpha1.HistoryEntry{Digest: d, Revision: rev} }
	rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "apps"}}
	rel.Status.LastAppliedDigest = digestA
	// A was applied again by a rollback of C, after B.
	rel.Status.History = []v1alpha1.HistoryEntry{h(digestA, "v1"), h(digestC, "v3"), h(digestB, "v2"), h(digestA, "v1")}
	for _, tc := range []struct {
		name          string
		to, revision  string
		steps         int
		want, wantErr string
	}{
		{name: "one back by default", want: digestC},
		{name: "steps skip repeats of the applied digest", steps: 2, want: digestB},
		{name: "to", to: digestB, want: digestB},
		{name: "revision", revision: "v3", want: digestC},
		{name: "to the applied digest", to: digestA, wantErr: "already has"},
		{name: "unknown digest", to: "sha256:" + strings.Repeat("0", 64), wantErr: "not in status.history"},
		{name: "too many steps", steps: 3, wantErr: "3 digests back is not in status.history"},
		{name: "two selectors", to: digestB, steps: 1, wantErr: "one of --to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rollbackTarget(rel, tc.to, tc.revision, tc.steps)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got.Digest != tc.want {
				t.Fatalf("got %s, %v; want %s", got.Digest, err, tc.want)
			}
		})
	}
}
