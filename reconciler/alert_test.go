package reconciler_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/notify"
	"airlock.dev/airlock/reconciler"
)

// endpoint is a webhook that records what it receives; its first
// `failFirst` requests are answered 503.
type endpoint struct {
	t         *testing.T
	srv       *httptest.Server
	hmacKey   []byte
	mu        sync.Mutex
	calls     int
	failFirst int
	events    []notify.GenericPayload
}

func newEndpoint(t *testing.T, hmacKey []byte, failFirst int) *endpoint {
	e := &endpoint{t: t, hmacKey: hmacKey, failFirst: failFirst}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		defer e.mu.Unlock()
		e.calls++
		if e.calls <= e.failFirst {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if e.hmacKey != nil && !notify.VerifySignature(e.hmacKey, body, r.Header.Get(notify.SignatureHeader)) {
			t.Errorf("X-Signature %q does not verify", r.Header.Get(notify.SignatureHeader))
		}
		var ev notify.GenericPayload
		if e.hmacKey == nil { // Slack-compatible: read the attachment
			var m struct {
				Attachments []struct{ Title, Text string } `json:"attachments"`
			}
			_ = json.Unmarshal(body, &m)
			if len(m.Attachments) == 1 {
				// "Release NS/NAME: REASON"
				head := strings.TrimPrefix(m.Attachments[0].Title, "Release ")
				name, reason, _ := strings.Cut(head, ": ")
				ev.Namespace, ev.Name, _ = strings.Cut(name, "/")
				ev.Reason, ev.Message = reason, m.Attachments[0].Text
			}
		} else if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
		e.events = append(e.events, ev)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) received() []notify.GenericPayload {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]notify.GenericPayload(nil), e.events...)
}

