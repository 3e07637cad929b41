package reconciler_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
)

// lockedBuffer collects the controller's logs from its goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// assertNoValues greps the controller's logs, the events of the test's
// namespace and every Release's status for each secret value.
func (h *harness) assertNoValues(logs *lockedBuffer, values ...string) {
	h.t.Helper()
	var events eventsv1.EventList
	if err := h.env.Client.List(h.ctx, &events, client.InNamespace(h.ns)); err != nil {
		h.t.Fatal(err)
	}
	var rels v1alpha1.ReleaseList
	if err := h.env.Client.List(h.ctx, &rels, client.InNamespace(h.ns)); err != nil {
		h.t.Fatal(err)
	}
	ev, _ := json.Marshal(events.Items)
	var status []byte
	for _, r := range rels.Items {
		b, _ := json.Marshal(r.Status)
		status = append(status, b...)
	}
	log := logs.String()
	if !strings.Contains(log, "reconcile failed") {
		h.t.Errorf("the captured logs hold no failed reconcile: is the capture working?\n%s", log)
	}
	for _, v := range values {
		for where, text := range map[string]string{"logs": log, "events": string(ev), "status": string(status)} {
			if strings.Contains(text, v) {
				h.t.Errorf("the %s show the secret value %q", where, v)
			}
		}
	}
}

func (h *harness) secretData(name string) map[string][]byte {
	h.t.Helper()
	s := &corev1.Secret{}
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, s); err != nil {
		return nil
	}
	return s.Data
}

func siteStatus(rel *v1alpha1.Release) v1alpha1.SiteStatus {
	if rel.Status.LastAppliedSite == nil {
		return v1alpha1.SiteStatus{}
	}
	return *rel.Status.LastAppliedSite
}

