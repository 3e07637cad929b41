package reconciler_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"oras.land/oras-go/v2"

	"airlock.dev/airlock/airgap"
	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/verify"
)

// site is an artifact carried across the gap with chained trust: signed
// upstream by upKey, exported with its images, imported into the harness's
// registry under /airgap and signed there with the harness's key (the site
// key the Releases trust).
type site struct {
	url    string // the artifact's upstream repository
	digest string
	// images maps each upstream image reference to its pinned digest.
	images map[string]string
	// lockTag is the mirror's images lock tag of the artifact.
	lock  artifact.Reference
	upPub []byte
}

// gapOptions changes how the artifact crosses the gap.
type gapOptions struct {
	// lockImages, when set, are the only images the export pins (the
	// existing artifact.Export): the rest are left out of the lock.
	lockImages func(up string) []string
	// noSiteSignature imports without --sign-key; siteSign then signs at
	// the mirror without an import record, as `airlock sign` would.
	noSiteSignature bool
	siteSign        bool
}

// chainDeploy is an upstream app's Deployment: NAME is its name (and its
// image's repository), UP the upstream registry.
const chainDeploy = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
spec:
  selector:
    matchLabels: {app: NAME}
  template:
    metadata:
      labels: {app: NAME}
    spec:
      initContainers:
      - name: init
        image: UP/team/init:1.0
      containers:
      - name: NAME
        image: UP/team/NAME:1.0
