package reconciler_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/build"
	"airlock.dev/airlock/build/helmrender"
	"airlock.dev/airlock/internal/envtestenv"
	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/internal/testtree"
	"airlock.dev/airlock/receiver"
	"airlock.dev/airlock/reconciler"
	"airlock.dev/airlock/verify"
)

func TestMain(m *testing.M) {
	// Each harness logs through its own test; this catches what is logged
	// before a manager exists.
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	code := m.Run()
	envtestenv.Stop()
	os.Exit(code)
}

// harness is one test's world: its namespace on the shared API server, its
// own registry, a signing key, and a running controller.
type harness struct {
	t   testing.TB
	ctx context.Context
	env *envtestenv.Env
	ns  string
	// ctrlNS is the controller's namespace (ClusterTrustPolicies' keys).
	ctrlNS  string
	reg     *registry.Server
	key     *verify.PrivateKey
	rec     *reconciler.Reconciler
	metrics *reconciler.Metrics
	// user and password are the registry's only account when it has one.
	user, password string
	// hook is the receiver endpoint's base URL, http://127.0.0.1:PORT, and
	// receivers its controller (harnessOptions.receiver).
	hook      string
	hookLn    net.Listener
	receivers *reconciler.Receivers
}

type harnessOptions struct {
	allowUnsigned bool
	// concurrent is the number of workers. 0 means 2.
	concurrent int
	// mirrorFrom is an upstream registry host that the controller rewrites
	// to the harness's own registry under /airgap. "" means no mirror.
	mirrorFrom string
	// tenant makes the test's namespace a tenant's: Releases without
	// spec.serviceAccountName do not apply as the controller there.
	tenant bool
	// defaultServiceAccount is --default-service-account.
	defaultServiceAccount string
	// noCrossNamespaceRefs is --no-cross-namespace-refs.
	noCrossNamespaceRefs bool
	// finalizerTimeout is --finalizer-timeout. 0 means the default.
	finalizerTimeout time.Duration
	// private makes the registry refuse anonymous access: it has one
	// account, h.user, that the harness pushes and signs with.
	private bool
	// observe sees every registry request. nil means none.
	observe func(*http.Request)
	// cacheMaxBytes bounds the artifact cache in bytes. 0 means its default.
	cacheMaxBytes int64
	// cluster runs the test on the test binary's local cluster
	// (envtestenv.StartCluster), where Deployments roll out and kwok runs
	// their Pods, rather than on the shared API server without controllers.
	cluster bool
	// logs also receives the controller's log output. nil means none.
	logs io.Writer
	// receiver runs the Receiver controller and serves its endpoint on
	// 127.0.0.1 (h.hook).
	receiver bool
	// notify makes the registry send distribution's notifications to the
	// Receiver of this name in the test's namespace, with receiverToken as
	// its bearer token. "" means none.
	notify string
	// setup adds to the manager and the reconciler before they start. nil means nothing.
	setup func(ctrl.Manager, *reconciler.Reconciler)
	// shard is the controller's --watch-label-selector. nil means every Release.
	shard labels.Selector
	// receipts writes deployment receipts; its KeySecret's namespace is
	// set to the controller's. nil writes none.
	receipts *reconciler.ReceiptWriter
}

