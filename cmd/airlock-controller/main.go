// Command airlock-controller runs the Release controller: it pulls signed OCI
// artifacts by digest, verifies them, builds them with kustomize and applies
// them with server-side apply.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/build"
	"airlock.dev/airlock/build/renderproc"
	"airlock.dev/airlock/notify"
	"airlock.dev/airlock/reconciler"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "airlock-controller:", err)
		os.Exit(1)
	}
}

type options struct {
	metricsAddr    string
	probeAddr      string
	leaderElect    bool
	leaderNS       string
	leaderID       string
	concurrent     int
	watchSelector  string
	allowUnsigned  bool
	cacheDir       string
	cacheEntries   int
	cacheBytes     int64
	maxSize        int64
	requeueBackoff time.Duration
	mirrors        artifact.Mirrors

	defaultServiceAccount string
	controllerNamespace   string
	identityNamespaces    []string
	identitySelector      string
	noCrossNamespaceRefs  bool
	finalizerTimeout      time.Duration
	build                 build.Options
	concurrentBuilds      int
	chartRenderer         string

	pprofAddr        string
	memoryLimitRatio float64
	gcPercent        int

	ui uiOptions

	// The receiver endpoint (Receiver resources), off unless receiverAddr is set.
	receiverAddr         string
	receiverTLSCert      string
	receiverTLSKey       string
	receiverMaxBody      int64
	receiverReplayWindow time.Duration
	notifyQueueSize      int
	notifyMaxAttempts    int
	maxRemoteClients     int
	// Deployment receipts (issue 15).
	clusterName      string
	receiptKeySecret string
}

// defaultChartRenderer is airlock-chart-render next to this executable,
// as the image ships them; a missing one fails each chart Release with the
// path tried.
func defaultChartRenderer() string {
	exe, err := os.Executable()
	if err != nil {
		return renderproc.DefaultName // looked up in $PATH
	}
	return filepath.Join(filepath.Dir(exe), renderproc.DefaultName)
}

