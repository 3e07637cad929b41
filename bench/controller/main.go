// Command controller measures airlock-controller as its own process against
// a real kube-apiserver (envtest) and the embedded registry:
//
//   - 100 Releases of 10 objects each, cold: time until all are Ready;
//
//   - the cost of a no-op reconcile (interval reached, nothing changed):
//     registry requests and non-dry-run apiserver writes, from the
//     controller's own metrics;
//
//   - the controller's peak RSS.
//
//     KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go run ./bench/controller
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/verify"
)

func main() {
	n := flag.Int("releases", 100, "number of Releases")
	objects := flag.Int("objects", 10, "ConfigMaps per Release")
	concurrent := flag.Int("concurrent", 4, "controller workers")
	controllerBin := flag.String("controller", "", "airlock-controller binary to measure; empty builds ./cmd/airlock-controller")
	flag.Parse()
	if err := run(*n, *objects, *concurrent, *controllerBin); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(n, objects, concurrent int, bin string) error {
	ctx := context.Background()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return fmt.Errorf("KUBEBUILDER_ASSETS is unset: export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	work, err := os.MkdirTemp("", "airlock-controller-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	if bin == "" {
		bin = filepath.Join(work, "airlock-controller")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/airlock-controller").CombinedOutput(); err != nil {
			return fmt.Errorf("build airlock-controller (run from the repository root): %v\n%s", err, out)
		}
	}

	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("start envtest: %w", err)
	}
	defer env.Stop()
	admin, err := env.AddUser(envtest.User{Name: "bench-controller", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return err
	}
	kcPath := filepath.Join(work, "kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}

	reg, err := registry.Start(ctx, "127.0.0.1:0", registry.Options{})
	if err != nil {
		return err
	}
	defer reg.Close()
	priv, pub, err := verify.GenerateKeyPair([]byte("bench"))
	if err != nil {
		return err
	}
	key, err := verify.LoadPrivateKey(priv, []byte("bench"))
	if err != nil {
		return err
	}
	app := filepath.Join(work, "app")
	os.MkdirAll(app, 0o755)
	for i := 0; i < objects; i++ {
		cm := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%d\ndata:\n  key: value-%d\n", i, i)
		os.WriteFile(filepath.Join(app, fmt.Sprintf("cm-%d.yaml", i)), []byte(cm), 0o644)
	}
	plain := artifact.RemoteOptions{PlainHTTPInsecure: true}
	ref, _ := artifact.ParseReference("oci://" + reg.Addr + "/bench/app:v1")
	pushed, err := artifact.Push(ctx, ref, app, artifact.PushOptions{Remote: plain, Source: "https://example.com/app.git", Revision: "main@sha1:0000000000000000000000000000000000000000"})
	if err != nil {
		return err
	}
	if _, err := verify.Sign(ctx, pushed.Ref, key, nil, plain); err != nil {
		return err
	}

	// Releases with a 20 s interval, so the no-op phase below needs no writes from us.
	const interval = 20 * time.Second
	var namespaces []string
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("bench-%03d", i)
		namespaces = append(namespaces, ns)
		objs := []client.Object{
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "keys", Namespace: ns}, Data: map[string][]byte{"bench.pub": pub}},
			&v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}, Spec: v1alpha1.ReleaseSpec{
				URL: "oci://" + reg.Addr + "/bench/app", Ref: v1alpha1.ArtifactRef{Tag: "v1"}, Insecure: true,
				Interval: metav1.Duration{Duration: interval},
				Verify:   &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "keys"}},
			}},
		}
		for _, o := range objs {
			if err := c.Create(ctx, o); err != nil {
				return err
			}
		}
	}

	metricsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	healthAddr, err := freeAddr()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--kubeconfig", kcPath, "--metrics-addr", metricsAddr, "--health-addr", healthAddr,
		"--concurrent", strconv.Itoa(concurrent), "--cache-dir", filepath.Join(work, "cache"),
		// The Releases name no ServiceAccount: they apply as the controller.
		"--allow-controller-identity-namespaces", strings.Join(namespaces, ","))
	logf, _ := os.Create(filepath.Join(work, "controller.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	heap := sampleHeap(metricsAddr)
	defer heap.stop()

	ready := 0
	for time.Since(start) < 5*time.Minute {
		if ready, err = countReady(ctx, c); err != nil {
			return err
		}
		if ready == n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cold := time.Since(start)
	if ready != n {
		return fmt.Errorf("only %d of %d Releases Ready after %v", ready, n, cold)
	}
	fmt.Printf("cold: %d Releases × %d objects Ready in %v (target ≤ 20s)\n", n, objects, cold.Round(10*time.Millisecond))

	// No-op reconciles: the interval passes with nothing changed.
	before, err := scrape(metricsAddr)
	if err != nil {
		return err
	}
	time.Sleep(interval + 10*time.Second)
	after, err := scrape(metricsAddr)
	if err != nil {
		return err
	}
	noops := after[`airlock_reconcile_duration_seconds_count{result="noop"}`] - before[`airlock_reconcile_duration_seconds_count{result="noop"}`]
	reqs := sumPrefix(after, "airlock_registry_requests_total") - sumPrefix(before, "airlock_registry_requests_total")
	writes := sumMatching(after, "airlock_apiserver_writes_total", `dry_run="false"`) - sumMatching(before, "airlock_apiserver_writes_total", `dry_run="false"`)
	if noops == 0 {
		return fmt.Errorf("no no-op reconcile was observed in %v", interval+10*time.Second)
	}
	fmt.Printf("no-op: %.0f reconciles, %.2f registry requests and %.2f non-dry-run writes each (target 1 and 0)\n", noops, reqs/noops, writes/noops)

	hwm, rss, err := memory(cmd.Process.Pid)
	if err != nil {
		return err
	}
	peak, now := heap.stop()
	fmt.Printf("controller memory with %d Releases: peak RSS %d MiB, RSS now %d MiB (target ≤ 64 MiB); Go heap in use: peak %d MiB, now %d MiB\n", n, hwm>>10, rss>>10, peak>>20, now>>20)
	return nil
}

// heapSampler polls the controller's go_memstats_heap_inuse_bytes once a
// second and keeps the highest value seen.
type heapSampler struct {
	done      chan struct{}
	finished  chan struct{}
	peak, now float64
}

func sampleHeap(metricsAddr string) *heapSampler {
	h := &heapSampler{done: make(chan struct{}), finished: make(chan struct{})}
	go func() {
		defer close(h.finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			if m, err := scrape(metricsAddr); err == nil {
				if v, ok := m["go_memstats_heap_inuse_bytes"]; ok {
					h.now = v
					h.peak = max(h.peak, v)
				}
			}
			select {
			case <-h.done:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

// stop ends the sampling (once) and returns the peak and the last value, in bytes.
func (h *heapSampler) stop() (peak, now int64) {
	select {
	case <-h.done:
	default:
		close(h.done)
	}
	<-h.finished
	return int64(h.peak), int64(h.now)
}

func countReady(ctx context.Context, c client.Client) (int, error) {
	var list v1alpha1.ReleaseList
	if err := c.List(ctx, &list); err != nil {
		return 0, err
	}
	n := 0
	for _, r := range list.Items {
		if meta.IsStatusConditionTrue(r.Status.Conditions, v1alpha1.ConditionReady) {
			n++
		}
	}
	return n, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// scrape reads the Prometheus text format into series → value.
func scrape(addr string) (map[string]float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndex(line, " ")
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

func sumPrefix(m map[string]float64, name string) float64 { return sumMatching(m, name, "") }

func sumMatching(m map[string]float64, name, label string) float64 {
	s := 0.0
	for k, v := range m {
		if (k == name || strings.HasPrefix(k, name+"{")) && strings.Contains(k, label) {
			s += v
		}
	}
	return s
}

// memory returns VmHWM and VmRSS of pid in KiB.
func memory(pid int) (int64, int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	var hwm, rss int64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmHWM:" {
			hwm, _ = strconv.ParseInt(f[1], 10, 64)
		}
		if len(f) >= 2 && f[0] == "VmRSS:" {
			rss, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return hwm, rss, nil
}
