package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/audit"
	"airlock.dev/airlock/internal/envtestenv"
	"airlock.dev/airlock/verify"
)

// `airlock trace deployment/web` on a Deployment the controller applied
// from a signed artifact, then corrected after a change outside airlock:
// the trace names the Release, the digest, revision and source, the
// signer, when airlock last applied the object, and the drift correction.
func TestTraceAppliedDeployment(t *testing.T) {
	env := envtestenv.Start(t)
	ctx := context.Background()
	ns, kubeconfig, url, key := signedRepo(t, env, "ci")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(webDeploymentYAML("registry.example/web:v1")), 0o644); err != nil {
		t.Fatal(err)
	}
	const revision, source = "main@sha1:4f2a9c0d1e7b3a5c6d8e9f0a1b2c3d4e5f6a7b8c", "https://git.example/team/web"
	pushed, err := artifact.Push(ctx, mustParse(t, url+":v1"), dir, artifact.PushOptions{Remote: artifact.RemoteOptions{PlainHTTPInsecure: true}, Revision: revision, Source: source})
	if err != nil {
		t.Fatal(err)
	}
	digest := pushed.Digest
	if _, err := verify.Sign(ctx, mustParse(t, url+"@"+digest), key, nil, artifact.RemoteOptions{PlainHTTPInsecure: true}); err != nil {
		t.Fatal(err)
	}
	startController(t, env, ns)
	wait := false
	rel := &v1alpha1.Release{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: v1alpha1.ReleaseSpec{
			URL: url, Ref: v1alpha1.ArtifactRef{Tag: "v1"}, Insecure: true, Wait: &wait,
			Interval: metav1.Duration{Duration: time.Hour},
			Verify:   &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "cosign-keys"}},
		},
	}
	if err := env.Client.Create(ctx, rel); err != nil {
		t.Fatal(err)
	}
	waitReady(t, env, rel, digest)

	// A change outside airlock, then a reconcile request: the controller
	// puts the Deployment back and records the correction.
	var dep appsv1.Deployment
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &dep); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Truncate(time.Second)
	patch := client.MergeFrom(dep.DeepCopy())
	five := int32(5)
	dep.Spec.Replicas = &five
	if err := env.Client.Patch(ctx, &dep, patch, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(rel), rel); err != nil {
		t.Fatal(err)
	}
	patch = client.MergeFrom(rel.DeepCopy())
	rel.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: time.Now().Format(time.RFC3339Nano)}
	if err := env.Client.Patch(ctx, rel, patch); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(clusterWait)
	for rel.Status.DriftCorrections == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no drift correction recorded after %s", clusterWait)
		}
		time.Sleep(200 * time.Millisecond)
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(rel), rel); err != nil {
			t.Fatal(err)
		}
	}

	out, stderr, code := airlock(t, "trace", "deploy/web", "-n", ns, "--kubeconfig", kubeconfig, "-o", "json")
	if code != 0 {
		t.Fatalf("airlock trace deploy/web -o json exited %d: %s%s", code, out, stderr)
	}
	var got audit.Trace
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	if got.Object != (audit.TracedObject{APIVersion: "apps/v1", Kind: "Deployment", Namespace: ns, Name: "web"}) {
		t.Errorf("object = %+v", got.Object)
	}
	if got.Release != (audit.ReleaseRef{Namespace: ns, Name: "web"}) || !got.InInventory {
		t.Errorf("release = %+v, in inventory %t; want %s/web and listed", got.Release, got.InInventory, ns)
	}
	if got.Digest != digest || got.Revision != revision || got.Source != source {
		t.Errorf("digest, revision, source = %s, %s, %s; want %s, %s, %s", got.Digest, got.Revision, got.Source, digest, revision, source)
	}
	if len(got.Signers) != 1 || got.Signers[0].Name != "ci" {
		t.Errorf("signers = %+v, want the key ci", got.Signers)
	}
	if got.LastApplied == nil || got.LastApplied.Before(before) {
		t.Errorf("last applied = %v, want the drift correction's apply, at or after %s", got.LastApplied, before)
	}
	if got.DigestAppliedAt == nil {
		t.Error("the digest's apply time is missing")
	}
	if len(got.DriftCorrections) != 1 || !strings.Contains(got.DriftCorrections[0].Message, "Deployment "+ns+"/web") || got.ReleaseDriftCorrections != 1 {
		t.Errorf("drift corrections = %+v (Release total %d), want the one on Deployment %s/web", got.DriftCorrections, got.ReleaseDriftCorrections, ns)
	}

	// The text form says the same.
	out, stderr, code = airlock(t, "trace", "deployment/web", "-n", ns, "--kubeconfig", kubeconfig)
	if code != 0 {
		t.Fatalf("airlock trace deployment/web exited %d: %s%s", code, out, stderr)
	}
	for _, want := range []string{"Release " + ns + "/web", digest, revision, source, "ci (", "1 on this object in the events kept; 1 objects in all"} {
		if !strings.Contains(out, want) {
			t.Errorf("trace output lacks %q:\n%s", want, out)
		}
	}

	// An object airlock did not apply is named as such.
	if err := env.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "by-hand", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = airlock(t, "trace", "configmap/by-hand", "-n", ns, "--kubeconfig", kubeconfig)
	if code == 0 || !strings.Contains(stderr, "ConfigMap "+ns+"/by-hand: not applied by airlock") {
		t.Errorf("trace of an object airlock did not apply: exit %d, %s%s", code, out, stderr)
	}
}
