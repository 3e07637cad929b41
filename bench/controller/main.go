// Command controller measures airlock-controller as its own process: the
// time until N Releases are Ready, the cost of a no-op reconcile (interval
// reached, nothing changed: registry requests and non-dry-run apiserver
// writes, from the controller's own metrics), and the controller's peak RSS
// and Go heap, with the peaks of its two halves: RssAnon (what it
// allocated: Go heap, stacks) and RssFile (the binary's own pages).
//
// By default the Releases apply --objects ConfigMaps each to a bare
// kube-apiserver (envtest), with the embedded registry:
//
//	KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go run ./bench/controller --releases 1000
//
// With --cluster they run on the local cluster with workloads
// (internal/localcluster: kube-controller-manager, kube-scheduler and kwok
// with fake Nodes) in the flux-benchmark shape: each Release applies a
// Deployment scaled to zero, a ServiceAccount, a Service and an Ingress, with
// wait: true, so Ready means the Deployment controller has rolled it out:
//
//	KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) AIRLOCK_CLUSTER_ASSETS=$(hack/cluster-assets.sh) \
//	  go run ./bench/controller --cluster --releases 1000
//
// With --spokes N and --shards M it measures a hub: the Releases, on the
// hub's envtest, apply through spec.kubeConfig to N spoke envtests (Release
// i to spoke i mod N), and M controllers split them by
// --watch-label-selector shard=sK (Release i in shard i mod M). It reports
// the time until all are Ready and each shard's RSS and Go heap:
//
//	KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go run ./bench/controller --releases 300 --spokes 3 --shards 2
//
// With --push-notify N it measures a push through the receiver on the local
// cluster: one Release (interval 1h, wait: true) of a Deployment of one
// replica, a generic-hmac Receiver, and the controller with --receiver-addr;
// then N times the airlock CLI's `push artifact --sign-key --notify URL
// --notify-secret FILE`, each a new rollout, timed from the CLI's exit
// until the Release is Ready on the pushed digest:
//
//	KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) AIRLOCK_CLUSTER_ASSETS=$(hack/cluster-assets.sh) \
//	  go run ./bench/controller --push-notify 20
//
// --profile-dir saves the controller's heap and goroutine profiles (pprof)
// once the no-op phase is over: read them with go tool pprof.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
	"airlock.dev/airlock/internal/localcluster"
	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/verify"
)

type options struct {
	releases   int
	objects    int
	concurrent int
	controller string
	cluster    bool
	profileDir string
	timeout    time.Duration
	memLimit   string
	goGC       string
	spokes     int
	shards     int
	pushNotify int
	airlock    string
}

