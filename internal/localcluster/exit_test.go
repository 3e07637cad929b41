package localcluster_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"airlock.dev/airlock/internal/localcluster"
)

// A process that exits at once (here: kwok with a flag it does not know) is
// reported by name with its log, rather than as Nodes that never get Ready.
func TestWaitNodesReadyReportsAnExitedProcess(t *testing.T) {
	assets := t.TempDir()
	for _, name := range []string{"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok"} {
		script := "#!/bin/sh\nexec sleep 600\n"
		if name == "kwok" {
			script = "#!/bin/sh\necho 'Error: unknown flag: --cidr' >&2\nexit 1\n"
		}
		if err := os.WriteFile(filepath.Join(assets, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(assets, "stages.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w, err := localcluster.StartWorkloads(assets, filepath.Join(dir, "kubeconfig"), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	err = w.WaitNodesReady(ctx, fake.NewClientBuilder().Build(), []string{"kwok-node-0"})

	if err == nil || !strings.Contains(err.Error(), "kwok exited") || !strings.Contains(err.Error(), "unknown flag: --cidr") {
		t.Fatalf("WaitNodesReady = %v, want kwok exited with the end of its log", err)
	}
	if ctx.Err() != nil {
		t.Errorf("WaitNodesReady waited for its deadline: %v", err)
	}
}

func TestCheckAssetsNamesTheMissingAndTheFix(t *testing.T) {
	err := localcluster.CheckAssets(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "kube-controller-manager") || !strings.Contains(err.Error(), "hack/cluster-assets.sh") {
		t.Fatalf("CheckAssets(empty dir) = %v, want the missing binaries and the script that builds them", err)
	}
}