`

// upstreamApp is an artifact pushed upstream to repo, whose Deployment
// deploy uses the images team/<deploy>:1.0 and team/init:1.0.
type upstreamApp struct{ repo, deploy string }

// pushSigned pushes app's images that images does not hold yet (recording
// their digests there) and app's artifact (tag v1) upstream, and signs the
// artifact with upKey. The site it returns has no images lock yet.
func pushSigned(t *testing.T, up *registry.Server, upKey *verify.PrivateKey, upPub []byte, app upstreamApp, images map[string]string) (artifact.Reference, site) {
	t.Helper()
	ctx := context.Background()
	for _, repo := range []string{"team/" + app.deploy + ":1.0", "team/init:1.0"} {
		if _, ok := images[up.Addr+"/"+repo]; ok {
			continue
		}
		img, err := random.Image(128, 1)
		if err != nil {
			t.Fatal(err)
		}
		iref, _ := name.ParseReference(up.Addr+"/"+repo, name.Insecure)
		if err := ggcrremote.Write(iref, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		images[up.Addr+"/"+repo] = d.String()
	}
	dir := t.TempDir()
	deploy := strings.NewReplacer("UP", up.Addr, "NAME", app.deploy).Replace(chainDeploy)
	if err := os.WriteFile(filepath.Join(dir, "deploy.yaml"), []byte(deploy), 0o644); err != nil {
		t.Fatal(err)
	}
	s := site{url: "oci://" + up.Addr + "/" + app.repo, images: images, upPub: upPub}
	ref, _ := artifact.ParseReference(s.url + ":v1")
	pushed, err := artifact.Push(ctx, ref, dir, artifact.PushOptions{Remote: plain, Source: "https://git.example.com/app", Revision: "main@sha1:4444444444444444444444444444444444444444"})
	if err != nil {
		t.Fatal(err)
	}
	s.digest = pushed.Digest
	if _, err := verify.Sign(ctx, pushed.Ref, upKey, nil, plain); err != nil {
		t.Fatal(err)
	}
	return ref, s
}

// siteImport is the harness's mirror (/airgap) and the options of an
// import with chained trust: verified against upPub, signed with the site
// key (the harness's). It also stores upPub as the Secret upstream-keys
// that chainRelease names.
func siteImport(t *testing.T, h *harness, upPub []byte) (artifact.Reference, airgap.ImportOptions) {
	t.Helper()
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "upstream-keys", Namespace: h.ns}, Data: map[string][]byte{"upstream.pub": upPub}})
	mirror, _ := artifact.ParseMirror("oci://" + h.reg.Addr + "/airgap")
	policy := verify.Policy{Keys: []verify.PublicKey{mustPublicKey(t, "upstream", upPub)}}
	return mirror, airgap.ImportOptions{Dst: plain, Policy: policy, SiteKey: h.key}
}

// importedLock is the images lock an import stored for the artifact
// relocated to repo (its repository at the mirror).
func importedLock(res *airgap.ImportResult, repo string) artifact.Reference {
	for _, r := range res.Relocated {
		if r.Role != artifact.RoleImagesLock {
			continue
		}
		if lock, err := artifact.ParseReference(r.Target); err == nil && lock.Repository == repo {
			return lock
		}
	}
	return artifact.Reference{}
}

// crossGap pushes the images and the artifact upstream, signs the artifact
// with a new upstream key, exports it with its images, stops upstream and
// imports the tarball, verified against the upstream key and signed with
// the site key (the harness's).
func crossGap(t *testing.T, h *harness, up *registry.Server, opts gapOptions) site {
	t.Helper()
	ctx := context.Background()
	upKey, pub := newKey(t)
	ref, s := pushSigned(t, up, upKey, pub, upstreamApp{repo: "team/app", deploy: "svc"}, map[string]string{})

	tarball := filepath.Join(t.TempDir(), "site.tar")
	if opts.lockImages != nil {
		f, err := os.Create(tarball)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = artifact.Export(ctx, ref, f, artifact.RelocateOptions{Src: plain, Images: opts.lockImages(up.Addr)})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	} else if _, _, err := airgap.Export(ctx, ref, tarball, airgap.RelocateOptions{Src: plain, WithImages: true}); err != nil {
		t.Fatal(err)
	}
	up.Close()

	mirror, importOpts := siteImport(t, h, pub)
	if opts.noSiteSignature {
		importOpts.SiteKey = nil
	}
	res, err := airgap.Import(ctx, tarball, mirror, importOpts)
	if err != nil {
		t.Fatal(err)
	}
	s.lock = importedLock(res, "airgap/team/app")
	if opts.siteSign {
		at, _ := artifact.ParseReference("oci://" + h.reg.Addr + "/airgap/team/app@" + s.digest)
		if _, err := verify.Sign(ctx, at, h.key, nil, plain); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func mustPublicKey(t *testing.T, name string, pem []byte) verify.PublicKey {
	t.Helper()
	k, err := verify.LoadPublicKey(name, pem)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// chainRelease requires the upstream chain and, with relocate, relocates images.
func chainRelease(url string, relocate bool) func(*v1alpha1.Release) {
	return func(rel *v1alpha1.Release) {
		mirroredRelease(url, false)(rel)
		rel.Spec.RelocateImages = relocate
		rel.Spec.Verify.Upstream = &v1alpha1.UpstreamVerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "upstream-keys"}}
	}
}

// upstreamHost is the host of an upstream image reference.
func upstreamHost(img string) string { h, _, _ := strings.Cut(img, "/"); return h }

// TestAirGapChainAndRelocation is the whole air gap: push and sign
// upstream, export with images, stop upstream, import with chained trust
// (verified upstream, signed for the site), and apply with a Release that
// requires the upstream chain and relocates images. The applied Deployment
// names the mirror by digest, and the status shows the chain and what was
// rewritten to what.
func TestAirGapChainAndRelocation(t *testing.T) {
	up := registrytest.New(t)
	h := newHarness(t, harnessOptions{mirrorFrom: up.Addr})
	s := crossGap(t, h, up, gapOptions{})
	upHost := up.Addr
	before := up.Requests()
	h.release("app", "v1", chainRelease(s.url, true))
	rel := h.readyAt("app", s.digest)
	if up.Requests() != before {
		t.Fatalf("the controller sent %d requests to the upstream registry", up.Requests()-before)
	}
	appliedThroughChain(t, h, rel, s, "svc")

	// The import keeps the tags the lock pinned, so a node that mirrors
	// upstream/team/svc:1.0 to the site finds it.
	at, _ := artifact.ParseReference("oci://" + h.reg.Addr + "/airgap/team/svc:1.0")
	repo, err := plain.Repository(at)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := repo.Resolve(h.ctx, "1.0")
	if err != nil || desc.Digest.String() != s.images[upHost+"/team/svc:1.0"] {
		t.Errorf("tag 1.0 at the mirror: %v, %v; want %s", desc.Digest, err, s.images[upHost+"/team/svc:1.0"])
	}
}

// appliedThroughChain checks what rel, a chainRelease of s that relocates
// images, applied: the Deployment deploy names the mirror by digest, and
// the status shows what was rewritten to what and the chain (the upstream
// signer, the site signer, the import and the images lock).
func appliedThroughChain(t *testing.T, h *harness, rel *v1alpha1.Release, s site, deploy string) {
	t.Helper()
	upHost := upstreamHost(strings.TrimPrefix(s.url, "oci://"))
	d := &appsv1.Deployment{}
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: deploy}, d); err != nil {
		t.Fatalf("the Deployment %s was not applied: %v", deploy, err)
	}
	spec := d.Spec.Template.Spec
	want := map[string]string{
		spec.Containers[0].Image:     h.reg.Addr + "/airgap/team/" + deploy + "@" + s.images[upHost+"/team/"+deploy+":1.0"],
		spec.InitContainers[0].Image: h.reg.Addr + "/airgap/team/init@" + s.images[upHost+"/team/init:1.0"],
	}
	for got, w := range want {
		if got != w {
			t.Errorf("Deployment %s: applied image %q, want %q (the mirror by digest)", deploy, got, w)
		}
	}
	if len(rel.Status.RelocatedImages) != 2 || rel.Status.RelocatedImagesTotal != 2 {
		t.Errorf("Release %s: status.relocatedImages = %+v (total %d), want the 2 images", rel.Name, rel.Status.RelocatedImages, rel.Status.RelocatedImagesTotal)
	}
	for _, ri := range rel.Status.RelocatedImages {
		if want := h.reg.Addr + "/airgap/" + strings.TrimPrefix(strings.Split(ri.From, ":1.0")[0], upHost+"/") + "@" + s.images[ri.From]; ri.To != want {
			t.Errorf("Release %s: status.relocatedImages: %s → %s, want %s", rel.Name, ri.From, ri.To, want)
		}
	}
	c := rel.Status.Chain
	upFP := mustPublicKey(t, "upstream", s.upPub).Fingerprint
	switch {
	case c == nil:
		t.Fatalf("Release %s: status.chain is empty", rel.Name)
	case c.SiteSigner.Fingerprint != h.key.Public.Fingerprint:
		t.Errorf("Release %s: chain site signer = %+v, want the site key %s", rel.Name, c.SiteSigner, h.key.Public.Fingerprint)
	case len(c.UpstreamSigners) != 1 || c.UpstreamSigners[0].Fingerprint != upFP || !c.UpstreamVerified:
		t.Errorf("Release %s: chain upstream signers = %+v (verified %v), want %s verified", rel.Name, c.UpstreamSigners, c.UpstreamVerified, upFP)
	case c.ImportedAt == "" || !strings.HasPrefix(c.UpstreamRef, s.url):
		t.Errorf("Release %s: chain = %+v: want the import time and the upstream reference %s", rel.Name, c, s.url)
	case s.lock.Digest == "" || c.ImagesLock != s.lock.Digest:
		t.Errorf("Release %s: chain images lock = %q, want %q", rel.Name, c.ImagesLock, s.lock.Digest)
	}
}

// TestAirGapBundleChainAndRelocation is the whole air gap through a
// bundle: three artifacts signed upstream (two of them sharing an image)
// are exported with their images as one bundle, upstream stops, and the
// bundle is imported with chained trust. Two Releases that require the
// upstream chain and relocate images apply two of its artifacts: each
// Deployment names the mirror by digest and each status shows the chain,
// and upstream gets no request after it stopped.
func TestAirGapBundleChainAndRelocation(t *testing.T) {
	ctx := context.Background()
	up := registrytest.New(t)
	h := newHarness(t, harnessOptions{mirrorFrom: up.Addr})
	upKey, pub := newKey(t)
	apps := []upstreamApp{{repo: "team/app", deploy: "svc"}, {repo: "team/api", deploy: "api"}, {repo: "team/web", deploy: "web"}}
	images := map[string]string{}
	b := &airgap.Bundle{}
	var sites []site
	for _, app := range apps {
		_, s := pushSigned(t, up, upKey, pub, app, images)
		b.Artifacts = append(b.Artifacts, airgap.BundleArtifact{Ref: s.url + ":v1", WithImages: true})
		sites = append(sites, s)
	}
	tarball := filepath.Join(t.TempDir(), "bundle.tar")
	if _, _, err := airgap.ExportBundle(ctx, b, tarball, airgap.BundleOptions{RelocateOptions: airgap.RelocateOptions{Src: plain}}); err != nil {
		t.Fatal(err)
	}
	up.Close()
	stopped := up.Requests()

	mirror, importOpts := siteImport(t, h, pub)
	res, err := airgap.ImportBundle(ctx, tarball, mirror, importOpts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(apps) {
		t.Fatalf("imported %d artifacts, want %d", len(res), len(apps))
	}
	for i, app := range apps {
		for _, r := range res {
			if lock := importedLock(r, "airgap/"+app.repo); lock.Digest != "" {
				sites[i].lock = lock
			}
		}
	}

	for _, i := range []int{0, 1} {
		h.release(apps[i].deploy, "v1", chainRelease(sites[i].url, true))
	}
	for _, i := range []int{0, 1} {
		rel := h.readyAt(apps[i].deploy, sites[i].digest)
		appliedThroughChain(t, h, rel, sites[i], apps[i].deploy)
	}
	if n := up.Requests() - stopped; n != 0 {
		t.Fatalf("upstream got %d requests after it stopped", n)
	}
}

// refusedNothingApplied checks that a refused Release applied nothing.
func refusedNothingApplied(t *testing.T, h *harness, rel *v1alpha1.Release) {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "svc"}, d); err == nil {
		t.Fatalf("the Deployment was applied (images %s), although the artifact was refused", d.Spec.Template.Spec.Containers[0].Image)
	}
	if len(rel.Status.Inventory) != 0 || rel.Status.LastAppliedDigest != "" {
		t.Fatalf("inventory = %v, applied %q: want nothing applied", rel.Status.Inventory, rel.Status.LastAppliedDigest)
	}
}

// gapHarness is a harness whose controller mirrors a new upstream
// registry to its own, and an artifact carried across with opts.
func gapHarness(t *testing.T, opts gapOptions) (*harness, site) {
	up := registrytest.New(t)
	h := newHarness(t, harnessOptions{mirrorFrom: up.Addr})
	return h, crossGap(t, h, up, opts)
}

// TestRelocateImageNotInLock: an image the artifact uses that its images
// lock does not pin refuses the artifact, naming the image.
func TestRelocateImageNotInLock(t *testing.T) {
	h, s := gapHarness(t, gapOptions{lockImages: func(up string) []string { return []string{up + "/team/svc:1.0"} }})
	h.release("app", "v1", chainRelease(s.url, true))
	rel := h.failsWith("app", v1alpha1.ReasonImageNotInLock)
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "/team/init:1.0") || !strings.Contains(msg, "not pinned") {
		t.Fatalf("message %q does not name the image missing from the lock", msg)
	}
	refusedNothingApplied(t, h, rel)
}

// TestRelocateLockSwapped: an images lock replaced at the mirror (the tag
// moved to a lock that pins another digest) is refused with the reason.
func TestRelocateLockSwapped(t *testing.T) {
	h, s := gapHarness(t, gapOptions{})

	// The attacker's lock pins svc:1.0 to the init image's digest.
	up := upstreamHost(strings.TrimPrefix(s.url, "oci://"))
	art, _ := artifact.ParseReference("oci://" + h.reg.Addr + "/airgap/team/app@" + s.digest)
	lock := artifact.ImagesLock{Artifact: up + "/team/app:v1@" + s.digest, Images: []artifact.ImageLock{
		{Reference: up + "/team/init:1.0", Digest: s.images[up+"/team/init:1.0"]},
		{Reference: up + "/team/svc:1.0", Digest: s.images[up+"/team/init:1.0"]},
	}}
	repo, err := plain.Repository(art)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(lock)
	layer, err := oras.PushBytes(h.ctx, repo, artifact.ImagesLockMediaType, body)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := repo.Resolve(h.ctx, s.digest)
	if err != nil {
		t.Fatal(err)
	}
	md, err := oras.PackManifest(h.ctx, repo, oras.PackManifestVersion1_1, artifact.ImagesLockMediaType, oras.PackManifestOptions{
		Layers: []ocispec.Descriptor{layer}, Subject: &ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(h.ctx, md, artifact.AttachedTag(s.digest, artifact.ImagesLockSuffix)); err != nil {
		t.Fatal(err)
	}

	h.release("app", "v1", chainRelease(s.url, true))
	rel := h.failsWith("app", v1alpha1.ReasonImagesLockUntrusted)
	msg := condition(rel, v1alpha1.ConditionReady).Message
	if !strings.Contains(msg, md.Digest.String()) || !strings.Contains(msg, s.lock.Digest) {
		t.Fatalf("message %q names neither the lock found (%s) nor the one signed (%s)", msg, md.Digest, s.lock.Digest)
	}
	refusedNothingApplied(t, h, rel)
}

// TestRelocateUnsignedLock: a lock that no trusted signature covers (an
// import without --sign-key) is not used.
func TestRelocateUnsignedLock(t *testing.T) {
	h, s := gapHarness(t, gapOptions{noSiteSignature: true, siteSign: true})
	h.release("app", "v1", func(rel *v1alpha1.Release) {
		mirroredRelease(s.url, false)(rel)
		rel.Spec.RelocateImages = true
	})
	rel := h.failsWith("app", v1alpha1.ReasonImagesLockUntrusted)
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "no trusted signature") {
		t.Fatalf("message %q does not say that no trusted signature covers the lock", msg)
	}
	refusedNothingApplied(t, h, rel)
}

// TestChainWithoutUpstreamRecord: a site signature that records no
// upstream signer (signed at the mirror, not by `import --sign-key`) does
// not meet spec.verify.upstream, although the upstream signature itself
// verifies.
func TestChainWithoutUpstreamRecord(t *testing.T) {
	h, s := gapHarness(t, gapOptions{noSiteSignature: true, siteSign: true})
	h.release("app", "v1", chainRelease(s.url, false))
	rel := h.failsWith("app", v1alpha1.ReasonVerificationFailed)
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "no trusted site signature records it") {
		t.Fatalf("message %q does not say that the site signature lacks the upstream record", msg)
	}
	refusedNothingApplied(t, h, rel)
}

// TestChainUpstreamKeyNotTrusted: the site signature records an upstream
// signer, but not one of spec.verify.upstream's keys.
func TestChainUpstreamKeyNotTrusted(t *testing.T) {
	h, s := gapHarness(t, gapOptions{})
	_, other, err := verify.GenerateKeyPair([]byte("other"))
	if err != nil {
		t.Fatal(err)
	}
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other-upstream", Namespace: h.ns}, Data: map[string][]byte{"other.pub": other}})
	h.release("app", "v1", func(rel *v1alpha1.Release) {
		chainRelease(s.url, false)(rel)
		rel.Spec.Verify.Upstream.KeysSecretRef.Name = "other-upstream"
	})
	rel := h.failsWith("app", v1alpha1.ReasonVerificationFailed)
	msg := condition(rel, v1alpha1.ConditionReady).Message
	if !strings.Contains(msg, "upstream") || !strings.Contains(msg, mustPublicKey(t, "other", other).Fingerprint) {
		t.Fatalf("message %q does not name the required upstream key", msg)
	}
	refusedNothingApplied(t, h, rel)
}
