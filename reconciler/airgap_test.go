package reconciler_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	appsv1 "k8s.io/api/apps/v1"

	"airlock.dev/airlock/airgap"
	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/verify"
)

var plain = artifact.RemoteOptions{PlainHTTPInsecure: true}

// airGap pushes a signed artifact whose Deployment uses an image to a fresh
// upstream registry, exports it with its images, stops upstream and imports
// the tarball into the harness's registry under /airgap. It returns the
// upstream server (stopped), the artifact's upstream URL, its digest, and
// the image's digest at the site.
func airGap(t *testing.T, h *harness, up *registry.Server) (string, string, artifact.Reference) {
	t.Helper()
	ctx := context.Background()
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	iref, _ := name.ParseReference(up.Addr+"/team/svc:1.0", name.Insecure)
	if err := ggcrremote.Write(iref, img); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc\nspec:\n  selector:\n    matchLabels: {app: svc}\n  template:\n    metadata:\n      labels: {app: svc}\n    spec:\n      containers:\n      - name: svc\n        image: " + up.Addr + "/team/svc:1.0\n"
	if err := os.WriteFile(filepath.Join(dir, "deploy.yaml"), []byte(deploy), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "oci://" + up.Addr + "/team/app"
	ref, _ := artifact.ParseReference(url + ":v1")
	pushed, err := artifact.Push(ctx, ref, dir, artifact.PushOptions{Remote: plain, Source: "https://git.example.com/app", Revision: "main@sha1:2222222222222222222222222222222222222222"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify.Sign(ctx, pushed.Ref, h.key, nil, plain); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "site.tar")
	f, err := os.Create(tarball)
	if err != nil {
		t.Fatal(err)
	}
	lock, _, err := artifact.Export(ctx, ref, f, artifact.RelocateOptions{Src: plain, Images: []string{up.Addr + "/team/svc:1.0"}})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	up.Close()
	mirror, _ := artifact.ParseMirror("oci://" + h.reg.Addr + "/airgap")
	if _, err := airgap.Import(ctx, tarball, mirror, airgap.ImportOptions{Dst: plain}); err != nil {
		t.Fatal(err)
	}
	siteImage, _ := artifact.ParseReference("oci://" + h.reg.Addr + "/airgap/team/svc@" + lock.Images[0].Digest)
	return url, pushed.Digest, siteImage
}

func mirroredRelease(url string, preflight bool) func(*v1alpha1.Release) {
	return func(rel *v1alpha1.Release) {
		rel.Spec.URL = url
		rel.Spec.ImagesPreflight = preflight
		rel.Spec.Wait = ptr.To(false) // envtest runs no Deployment controller
	}
}

// TestMirrorAndPreflight: the controller applies an air-gapped artifact
// from the site through a mirror rule, never contacting upstream, after
// checking that its pinned images arrived.
func TestMirrorAndPreflight(t *testing.T) {
	up := registrytest.New(t)
	h := newHarness(t, harnessOptions{mirrorFrom: up.Addr})
	url, digest, _ := airGap(t, h, up)
	before := up.Requests()
	h.release("app", "v1", mirroredRelease(url, true))
	rel := h.readyAt("app", digest)
	if up.Requests() != before {
		t.Fatalf("the controller sent %d requests to the upstream registry", up.Requests()-before)
	}
	d := &appsv1.Deployment{}
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "svc"}, d); err != nil {
		t.Fatalf("the Deployment was not applied: %v", err)
	}
	if c := condition(rel, v1alpha1.ConditionVerified); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("Verified = %+v: the upstream signature must verify at the mirror", c)
	}
}

// TestPreflightMissingImage: one image missing from the mirror refuses the
// artifact, naming the image, and applies nothing.
func TestPreflightMissingImage(t *testing.T) {
	up := registrytest.New(t)
	h := newHarness(t, harnessOptions{mirrorFrom: up.Addr})
	url, _, siteImage := airGap(t, h, up)
	repo, err := plain.Repository(siteImage)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := repo.Resolve(context.Background(), siteImage.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Delete(context.Background(), desc); err != nil {
		t.Fatalf("delete the image from the mirror: %v", err)
	}
	h.release("app", "v1", mirroredRelease(url, true))
	rel := h.failsWith("app", v1alpha1.ReasonImagesMissing)
	ready := condition(rel, v1alpha1.ConditionReady)
	if !strings.Contains(ready.Message, "team/svc:1.0") || !strings.Contains(ready.Message, "missing from the mirror") {
		t.Fatalf("message %q does not name the missing image", ready.Message)
	}
	d := &appsv1.Deployment{}
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "svc"}, d); err == nil {
		t.Fatal("the Deployment was applied although an image is missing")
	}
	if len(rel.Status.Inventory) != 0 {
		t.Fatalf("inventory = %v, want nothing applied", rel.Status.Inventory)
	}
}

// TestPreflightWithoutLock: an artifact that did not come through `airlock
// import` has no images lock; preflight refuses it with the fix.
func TestPreflightWithoutLock(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.pushSigned("v1", "main@sha1:3333333333333333333333333333333333333333", map[string]string{"a.yaml": configMapYAML("a", map[string]string{"k": "1"})})
	h.release("app", "v1", func(rel *v1alpha1.Release) { rel.Spec.ImagesPreflight = true })
	rel := h.failsWith("app", v1alpha1.ReasonImagesMissing)
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "no images lock") {
		t.Fatalf("message %q does not say the images lock is missing", msg)
	}
	if _, ok := h.configMap("a"); ok {
		t.Fatal("applied without a passing preflight")
	}
}
