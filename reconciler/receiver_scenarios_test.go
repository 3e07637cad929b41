package reconciler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/receiver"
)

// receiverToken is the token of every test Receiver's Secret.
var receiverToken = []byte("receiver-token-0123456789abcdef")

// receiverFor creates a Secret with receiverToken and a Receiver of type
// typ, waits until it is served, and returns its URL.
func (h *harness) receiverFor(name, typ string, edit func(*v1alpha1.Receiver)) string {
	h.t.Helper()
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-token", Namespace: h.ns}, Data: map[string][]byte{v1alpha1.ReceiverTokenKey: receiverToken}})
	rcv := &v1alpha1.Receiver{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns},
		Spec:       v1alpha1.ReceiverSpec{Type: typ, SecretRef: v1alpha1.LocalObjectReference{Name: name + "-token"}},
	}
	if edit != nil {
		edit(rcv)
	}
	h.create(rcv)
	want := receiver.WebhookPath(receiverToken, h.ns, name)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, rcv); err != nil {
			h.t.Fatal(err)
		}
		if c := meta.FindStatusCondition(rcv.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue {
			if rcv.Status.WebhookPath != want {
				h.t.Fatalf("Receiver %s: status.webhookPath %q, want %q", name, rcv.Status.WebhookPath, want)
			}
			return h.hook + want
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("Receiver %s not Ready: %+v", name, rcv.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReceiverRegistryPushReachesReady: the embedded registry's own
// notification of a push reconciles a Release whose interval is 1h, so
// nothing but the notification can make it apply the new digest.
func TestReceiverRegistryPushReachesReady(t *testing.T) {
	h := newHarness(t, harnessOptions{receiver: true, notify: "registry"})
	d1 := h.pushSigned("latest", "main@sha1:1", map[string]string{"cm.yaml": configMapYAML("app", map[string]string{"version": "v1"})})
	h.release("app", "latest", nil) // interval 1h
	h.readyAt("app", d1)

	h.receiverFor("registry", v1alpha1.ReceiverDistribution, nil)
	d2 := h.pushSigned("latest", "main@sha1:2", map[string]string{"cm.yaml": configMapYAML("app", map[string]string{"version": "v2"})})
	rel := h.readyAt("app", d2)
	if got := h.mustConfigMap("app").Data["version"]; got != "v2" {
		t.Errorf("ConfigMap version %q, want v2", got)
	}
	if rel.Status.LastHandledReconcileAt == "" {
		t.Error("status.lastHandledReconcileAt is empty: the reconcile came from elsewhere than the receiver")
	}
	if n := counter(t, h.receivers.Metrics.Requests, map[string]string{"reason": "accepted"}); n < 1 {
		t.Errorf("%v accepted requests, want 1 or more", n)
	}
}

// TestReceiverRefusals: a forged signature, a stale timestamp, an oversized
// body, an unknown path, an unknown repository (the name before the mirror
// rule) and a replay change nothing, and each is counted; then the same
// notification, signed and fresh, reconciles the Release, so the refusals
// were not for another reason.
func TestReceiverRefusals(t *testing.T) {
	h := newHarness(t, harnessOptions{receiver: true})
	d1 := h.pushSigned("latest", "main@sha1:1", map[string]string{"cm.yaml": configMapYAML("app", map[string]string{"version": "v1"})})
	h.release("app", "latest", nil) // interval 1h
	h.readyAt("app", d1)
	url := h.receiverFor("ci", v1alpha1.ReceiverGenericHMAC, nil)
	d2 := h.pushSigned("latest", "main@sha1:2", map[string]string{"cm.yaml": configMapYAML("app", map[string]string{"version": "v2"})}) // nobody is told

	repo := strings.TrimPrefix(h.url(), "oci://")
	good, _ := json.Marshal(receiver.Generic{Repository: repo, Tag: "latest", Digest: d2})
	now := strconv.FormatInt(time.Now().Unix(), 10)
	unchanged := func(what string) {
		t.Helper()
		rel := h.get("app")
		if v, ok := rel.Annotations[v1alpha1.ReconcileRequestAnnotation]; ok {
			t.Fatalf("%s: the Release was annotated %s=%s", what, v1alpha1.ReconcileRequestAnnotation, v)
		}
		if rel.Status.LastAppliedDigest != d1 {
			t.Fatalf("%s: the Release applied %s", what, rel.Status.LastAppliedDigest)
		}
	}
	tests := []struct {
		name   string
		url    string
		ts     string
		body   []byte
		sign   func(ts string, body []byte) string
		code   int
		reason string
	}{
		{name: "forged", url: url, ts: now, body: good, code: http.StatusUnauthorized, reason: "forged",
			sign: func(ts string, body []byte) string {
				return receiver.Sign([]byte("not-the-receiver-token-0123456"), ts, body)
			}},
		{name: "unsigned", url: url, ts: now, body: good, code: http.StatusUnauthorized, reason: "forged",
			sign: func(string, []byte) string { return "" }},
		{name: "stale", url: url, ts: strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10), body: good, code: http.StatusOK, reason: "stale"},
		{name: "oversized", url: url, ts: now, code: http.StatusRequestEntityTooLarge, reason: "too_large",
			body: []byte(`{"repository":"` + repo + `","tag":"latest","digest":"` + d2 + `"}` + strings.Repeat(" ", 64<<10))},
		{name: "unknown path", url: h.hook + receiver.WebhookPath([]byte("another-token-0123456789abcdef"), h.ns, "ci"), ts: now, body: good, code: http.StatusNotFound, reason: "not_found"},
		{name: "unknown repository", url: url, ts: now, code: http.StatusAccepted, reason: "unmatched",
			body: []byte(`{"repository":"` + repo + `-other","tag":"latest"}`)},
	}
	for _, tt := range tests {
		sig := receiver.Sign(receiverToken, tt.ts, tt.body)
		if tt.sign != nil {
			sig = tt.sign(tt.ts, tt.body)
		}
		code, msg := postHook(t, tt.url, tt.ts, sig, tt.body)
		if code != tt.code {
			t.Errorf("%s: %d %s, want %d", tt.name, code, msg, tt.code)
		}
		if n := counter(t, h.receivers.Metrics.Requests, map[string]string{"reason": tt.reason}); n < 1 {
			t.Errorf("%s: not counted as %s", tt.name, tt.reason)
		}
		unchanged(tt.name)
	}

	sig := receiver.Sign(receiverToken, now, good)
	if code, msg := postHook(t, url, now, sig, good); code != http.StatusAccepted {
		t.Fatalf("the good notification: %d %s, want 202", code, msg)
	}
	requested := h.get("app").Annotations[v1alpha1.ReconcileRequestAnnotation]
	if requested == "" {
		t.Fatal("the good notification did not annotate the Release")
	}
	h.readyAt("app", d2)

	if code, msg := postHook(t, url, now, sig, good); code != http.StatusOK || !strings.Contains(msg, "already received") {
		t.Errorf("replay: %d %s, want 200 already received", code, msg)
	}
	if n := counter(t, h.receivers.Metrics.Requests, map[string]string{"reason": "replayed"}); n != 1 {
		t.Errorf("%v replays counted, want 1", n)
	}
	if got := h.get("app").Annotations[v1alpha1.ReconcileRequestAnnotation]; got != requested {
		t.Errorf("the replay annotated the Release again: %s, then %s", requested, got)
	}
	if n := counter(t, h.receivers.Metrics.ReconcileRequests, nil); n != 1 {
		t.Errorf("%v reconciles requested, want 1", n)
	}
}

// TestReceiverMatchesAfterMirrorRules: a Release of an upstream registry is
// resolved at the site mirror, and only a notification from the mirror, of
// the mirror's repository, reconciles it. A Receiver's selector narrows the
// Releases further.
func TestReceiverMatchesAfterMirrorRules(t *testing.T) {
	const upstream = "upstream.example.com"
	h := newHarness(t, harnessOptions{receiver: true, mirrorFrom: upstream})
	url := h.receiverFor("ci", v1alpha1.ReceiverGenericHMAC, func(r *v1alpha1.Receiver) {
		r.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"deliver": "fast"}}
	})
	for _, name := range []string{"fast", "slow"} {
		h.release(name, "latest", func(r *v1alpha1.Release) {
			r.Spec.URL = "oci://" + upstream + "/" + h.ns + "/app"
			r.Labels = map[string]string{"deliver": name}
		})
	}
	send := func(repo string) {
		t.Helper()
		body, _ := json.Marshal(receiver.Generic{Repository: repo, Tag: "latest"})
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		if code, msg := postHook(t, url, ts, receiver.Sign(receiverToken, ts, body), body); code != http.StatusAccepted {
			t.Fatalf("notify %s: %d %s", repo, code, msg)
		}
	}
	send(upstream + "/" + h.ns + "/app") // the name before the mirror rule
	for _, name := range []string{"fast", "slow"} {
		if v := h.get(name).Annotations[v1alpha1.ReconcileRequestAnnotation]; v != "" {
			t.Errorf("a notification of the upstream name annotated Release %s", name)
		}
	}
	send(h.reg.Addr + "/airgap/" + h.ns + "/app")
	if v := h.get("fast").Annotations[v1alpha1.ReconcileRequestAnnotation]; v == "" {
		t.Error("a notification of the mirror's repository did not annotate Release fast")
	}
	if v := h.get("slow").Annotations[v1alpha1.ReconcileRequestAnnotation]; v != "" {
		t.Error("Release slow, outside the Receiver's selector, was annotated")
	}
}