// TestSubstitution: one signed artifact, its variables from a ConfigMap
// and a Secret in strict mode. A missing variable fails the build naming
// the object and the variable and leaves what runs; a change to the
// ConfigMap or the Secret re-applies the same digest with the new values;
// no value ever shows in the controller's logs, events or status.
func TestSubstitution(t *testing.T) {
	const (
		password1 = "pw-first-7f3a9c"
		password2 = "pw-second-b81d2e"
		breaking  = "pw-breaking-4c0e11"
	)
	logs := &lockedBuffer{}
	h := newHarness(t, harnessOptions{logs: logs})
	// No Release reads a ConfigMap yet: the controller caches none.
	if h.rec.WatchesConfigMaps() {
		t.Error("the controller watches ConfigMaps before any Release reads one")
	}
	d := h.pushSigned("v1", "v1", map[string]string{
		"kustomization.yaml": "resources: [app.yaml, db.yaml, script.yaml]\n",
		"app.yaml":           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata:\n  host: ${HOST}\n  mode: ${MODE:=safe}\n",
		"db.yaml":            "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData:\n  password: ${DB_PASSWORD}\n",
		"script.yaml":        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: script\n  annotations: {delivery.airlock.dev/substitute: disabled}\ndata:\n  run.sh: echo ${HOME}\n",
	})
	h.create(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "site-values", Namespace: h.ns}, Data: map[string]string{"HOST": "db.staging"}})
	h.release("app", "v1", func(r *v1alpha1.Release) {
		r.Spec.PostBuild = &v1alpha1.PostBuild{Strict: true, SubstituteFrom: []v1alpha1.SubstituteReference{
			{Kind: "ConfigMap", Name: "site-values"},
			{Kind: "Secret", Name: "site-secrets", Optional: true},
		}}
	})

	// Strict, and the Secret is missing: the variable is named.
	rel := h.failsWith("app", v1alpha1.ReasonBuildFailed)
	msg := condition(rel, v1alpha1.ConditionReady).Message
	for _, want := range []string{"Secret db", `"DB_PASSWORD"`, "spec.postBuild.substituteFrom"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if _, ok := h.configMap("app"); ok {
		t.Error("ConfigMap app was applied by a failed build")
	}

	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "site-secrets", Namespace: h.ns}, Data: map[string][]byte{"DB_PASSWORD": []byte(password1)}})
	rel = h.readyAt("app", d)
	first := siteStatus(rel)
	if !h.rec.WatchesConfigMaps() {
		t.Error("the controller does not watch ConfigMaps once a Release reads one")
	}
	if cm := h.mustConfigMap("app"); cm.Data["host"] != "db.staging" || cm.Data["mode"] != "safe" {
		t.Errorf("ConfigMap app data = %v, want host db.staging and mode safe", cm.Data)
	}
	if got := string(h.secretData("db")["password"]); got != password1 {
		t.Errorf("Secret db password = %q, want the value from Secret site-secrets", got)
	}
	if got := h.mustConfigMap("script").Data["run.sh"]; got != "echo ${HOME}" {
		t.Errorf("the opted-out ConfigMap was substituted: run.sh = %q", got)
	}
	if !strings.HasPrefix(first.ValuesHash, "sha256:") || len(rel.Status.History) == 0 || rel.Status.History[0].Site == nil || rel.Status.History[0].Site.ValuesHash != first.ValuesHash {
		t.Fatalf("status.lastAppliedSite = %+v, history[0].site = %+v: want the values hash in both", rel.Status.LastAppliedSite, rel.Status.History[0].Site)
	}

	// A value change in the ConfigMap re-applies the same digest (the
	// Release's interval is an hour: only the watch can bring it).
	cm := &corev1.ConfigMap{}
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "site-values"}, cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["HOST"] = "db.production"
	if err := h.env.Client.Update(h.ctx, cm); err != nil {
		t.Fatal(err)
	}
	rel = h.eventually("app", "the new HOST applied", 30*time.Second, func(rel *v1alpha1.Release) bool {
		c, ok := h.configMap("app")
		return ok && c.Data["host"] == "db.production" && siteStatus(rel).ValuesHash != first.ValuesHash
	})
	if rel.Status.LastAppliedDigest != d || len(rel.Status.History) != 1 {
		t.Errorf("applied %s with %d history entries, want the same digest in one entry", rel.Status.LastAppliedDigest, len(rel.Status.History))
	}
	h.waitEvent("Applied", "new substitution values")

	// And in the Secret.
	sec := &corev1.Secret{}
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "site-secrets"}, sec); err != nil {
		t.Fatal(err)
	}
	sec.Data["DB_PASSWORD"] = []byte(password2)
	if err := h.env.Client.Update(h.ctx, sec); err != nil {
		t.Fatal(err)
	}
	h.eventually("app", "the new password applied", 30*time.Second, func(*v1alpha1.Release) bool {
		return string(h.secretData("db")["password"]) == password2
	})

	// A value that breaks the object's YAML fails without showing it, and
	// leaves what runs.
	sec.Data["DB_PASSWORD"] = []byte(breaking + "\n  : [")
	if err := h.env.Client.Update(h.ctx, sec); err != nil {
		t.Fatal(err)
	}
	h.failsWith("app", v1alpha1.ReasonBuildFailed)
	if got := string(h.secretData("db")["password"]); got != password2 {
		t.Errorf("after a failed build Secret db password = %q, want the last good value", got)
	}

	// A required ConfigMap that is missing.
	h.update("app", func(r *v1alpha1.Release) {
		r.Spec.PostBuild.SubstituteFrom = append(r.Spec.PostBuild.SubstituteFrom, v1alpha1.SubstituteReference{Kind: "ConfigMap", Name: "absent"})
	})
	rel = h.failsWith("app", v1alpha1.ReasonSubstituteFromFailed)
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "ConfigMap "+h.ns+"/absent") {
		t.Errorf("message %q does not name ConfigMap absent", msg)
	}

	h.assertNoValues(logs, password1, password2, breaking)
}

// TestSubstituteFromReadsAsTheServiceAccount: a Release cannot read, through
// substituteFrom, a Secret that its ServiceAccount may not read.
func TestSubstituteFromReadsAsTheServiceAccount(t *testing.T) {
	h := newHarness(t, harnessOptions{tenant: true})
	d := h.pushSigned("v1", "v1", map[string]string{"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: \"${K}\"}\n"})
	h.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: h.ns}})
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other-team", Namespace: h.ns}, Data: map[string][]byte{"K": []byte("not-yours-91c2")}})
	h.release("app", "v1", func(r *v1alpha1.Release) {
		r.Spec.ServiceAccountName = "deployer"
		r.Spec.PostBuild = &v1alpha1.PostBuild{SubstituteFrom: []v1alpha1.SubstituteReference{{Kind: "Secret", Name: "other-team"}}}
	})
	rel := h.failsWith("app", v1alpha1.ReasonForbidden)
	if msg := condition(rel, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "other-team") || strings.Contains(msg, "not-yours-91c2") {
		t.Errorf("message %q: want it to name Secret other-team, and never its value", msg)
	}
	if rel.Status.LastAppliedDigest == d {
		t.Error("the Release applied with a Secret its ServiceAccount cannot read")
	}
}