func newHarness(t testing.TB, opts harnessOptions) *harness {
	t.Helper()
	var env *envtestenv.Env
	if opts.cluster {
		env = envtestenv.StartCluster(t)
		t.Cleanup(func() {
			if err := envtestenv.ClusterExited(); err != nil {
				t.Error(err)
			}
		})
	} else {
		env = envtestenv.Start(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := &harness{t: t, ctx: ctx, env: env, ns: env.Namespace(t), ctrlNS: env.Namespace(t)}
	regOpts := registry.Options{Observe: opts.observe}
	if opts.receiver {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		h.hookLn, h.hook = ln, "http://"+ln.Addr().String()
		if opts.notify != "" {
			regOpts.Notify = []registry.NotifyEndpoint{{
				URL:     h.hook + receiver.WebhookPath(receiverToken, h.ns, opts.notify),
				Headers: http.Header{"Authorization": {"Bearer " + string(receiverToken)}},
			}}
		}
	}
	if opts.private {
		h.user, h.password = "owner", "s3cret"
		regOpts.HtpasswdFile = registrytest.Htpasswd(t, h.user, h.password)
	}
	h.reg = registrytest.NewWithOptions(t, regOpts)

	var pub []byte
	h.key, pub = newKey(t)
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cosign-keys", Namespace: h.ns}, Data: map[string][]byte{"release.pub": pub}})

	h.rec, h.metrics = h.startController(opts)
	return h
}

// startController starts a controller (a manager and its Release
// reconciler) for the harness's namespace, stopped when the test ends.
// A test may start more than one, each with its own opts.shard.
func (h *harness) startController(opts harnessOptions) (*reconciler.Reconciler, *reconciler.Metrics) {
	t, env, ctx := h.t, h.env, h.ctx
	t.Helper()
	var logTo io.Writer = testWriter{t}
	if opts.logs != nil {
		logTo = io.MultiWriter(logTo, opts.logs)
	}
	ctx, cancel := context.WithCancel(ctx)
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  reconciler.ShardCache(cache.Options{DefaultNamespaces: map[string]cache.Config{h.ns: {}}}, opts.shard),
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Logger:                 zap.New(zap.UseDevMode(true), zap.WriteTo(logTo)),
	})
	if err != nil {
		t.Fatal(err)
	}
	metrics := reconciler.NewMetrics(prometheus.NewRegistry())
	artifactCache, err := reconciler.NewCache(filepath.Join(t.TempDir(), "cache"), 8)
	if err != nil {
		t.Fatal(err)
	}
	artifactCache.MaxBytes = opts.cacheMaxBytes
	// The controller's own recorder, with record's default bound.
	events, stopEvents, err := reconciler.NewEventRecorder(env.Config, env.Scheme, "airlock-controller", 0, mgr.GetLogger().WithName("events"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &reconciler.Reconciler{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		Clients:    &reconciler.Clients{Config: env.Config, Scheme: env.Scheme, Mapper: mgr.GetRESTMapper(), Metrics: metrics},
		Remotes:    &reconciler.RemoteClients{Scheme: env.Scheme, Metrics: metrics},
		Source:     reconciler.RegistrySource{},
		Registries: &reconciler.RegistryClients{},
		Verifier:   reconciler.CosignVerifier{},
		Cache:      artifactCache,
		Events:     events,
		Metrics:    metrics,
		Build:      build.Options{ChartRenderer: helmrender.Engine{}},

		AllowUnsignedInsecure: opts.allowUnsigned,
		BackoffBase:           200 * time.Millisecond,
		HealthPoll:            200 * time.Millisecond,

		ControllerNamespace:   h.ctrlNS,
		DefaultServiceAccount: opts.defaultServiceAccount,
		NoCrossNamespaceRefs:  opts.noCrossNamespaceRefs,
		FinalizerTimeout:      opts.finalizerTimeout,
	}
	if w := opts.receipts; w != nil {
		w.KeySecret.Namespace = h.ctrlNS
		rec.Receipts = w
	}
	if !opts.tenant {
		rec.ControllerIdentityNamespaces = []string{h.ns}
	}
	if opts.mirrorFrom != "" {
		rec.Mirrors = artifact.Mirrors{opts.mirrorFrom: {Registry: h.reg.Addr, Repository: "airgap"}}
	}
	if opts.setup != nil {
		opts.setup(mgr, rec)
	}
	if err := rec.SetupWithManager(ctx, mgr, controller.Options{MaxConcurrentReconciles: max(opts.concurrent, 2)}); err != nil {
		t.Fatal(err)
	}
	if hookLn := h.hookLn; hookLn != nil && h.receivers == nil {
		h.receivers = &reconciler.Receivers{
			Client:    mgr.GetClient(),
			APIReader: mgr.GetAPIReader(),
			Events:    events,
			Metrics:   reconciler.NewReceiverMetrics(prometheus.NewRegistry()),
			Mirrors:   rec.Mirrors,
		}
		if err := h.receivers.SetupWithManager(ctx, mgr, hookLn, controller.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
		stopEvents()
	})
	return rec, metrics
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (h *harness) remote() artifact.RemoteOptions {
	if h.user != "" {
		return artifact.RemoteOptions{PlainHTTPInsecure: true, Keychain: staticKeychain{host: h.reg.Addr, user: h.user, password: h.password}}
	}
	return artifact.RemoteOptions{PlainHTTPInsecure: true, Keychain: emptyKeychain{}}
}

// pullSecret creates a kubernetes.io/dockerconfigjson Secret for the
// harness's registry, with user and password.
func (h *harness) pullSecret(name, user, password string) {
	h.t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg := `{"auths":{"` + h.reg.Addr + `":{"auth":"` + auth + `"}}}`
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(cfg)}})
}

