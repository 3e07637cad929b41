package main

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/verify"
)

// TestRollbackPreviewVerifies: the preview of a rollback verifies the
// target digest under the Release's own trust (spec.verify's keys Secret
// and the ClusterTrustPolicies that cover spec.url, with their keys in the
// controller's namespace) before it pulls and dry-runs anything, and
// refuses a digest that does not verify, naming it and why.
func TestRollbackPreviewVerifies(t *testing.T) {
	f := releaseFixture(t)
	ctx := context.Background()
	ns, ctrlNS := f.env.Namespace(t), f.env.Namespace(t)
	reg := registrytest.New(t)
	url := "oci://" + reg.Addr + "/team/secure"
	remote := artifact.RemoteOptions{PlainHTTPInsecure: true}
	key := func() (*verify.PrivateKey, []byte) {
		t.Helper()
		priv, pub, err := verify.GenerateKeyPair([]byte("pw"))
		if err != nil {
			t.Fatal(err)
		}
		k, err := verify.LoadPrivateKey(priv, []byte("pw"))
		if err != nil {
			t.Fatal(err)
		}
		return k, pub
	}
	team, teamPub := key()
	stranger, _ := key()
	site, sitePub := key()
	sign := func(digest string, k *verify.PrivateKey) {
		t.Helper()
		if _, err := verify.Sign(ctx, mustParse(t, url+"@"+digest), k, nil, remote); err != nil {
			t.Fatal(err)
		}
	}
	v0 := pushDir(t, url+":v0", "v0", map[string]string{"a.yaml": cmYAML("a", "0")})
	v1 := pushDir(t, url+":v1", "v1", map[string]string{"a.yaml": cmYAML("a", "1")})
	v2 := pushDir(t, url+":v2", "v2", map[string]string{"a.yaml": cmYAML("a", "2")})
	v3 := pushDir(t, url+":v3", "v3", map[string]string{"a.yaml": cmYAML("a", "3")})
	// v0 is never signed; v1 is signed by a key the Release does not trust;
	// v2 by spec.verify's key only; v3 by it and by the policy's key.
	sign(v1, stranger)
	sign(v2, team)
	sign(v3, team)
	sign(v3, site)
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "cosign-keys", Namespace: ns}, Data: map[string][]byte{"team.pub": teamPub}},
		{ObjectMeta: metav1.ObjectMeta{Name: "site-keys", Namespace: ctrlNS}, Data: map[string][]byte{"site.pub": sitePub}},
	} {
		if err := f.env.Client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}, Spec: v1alpha1.ReleaseSpec{
		URL: url, Ref: v1alpha1.ArtifactRef{Tag: "v4"}, Insecure: true,
		Verify: &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "cosign-keys"}}}}
	if err := f.env.Client.Create(ctx, rel); err != nil {
		t.Fatal(err)
	}
	applied := "sha256:" + strings.Repeat("e", 64)
	rel.Status = v1alpha1.ReleaseStatus{LastAppliedDigest: applied, History: []v1alpha1.HistoryEntry{
		{Digest: applied, AppliedAt: metav1.NewTime(now().Add(-time.Minute)), Health: v1alpha1.HealthUnhealthy},
		{Digest: v3, AppliedAt: metav1.NewTime(now().Add(-2 * time.Minute)), Health: v1alpha1.HealthHealthy},
		{Digest: v2, AppliedAt: metav1.NewTime(now().Add(-3 * time.Minute)), Health: v1alpha1.HealthHealthy},
		{Digest: v1, AppliedAt: metav1.NewTime(now().Add(-4 * time.Minute)), Health: v1alpha1.HealthHealthy},
		{Digest: v0, AppliedAt: metav1.NewTime(now().Add(-5 * time.Minute)), Health: v1alpha1.HealthHealthy},
	}}
	if err := f.env.Client.Status().Update(ctx, rel); err != nil {
		t.Fatal(err)
	}
	base := []string{"rollback", "release", "app", "-n", ns, "--kubeconfig", f.kubeconfig, "--controller-namespace", ctrlNS, "--yes"}
	refused := func(digest string, why ...string) {
		t.Helper()
		out, stderr, code := airlock(t, append(base, "--to", digest)...)
		if code == 0 || strings.Contains(out, "Added") {
			t.Errorf("rollback to %s exited %d and printed a preview:\n%s%s\nwant it refused", digest, code, out, stderr)
		}
		for _, w := range append([]string{digest}, why...) {
			if !strings.Contains(stderr, w) {
				t.Errorf("rollback to %s: the error does not name %q:\n%s", digest, w, stderr)
			}
		}
		if r := (&v1alpha1.Release{}); f.env.Client.Get(ctx, client.ObjectKeyFromObject(rel), r) != nil || r.Spec.Ref.Digest != "" {
			t.Fatalf("a refused rollback pinned the Release: %+v", r.Spec.Ref)
		}
	}
	refused(v0, "spec.verify", "no signatures")
	refused(v1, "spec.verify", "no signature by a trusted key")

	// A ClusterTrustPolicy covering spec.url adds its keys: v2, signed by
	// the Release's key only, no longer verifies.
	policy := &v1alpha1.ClusterTrustPolicy{ObjectMeta: metav1.ObjectMeta{Name: "site-" + ns}, Spec: v1alpha1.ClusterTrustPolicySpec{
		Repositories: []string{reg.Addr + "/team/secure"}, KeysSecretRef: v1alpha1.LocalObjectReference{Name: "site-keys"}}}
	if err := f.env.Client.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.env.Client.Delete(context.Background(), policy) })
	refused(v2, "ClusterTrustPolicy site-"+ns)

	// v3 verifies under both: the preview names its signers, and pins.
	out, stderr, code := airlock(t, append(base, "--to", v3)...)
	if code != 0 || !strings.Contains(out, "Verified: "+v3+" signed by") || !strings.Contains(out, "ClusterTrustPolicy site-"+ns) {
		t.Fatalf("rollback to the trusted %s exited %d:\n%s%s\nwant the preview naming its signers", v3, code, out, stderr)
	}
}