func main() {
	var o options
	flag.IntVar(&o.releases, "releases", 100, "number of Releases")
	flag.IntVar(&o.objects, "objects", 10, "ConfigMaps per Release (without --cluster)")
	flag.IntVar(&o.concurrent, "concurrent", 4, "controller workers")
	flag.StringVar(&o.controller, "controller", "", "airlock-controller binary to measure; empty builds ./cmd/airlock-controller")
	flag.BoolVar(&o.cluster, "cluster", false, "run on the local cluster with workloads ($AIRLOCK_CLUSTER_ASSETS) in the flux-benchmark shape: a Deployment scaled to zero, a ServiceAccount, a Service and an Ingress per Release, wait: true")
	flag.StringVar(&o.profileDir, "profile-dir", "", "save the controller's heap and goroutine profiles here after the no-op phase (the controller needs --pprof-addr)")
	flag.StringVar(&o.memLimit, "gomemlimit", "", "GOMEMLIMIT of the controller (for example 40MiB), as --memory-limit-ratio would set it in a container; empty sets none")
	flag.StringVar(&o.goGC, "gogc", "", "GOGC of the controller (for example 50 or off); empty leaves the controller's own default")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "longest wait for all Releases to be Ready")
	flag.IntVar(&o.spokes, "spokes", 0, "remote clusters (envtest API servers) the Releases apply to through spec.kubeConfig, Release i to spoke i mod N; 0 applies to the hub itself")
	flag.IntVar(&o.shards, "shards", 1, "controllers, each with --watch-label-selector shard=sK for its share of the Releases (Release i in shard i mod M)")
	flag.IntVar(&o.pushNotify, "push-notify", 0, "time this many pushes through the receiver on the local cluster (implies --cluster and --releases 1): airlock push artifact --notify, until the Release is Ready on the new digest")
	flag.StringVar(&o.airlock, "airlock", "", "airlock CLI binary that --push-notify runs; empty builds ./cmd/airlock")
	flag.Parse()
	if o.pushNotify > 0 {
		o.cluster, o.releases = true, 1
	}
	if o.shards < 1 || o.spokes < 0 || (o.cluster && o.spokes > 0) {
		fmt.Fprintln(os.Stderr, "bench: --shards must be 1 or more, --spokes 0 or more, and --spokes does not go with --cluster")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// fluxShape is the flux-benchmark's application: a Deployment scaled to
// zero, a ServiceAccount, a Service and an Ingress.
var fluxShape = map[string]string{
	"deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 0
  selector:
    matchLabels:
      app: app
  template:
    metadata:
      labels:
        app: app
    spec:
      serviceAccountName: app
      containers:
      - name: app
        image: registry.example.com/app:v1
        ports:
        - containerPort: 8080
`,
	"serviceaccount.yaml": `apiVersion: v1
kind: ServiceAccount
metadata:
  name: app
`,
	"service.yaml": `apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  selector:
    app: app
  ports:
  - port: 80
    targetPort: 8080
`,
	"ingress.yaml": `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
spec:
  rules:
  - host: app.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: app
            port:
              number: 80
`,
}

func run(o options) (err error) {
	ctx := context.Background()
	n := o.releases
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return fmt.Errorf("KUBEBUILDER_ASSETS is unset: export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	work, err := os.MkdirTemp("", "airlock-controller-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// Keep the controller's and the cluster's logs for a look.
			err = fmt.Errorf("%w (logs kept in %s)", err, work)
			return
		}
		os.RemoveAll(work)
	}()

	bin := o.controller
	if bin == "" {
		bin = filepath.Join(work, "airlock-controller")
		// As make build builds it: static, without cgo. With cgo, kustomize's
		// import of the plugin package makes the linker export every
		// symbol, and the dynamic symbol tables add about 16 MiB of RSS.
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/airlock-controller")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build airlock-controller (run from the repository root): %v\n%s", err, out)
		}
	}
	if o.pushNotify > 0 && o.airlock == "" {
		o.airlock = filepath.Join(work, "airlock")
		if out, err := exec.Command("go", "build", "-o", o.airlock, "./cmd/airlock").CombinedOutput(); err != nil {
			return fmt.Errorf("build airlock (run from the repository root): %v\n%s", err, out)
		}
	}

	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	assets := ""
	if o.cluster {
		if assets = os.Getenv(localcluster.AssetsEnv); assets == "" {
			return fmt.Errorf("%s is unset: export %s=$(hack/cluster-assets.sh)", localcluster.AssetsEnv, localcluster.AssetsEnv)
		}
		if err := localcluster.CheckAssets(assets); err != nil {
			return err
		}
		env.BinaryAssetsDirectory = assets
		// envtest's default Service range, 10.0.0.0/24, has 253 addresses:
		// the 254th Release's Service would find none and never be Ready.
		env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16")
	}
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
	cfg.QPS, cfg.Burst = 500, 1000
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	spokes, err := startSpokes(o.spokes)
	defer func() {
		for _, sp := range spokes {
			sp.env.Stop()
		}
	}()
	if err != nil {
		return err
	}
	if o.cluster {
		w, err := localcluster.StartWorkloads(assets, kcPath, work)
		if err != nil {
			return err
		}
		defer w.Stop()
		nodes, err := localcluster.CreateNodes(ctx, c, "kwok-node", localcluster.NodeCount)
		if err != nil {
			return err
		}
		nctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err = w.WaitNodesReady(nctx, c, nodes)
		cancel()
		if err != nil {
			return err
		}
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
	if err := os.MkdirAll(app, 0o755); err != nil {
		return err
	}
	files := fluxShape
	shape := "a Deployment scaled to zero, a ServiceAccount, a Service and an Ingress"
	if o.pushNotify > 0 {
		files, shape = pushShape(0), "a Deployment of 1 replica"
	}
	if !o.cluster {
		files = map[string]string{}
		for i := 0; i < o.objects; i++ {
			files[fmt.Sprintf("cm-%d.yaml", i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%d\ndata:\n  key: value-%d\n", i, i)
		}
		shape = fmt.Sprintf("%d ConfigMaps", o.objects)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(app, name), []byte(content), 0o644); err != nil {
			return err
		}
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

	// Releases with a 20 s interval, so the no-op phase below needs no writes
	// from us; with --push-notify 1h, so only the receiver reconciles.
	interval := 20 * time.Second
	if o.pushNotify > 0 {
		interval = time.Hour
	}
	wait := true
	var namespaces []string
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("bench-%03d", i)
		namespaces = append(namespaces, ns)
		rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns, Labels: map[string]string{"shard": fmt.Sprintf("s%d", i%o.shards)}}, Spec: v1alpha1.ReleaseSpec{
			URL: "oci://" + reg.Addr + "/bench/app", Ref: v1alpha1.ArtifactRef{Tag: "v1"}, Insecure: true,
			Interval: metav1.Duration{Duration: interval},
			Wait:     &wait,
			Verify:   &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "keys"}},
		}}
		objs := []client.Object{
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "keys", Namespace: ns}, Data: map[string][]byte{"bench.pub": pub}},
		}
		if len(spokes) > 0 {
			sp := spokes[i%len(spokes)]
			if err := sp.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				return err
			}
			objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "spoke", Namespace: ns}, Data: map[string][]byte{"value": sp.kubeconfig}})
			rel.Spec.KubeConfig = &v1alpha1.KubeConfigReference{SecretRef: v1alpha1.SecretKeyReference{Name: "spoke"}}
		}
		for _, o := range append(objs, rel) {
			if err := c.Create(ctx, o); err != nil {
				return err
			}
		}
	}

	load := loadAverage()
	start := time.Now()
	procs := make([]*controllerProc, 0, o.shards)
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for k := 0; k < o.shards; k++ {
		selector := ""
		if o.shards > 1 {
			selector = fmt.Sprintf("shard=s%d", k)
		}
		p, err := startController(o, bin, kcPath, filepath.Join(work, fmt.Sprintf("shard-%d", k)), selector, namespaces)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}

	ready := 0
	for time.Since(start) < o.timeout {
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
		return fmt.Errorf("only %d of %d Releases Ready after %v (the controllers' logs: %s; kube-controller-manager's and kwok's are beside them)", ready, n, cold, work)
	}
	where := "envtest"
	switch {
	case o.cluster:
		where = "the local cluster, wait: true"
	case o.spokes > 0:
		where = fmt.Sprintf("%d envtest spokes through spec.kubeConfig, from an envtest hub", o.spokes)
	}
	fmt.Printf("controller: GOGC=%s GOMEMLIMIT=%s (empty: the controller's defaults)\n", o.goGC, o.memLimit)
	fmt.Printf("cold: %d Releases × %s Ready in %v on %s, %d controller(s) (load average before %s, now %s)\n",
		n, shape, cold.Round(10*time.Millisecond), where, o.shards, load, loadAverage())
	for _, p := range procs {
		m, err := memory(p.cmd.Process.Pid)
		if err != nil {
			return err
		}
		p.heap.sampleRSS(p.cmd.Process.Pid)
		anon, file := p.heap.peakRSS()
		heapReady, _ := p.heap.peakSoFar()
		fmt.Printf("  %s: peak RSS %d MiB (peak RssAnon %d MiB, peak RssFile %d MiB), peak Go heap %d MiB so far\n", p.name, m.hwm>>10, anon>>10, file>>10, heapReady>>20)
	}

	if o.pushNotify > 0 {
		return pushNotify(ctx, o, c, namespaces[0], procs[0].receiverAddr, reg.Addr+"/bench/app", work, priv)
	}

	// No-op reconciles: the interval passes with nothing changed.
	before := make([]map[string]float64, len(procs))
	for i, p := range procs {
		if before[i], err = scrape(p.metricsAddr); err != nil {
			return err
		}
	}
	time.Sleep(interval + 10*time.Second)
	var noops, reqs, writes, cpu float64
	for i, p := range procs {
		after, err := scrape(p.metricsAddr)
		if err != nil {
			return err
		}
		noops += after[`airlock_reconcile_duration_seconds_count{result="noop"}`] - before[i][`airlock_reconcile_duration_seconds_count{result="noop"}`]
		reqs += sumPrefix(after, "airlock_registry_requests_total") - sumPrefix(before[i], "airlock_registry_requests_total")
		writes += sumMatching(after, "airlock_apiserver_writes_total", `dry_run="false"`) - sumMatching(before[i], "airlock_apiserver_writes_total", `dry_run="false"`)
		cpu += after["process_cpu_seconds_total"] - before[i]["process_cpu_seconds_total"]
	}
	if noops == 0 {
		return fmt.Errorf("no no-op reconcile was observed in %v", interval+10*time.Second)
	}
	fmt.Printf("no-op: %.0f reconciles, %.2f registry requests and %.2f non-dry-run writes each (target 1 and 0); the controllers used %.1f CPU seconds in those %v (%.1f ms per reconcile)\n",
		noops, reqs/noops, writes/noops, cpu, interval+10*time.Second, 1000*cpu/noops)

	if o.profileDir != "" {
		for _, p := range procs {
			dir := o.profileDir
			if len(procs) > 1 {
				dir = filepath.Join(dir, p.name)
			}
			if err := saveProfiles(p.pprofAddr, dir); err != nil {
				return err
			}
			fmt.Printf("profiles: %s/heap.pprof, %s/goroutine.pprof, %s/goroutine.txt (go tool pprof -top -sample_index=inuse_space %s %s/heap.pprof)\n", dir, dir, dir, bin, dir)
		}
	}

	for _, p := range procs {
		m, err := memory(p.cmd.Process.Pid)
		if err != nil {
			return err
		}
		p.heap.sampleRSS(p.cmd.Process.Pid)
		peak, now := p.heap.stop()
		anon, file := p.heap.peakRSS()
		fmt.Printf("%s memory with %d Releases: peak RSS %d MiB, RSS now %d MiB (target ≤ 64 MiB): RssAnon peak %d MiB, now %d MiB; RssFile peak %d MiB, now %d MiB; Go heap in use: peak %d MiB, now %d MiB\n",
			p.name, n/o.shards, m.hwm>>10, m.rss>>10, anon>>10, m.anon>>10, file>>10, m.file>>10, peak>>20, now>>20)
	}
	return nil
}

// controllerProc is one airlock-controller process: a shard of the hub.
type controllerProc struct {
	name                   string
	cmd                    *exec.Cmd
	metricsAddr, pprofAddr string
	receiverAddr           string
	heap                   *heapSampler
}

// startController starts airlock-controller with its own cache directory
// and log under dir, reconciling the Releases selector matches ("" means
// all); the Releases name no ServiceAccount, so it applies as itself in
// namespaces.
func startController(o options, bin, kubeconfig, dir, selector string, namespaces []string) (*controllerProc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := &controllerProc{name: "controller"}
	if selector != "" {
		p.name = "shard " + selector
	}
	var err error
	if p.metricsAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	healthAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"--kubeconfig", kubeconfig, "--metrics-addr", p.metricsAddr, "--health-addr", healthAddr,
		"--concurrent", strconv.Itoa(o.concurrent), "--cache-dir", filepath.Join(dir, "cache"),
		"--allow-controller-identity-namespaces", strings.Join(namespaces, ",")}
	if selector != "" {
		args = append(args, "--watch-label-selector", selector)
	}
	if o.pushNotify > 0 {
		if p.receiverAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		args = append(args, "--receiver-addr", p.receiverAddr)
	}
	if o.profileDir != "" {
		if p.pprofAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		args = append(args, "--pprof-addr", p.pprofAddr)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = os.Environ()
	if o.memLimit != "" {
		p.cmd.Env = append(p.cmd.Env, "GOMEMLIMIT="+o.memLimit)
	}
	if o.goGC != "" {
		p.cmd.Env = append(p.cmd.Env, "GOGC="+o.goGC)
	}
	logf, err := os.Create(filepath.Join(dir, "controller.log"))
	if err != nil {
		return nil, err
	}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	p.heap = sampleHeap(p.metricsAddr, p.cmd.Process.Pid)
	return p, nil
}

func (p *controllerProc) stop() {
	p.heap.stop()
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
}

// spokeCluster is a remote cluster of the hub: an envtest API server and
// a kubeconfig of an administrator of it.
type spokeCluster struct {
	env        *envtest.Environment
	client     client.Client
	kubeconfig []byte
}

// startSpokes starts n spoke API servers; the caller stops those returned,
// also on error.
func startSpokes(n int) ([]*spokeCluster, error) {
	var out []*spokeCluster
	for i := 0; i < n; i++ {
		env := &envtest.Environment{}
		cfg, err := env.Start()
		if err != nil {
			return out, fmt.Errorf("start spoke %d: %w", i, err)
		}
		sp := &spokeCluster{env: env}
		out = append(out, sp)
		cfg.QPS, cfg.Burst = 500, 1000
		if sp.client, err = client.New(cfg, client.Options{}); err != nil {
			return out, err
		}
		admin, err := env.AddUser(envtest.User{Name: "airlock-hub", Groups: []string{"system:masters"}}, nil)
		if err != nil {
			return out, err
		}
		if sp.kubeconfig, err = admin.KubeConfig(); err != nil {
			return out, err
		}
	}
	return out, nil
}

// saveProfiles fetches the controller's heap and goroutine profiles into dir.
func saveProfiles(pprofAddr, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for file, path := range map[string]string{
		"heap.pprof":      "/debug/pprof/heap?gc=1",
		"goroutine.pprof": "/debug/pprof/goroutine",
		"goroutine.txt":   "/debug/pprof/goroutine?debug=1",
	} {
		resp, err := http.Get("http://" + pprofAddr + path)
		if err != nil {
			return fmt.Errorf("profile %s: %w", path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("profile %s: %s %v", path, resp.Status, err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
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

// scrapeClient asks for /metrics uncompressed. Go's default transport asks
// for gzip, and the heap sampler scrapes once a second: that kept promhttp's
// pooled gzip writer (about 0.8 MB) alive in the controller for the whole
// run, a cost of the measurement itself. Prometheus scrapes every 15 to 60
// seconds, between which the collector frees the pooled writer.
var scrapeClient = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 10 * time.Second}

// scrape reads the Prometheus text format into series → value.
func scrape(addr string) (map[string]float64, error) {
	resp, err := scrapeClient.Get("http://" + addr + "/metrics")
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

// procMemory is a process's memory from /proc/PID/status, in KiB: VmHWM
// (peak RSS), VmRSS, and its two halves RssAnon (heap, stacks: what the
// process allocated) and RssFile (pages of the binary and other mapped
// files).
type procMemory struct {
	hwm, rss, anon, file int64
}

// memory reads pid's procMemory.
func memory(pid int) (procMemory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMemory{}, err
	}
	var m procMemory
	fields := map[string]*int64{"VmHWM:": &m.hwm, "VmRSS:": &m.rss, "RssAnon:": &m.anon, "RssFile:": &m.file}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			if p, ok := fields[f[0]]; ok {
				*p, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return m, nil
}

// heapSampler polls, once a second, the controller's
// go_memstats_heap_inuse_bytes and its RssAnon and RssFile, and keeps the
// highest value of each seen.
type heapSampler struct {
	done      chan struct{}
	finished  chan struct{}
	mu        sync.Mutex
	peak, now float64
	// peakAnon and peakFile are the highest RssAnon and RssFile seen, in KiB.
	peakAnon, peakFile int64
}

func sampleHeap(metricsAddr string, pid int) *heapSampler {
	h := &heapSampler{done: make(chan struct{}), finished: make(chan struct{})}
	go func() {
		defer close(h.finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			h.sampleRSS(pid)
			if m, err := scrape(metricsAddr); err == nil {
				if v, ok := m["go_memstats_heap_inuse_bytes"]; ok {
					h.mu.Lock()
					h.now = v
					h.peak = max(h.peak, v)
					h.mu.Unlock()
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

func (h *heapSampler) sampleRSS(pid int) {
	if m, err := memory(pid); err == nil {
		h.mu.Lock()
		h.peakAnon = max(h.peakAnon, m.anon)
		h.peakFile = max(h.peakFile, m.file)
		h.mu.Unlock()
	}
}

// peakRSS returns the highest RssAnon and RssFile sampled yet, in KiB.
func (h *heapSampler) peakRSS() (anon, file int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peakAnon, h.peakFile
}

// peakSoFar returns the highest and the last value sampled yet, in bytes.
func (h *heapSampler) peakSoFar() (peak, now int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return int64(h.peak), int64(h.now)
}

// stop ends the sampling (once) and returns the peak and the last value, in bytes.
func (h *heapSampler) stop() (peak, now int64) {
	select {
	case <-h.done:
	default:
		close(h.done)
	}
	<-h.finished
	return h.peakSoFar()
}