// TestReceiverSecretRotation: a new token moves the path, the old path
// answers 404, and a Secret without a usable token stops the Receiver.
func TestReceiverSecretRotation(t *testing.T) {
	h := newHarness(t, harnessOptions{receiver: true})
	old := h.receiverFor("ci", v1alpha1.ReceiverGenericHMAC, nil)
	secret := &corev1.Secret{}
	key := types.NamespacedName{Namespace: h.ns, Name: "ci-token"}
	if err := h.env.Client.Get(h.ctx, key, secret); err != nil {
		t.Fatal(err)
	}
	secret.Data[v1alpha1.ReceiverTokenKey] = []byte("short")
	if err := h.env.Client.Update(h.ctx, secret); err != nil {
		t.Fatal(err)
	}
	rcv := &v1alpha1.Receiver{}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "ci"}, rcv); err != nil {
			t.Fatal(err)
		}
		c := meta.FindStatusCondition(rcv.Status.Conditions, v1alpha1.ConditionReady)
		if c != nil && c.Status == metav1.ConditionFalse {
			if c.Reason != v1alpha1.ReceiverReasonSecretError || !strings.Contains(c.Message, "5 bytes") || rcv.Status.WebhookPath != "" {
				t.Errorf("Ready=False %s %q, path %q: want SecretError naming the 5 bytes, and no path", c.Reason, c.Message, rcv.Status.WebhookPath)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Receiver still Ready with a 5-byte token: %+v", rcv.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	body := []byte(`{"repository":"r.example.com/a","tag":"v1"}`)
	if code, _ := postHook(t, old, ts, receiver.Sign(receiverToken, ts, body), body); code != http.StatusNotFound {
		t.Errorf("the old path answers %d once the token is unusable, want 404", code)
	}
}

func postHook(t *testing.T, url, ts, sig string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(receiver.TimestampHeader, ts)
	if sig != "" {
		req.Header.Set(receiver.SignatureHeader, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(msg))
}

// BenchmarkReceiverPushToReady measures what `airlock push artifact
// --sign-key --notify` gives a CI job: the time from the notification's
// 202 (when the CLI returns) to the Release Ready with the new digest,
// for a Release of 10 ConfigMaps whose interval is 1h. It pushes, signs and
// notifies with the library calls the CLI makes, through the controller's
// real endpoint. Run it with
//
//	go test ./reconciler -run '^$' -bench ReceiverPushToReady -benchtime 20x
//
// and read median-ms and max-ms.
func BenchmarkReceiverPushToReady(b *testing.B) {
	h := newHarness(b, harnessOptions{receiver: true})
	url := h.receiverFor("ci", v1alpha1.ReceiverGenericHMAC, nil)
	files := func(i int) map[string]string {
		f := map[string]string{}
		for j := range 10 {
			f[fmt.Sprintf("cm-%d.yaml", j)] = configMapYAML(fmt.Sprintf("cm-%d", j), map[string]string{"push": strconv.Itoa(i)})
		}
		return f
	}
	d := h.pushSigned("latest", "main@sha1:0", files(0))
	h.release("app", "latest", nil) // interval 1h
	h.readyAt("app", d)
	repo := strings.TrimPrefix(h.url(), "oci://")
	var took []time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		d := h.pushSigned("latest", fmt.Sprintf("main@sha1:%d", i+1), files(i+1))
		b.StartTimer()
		if err := receiver.Send(h.ctx, url, receiverToken, receiver.Generic{Repository: repo, Tag: "latest", Digest: d}, receiver.SendOptions{}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for {
			rel := h.get("app")
			if c := condition(rel, v1alpha1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue && rel.Status.LastAppliedDigest == d {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("push %d not Ready within a minute:\n%s", i+1, describe(rel))
			}
			time.Sleep(10 * time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
}