// TestRollbackPreviewOfAChart: the preview of a rollback of a Helm chart
// Release renders the chart as the controller would, with the values of
// spec.chart.valuesFrom (read as the CLI's user) and spec.chart.values.
func TestRollbackPreviewOfAChart(t *testing.T) {
	f := releaseFixture(t)
	ctx := context.Background()
	ns := f.env.Namespace(t)
	reg := registrytest.New(t)
	url := "oci://" + reg.Addr + "/charts/web"
	remote := artifact.RemoteOptions{PlainHTTPInsecure: true}
	priv, pub, err := verify.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := verify.LoadPrivateKey(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := artifact.PushChart(ctx, mustParse(t, url+":1.0.0"), "../../examples/charts/web", artifact.PushOptions{Remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify.Sign(ctx, pushed.Ref, key, nil, remote); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "cosign-keys", Namespace: ns}, Data: map[string][]byte{"team.pub": pub}},
		{ObjectMeta: metav1.ObjectMeta{Name: "web-values", Namespace: ns}, Data: map[string][]byte{"site.yaml": []byte("auth: {password: pw}\n")}},
	} {
		if err := f.env.Client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: v1alpha1.ReleaseSpec{
		URL: url, Ref: v1alpha1.ArtifactRef{Tag: "1.1.0"}, Insecure: true,
		Verify: &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "cosign-keys"}},
		Chart:  &v1alpha1.ChartSpec{ReleaseName: "shop", ValuesFrom: []v1alpha1.ChartValuesReference{{Kind: "Secret", Name: "web-values", ValuesKey: "site.yaml"}}}}}
	if err := f.env.Client.Create(ctx, rel); err != nil {
		t.Fatal(err)
	}
	applied := "sha256:" + strings.Repeat("e", 64)
	rel.Status = v1alpha1.ReleaseStatus{LastAppliedDigest: applied, History: []v1alpha1.HistoryEntry{
		{Digest: applied, AppliedAt: metav1.NewTime(now().Add(-time.Minute)), Health: v1alpha1.HealthUnhealthy},
		{Digest: pushed.Digest, AppliedAt: metav1.NewTime(now().Add(-2 * time.Minute)), Health: v1alpha1.HealthHealthy},
	}}
	if err := f.env.Client.Status().Update(ctx, rel); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := airlock(t, "rollback", "release", "web", "-n", ns, "--kubeconfig", f.kubeconfig, "--to", pushed.Digest, "--yes")
	if code != 0 {
		t.Fatalf("rollback exited %d:\n%s%s", code, out, stderr)
	}
	for _, want := range []string{"Secret " + ns + "/shop-auth", "ConfigMap " + ns + "/shop-page", "Deployment " + ns + "/shop", "Service " + ns + "/shop"} {
		if !strings.Contains(out, want) {
			t.Errorf("the preview does not name %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "shop-test") {
		t.Errorf("the preview names the hook Pod:\n%s", out)
	}
}