// url is the test's repository.
func (h *harness) url() string { return "oci://" + h.reg.Addr + "/" + h.ns + "/app" }

// push writes files into a directory and pushes it to tag; it returns the digest.
func (h *harness) push(tag, revision string, files map[string]string, annotations map[string]string) string {
	h.t.Helper()
	dir := testtree.Write(h.t, files)
	ref, err := artifact.ParseReference(h.url() + ":" + tag)
	if err != nil {
		h.t.Fatal(err)
	}
	res, err := artifact.Push(h.ctx, ref, dir, artifact.PushOptions{Remote: h.remote(), Source: "https://git.example.com/app", Revision: revision, Annotations: annotations})
	if err != nil {
		h.t.Fatal(err)
	}
	return res.Digest
}

// sign signs digest with key (the trusted one unless another is given).
func (h *harness) sign(digest string, key *verify.PrivateKey) {
	h.t.Helper()
	ref, err := artifact.ParseReference(h.url() + "@" + digest)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := verify.Sign(h.ctx, ref, key, nil, h.remote()); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) pushSigned(tag, revision string, files map[string]string) string {
	d := h.push(tag, revision, files, nil)
	h.sign(d, h.key)
	return d
}

// replaceKeys makes a new signing key the only one in the keys Secret
// cosign-keys, and returns it: the key that signed earlier digests is no
// longer trusted.
func (h *harness) replaceKeys() *verify.PrivateKey {
	h.t.Helper()
	key, pub := newKey(h.t)
	secret := &corev1.Secret{}
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "cosign-keys"}, secret); err != nil {
		h.t.Fatal(err)
	}
	secret.Data = map[string][]byte{"new.pub": pub}
	if err := h.env.Client.Update(h.ctx, secret); err != nil {
		h.t.Fatal(err)
	}
	return key
}

func (h *harness) create(obj client.Object) {
	h.t.Helper()
	if err := h.env.Client.Create(h.ctx, obj); err != nil {
		h.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// release creates a Release of the test's repository at tag, verified with
// the test's key; edit changes the spec first.
func (h *harness) release(name, tag string, edit func(*v1alpha1.Release)) *v1alpha1.Release {
	h.t.Helper()
	rel := &v1alpha1.Release{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns},
		Spec: v1alpha1.ReleaseSpec{
			URL:           h.url(),
			Ref:           v1alpha1.ArtifactRef{Tag: tag},
			Interval:      metav1.Duration{Duration: time.Hour},
			RetryInterval: &metav1.Duration{Duration: 2 * time.Second},
			Timeout:       &metav1.Duration{Duration: 20 * time.Second},
			Insecure:      true,
			Verify:        &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "cosign-keys"}},
		},
	}
	if edit != nil {
		edit(rel)
	}
	h.create(rel)
	return rel
}

