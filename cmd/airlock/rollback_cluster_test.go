package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/build"
	"airlock.dev/airlock/build/helmrender"
	"airlock.dev/airlock/internal/envtestenv"
	"airlock.dev/airlock/internal/localcluster"
	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/reconciler"
	"airlock.dev/airlock/verify"
)

// clusterWait bounds every wait on the local cluster: a failure guard only.
const clusterWait = 3 * time.Minute

// `airlock rollback release --to DIGEST --yes` on the local cluster, with a
// running controller: the Release is pinned to the earlier digest, the
// controller applies it again, and the Deployment's earlier ReplicaSet, with
// its Pods, is active again.
func TestRollbackReleaseToOnCluster(t *testing.T) {
	env := envtestenv.StartCluster(t)
	ctx := context.Background()
	ns, kubeconfig, url, key := signedRepo(t, env, "release")
	pushSigned := func(tag, image string) string {
		d := pushDir(t, url+":"+tag, tag, map[string]string{"web.yaml": webDeploymentYAML(image)})
		if _, err := verify.Sign(ctx, mustParse(t, url+"@"+d), key, nil, artifact.RemoteOptions{PlainHTTPInsecure: true}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	v1 := pushSigned("v1", "registry.example/web:v1")
	v2 := pushSigned("v2", "registry.example/web:v2")
	startController(t, env, ns)

	rel := &v1alpha1.Release{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: v1alpha1.ReleaseSpec{
			URL: url, Ref: v1alpha1.ArtifactRef{Tag: "v1"}, Insecure: true,
			Interval: metav1.Duration{Duration: time.Hour}, Timeout: &metav1.Duration{Duration: 2 * time.Minute},
			Verify: &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "cosign-keys"}},
		},
	}
	if err := env.Client.Create(ctx, rel); err != nil {
		t.Fatal(err)
	}
	waitReady(t, env, rel, v1)
	old := waitWebRunning(t, env, ns, "registry.example/web:v1")

	patch := client.MergeFrom(rel.DeepCopy())
	rel.Spec.Ref.Tag = "v2"
	if err := env.Client.Patch(ctx, rel, patch); err != nil {
		t.Fatal(err)
	}
	waitReady(t, env, rel, v2)
	waitWebRunning(t, env, ns, "registry.example/web:v2")

	out, stderr, code := airlock(t, "rollback", "release", "app", "-n", ns, "--kubeconfig", kubeconfig, "--to", v1, "--yes")
	if code != 0 {
		t.Fatalf("airlock rollback release app --to %s --yes exited %d: %s%s", v1, code, out, stderr)
	}
	// The preview names the Deployment it changes.
	if !strings.Contains(out, "Deployment "+ns+"/web") {
		t.Errorf("the preview does not name the Deployment:\n%s", out)
	}

	got := waitReady(t, env, rel, v1)
	if got.Spec.Ref.Digest != v1 || got.Annotations[v1alpha1.PinnedByRollbackAnnotation] != `{"tag":"v2"}` {
		t.Errorf("after the rollback: ref %+v, annotation %q; want pinned to %s with the tag v2 kept", got.Spec.Ref, got.Annotations[v1alpha1.PinnedByRollbackAnnotation], v1)
	}
	rss := waitWebRunning(t, env, ns, "registry.example/web:v1")
	if again := rss["registry.example/web:v1"]; again.UID != old["registry.example/web:v1"].UID {
		t.Errorf("v1 runs in ReplicaSet %s, want its earlier ReplicaSet %s active again", again.Name, old["registry.example/web:v1"].Name)
	}
	if h := got.Status.History; len(h) != 3 || h[0].Digest != v1 || h[1].Digest != v2 || h[2].Digest != v1 || h[0].Health != v1alpha1.HealthHealthy {
		t.Errorf("history = %+v, want v1 applied again and Healthy, after v2 and v1", h)
	}
}

// signedRepo is a namespace with a kubeconfig that selects it, the
// repository team/web in a new registry, and a signing key whose public
// half the namespace's Secret cosign-keys holds as keyName.pub.
func signedRepo(t *testing.T, env *envtestenv.Env, keyName string) (ns, kubeconfig, url string, key *verify.PrivateKey) {
	t.Helper()
	ns = env.Namespace(t)
	kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig, ns); err != nil {
		t.Fatal(err)
	}
	reg := registrytest.New(t)
	url = "oci://" + reg.Addr + "/team/web"
	priv, pub, err := verify.GenerateKeyPair([]byte("test"))
	if err != nil {
		t.Fatal(err)
	}
	if key, err = verify.LoadPrivateKey(priv, []byte("test")); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cosign-keys", Namespace: ns}, Data: map[string][]byte{keyName + ".pub": pub}}
	if err := env.Client.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	return ns, kubeconfig, url, key
}