// TestSitePatchesOnSignedArtifact: a strategic merge patch, a JSON 6902
// patch, an image override, a name prefix and common labels layered on a
// signed artifact; the signature is still verified (an unsigned digest
// with the same overlay is refused), and status records the overlay.
func TestSitePatchesOnSignedArtifact(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	files := map[string]string{
		"kustomization.yaml": "resources: [deploy.yaml, cm.yaml]\n",
		"deploy.yaml":        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: registry.example/team/web:1.0.0}]\n",
		"cm.yaml":            configMapYAML("settings", map[string]string{"level": "info"}),
	}
	d := h.pushSigned("v1", "v1", files)
	h.release("app", "v1", func(r *v1alpha1.Release) {
		r.Spec.Wait = ptr.To(false) // no Deployment controller in envtest
		r.Spec.Patches = []v1alpha1.Patch{
			{Patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n"},
			{Patch: `[{"op": "replace", "path": "/data/level", "value": "debug"}]`, Target: &v1alpha1.PatchSelector{Kind: "ConfigMap", Name: "settings"}},
		}
		r.Spec.Images = []v1alpha1.ImageOverride{{Name: "registry.example/team/web", NewName: "mirror.site/web", NewTag: "1.0.1"}}
		r.Spec.NamePrefix = "prod-"
		r.Spec.CommonMetadata = &v1alpha1.CommonMetadata{Labels: map[string]string{"site": "prod"}}
	})
	rel := h.readyAt("app", d)
	if c := condition(rel, v1alpha1.ConditionVerified); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Verified = %+v, want True", c)
	}
	dep := &appsv1.Deployment{}
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "prod-web"}, dep); err != nil {
		t.Fatalf("Deployment prod-web: %v", err)
	}
	if *dep.Spec.Replicas != 3 || dep.Spec.Template.Spec.Containers[0].Image != "mirror.site/web:1.0.1" || dep.Labels["site"] != "prod" {
		t.Errorf("Deployment prod-web: replicas %d, image %s, labels %v; want 3, mirror.site/web:1.0.1 and site=prod", *dep.Spec.Replicas, dep.Spec.Template.Spec.Containers[0].Image, dep.Labels)
	}
	if dep.Spec.Selector.MatchLabels["site"] != "" {
		t.Errorf("commonMetadata reached the selector: %v", dep.Spec.Selector.MatchLabels)
	}
	if cm := h.mustConfigMap("prod-settings"); cm.Data["level"] != "debug" {
		t.Errorf("ConfigMap prod-settings level = %q, want debug from the JSON 6902 patch", cm.Data["level"])
	}
	s := siteStatus(rel)
	if !strings.HasPrefix(s.OverlayHash, "sha256:") || !strings.Contains(s.Overlay, "2 patches, 1 image, namePrefix prod-") || s.ValuesHash != "" {
		t.Errorf("status.lastAppliedSite = %+v, want the overlay's hash and summary and no values hash", s)
	}

	// The same overlay on an unsigned digest is refused; what runs stays.
	d2 := h.push("v2", "v2", files, nil)
	h.update("app", func(r *v1alpha1.Release) { r.Spec.Ref.Tag = "v2" })
	rel = h.failsWith("app", v1alpha1.ReasonVerificationFailed)
	if rel.Status.LastAttemptedDigest != d2 || rel.Status.LastAppliedDigest != d {
		t.Errorf("attempted %s applied %s, want %s refused and %s kept", rel.Status.LastAttemptedDigest, rel.Status.LastAppliedDigest, d2, d)
	}
	if _, ok := h.configMap("prod-settings"); !ok {
		t.Error("ConfigMap prod-settings was pruned after a refused digest")
	}
}
