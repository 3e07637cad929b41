// Package localcluster runs a local Kubernetes cluster that runs workloads,
// without containers: kube-apiserver and etcd (controller-runtime's envtest),
// kube-controller-manager, kube-scheduler and kwok, which simulates the
// kubelets of fake Nodes and moves their Pods through its stages. All five
// binaries and kwok's stages come from hack/envtest-assets.sh and
// hack/cluster-assets.sh, built once from the Go module proxy.
//
// A Pod with a container image tagged "crash" (for example app:crash) runs but
// never becomes ready: its containers wait in CrashLoopBackOff
// (hack/cluster/stages/pod-crash.yaml). A Pod with an image tagged "unready"
// runs, its containers started, but never becomes ready, as if its readiness
// probe failed (hack/cluster/stages/pod-unready.yaml). Every other Pod
// becomes Running and Ready within a second of being scheduled, and a Job's
// Pods then succeed.
package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Binaries and files the cluster needs in its assets directory.
var assetNames = []string{"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok", "stages.yaml"}

// CheckAssets reports which of the cluster's binaries and files are missing
// from dir, with the command that builds them.
func CheckAssets(dir string) error {
	var missing []string
	for _, n := range assetNames {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s missing from %s: run hack/envtest-assets.sh and hack/cluster-assets.sh (cold: about 6 minutes with kube-apiserver's build cache warm, then instant)", strings.Join(missing, ", "), dir)
	}
	return nil
}

// Workloads are the processes that make a bare control plane run
// workloads: kube-controller-manager, kube-scheduler and kwok.
type Workloads struct {
	procs []*process
}

type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // set before done is closed
}

// StartWorkloads starts kube-controller-manager, kube-scheduler and kwok from
// assets against the API server of kubeconfig (an administrator's), with
// their working files and logs in dir. Stop them with Stop; WaitNodesReady
// reports a process that exits at once (an unknown flag, an unreadable
// kubeconfig).
func StartWorkloads(assets, kubeconfig, dir string) (*Workloads, error) {
	if err := CheckAssets(assets); err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "kube-controller-manager-certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	w := &Workloads{}
	for _, p := range []struct {
		name string
		args []string
		home bool
	}{
		{"kube-controller-manager", []string{
			"--kubeconfig=" + kubeconfig,
			"--leader-elect=false",
			// One client for all controllers: no ServiceAccount tokens to mint.
			"--use-service-account-credentials=false",
			"--controllers=*,-serviceaccount-token",
			"--secure-port=0",
			"--cert-dir=" + certDir,
		}, false},
		{"kube-scheduler", []string{
			"--kubeconfig=" + kubeconfig,
			"--leader-elect=false",
			"--secure-port=0",
		}, false},
		{"kwok", []string{
			"--kubeconfig=" + kubeconfig,
			"--config=" + filepath.Join(assets, "stages.yaml"),
			"--manage-all-nodes=true",
			"--cidr=10.0.0.1/24",
			"--node-ip=10.0.0.1",
			"--server-address=127.0.0.1:0",
			// A Lease per fake Node, renewed every 10 s as a kubelet does:
			// without it kube-controller-manager marks the Nodes NotReady
			// after 50 s, and with them every Pod not Ready for good.
			"--node-lease-duration-seconds=40",
		}, true},
	} {
		var env []string
		if p.home {
			// kwok also loads ~/.kwok/kwok.yaml when it exists: not a user's.
			env = append(os.Environ(), "HOME="+dir)
		}
		proc, err := startProcess(filepath.Join(assets, p.name), p.args, env, filepath.Join(dir, p.name+".log"))
		if err != nil {
			w.Stop()
			return nil, err
		}
		w.procs = append(w.procs, proc)
	}
	return w, nil
}

// startProcess starts bin with args and env (nil: this process's) and its
// output in logFile.
func startProcess(bin string, args, env []string, logFile string) (*process, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr, cmd.Env = f, f, env
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{name: filepath.Base(bin), cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// Exited returns an error naming each process that has already exited, with
// the end of its log.
func (w *Workloads) Exited() error {
	var errs []error
	for _, p := range w.procs {
		select {
		case <-p.done:
			errs = append(errs, fmt.Errorf("%s exited (%v); the end of %s:\n%s", p.name, p.err, p.log, tail(p.log, 20)))
		default:
		}
	}
	return errors.Join(errs...)
}

// Logs returns the log file of each process, by name.
func (w *Workloads) Logs() map[string]string {
	m := map[string]string{}
	for _, p := range w.procs {
		m[p.name] = p.log
	}
	return m
}

// Pids returns the process id of each process, by name.
func (w *Workloads) Pids() map[string]int {
	m := map[string]int{}
	for _, p := range w.procs {
		m[p.name] = p.cmd.Process.Pid
	}
	return m
}

// Stop ends the processes (SIGTERM, then SIGKILL after 10 seconds) and
// waits for them.
func (w *Workloads) Stop() {
	for _, p := range w.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range w.procs {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

func tail(file string, lines int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	ls := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return string(bytes.Join(ls, []byte("\n")))
}

// FakeNodeAnnotation marks a Node whose kubelet kwok simulates.
const FakeNodeAnnotation = "kwok.x-k8s.io/node"

// CreateNodes creates n fake Nodes named prefix-0…, with the labels and
// capacity kwok's documentation uses. They carry no taint, so ordinary
// manifests schedule on them without tolerations.
func CreateNodes(ctx context.Context, c client.Client, prefix string, n int) ([]string, error) {
	var names []string
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		capacity := corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("32"),
			corev1.ResourceMemory: resource.MustParse("256Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
		}
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{FakeNodeAnnotation: "fake"},
				Labels: map[string]string{
					"type":                          "kwok",
					"kubernetes.io/arch":            "amd64",
					"kubernetes.io/os":              "linux",
					"kubernetes.io/hostname":        name,
					"kubernetes.io/role":            "agent",
					"node-role.kubernetes.io/agent": "",
				},
			},
			Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
		}
		if err := c.Create(ctx, node); err != nil {
			return names, fmt.Errorf("create fake node %s: %w", name, err)
		}
		names = append(names, name)
	}
	return names, nil
}

// WaitNodesReady waits until every named Node is Ready, a process has
// exited, or ctx ends.
func (w *Workloads) WaitNodesReady(ctx context.Context, c client.Client, names []string) error {
	var notReady []string
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := w.Exited(); err != nil {
			return false, err
		}
		notReady = notReady[:0]
		for _, name := range names {
			node := &corev1.Node{}
			if err := c.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
				notReady = append(notReady, name+" ("+err.Error()+")")
				continue
			}
			if !nodeReady(node) {
				notReady = append(notReady, name)
			}
		}
		return len(notReady) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("nodes not Ready: %s: %w (see kwok's log, %s)", strings.Join(notReady, ", "), err, w.Logs()["kwok"])
	}
	return nil
}

// PodReady says whether p's Ready condition is True: what the tests on
// this cluster wait for once kwok runs a Pod.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
