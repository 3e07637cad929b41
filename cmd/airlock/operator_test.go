package main

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/internal/envtestenv"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestMain(m *testing.M) {
	code := m.Run()
	envtestenv.Stop()
	os.Exit(code)
}

const (
	digestA = "sha256:3f9a2b7c1e0d4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c"
	digestB = "sha256:7c1e0d4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c3f9a2b"
	digestC = "sha256:0d4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c3f9a2b7c1e"
	fpCI    = "3f9a0c8e2d4b6a1f3e5c7d9b0a2c4e6f8a1b3d5c7e9f0a2b4c6d8e0f1a3b5c7d"
)

// fixture is a namespace of Releases in every state the commands print,
// with a kubeconfig whose context selects it. The clock is fixed 30 days
// after their creation, so ages print the same on every run.
type fixture struct {
	env        *envtestenv.Env
	namespace  string
	kubeconfig string
}

var (
	fixtureOnce sync.Once
	shared      *fixture
	fixtureErr  string
)

func releaseFixture(t *testing.T) *fixture {
	t.Helper()
	env := envtestenv.Start(t)
	fixtureOnce.Do(func() { shared, fixtureErr = buildFixture(env) })
	if shared == nil {
		t.Fatal(fixtureErr)
	}
	return shared
}

func buildFixture(env *envtestenv.Env) (*fixture, string) {
	ctx := context.Background()
	// A fixed name keeps the golden files' columns aligned; the API server
	// is the test binary's own, so the name is free.
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "airlock-operator-test"}}
	if err := env.Client.Create(ctx, nsObj); err != nil {
		return nil, "create namespace: " + err.Error()
	}
	name := nsObj.Name
	rels := fixtureReleases(name)
	var created time.Time
	for _, r := range rels {
		status := r.Status
		if err := env.Client.Create(ctx, r); err != nil {
			return nil, "create Release " + r.Name + ": " + err.Error()
		}
		if r.CreationTimestamp.After(created) {
			created = r.CreationTimestamp.Time
		}
		r.Status = status
	}
	fixed := created.Add(30 * 24 * time.Hour)
	now = func() time.Time { return fixed }
	for _, r := range rels {
		r.Status = shiftTimes(r.Status, fixed)
		if err := env.Client.Status().Update(ctx, r); err != nil {
			return nil, "update the status of Release " + r.Name + ": " + err.Error()
		}
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: env.Config.CertData, ClientKeyData: env.Config.KeyData, Token: env.Config.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: name}
	kc.CurrentContext = "envtest"
	dir, err := os.MkdirTemp("", "airlock-operator-test-")
	if err != nil {
		return nil, err.Error()
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return nil, err.Error()
	}
	return &fixture{env: env, namespace: name, kubeconfig: path}, ""
}

// ago is a time before the fixed clock, as an offset set in fixtureReleases
// and resolved by shiftTimes.
func ago(d time.Duration) metav1.Time { return metav1.NewTime(time.Unix(0, 0).Add(d)) }

func shiftTimes(st v1alpha1.ReleaseStatus, fixed time.Time) v1alpha1.ReleaseStatus {
	shift := func(t metav1.Time) metav1.Time {
		return metav1.NewTime(fixed.Add(-t.Sub(time.Unix(0, 0))).Truncate(time.Second))
	}
	for i := range st.Conditions {
		st.Conditions[i].LastTransitionTime = shift(st.Conditions[i].LastTransitionTime)
	}
	for i := range st.History {
		st.History[i].AppliedAt = shift(st.History[i].AppliedAt)
	}
	return st
}