// version is set at release build time with -ldflags "-X main.version=…"
// (hack/image, make release); receipts record it.
var version = "dev"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("airlock-controller", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.metricsAddr, "metrics-addr", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	fs.StringVar(&o.probeAddr, "health-addr", ":8081", "address of the /healthz and /readyz probes")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader, so that only one replica reconciles")
	fs.StringVar(&o.leaderNS, "leader-election-namespace", "", "namespace of the leader election Lease; empty means the controller's own")
	fs.StringVar(&o.leaderID, "leader-election-id", "", "name of the leader election Lease; empty means airlock-controller.delivery.airlock.dev, or, with --watch-label-selector, a name derived from the selector, so that each shard elects its own leader")
	fs.IntVar(&o.concurrent, "concurrent", 4, "number of Releases reconciled at once")
	fs.StringVar(&o.watchSelector, "watch-label-selector", "", "reconcile only the Releases matching this label selector (sharding)")
	fs.BoolVar(&o.allowUnsigned, "allow-unsigned", false, "apply Releases without spec.verify (INSECURE: the artifact's origin is not checked)")
	fs.StringVar(&o.cacheDir, "cache-dir", filepath.Join(os.TempDir(), "airlock-cache"), "directory of the pulled-artifact cache; emptied at start")
	fs.IntVar(&o.cacheEntries, "cache-entries", 32, "number of pulled artifacts kept on disk")
	fs.Int64Var(&o.cacheBytes, "cache-max-bytes", 1<<30, "most bytes of extracted artifacts kept on disk; drift checks rebuild a Release's objects from here, and pull the artifact again by digest when it was evicted")
	fs.Int64Var(&o.maxSize, "max-size", 0, "size limit of an artifact's content in bytes; 0 means 100 MiB")
	fs.DurationVar(&o.requeueBackoff, "backoff-base", time.Second, "first retry delay after a failure; it doubles up to the Release's retryInterval")
	fs.IntVar(&o.build.MaxObjects, "build-max-objects", build.DefaultMaxObjects, "most objects a Release's kustomize build may make, and may expand to before building (a base counts once for every path that includes it)")
	fs.Int64Var(&o.build.MaxFileBytes, "build-max-file-bytes", build.DefaultMaxFileBytes, "largest file a kustomize build reads, in bytes")
	fs.Int64Var(&o.build.MaxTotalBytes, "build-max-total-bytes", build.DefaultMaxTotalBytes, "most bytes of YAML (and of files the kustomizations name) a kustomize build reads")
	fs.IntVar(&o.concurrentBuilds, "concurrent-builds", 1, "kustomize builds run at once, whatever --concurrent is: each can take a few hundred MiB at the byte limits, so raise it with the memory limit")
	fs.DurationVar(&o.build.Timeout, "build-timeout", time.Minute, "longest a kustomize build may take; 0 means only the Release's spec.timeout")
	fs.StringVar(&o.chartRenderer, "chart-renderer", "", "the "+renderproc.DefaultName+" executable, the process each Helm chart is rendered in (and killed at --build-timeout); empty means the one next to this executable")
	o.mirrors = artifact.Mirrors{}
	fs.Func("registry-mirror", "rewrite Release URLs from an upstream registry to a site mirror, as UPSTREAM_HOST=MIRROR_HOST[/PREFIX]; the upstream host is never contacted (repeatable)", func(s string) error {
		from, to, err := artifact.ParseMirrorRule(s)
		if err != nil {
			return err
		}
		o.mirrors[from] = to
		return nil
	})
	fs.StringVar(&o.defaultServiceAccount, "default-service-account", "", "ServiceAccount, in the Release's own namespace, that a Release without spec.serviceAccountName applies as (outside the namespaces where the controller applies as itself); empty refuses such Releases with ServiceAccountRequired")
	fs.StringVar(&o.controllerNamespace, "controller-namespace", os.Getenv("POD_NAMESPACE"), "the controller's own namespace: Releases there may apply as the controller, and ClusterTrustPolicies' key Secrets are read there; defaults to $POD_NAMESPACE")
	fs.Func("allow-controller-identity-namespaces", "comma-separated namespaces where a Release without spec.serviceAccountName applies as the controller itself, with all its rights (UNSAFE unless everyone who can create a Release there may have them; repeatable)", func(s string) error {
		for _, ns := range strings.Split(s, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				o.identityNamespaces = append(o.identityNamespaces, ns)
			}
		}
		return nil
	})
	fs.StringVar(&o.identitySelector, "allow-controller-identity-namespace-selector", "", "label selector of Namespaces where a Release without spec.serviceAccountName applies as the controller itself (UNSAFE, as --allow-controller-identity-namespaces)")
	fs.BoolVar(&o.noCrossNamespaceRefs, "no-cross-namespace-refs", false, "refuse spec.dependsOn entries in another namespace (InvalidSpec); the install sets it")
	fs.DurationVar(&o.finalizerTimeout, "finalizer-timeout", 10*time.Minute, "how long a deleted Release retries a failing prune before it leaves its objects, records a Warning event naming them and removes its finalizer")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "loopback address (for example 127.0.0.1:6060) of the /debug/pprof/ profiles; empty disables them")
	fs.Float64Var(&o.memoryLimitRatio, "memory-limit-ratio", 0.9, "share of the container's memory limit (cgroup v2 memory.max) set as the Go memory limit, so that the heap is collected before the container is killed; $GOMEMLIMIT, when set, wins")
	fs.IntVar(&o.gcPercent, "gc-percent", defaultGCPercent, "Go's GC target (GOGC): a collection starts when the heap has grown by this percentage of what the last one kept; lower keeps the controller's memory nearer its live heap for more CPU; $GOGC, when set, wins")
	fs.StringVar(&o.receiverAddr, "receiver-addr", "", "address of the receiver endpoint, for example :9292, that serves the Receivers' push notifications from registries and CI jobs; empty disables it and the Receiver controller")
	fs.StringVar(&o.receiverTLSCert, "receiver-tls-cert", "", "PEM certificate to serve the receiver endpoint over HTTPS; empty means plain HTTP (put it behind a TLS ingress)")
	fs.StringVar(&o.receiverTLSKey, "receiver-tls-key", "", "PEM private key for --receiver-tls-cert")
	fs.Int64Var(&o.receiverMaxBody, "receiver-max-body-bytes", reconciler.DefaultReceiverMaxBody, "largest notification body the receiver endpoint reads, in bytes")
	fs.DurationVar(&o.receiverReplayWindow, "receiver-replay-window", 5*time.Minute, "how far a notification's time may be from the controller's, and how long the receiver endpoint remembers a request to refuse its replay")
	fs.IntVar(&o.notifyQueueSize, "notify-queue-size", 1000, "most Alert notifications waiting to be sent, retries included; when full the oldest is dropped (airlock_notifications_dropped_total)")
	fs.IntVar(&o.notifyMaxAttempts, "notify-max-attempts", 6, "attempts per Alert notification before it is given up (an event on the Alert); the delay doubles from 2s up to 2m")
	fs.IntVar(&o.maxRemoteClients, "max-remote-clients", 64, "clients of remote clusters (spec.kubeConfig) kept, one per kubeconfig Secret version and ServiceAccount; the least recently used is dropped first")
	fs.StringVar(&o.clusterName, "cluster-name", "", "this cluster's name, recorded in deployment receipts; required with --receipt-key-secret")
	fs.StringVar(&o.receiptKeySecret, "receipt-key-secret", "", "write a signed deployment receipt next to each artifact when its Release becomes Ready on a new digest or rolls back (a cosign attestation on the sha256-<hex>.att tag; needs push access through the Release's registry credentials): the Secret, in --controller-namespace, with the cluster's cosign key (cosign.key, cosign.password); empty writes none")
	config.RegisterFlags(fs) // --kubeconfig, read by ctrl.GetConfig
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(fs)
	o.ui.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if o.concurrentBuilds < 1 {
		return fmt.Errorf("--concurrent-builds %d: want 1 or more", o.concurrentBuilds)
	}
	o.build.Slots = make(chan struct{}, o.concurrentBuilds)
	if o.chartRenderer == "" {
		o.chartRenderer = defaultChartRenderer()
	}
	o.build.ChartRenderer = renderproc.Process{Path: o.chartRenderer}
	var receipts *reconciler.ReceiptWriter
	if o.receiptKeySecret != "" {
		if o.clusterName == "" || o.controllerNamespace == "" {
			return fmt.Errorf("--receipt-key-secret %s needs --cluster-name and --controller-namespace (or $POD_NAMESPACE)", o.receiptKeySecret)
		}
		receipts = &reconciler.ReceiptWriter{Cluster: o.clusterName, Version: version,
			KeySecret: types.NamespacedName{Namespace: o.controllerNamespace, Name: o.receiptKeySecret}}
	}
	if o.pprofAddr != "" {
		if err := checkLoopback("--pprof-addr", o.pprofAddr); err != nil {
			return err
		}
	}
	if err := o.ui.load(); err != nil {
		return err
	}
	if (o.receiverTLSCert == "") != (o.receiverTLSKey == "") {
		return fmt.Errorf("--receiver-tls-cert and --receiver-tls-key go together")
	}
	zapOpts.DestWriter = stderr
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	_ = stdout

	if o.gcPercent < 1 {
		return fmt.Errorf("--gc-percent %d: want 1 or more (GOGC=off, set in the environment, turns the collector off)", o.gcPercent)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(o.gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		limit, err := goMemoryLimit(cgroupMemoryMax, o.memoryLimitRatio)
		if err != nil {
			return err
		}
		if limit > 0 {
			debug.SetMemoryLimit(limit)
			ctrl.Log.Info("Go memory limit set from the container's", "bytes", limit, "ratio", o.memoryLimitRatio)
		}
	}

	var identitySelector labels.Selector
	if o.identitySelector != "" {
		sel, err := labels.Parse(o.identitySelector)
		if err != nil {
			return fmt.Errorf("--allow-controller-identity-namespace-selector %q: %w", o.identitySelector, err)
		}
		identitySelector = sel
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("connect to Kubernetes: %w: pass --kubeconfig or run in a cluster", err)
	}

	var shard labels.Selector
	if o.watchSelector != "" {
		if shard, err = labels.Parse(o.watchSelector); err != nil {
			return fmt.Errorf("--watch-label-selector %q: %w", o.watchSelector, err)
		}
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        leaderElectionID(o.leaderID, o.watchSelector),
		LeaderElectionNamespace: o.leaderNS,
		PprofBindAddress:        o.pprofAddr,
		Cache:                   reconciler.ShardCache(cache.Options{DefaultTransform: newCacheTransform()}, shard),
		// Secrets are read uncached: the controller watches their metadata only.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	view, err := o.ui.runnable(restConfig)
	if err != nil {
		return err
	}
	if view != nil {
		if err := mgr.Add(view); err != nil {
			return err
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}

	recorder, stopEvents, err := reconciler.NewEventRecorder(restConfig, scheme, "airlock-controller", eventCacheEntries, ctrl.Log.WithName("events"))
	if err != nil {
		return err
	}
	defer stopEvents()

	m := reconciler.NewMetrics(metrics.Registry)
	artifacts, err := reconciler.NewCache(o.cacheDir, o.cacheEntries)
	if err != nil {
		return err
	}
	artifacts.MaxBytes = o.cacheBytes
	r := &reconciler.Reconciler{
		Client:                mgr.GetClient(),
		APIReader:             mgr.GetAPIReader(),
		Clients:               &reconciler.Clients{Config: restConfig, Scheme: scheme, Mapper: mgr.GetRESTMapper(), Metrics: m},
		Remotes:               &reconciler.RemoteClients{Scheme: scheme, Metrics: m, Max: o.maxRemoteClients},
		Source:                reconciler.RegistrySource{},
		Registries:            &reconciler.RegistryClients{},
		Verifier:              reconciler.CosignVerifier{},
		Cache:                 artifacts,
		Events:                recorder,
		Metrics:               m,
		AllowUnsignedInsecure: o.allowUnsigned,
		Mirrors:               o.mirrors,
		MaxSize:               o.maxSize,
		BackoffBase:           o.requeueBackoff,

		DefaultServiceAccount:               o.defaultServiceAccount,
		ControllerNamespace:                 o.controllerNamespace,
		ControllerIdentityNamespaces:        o.identityNamespaces,
		ControllerIdentityNamespaceSelector: identitySelector,
		NoCrossNamespaceRefs:                o.noCrossNamespaceRefs,
		FinalizerTimeout:                    o.finalizerTimeout,
		Build:                               o.build,
		Receipts:                            receipts,
	}
	if err := r.SetupWithManager(ctx, mgr, controller.Options{MaxConcurrentReconciles: o.concurrent}); err != nil {
		return fmt.Errorf("set up the Release controller: %w", err)
	}
	if o.receiverAddr != "" {
		ln, err := net.Listen("tcp", o.receiverAddr)
		if err != nil {
			return fmt.Errorf("--receiver-addr %s: %w", o.receiverAddr, err)
		}
		rs := &reconciler.Receivers{
			Client:       mgr.GetClient(),
			APIReader:    mgr.GetAPIReader(),
			Events:       recorder,
			Metrics:      reconciler.NewReceiverMetrics(metrics.Registry),
			Mirrors:      o.mirrors,
			ReplayWindow: o.receiverReplayWindow,
			MaxBodyBytes: o.receiverMaxBody,
			TLSCertFile:  o.receiverTLSCert,
			TLSKeyFile:   o.receiverTLSKey,
		}
		if err := rs.SetupWithManager(ctx, mgr, ln, controller.Options{MaxConcurrentReconciles: 1}); err != nil {
			return fmt.Errorf("set up the Receiver controller: %w", err)
		}
		ctrl.Log.Info("receiver endpoint enabled", "addr", ln.Addr().String(), "tls", o.receiverTLSCert != "")
	}

	// Alerts: Release changes go to a bounded queue that the dispatcher
	// sends from, so that a down endpoint never holds up a reconcile.
	hostname, _ := os.Hostname()
	alerts := &reconciler.Alerts{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: recorder, Hostname: hostname}
	dispatcher := &notify.Dispatcher{Router: alerts, QueueSize: o.notifyQueueSize, MaxAttempts: o.notifyMaxAttempts,
		Metrics: notify.NewMetrics(metrics.Registry), Log: ctrl.Log.WithName("notify")}
	if err := mgr.Add(dispatcher); err != nil {
		return err
	}
	r.Notifier = dispatcher
	if err := alerts.SetupWithManager(ctx, mgr, controller.Options{MaxConcurrentReconciles: 1}); err != nil {
		return fmt.Errorf("set up the Alert controller: %w", err)
	}
	ctrl.Log.Info("starting airlock-controller", "concurrent", o.concurrent, "allowUnsigned", o.allowUnsigned,
		"watchLabelSelector", o.watchSelector, "leaderElect", o.leaderElect,
		"defaultServiceAccount", o.defaultServiceAccount, "controllerNamespace", o.controllerNamespace,
		"controllerIdentityNamespaces", o.identityNamespaces, "noCrossNamespaceRefs", o.noCrossNamespaceRefs)
	return mgr.Start(ctx)
}

// eventCacheEntries bounds what the controller remembers of the events it
// recorded, to count a repeated event on the Event already written instead
// of writing another (reconciler.NewEventRecorder).
const eventCacheEntries = 256

// leaderElectionID is the name of the leader election Lease: id when set,
// else one per shard, so that shards in one namespace do not elect one
// leader among them all (which would leave every shard but one idle).
func leaderElectionID(id, watchSelector string) string {
	switch {
	case id != "":
		return id
	case watchSelector == "":
		return "airlock-controller.delivery.airlock.dev"
	}
	sum := sha256.Sum256([]byte(watchSelector))
	return "airlock-controller-" + hex.EncodeToString(sum[:])[:10] + ".delivery.airlock.dev"
}