// startController runs the Release controller in this process for the
// Releases of ns, applying as itself there, until the test ends.
func startController(t *testing.T, env *envtestenv.Env, ns string) {
	t.Helper()
	ctrl.SetLogger(logr.Discard())
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Logger:                 logr.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	metrics := reconciler.NewMetrics(prometheus.NewRegistry())
	artifacts, err := reconciler.NewCache(filepath.Join(t.TempDir(), "cache"), 8)
	if err != nil {
		t.Fatal(err)
	}
	r := &reconciler.Reconciler{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		Clients:    &reconciler.Clients{Config: env.Config, Scheme: env.Scheme, Mapper: mgr.GetRESTMapper(), Metrics: metrics},
		Source:     reconciler.RegistrySource{},
		Registries: &reconciler.RegistryClients{},
		Verifier:   reconciler.CosignVerifier{},
		Cache:      artifacts,
		Events:     mgr.GetEventRecorder("airlock-controller"),
		Metrics:    metrics,
		Build:      build.Options{ChartRenderer: helmrender.Engine{}},

		BackoffBase:                  200 * time.Millisecond,
		HealthPoll:                   200 * time.Millisecond,
		ControllerNamespace:          ns,
		ControllerIdentityNamespaces: []string{ns},
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.SetupWithManager(ctx, mgr, controller.Options{MaxConcurrentReconciles: 2}); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})
}

func webDeploymentYAML(image string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: ` + image + "\n"
}

// waitReady waits until the Release is Ready with digest applied, for its
// current generation, and returns it.
func waitReady(t *testing.T, env *envtestenv.Env, rel *v1alpha1.Release, digest string) *v1alpha1.Release {
	t.Helper()
	got := &v1alpha1.Release{}
	var last string
	deadline := time.Now().Add(clusterWait)
	for time.Now().Before(deadline) {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(rel), got); err != nil {
			t.Fatal(err)
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
		if c != nil && c.Status == metav1.ConditionTrue && got.Status.LastAppliedDigest == digest && got.Status.ObservedGeneration == got.Generation {
			return got
		}
		last = fmt.Sprintf("Ready %+v, lastApplied %s", c, got.Status.LastAppliedDigest)
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("Release %s not Ready with %s after %s: %s", rel.Name, digest, clusterWait, last)
	return nil
}

// waitWebRunning waits until the ReplicaSet of the Deployment web with
// image runs 2 Ready Pods and the others want none; it returns the
// ReplicaSets by image.
func waitWebRunning(t *testing.T, env *envtestenv.Env, ns, image string) map[string]appsv1.ReplicaSet {
	t.Helper()
	ctx := context.Background()
	var last string
	deadline := time.Now().Add(clusterWait)
	for time.Now().Before(deadline) {
		var list appsv1.ReplicaSetList
		if err := env.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{"app": "web"}); err != nil {
			t.Fatal(err)
		}
		var pods corev1.PodList
		if err := env.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": "web"}); err != nil {
			t.Fatal(err)
		}
		rss := map[string]appsv1.ReplicaSet{}
		ok := true
		var seen []string
		for _, rs := range list.Items {
			img := rs.Spec.Template.Spec.Containers[0].Image
			rss[img] = rs
			ready := 0
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil && metav1.IsControlledBy(&p, &rs) && p.Status.Phase == corev1.PodRunning && localcluster.PodReady(&p) {
					ready++
				}
			}
			want := int32(0)
			if img == image {
				want = 2
			}
			ok = ok && *rs.Spec.Replicas == want && int32(ready) == want && rs.Status.Replicas == want
			seen = append(seen, fmt.Sprintf("%s (%s): want %d, %d Pods ready", rs.Name, img, *rs.Spec.Replicas, ready))
		}
		if _, found := rss[image]; ok && found {
			return rss
		}
		last = strings.Join(seen, "; ")
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("the ReplicaSet of %s does not run 2 Ready Pods alone after %s: %s", image, clusterWait, last)
	return nil
}