func fixtureReleases(ns string) []*v1alpha1.Release {
	rel := func(name string, spec v1alpha1.ReleaseSpec, st v1alpha1.ReleaseStatus) *v1alpha1.Release {
		if spec.URL == "" {
			spec.URL = "oci://registry.example.com/team/" + name
		}
		return &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec, Status: st}
	}
	verify := &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "cosign-keys"}, Threshold: 1}
	cond := func(typ string, status metav1.ConditionStatus, reason, msg string, d time.Duration) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: ago(d), ObservedGeneration: 1}
	}
	inventory := []v1alpha1.ObjectRef{
		{Version: "v1", Kind: "Namespace", Name: "hello"},
		{Version: "v1", Kind: "ConfigMap", Namespace: "hello", Name: "hello-config"},
		{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "hello", Name: "hello"},
	}
	signers := []v1alpha1.Signer{{Name: "ci", Fingerprint: fpCI}}
	refused := "verify oci://registry.example.com/team/broken:1.3.0@" + digestC + ": no signature by a trusted key (signers found: 9d8e7f6a5b4c): sign the artifact with one of the trusted keys or add its public key to Secret " + ns + "/cosign-keys"
	return []*v1alpha1.Release{
		rel("hello", v1alpha1.ReleaseSpec{Ref: v1alpha1.ArtifactRef{Semver: ">=1.0.0"}, Path: "overlays/staging", Verify: verify}, v1alpha1.ReleaseStatus{
			ObservedGeneration: 1,
			Conditions: []metav1.Condition{
				cond(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "applied 3f9a2b7c1e0d (main@sha1:0123456789abcdef0123456789abcdef01234567): 3 objects, all healthy", 5*time.Minute),
				cond(v1alpha1.ConditionVerified, metav1.ConditionTrue, v1alpha1.ReasonVerified, "3f9a2b7c1e0d signed by ci (3f9a0c8e2d4b)", 5*time.Minute),
				cond(v1alpha1.ConditionHealthy, metav1.ConditionTrue, v1alpha1.ReasonHealthy, "every object is Current", 4*time.Minute),
			},
			LastAttemptedDigest: digestA, LastAppliedDigest: digestA, ShortDigest: "3f9a2b7c1e0d", LastAppliedGeneration: 1,
			LastAppliedSource: "https://example.com/hello.git", LastAppliedRevision: "main@sha1:0123456789abcdef0123456789abcdef01234567",
			Signers: signers, Inventory: inventory, TrustPolicies: []string{"team-a"}, LastAppliedVersion: "1.3.0",
			History: []v1alpha1.HistoryEntry{
				{Digest: digestA, AppliedAt: ago(5 * time.Minute), Revision: "main@sha1:0123456789abcdef0123456789abcdef01234567", Signers: []string{"ci"}, Health: v1alpha1.HealthHealthy},
				{Digest: digestB, AppliedAt: ago(26 * time.Hour), Revision: "main@sha1:89abcdef0123456789abcdef0123456789abcdef", Signers: []string{"ci"}, Health: v1alpha1.HealthHealthy},
			},
			DriftCorrections: 2,
		}),
		rel("broken", v1alpha1.ReleaseSpec{Ref: v1alpha1.ArtifactRef{Tag: "1.3.0"}, Verify: verify}, v1alpha1.ReleaseStatus{
			ObservedGeneration: 1,
			Conditions: []metav1.Condition{
				cond(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonVerificationFailed, refused, 2*time.Minute),
				cond(v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonVerificationFailed, refused, 2*time.Minute),
				cond(v1alpha1.ConditionVerified, metav1.ConditionFalse, v1alpha1.ReasonVerificationFailed, refused, 2*time.Minute),
			},
			LastAttemptedDigest: digestC, LastAppliedDigest: digestB, ShortDigest: "7c1e0d4f5a6b", LastAppliedGeneration: 1,
			LastAppliedSource: "https://example.com/broken.git", LastAppliedRevision: "1.2.0@sha1:89abcdef0123456789abcdef0123456789abcdef",
			Signers: signers, Inventory: inventory[:2],
			History: []v1alpha1.HistoryEntry{{Digest: digestB, AppliedAt: ago(3 * time.Hour), Revision: "1.2.0@sha1:89abcdef0123456789abcdef0123456789abcdef", Signers: []string{"ci"}, Health: v1alpha1.HealthHealthy}},
		}),
		rel("fresh", v1alpha1.ReleaseSpec{Verify: verify}, v1alpha1.ReleaseStatus{}),
		rel("paused", v1alpha1.ReleaseSpec{Ref: v1alpha1.ArtifactRef{Digest: digestB}, Suspend: true}, v1alpha1.ReleaseStatus{
			ObservedGeneration: 1,
			Conditions: []metav1.Condition{
				cond(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonVerificationRequired, "Release "+ns+"/paused has no spec.verify: add spec.verify with a Secret of trusted cosign public keys, or run the controller with --allow-unsigned", time.Hour),
			},
		}),
	}
}

