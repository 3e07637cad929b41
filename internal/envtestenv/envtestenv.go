// Package envtestenv starts a real kube-apiserver and etcd (controller-runtime's
// envtest) with airlock's CRD installed, once per test binary.
package envtestenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"airlock.dev/airlock/api/v1alpha1"
)

// AssetsHint says how to get the API server binaries.
const AssetsHint = "KUBEBUILDER_ASSETS is unset: build kube-apiserver and etcd with `export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)` (about 10 minutes the first time, then instant) and run the tests again"

// Env is a running API server with the Release CRD.
type Env struct {
	// Config connects as an administrator (system:masters).
	Config *rest.Config
	// Client is an uncached administrator client.
	Client client.Client
	// Scheme has the built-in types and airlock's.
	Scheme *runtime.Scheme

	env *envtest.Environment
}

var shared struct {
	mu  sync.Mutex
	env *Env
}

// Start returns the test binary's API server, starting it on first use. It
// skips the test when KUBEBUILDER_ASSETS is unset. Call Stop from TestMain.
func Start(t testing.TB) *Env {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip(AssetsHint)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.env != nil {
		return shared.env
	}
	e, err := start("")
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	shared.env = e
	return e
}

// Stop stops the shared API server, the spoke (StartSpoke) and the shared
// local cluster (StartCluster), if they were started.
func Stop() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.env != nil {
		_ = shared.env.env.Stop()
		shared.env = nil
	}
	stopSpoke()
	sharedCluster.mu.Lock()
	defer sharedCluster.mu.Unlock()
	stopCluster()
}

// start starts an API server with the Release CRD from assets ("" means
// $KUBEBUILDER_ASSETS).
func start(assets string) (*Env, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("%w (KUBEBUILDER_ASSETS=%s)", err, os.Getenv("KUBEBUILDER_ASSETS"))
	}
	// Tests run many controllers at once; client-go's default 5 QPS would
	// make them wait on the client instead of the server.
	cfg.QPS, cfg.Burst = 500, 1000
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, env: env}, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory: run the tests from the airlock module")
		}
		dir = parent
	}
}

// Namespace creates a namespace for the test, named after it, and deletes it
// when the test ends.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	name := strings.ToLower(t.Name())
	name = strings.NewReplacer("/", "-", "_", "-").Replace(name)
	if len(name) > 50 {
		name = name[:50]
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: strings.Trim(name, "-") + "-"}}
	if err := e.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Client.Delete(ctx, ns)
	})
	return ns.Name
}

// AddUser adds a user authenticated by a client certificate and returns its config.
func (e *Env) AddUser(t testing.TB, name string, groups ...string) *rest.Config {
	t.Helper()
	u, err := e.env.AddUser(envtest.User{Name: name, Groups: groups}, e.Config)
	if err != nil {
		t.Fatalf("add user %s: %v", name, err)
	}
	return u.Config()
}