// wait returns the first event of release with reason, waiting for it.
func (e *endpoint) wait(release, reason string) notify.GenericPayload {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, ev := range e.received() {
			if ev.Name == release && ev.Reason == reason {
				return ev
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: no %s event of Release %s; received %+v", e.srv.URL, reason, release, e.received())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alertsSetup wires Alerts into the harness's manager as cmd does.
func alertsSetup(t *testing.T, m **notify.Metrics) func(ctrl.Manager, *reconciler.Reconciler) {
	return func(mgr ctrl.Manager, r *reconciler.Reconciler) {
		alerts := &reconciler.Alerts{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: mgr.GetEventRecorder("airlock-controller"), Hostname: "test"}
		*m = notify.NewMetrics(prometheus.NewRegistry())
		d := &notify.Dispatcher{Router: alerts, BackoffBase: 100 * time.Millisecond, Metrics: *m}
		if err := mgr.Add(d); err != nil {
			t.Fatal(err)
		}
		r.Notifier = d
		if err := alerts.SetupWithManager(context.Background(), mgr, controller.Options{}); err != nil {
			t.Fatal(err)
		}
	}
}

func (h *harness) alertReady(name string) *v1alpha1.Alert {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		al := &v1alpha1.Alert{}
		if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, al); err != nil {
			h.t.Fatal(err)
		}
		for _, c := range al.Status.Conditions {
			if c.Type == v1alpha1.ConditionReady && c.ObservedGeneration == al.Generation {
				return al
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("Alert %s has no Ready condition: %+v", name, al.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readyOf(al *v1alpha1.Alert) metav1.Condition {
	for _, c := range al.Status.Conditions {
		if c.Type == v1alpha1.ConditionReady {
			return c
		}
	}
	return metav1.Condition{}
}

// TestAlertSendsReleaseChanges: a generic webhook Alert on one Release gets
// its new digest Ready (after a 503 and a retry), a drift correction, a
// prune, a rollback and a verification failure, signed with the Secret's
// key; an error-only Slack Alert that selects by label gets only the
// rollback and the verification failure; a Release neither selects sends
// nothing.
func TestAlertSendsReleaseChanges(t *testing.T) {
	var m *notify.Metrics
	h := newHarness(t, harnessOptions{setup: alertsSetup(t, &m)})
	key := []byte("alert-hmac-key")
	hook := newEndpoint(t, key, 1)
	chat := newEndpoint(t, nil, 0)

	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: h.ns},
		Data: map[string][]byte{"address": []byte(hook.srv.URL + "/hook/SECRETPATH"), "hmacKey": key}})
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: h.ns},
		Data: map[string][]byte{"address": []byte(chat.srv.URL + "/hooks/xyz")}})
	h.create(&v1alpha1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: h.ns}, Spec: v1alpha1.AlertSpec{
		Provider:     v1alpha1.AlertProvider{Type: "generic", SecretRef: v1alpha1.LocalObjectReference{Name: "hook"}, Insecure: true},
		EventSources: []v1alpha1.AlertEventSource{{Name: "web"}},
	}})
	h.create(&v1alpha1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: h.ns}, Spec: v1alpha1.AlertSpec{
		Provider:      v1alpha1.AlertProvider{Type: "slack", SecretRef: v1alpha1.LocalObjectReference{Name: "chat"}, Insecure: true},
		EventSeverity: "error",
		EventSources:  []v1alpha1.AlertEventSource{{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}}}},
	}})
	h.create(&v1alpha1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "nosecret", Namespace: h.ns}, Spec: v1alpha1.AlertSpec{
		Provider:     v1alpha1.AlertProvider{Type: "teams", SecretRef: v1alpha1.LocalObjectReference{Name: "missing"}},
		EventSources: []v1alpha1.AlertEventSource{{Name: "*"}},
	}})
	for _, name := range []string{"hook", "chat"} {
		if c := readyOf(h.alertReady(name)); c.Status != metav1.ConditionTrue {
			t.Errorf("Alert %s Ready = %+v, want True", name, c)
		}
	}
	if c := readyOf(h.alertReady("nosecret")); c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonSecretError || !strings.Contains(c.Message, "missing") {
		t.Errorf("Alert nosecret Ready = %+v, want False SecretError naming the Secret", c)
	}

	// A Release that no Alert selects but nosecret, whose provider is unusable.
	other := h.pushSigned("other", "o1", map[string]string{"o.yaml": configMapYAML("o", map[string]string{"k": "1"})})
	h.release("api", "other", nil)
	h.readyAt("api", other)

	v1 := h.pushSigned("stable", "v1", map[string]string{
		"a.yaml": configMapYAML("a", map[string]string{"k": "1"}),
		"b.yaml": configMapYAML("b", map[string]string{"k": "1"}),
	})
	h.release("web", "stable", func(r *v1alpha1.Release) {
		r.Labels = map[string]string{"tier": "prod"}
		rollbackRelease(r)
	})
	h.readyAt("web", v1)
	ready := hook.wait("web", v1alpha1.AlertEventReady)
	if ready.Kind != "Release" || ready.Namespace != h.ns || ready.Digest != v1 || ready.Revision != "v1" || ready.Severity != "info" || ready.Controller != "airlock-controller" {
		t.Errorf("Ready event = %+v", ready)
	}
	if got := counter(t, m.Deliveries, map[string]string{"provider": "generic", "result": "retry"}); got < 1 {
		t.Errorf("generic retries = %v, want the 503 retried", got)
	}

	// Drift.
	cm := h.mustConfigMap("a")
	cm.Data["k"] = "changed by hand"
	if err := h.env.Client.Update(h.ctx, cm); err != nil {
		t.Fatal(err)
	}
	h.update("web", func(r *v1alpha1.Release) { r.Annotations = map[string]string{"reconcile.airlock.dev/requestedAt": "1"} })
	if ev := hook.wait("web", v1alpha1.AlertEventDriftCorrected); !strings.Contains(ev.Message, "ConfigMap "+h.ns+"/a") {
		t.Errorf("DriftCorrected message %q does not name the ConfigMap", ev.Message)
	}

	// v2 drops b (a prune) and adds a Deployment that never becomes healthy (a rollback).
	v2 := h.pushSigned("stable", "v2", map[string]string{
		"a.yaml":      configMapYAML("a", map[string]string{"k": "2"}),
		"deploy.yaml": deploymentYAML("web"),
	})
	h.update("web", func(r *v1alpha1.Release) { r.Annotations["reconcile.airlock.dev/requestedAt"] = "2" })
	if ev := hook.wait("web", v1alpha1.AlertEventPruned); !strings.Contains(ev.Message, "ConfigMap "+h.ns+"/b") || ev.Digest != v2 {
		t.Errorf("Pruned event = %+v, want ConfigMap b named and digest v2", ev)
	}
	rb := hook.wait("web", v1alpha1.AlertEventRolledBack)
	if rb.Severity != "error" || rb.Digest != v2 || !strings.Contains(rb.Message, "rolling back to") {
		t.Errorf("RolledBack event = %+v", rb)
	}
	chat.wait("web", v1alpha1.AlertEventRolledBack)

	// Unsigned v3.
	v3 := h.push("stable", "v3", map[string]string{"c.yaml": configMapYAML("c", map[string]string{"k": "3"})}, nil)
	h.update("web", func(r *v1alpha1.Release) { r.Annotations["reconcile.airlock.dev/requestedAt"] = "3" })
	if ev := hook.wait("web", v1alpha1.AlertEventVerificationFailed); ev.Digest != v3 || ev.Severity != "error" {
		t.Errorf("VerificationFailed event = %+v, want digest %s", ev, v3)
	}
	chat.wait("web", v1alpha1.AlertEventVerificationFailed)

	for _, ev := range chat.received() {
		if ev.Reason != v1alpha1.AlertEventRolledBack && ev.Reason != v1alpha1.AlertEventVerificationFailed {
			t.Errorf("the error-only Alert got %s of %s", ev.Reason, ev.Name)
		}
	}
	for _, e := range []*endpoint{hook, chat} {
		for _, ev := range e.received() {
			if ev.Name != "web" {
				t.Errorf("%s got an event of Release %s, which it does not select", e.srv.URL, ev.Name)
			}
			if strings.Contains(ev.Message, "SECRETPATH") || strings.Contains(ev.Message, string(key)) {
				t.Errorf("an event quotes a secret value: %q", ev.Message)
			}
		}
	}
	// One Ready per new digest: v1 once (the rollback re-applies v1 and may
	// announce it once more), never for a reconcile that changed nothing.
	n := 0
	for _, ev := range hook.received() {
		if ev.Reason == v1alpha1.AlertEventReady && ev.Digest == v1 {
			n++
		}
	}
	if n == 0 || n > 2 {
		t.Errorf("%d Ready events for v1, want 1 (2 with the rollback)", n)
	}
}