// golden compares got with testdata/<Test>/<name>.golden; -update rewrites
// it. The fixture fixes digests, names and the clock; any absolute time left
// is replaced.
func golden(t *testing.T, name, got string) {
	t.Helper()
	got = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`).ReplaceAllString(got, "TIME")
	path := filepath.Join("testdata", strings.Split(t.Name(), "/")[0], name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run go test ./cmd/airlock -run %s -update", err, t.Name())
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got); refresh with -update if the change is intended:\n%s", path, diff)
	}
}

func TestGetReleases(t *testing.T) {
	f := releaseFixture(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"context-namespace", nil},
		{"namespace-flag", []string{"-n", f.namespace}},
		{"wide", []string{"-o", "wide"}},
		{"all-namespaces", []string{"-A"}},
		{"one", []string{"broken"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"get", "releases", "--kubeconfig", f.kubeconfig}, tc.args...)
			out, stderr, code := airlock(t, args...)
			if code != 0 {
				t.Fatalf("airlock %s exited %d: %s", strings.Join(args, " "), code, stderr)
			}
			golden(t, tc.name, out)
		})
	}

	t.Run("json", func(t *testing.T) {
		out, stderr, code := airlock(t, "get", "releases", "--kubeconfig", f.kubeconfig, "-o", "json")
		if code != 0 {
			t.Fatalf("exited %d: %s", code, stderr)
		}
		var list v1alpha1.ReleaseList
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("-o json printed %q: %v", out, err)
		}
		var names []string
		for _, r := range list.Items {
			names = append(names, r.Name)
		}
		if diff := cmp.Diff([]string{"broken", "fresh", "hello", "paused"}, names); diff != "" || list.Kind != "ReleaseList" || list.Items[2].Status.LastAppliedDigest != digestA {
			t.Errorf("-o json: kind %q, names (-want +got):\n%s", list.Kind, diff)
		}
	})

	t.Run("errors", func(t *testing.T) {
		_, stderr, code := airlock(t, "get", "releases", "--kubeconfig", f.kubeconfig, "missing")
		if code != 1 || !strings.Contains(stderr, "not found in namespace "+f.namespace) || !strings.Contains(stderr, "airlock get releases -A") {
			t.Errorf("get of a missing Release exited %d: %s", code, stderr)
		}
		_, stderr, code = airlock(t, "get", "releases", "--kubeconfig", filepath.Join(t.TempDir(), "none"))
		if code != 1 || !strings.Contains(stderr, "kubeconfig") {
			t.Errorf("get with a missing kubeconfig exited %d: %s", code, stderr)
		}
	})
}

func TestDescribeRelease(t *testing.T) {
	f := releaseFixture(t)
	for _, name := range []string{"hello", "broken", "fresh", "paused"} {
		t.Run(name, func(t *testing.T) {
			out, stderr, code := airlock(t, "describe", "release", name, "--kubeconfig", f.kubeconfig)
			if code != 0 {
				t.Fatalf("describe exited %d: %s", code, stderr)
			}
			golden(t, name, out)
		})
	}
}

func TestSuspendResumeReconcile(t *testing.T) {
	f := releaseFixture(t)
	ctx := context.Background()
	// Its own Release, deleted at the end, so that the golden files of the
	// other tests do not depend on the order the tests run in.
	ns := f.env.Namespace(t)
	rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "fresh", Namespace: ns}, Spec: v1alpha1.ReleaseSpec{URL: "oci://registry.example.com/team/fresh"}}
	if err := f.env.Client.Create(ctx, rel); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.env.Client.Delete(context.Background(), rel) })
	get := func() *v1alpha1.Release {
		t.Helper()
		r := &v1alpha1.Release{}
		if err := f.env.Client.Get(ctx, client.ObjectKeyFromObject(rel), r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		verb string
		want bool
	}{{"suspend", true}, {"resume", false}} {
		out, stderr, code := airlock(t, tc.verb, "release", "fresh", "-n", ns, "--kubeconfig", f.kubeconfig)
		if code != 0 || get().Spec.Suspend != tc.want {
			t.Fatalf("%s exited %d (%s%s); spec.suspend = %v", tc.verb, code, out, stderr, get().Spec.Suspend)
		}
	}

	// Without --wait: the annotation is set and nothing else.
	if out, stderr, code := airlock(t, "reconcile", "release", "fresh", "-n", ns, "--kubeconfig", f.kubeconfig); code != 0 || !strings.Contains(out, "requested a reconcile") {
		t.Fatalf("reconcile exited %d: %s%s", code, out, stderr)
	}
	token := get().Annotations[v1alpha1.ReconcileRequestAnnotation]
	if _, err := time.Parse(time.RFC3339Nano, token); err != nil {
		t.Fatalf("annotation %s = %q: %v", v1alpha1.ReconcileRequestAnnotation, token, err)
	}

	// With --wait: play the controller's part (copy the annotation to the
	// status with a Ready condition) and check that the command sees it.
	// With progressing, the controller first reports Ready=Unknown
	// Progressing (applied, waiting for health), as with spec.wait: --wait
	// waits on for the verdict.
	for _, tc := range []struct {
		ready       metav1.ConditionStatus
		progressing bool
		wantCode    int
		wantOut     string
	}{
		{metav1.ConditionTrue, false, 0, "is Ready: applied"},
		{metav1.ConditionFalse, false, 1, "is not Ready (VerificationFailed): no signature"},
		{metav1.ConditionTrue, true, 0, "is Ready: applied"},
		{metav1.ConditionFalse, true, 1, "is not Ready (RolledBack): rolled back"},
	} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			setReady := func(r *v1alpha1.Release, status metav1.ConditionStatus, reason, msg string) {
				r.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.Now()}}
				if err := f.env.Client.Status().Update(ctx, r); err != nil {
					t.Error(err)
				}
			}
			for range 200 {
				time.Sleep(50 * time.Millisecond)
				r := get()
				v := r.Annotations[v1alpha1.ReconcileRequestAnnotation]
				if v == token || v == "" {
					continue
				}
				r.Status.LastHandledReconcileAt = v
				r.Status.ObservedGeneration = r.Generation
				token = v
				reason, msg := v1alpha1.ReasonSucceeded, "applied 3f9a2b7c1e0d: 3 objects"
				if tc.ready == metav1.ConditionFalse {
					reason, msg = v1alpha1.ReasonVerificationFailed, "no signature"
				}
				if tc.progressing {
					setReady(r, metav1.ConditionUnknown, v1alpha1.ReasonProgressing, "applied 3f9a2b7c1e0d: 3 objects; waiting for objects to become Current")
					time.Sleep(time.Second) // the command reads it several times
					r = get()
					if tc.ready == metav1.ConditionFalse {
						reason, msg = v1alpha1.ReasonRolledBack, "rolled back: 3f9a2b7c1e0d failed health"
					}
				}
				setReady(r, tc.ready, reason, msg)
				return
			}
		}()
		out, stderr, code := airlock(t, "reconcile", "release", "fresh", "-n", ns, "--wait", "--timeout", "20s", "--kubeconfig", f.kubeconfig)
		<-done
		if code != tc.wantCode || !strings.Contains(out+stderr, tc.wantOut) {
			t.Errorf("reconcile --wait with Ready=%s exited %d, printed %q %q; want %d and %q", tc.ready, code, out, stderr, tc.wantCode, tc.wantOut)
		}
	}
}

func TestEventsRelease(t *testing.T) {
	f := releaseFixture(t)
	ctx := context.Background()
	rel := &v1alpha1.Release{}
	if err := f.env.Client.Get(ctx, client.ObjectKey{Namespace: f.namespace, Name: "broken"}, rel); err != nil {
		t.Fatal(err)
	}
	fixed := now()
	ref := corev1.ObjectReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.ReleaseKind, Namespace: rel.Namespace, Name: rel.Name, UID: rel.UID}
	for _, e := range []*corev1.Event{
		// The new events API (the controller's recorder), seen three times.
		{ObjectMeta: metav1.ObjectMeta{Name: "broken.refused", Namespace: f.namespace}, InvolvedObject: ref, Type: "Warning", Reason: v1alpha1.ReasonVerificationFailed,
			Message: "verify oci://registry.example.com/team/broken:1.3.0: no signature by a trusted key", ReportingController: "airlock-controller", ReportingInstance: "airlock-controller-0", Action: "Verify",
			EventTime: metav1.NewMicroTime(fixed.Add(-10 * time.Minute)), Series: &corev1.EventSeries{Count: 3, LastObservedTime: metav1.NewMicroTime(fixed.Add(-2 * time.Minute))}},
		// The old API, older.
		{ObjectMeta: metav1.ObjectMeta{Name: "broken.applied", Namespace: f.namespace}, InvolvedObject: ref, Type: "Normal", Reason: "Applied",
			Message: "applied oci://registry.example.com/team/broken:1.2.0@" + digestB + ": 2 objects, 0 pruned", Count: 1,
			FirstTimestamp: metav1.NewTime(fixed.Add(-3 * time.Hour)), LastTimestamp: metav1.NewTime(fixed.Add(-3 * time.Hour))},
	} {
		if err := f.env.Client.Create(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	out, stderr, code := airlock(t, "events", "release", "broken", "--kubeconfig", f.kubeconfig)
	if code != 0 {
		t.Fatalf("events exited %d: %s", code, stderr)
	}
	golden(t, "broken", out)

	_, stderr, code = airlock(t, "events", "release", "hello", "--kubeconfig", f.kubeconfig)
	if code != 0 || !strings.Contains(stderr, "No events for Release airlock-operator-test/hello") {
		t.Errorf("events of a Release without any exited %d: %s", code, stderr)
	}
}

// TestDescribeUnhealthy: describe names the objects that failed health and
// why, as the controller recorded them in status.unhealthy, and the
// Release's CEL health checks.
func TestDescribeUnhealthy(t *testing.T) {
	f := releaseFixture(t)
	ctx := context.Background()
	ns := f.env.Namespace(t)
	rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: v1alpha1.ReleaseSpec{
		URL: "oci://registry.example.com/team/web", Ref: v1alpha1.ArtifactRef{Tag: "v3"},
		Verify: &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "cosign-keys"}},
		HealthCheckExprs: []v1alpha1.HealthCheckExpr{{APIVersion: "example.com/v1", Kind: "Gauge",
			Current: "self.status.phase == 'Ready'", Failed: "self.status.phase == 'Failed'"}},
	}}
	if err := f.env.Client.Create(ctx, rel); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.env.Client.Delete(context.Background(), rel) })
	// The Release is created after the fixture's: its age is its own
	// creation plus 30 days, as the fixture's are.
	fixed, prevNow := rel.CreationTimestamp.Add(30*24*time.Hour), now
	now = func() time.Time { return fixed }
	t.Cleanup(func() { now = prevNow })
	failed := "applied 3f9a2b7c1e0d (v3): 2 objects; not healthy after spec.timeout (5m0s): Deployment " + ns + "/web: InProgress: Available: 0/2; Pod web-7c9f5d-x2x8q: CrashLoopBackOff (container app, last exit 1 Error, 5 restarts); Gauge " + ns + "/g: InProgress: spec.healthCheckExprs[0].current \"self.status.phase == 'Ready'\" is not true yet: check these objects' events and logs"
	rel.Status = shiftTimes(v1alpha1.ReleaseStatus{
		ObservedGeneration: 1,
		Conditions: []metav1.Condition{
			{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonUnhealthy, Message: failed, LastTransitionTime: ago(time.Minute), ObservedGeneration: 1},
		},
		LastAttemptedDigest: digestA, LastAppliedDigest: digestA, ShortDigest: "3f9a2b7c1e0d", LastAppliedGeneration: 1, LastAppliedRevision: "v3",
		Inventory: []v1alpha1.ObjectRef{{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: ns, Name: "web"}, {Group: "example.com", Version: "v1", Kind: "Gauge", Namespace: ns, Name: "g"}},
		Unhealthy: []string{
			"Deployment " + ns + "/web: InProgress: Available: 0/2",
			"Pod web-7c9f5d-x2x8q: CrashLoopBackOff (container app, last exit 1 Error, 5 restarts)",
			"Pod web-7c9f5d-k4m2p: Unschedulable: 0/2 nodes are available: 2 Insufficient memory.",
			"Gauge " + ns + "/g: InProgress: spec.healthCheckExprs[0].current \"self.status.phase == 'Ready'\" is not true yet",
		},
		History: []v1alpha1.HistoryEntry{{Digest: digestA, AppliedAt: ago(6 * time.Minute), Revision: "v3", Signers: []string{"ci"}, Health: v1alpha1.HealthUnhealthy}},
	}, fixed)
	if err := f.env.Client.Status().Update(ctx, rel); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := airlock(t, "describe", "release", "web", "-n", ns, "--kubeconfig", f.kubeconfig)
	if code != 0 {
		t.Fatalf("describe exited %d: %s", code, stderr)
	}
	golden(t, "web", strings.ReplaceAll(out, ns, "NS"))
}