func (h *harness) get(name string) *v1alpha1.Release {
	h.t.Helper()
	rel := &v1alpha1.Release{}
	if err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, rel); err != nil {
		h.t.Fatalf("get Release %s: %v", name, err)
	}
	return rel
}

// update applies edit to the Release, retrying on conflicts.
func (h *harness) update(name string, edit func(*v1alpha1.Release)) {
	h.t.Helper()
	for i := 0; ; i++ {
		rel := h.get(name)
		edit(rel)
		err := h.env.Client.Update(h.ctx, rel)
		if err == nil {
			return
		}
		if i > 10 {
			h.t.Fatalf("update Release %s: %v", name, err)
		}
	}
}

// eventually polls cond until it holds or the timeout passes, then fails
// with the Release's last status.
func (h *harness) eventually(name, what string, timeout time.Duration, cond func(*v1alpha1.Release) bool) *v1alpha1.Release {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rel := h.get(name)
		if cond(rel) {
			return rel
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("Release %s: timed out after %s waiting for %s; conditions:\n%s", name, timeout, what, describe(rel))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func describe(rel *v1alpha1.Release) string {
	var b strings.Builder
	for _, c := range rel.Status.Conditions {
		fmt.Fprintf(&b, "  %s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
	}
	fmt.Fprintf(&b, "  lastAttempted=%s lastApplied=%s inventory=%d", rel.Status.LastAttemptedDigest, rel.Status.LastAppliedDigest, len(rel.Status.Inventory))
	return b.String()
}

func condition(rel *v1alpha1.Release, typ string) *metav1.Condition {
	return meta.FindStatusCondition(rel.Status.Conditions, typ)
}

// readyAt waits until the Release is Ready with digest applied.
func (h *harness) readyAt(name, digest string) *v1alpha1.Release {
	h.t.Helper()
	return h.eventually(name, "Ready with "+digest, 30*time.Second, func(rel *v1alpha1.Release) bool {
		c := condition(rel, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue && rel.Status.LastAppliedDigest == digest &&
			rel.Status.ObservedGeneration == rel.Generation
	})
}

// failsWith waits until Ready is False with reason.
func (h *harness) failsWith(name, reason string) *v1alpha1.Release {
	h.t.Helper()
	return h.eventually(name, "Ready=False "+reason, 30*time.Second, func(rel *v1alpha1.Release) bool {
		c := condition(rel, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == reason
	})
}

func (h *harness) configMap(name string) (*corev1.ConfigMap, bool) {
	cm := &corev1.ConfigMap{}
	err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, cm)
	if err != nil {
		return nil, false
	}
	return cm, true
}

func (h *harness) mustConfigMap(name string) *corev1.ConfigMap {
	h.t.Helper()
	cm, ok := h.configMap(name)
	if !ok {
		h.t.Fatalf("ConfigMap %s/%s does not exist", h.ns, name)
	}
	return cm
}

func (h *harness) eventuallyGone(gvk schema.GroupVersionKind, ns, name string) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		err := h.env.Client.Get(h.ctx, types.NamespacedName{Namespace: ns, Name: name}, u)
		if err != nil {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s %s/%s still exists", gvk.Kind, ns, name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// counter sums a counter metric over the series whose labels match.
func counter(t testing.TB, c prometheus.Collector, match map[string]string) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		ok := true
		for k, v := range match {
			found := false
			for _, lp := range pb.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			ok = ok && found
		}
		if !ok {
			continue
		}
		switch {
		case pb.Counter != nil:
			sum += pb.Counter.GetValue()
		case pb.Histogram != nil:
			sum += float64(pb.Histogram.GetSampleCount())
		case pb.Gauge != nil:
			sum += pb.Gauge.GetValue()
		}
	}
	return sum
}

func configMapYAML(name string, data map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n", name)
	for k, v := range data {
		fmt.Fprintf(&b, "  %s: %q\n", k, v)
	}
	return b.String()
}