// TestAlertRecordsLastDelivery: an Alert's status.lastDelivery says how its
// last notification ended: Delivered after a 503 and a retry (2 attempts),
// or Failed at once on a 404, with a message that names the endpoint's host
// but not the URL's path, which holds the webhook's token.
func TestAlertRecordsLastDelivery(t *testing.T) {
	var m *notify.Metrics
	h := newHarness(t, harnessOptions{setup: alertsSetup(t, &m)})
	key := []byte("alert-hmac-key")
	hook := newEndpoint(t, key, 1)
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such hook", http.StatusNotFound)
	}))
	t.Cleanup(gone.Close)
	for name, addr := range map[string]string{"hook": hook.srv.URL + "/hook/SECRETPATH", "gone": gone.URL + "/hooks/SECRETPATH"} {
		h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns},
			Data: map[string][]byte{"address": []byte(addr), "hmacKey": key}})
		h.create(&v1alpha1.Alert{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns}, Spec: v1alpha1.AlertSpec{
			Provider:     v1alpha1.AlertProvider{Type: "generic", SecretRef: v1alpha1.LocalObjectReference{Name: name}, Insecure: true},
			EventSources: []v1alpha1.AlertEventSource{{Name: "web"}},
		}})
		h.alertReady(name)
	}
	if d := h.alertReady("hook").Status.LastDelivery; d != nil {
		t.Errorf("before any notification: lastDelivery = %+v, want none", d)
	}
	v1 := h.pushSigned("stable", "v1", map[string]string{"a.yaml": configMapYAML("a", map[string]string{"k": "1"})})
	started := time.Now().Add(-time.Second)
	h.release("web", "stable", nil)
	h.readyAt("web", v1)

	last := func(name string) *v1alpha1.AlertDelivery {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if d := h.alertReady(name).Status.LastDelivery; d != nil {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("Alert %s: no status.lastDelivery after 30s", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	d := last("hook")
	if d.Result != v1alpha1.DeliveryDelivered || d.Event != v1alpha1.AlertEventReady || d.Release != "web" || d.Attempts != 2 || d.Message != "" || d.Time.Time.Before(started) {
		t.Errorf("Alert hook: lastDelivery = %+v, want Delivered, Ready of web, 2 attempts, no message, a time after the start", d)
	}
	d = last("gone")
	if d.Result != v1alpha1.DeliveryFailed || d.Event != v1alpha1.AlertEventReady || d.Release != "web" || d.Attempts != 1 {
		t.Errorf("Alert gone: lastDelivery = %+v, want Failed, Ready of web, 1 attempt (a 404 is not retried)", d)
	}
	if host := strings.TrimPrefix(gone.URL, "http://"); !strings.Contains(d.Message, "404") || !strings.Contains(d.Message, host) || strings.Contains(d.Message, "SECRETPATH") {
		t.Errorf("Alert gone: lastDelivery.message %q, want the 404 and the host %s, without the URL's path", d.Message, host)
	}
}
