package envtestenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"airlock.dev/airlock/internal/localcluster"
)

// A local cluster that runs workloads, shared by the test binary's tests
// that need Deployments to roll out. It is a separate API server from
// Start's, which the tests that need only an API server keep using.
var sharedCluster struct {
	mu        sync.Mutex
	env       *Env
	workloads *localcluster.Workloads
	dir       string
}

// StartCluster returns the test binary's local cluster, starting it on
// first use: an API server with the Release CRD, and kube-controller-manager,
// kube-scheduler and kwok with localcluster.NodeCount Ready fake Nodes, so
// that Deployments roll out and their Pods run (see localcluster for the
// images that crash or never become ready). Give each test its own
// namespace with Env.Namespace. It skips the test when KUBEBUILDER_ASSETS is
// unset, like Start, and fails it when AIRLOCK_CLUSTER_ASSETS is unset or
// incomplete. Stop stops it.
func StartCluster(t testing.TB) *Env {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip(AssetsHint)
	}
	assets := os.Getenv(localcluster.AssetsEnv)
	if assets == "" {
		t.Fatalf("%s is unset: build the local cluster's binaries with `export %s=$(hack/cluster-assets.sh)` after hack/envtest-assets.sh (or run make test, which does both), then run the tests again", localcluster.AssetsEnv, localcluster.AssetsEnv)
	}
	if err := localcluster.CheckAssets(assets); err != nil {
		t.Fatal(err)
	}
	sharedCluster.mu.Lock()
	defer sharedCluster.mu.Unlock()
	if sharedCluster.env != nil {
		return sharedCluster.env
	}
	begin := time.Now()
	if err := startCluster(assets); err != nil {
		stopCluster()
		t.Fatalf("start the local cluster: %v", err)
	}
	t.Logf("local cluster: %d fake Nodes Ready %s after the start", localcluster.NodeCount, time.Since(begin).Round(100*time.Millisecond))
	return sharedCluster.env
}

// startCluster fills sharedCluster; on error, stopCluster undoes what started.
func startCluster(assets string) error {
	dir, err := os.MkdirTemp("", "airlock-cluster-")
	if err != nil {
		return err
	}
	sharedCluster.dir = dir
	e, err := start(assets)
	if err != nil {
		return err
	}
	sharedCluster.env = e
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, e.env.KubeConfig, 0o600); err != nil {
		return err
	}
	w, err := localcluster.StartWorkloads(assets, kubeconfig, dir)
	if err != nil {
		return err
	}
	sharedCluster.workloads = w
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes, err := localcluster.CreateNodes(ctx, e.Client, "kwok-node", localcluster.NodeCount)
	if err != nil {
		return err
	}
	return w.WaitNodesReady(ctx, e.Client, nodes)
}

// ClusterExited reports a process of the local cluster that has exited,
// with the end of its log, and the log files of the others; nil when all
// run. A test that waits in vain on a workload shows it.
func ClusterExited() error {
	sharedCluster.mu.Lock()
	defer sharedCluster.mu.Unlock()
	if sharedCluster.workloads == nil {
		return nil
	}
	if err := sharedCluster.workloads.Exited(); err != nil {
		return fmt.Errorf("the local cluster: %w (logs: %v)", err, sharedCluster.workloads.Logs())
	}
	return nil
}

// ClusterLogs returns the log file of each process of the local cluster
// (kube-controller-manager, kube-scheduler, kwok), by name; nil before it
// starts.
func ClusterLogs() map[string]string {
	sharedCluster.mu.Lock()
	defer sharedCluster.mu.Unlock()
	if sharedCluster.workloads == nil {
		return nil
	}
	return sharedCluster.workloads.Logs()
}

func stopCluster() {
	if sharedCluster.workloads != nil {
		sharedCluster.workloads.Stop()
		sharedCluster.workloads = nil
	}
	if sharedCluster.env != nil {
		_ = sharedCluster.env.env.Stop()
		sharedCluster.env = nil
	}
	if sharedCluster.dir != "" {
		_ = os.RemoveAll(sharedCluster.dir)
		sharedCluster.dir = ""
	}
}

// WriteKubeconfig writes a kubeconfig file that connects to the API server
// as its administrator, in namespace by default, for tests that run the CLI.
func (e *Env) WriteKubeconfig(path, namespace string) error {
	kc, err := KubeConfig(e.Config, namespace)
	if err != nil {
		return err
	}
	return os.WriteFile(path, kc, 0o600)
}
