package localcluster

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// AssetsEnv names the variable the Makefile sets to the assets directory
// (the output of hack/cluster-assets.sh). Only Start reads it.
const AssetsEnv = "AIRLOCK_CLUSTER_ASSETS"

// NodeCount is the number of fake Nodes Start creates.
const NodeCount = 2

// Cluster is a running local cluster.
type Cluster struct {
	// Config connects as an administrator (system:masters).
	Config *rest.Config
	// Client is an uncached administrator client with the built-in types.
	Client client.Client
	// Kubeconfig is the administrator's kubeconfig file.
	Kubeconfig string
	// Nodes are the fake Nodes, Ready.
	Nodes []string
	// Workloads are the controller-manager, scheduler and kwok processes.
	Workloads *Workloads
}

// Start starts a cluster for the test, with NodeCount Ready fake Nodes, and
// stops it when the test ends. It fails the test, with the command to run,
// when the assets are missing.
func Start(t testing.TB) *Cluster {
	t.Helper()
	assets := os.Getenv(AssetsEnv)
	if assets == "" {
		t.Fatalf("%s is unset: build the cluster's binaries with `export %s=$(hack/cluster-assets.sh)` after hack/envtest-assets.sh (or run make test, which does both), then run the tests again", AssetsEnv, AssetsEnv)
	}
	if err := CheckAssets(assets); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets, Scheme: scheme}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver and etcd from %s: %v", assets, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("stop kube-apiserver and etcd: %v", err)
		}
	})
	cfg.QPS, cfg.Burst = 500, 1000
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	w, err := StartWorkloads(assets, kubeconfig, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for name, log := range w.Logs() {
				t.Logf("the end of %s's log:\n%s", name, tail(log, 30))
			}
		}
		w.Stop()
	})
	nodes, err := CreateNodes(ctx, c, "kwok-node", NodeCount)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WaitNodesReady(ctx, c, nodes); err != nil {
		t.Fatal(err)
	}
	t.Logf("local cluster: %d fake Nodes Ready %s after the start (kubeconfig %s)", len(nodes), time.Since(begin).Round(100*time.Millisecond), kubeconfig)
	return &Cluster{Config: cfg, Client: c, Kubeconfig: kubeconfig, Nodes: nodes, Workloads: w}
}
