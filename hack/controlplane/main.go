// Command controlplane runs a local Kubernetes control plane (kube-apiserver
// and etcd on loopback, through controller-runtime's envtest) with the
// Release CRD. Alone it has no kubelet and no controller-manager: objects
// are stored and served, Pods never run. With --workloads (as
// hack/quickstart.sh runs it) it also runs kube-controller-manager,
// kube-scheduler and kwok with 2 fake Nodes (internal/localcluster), so
// Deployments roll out and their Pods run; pods lists them as kubectl would.
//
//	controlplane up --kubeconfig FILE [--workloads]   start, write FILE, run until SIGINT/SIGTERM
//	controlplane apply --kubeconfig FILE -f MANIFEST
//	controlplane objects --kubeconfig FILE -n NAMESPACE -l SELECTOR
//	controlplane pods --kubeconfig FILE -n NAMESPACE -l SELECTOR
//
// The binaries come from $KUBEBUILDER_ASSETS (hack/envtest-assets.sh), and
// with --workloads from $AIRLOCK_CLUSTER_ASSETS (hack/cluster-assets.sh).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"airlock.dev/airlock/internal/localcluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "controlplane:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: controlplane up|apply|objects|pods --kubeconfig FILE …")
	}
	fs := flag.NewFlagSet("controlplane "+args[0], flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (written by up, read by the others)")
	crds := fs.String("crds", "config/crd/bases", "directory of CRDs to install (up)")
	file := fs.String("f", "", "manifest file to server-side apply (apply)")
	namespace := fs.String("n", "default", "namespace (objects, pods)")
	selector := fs.String("l", "", "label selector (objects, pods)")
	workloads := fs.Bool("workloads", false, "also run kube-controller-manager, kube-scheduler and kwok with 2 fake Nodes, so workloads run (up; binaries from $AIRLOCK_CLUSTER_ASSETS, built by hack/cluster-assets.sh)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}
	switch args[0] {
	case "up":
		assets := ""
		if *workloads {
			assets = os.Getenv(localcluster.AssetsEnv)
			if assets == "" {
				return errors.New(localcluster.AssetsEnv + " is unset: export " + localcluster.AssetsEnv + "=$(hack/cluster-assets.sh)")
			}
		}
		return up(ctx, *kubeconfig, *crds, assets)
	case "apply":
		c, err := newClient(*kubeconfig)
		if err != nil {
			return err
		}
		return apply(ctx, c, *file, stdout)
	case "objects":
		c, err := newClient(*kubeconfig)
		if err != nil {
			return err
		}
		return objects(ctx, c, *namespace, *selector, stdout)
	case "pods":
		c, err := newClient(*kubeconfig)
		if err != nil {
			return err
		}
		return pods(ctx, c, *namespace, *selector, time.Now(), stdout)
	}
	return fmt.Errorf("unknown command %q: want up, apply, objects or pods", args[0])
}

// up starts the control plane, and with assets != "" the workload
// processes and Ready fake Nodes, writes the kubeconfig (atomically, so a
// waiting script never reads half a file) and stops it on a signal.
func up(ctx context.Context, kubeconfig, crds, assets string) error {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return errors.New("KUBEBUILDER_ASSETS is unset: export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	if assets != "" {
		if err := localcluster.CheckAssets(assets); err != nil {
			return err
		}
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{crds}, ErrorIfCRDPathMissing: true}
	if _, err := env.Start(); err != nil {
		return fmt.Errorf("start kube-apiserver and etcd from %s: %w", os.Getenv("KUBEBUILDER_ASSETS"), err)
	}
	defer func() { _ = env.Stop() }() // stops both processes and removes their directories
	if assets != "" {
		stop, err := startWorkloads(ctx, env, assets)
		if err != nil {
			return err
		}
		defer stop()
	}
	cfg, err := clientcmd.Load(env.KubeConfig)
	if err != nil {
		return err
	}
	// One context named for the quickstart, with the default namespace.
	for name, c := range cfg.Contexts {
		delete(cfg.Contexts, name)
		c.Namespace = "default"
		cfg.Contexts["airlock-quickstart"] = c
	}
	cfg.CurrentContext = "airlock-quickstart"
	tmp := kubeconfig + ".tmp"
	if err := clientcmd.WriteToFile(*cfg, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, kubeconfig); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "controlplane: kube-apiserver at %s (kubeconfig %s)\n", env.Config.Host, kubeconfig)
	<-ctx.Done()
	return nil
}

// startWorkloads starts kube-controller-manager, kube-scheduler and kwok
// against env, creates the fake Nodes and waits until they are Ready.
func startWorkloads(ctx context.Context, env *envtest.Environment, assets string) (stop func(), err error) {
	start := time.Now()
	dir, err := os.MkdirTemp("", "airlock-controlplane-")
	if err != nil {
		return nil, err
	}
	admin := filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(admin, env.KubeConfig, 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	w, err := localcluster.StartWorkloads(assets, admin, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	stop = func() { w.Stop(); _ = os.RemoveAll(dir) }
	c, err := client.New(env.Config, client.Options{})
	if err == nil {
		var nodes []string
		nodes, err = localcluster.CreateNodes(startCtx, c, "kwok-node", localcluster.NodeCount)
		if err == nil {
			err = w.WaitNodesReady(startCtx, c, nodes)
		}
	}
	if err != nil {
		w.Stop() // keeps dir: its logs say why
		return nil, fmt.Errorf("start the workload processes (logs in %s): %w", dir, err)
	}
	fmt.Fprintf(os.Stderr, "controlplane: kube-controller-manager, kube-scheduler, kwok and %d fake Nodes Ready in %s (logs in %s)\n", localcluster.NodeCount, time.Since(start).Round(100*time.Millisecond), dir)
	return stop, nil
}

func newClient(kubeconfig string) (client.Client, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{})
}

// apply server-side applies every document of file, in order.
func apply(ctx context.Context, c client.Client, file string, out io.Writer) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%s: %w", filepath.Base(file), err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("quickstart"), client.ForceOwnership); err != nil {
			return fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		fmt.Fprintf(out, "%s/%s applied\n", strings.ToLower(u.GetKind()), u.GetName())
	}
}

// objects prints the objects of a few common kinds matching selector in
// namespace, with what changes between the quickstart's versions.
func objects(ctx context.Context, c client.Client, namespace, selector string, out io.Writer) error {
	sel, err := labels.Parse(selector)
	if err != nil {
		return err
	}
	kinds := []schema.GroupVersionKind{
		{Version: "v1", Kind: "ConfigMapList"},
		{Version: "v1", Kind: "ServiceList"},
		{Group: "apps", Version: "v1", Kind: "DeploymentList"},
	}
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAMESPACE/NAME\tDETAIL")
	for _, gvk := range kinds {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(gvk)
		if err := c.List(ctx, l, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return err
		}
		for _, o := range l.Items {
			fmt.Fprintf(tw, "%s\t%s/%s\t%s\n", o.GetKind(), o.GetNamespace(), o.GetName(), detail(&o))
		}
	}
	return tw.Flush()
}

func detail(o *unstructured.Unstructured) string {
	switch o.GetKind() {
	case "ConfigMap":
		data, _, _ := unstructured.NestedStringMap(o.Object, "data")
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%q", k, data[k]))
		}
		return strings.Join(parts, " ")
	case "Deployment":
		r, _, _ := unstructured.NestedInt64(o.Object, "spec", "replicas")
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		var images []string
		for _, c := range cs {
			if m, ok := c.(map[string]any); ok {
				images = append(images, fmt.Sprint(m["image"]))
			}
		}
		return fmt.Sprintf("replicas=%d image=%s", r, strings.Join(images, ","))
	case "Service":
		ip, _, _ := unstructured.NestedString(o.Object, "spec", "clusterIP")
		return "clusterIP=" + ip
	}
	return ""
}

// pods prints the ReplicaSets and the Pods matching selector in namespace,
// as `kubectl get replicasets,pods -o wide` would (fewer columns), oldest
// first: who runs, on which node, in which state.
func pods(ctx context.Context, c client.Client, namespace, selector string, now time.Time, out io.Writer) error {
	sel, err := labels.Parse(selector)
	if err != nil {
		return err
	}
	opts := []client.ListOption{client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel}}
	var rss appsv1.ReplicaSetList
	if err := c.List(ctx, &rss, opts...); err != nil {
		return err
	}
	var ps corev1.PodList
	if err := c.List(ctx, &ps, opts...); err != nil {
		return err
	}
	sort.Slice(rss.Items, func(i, j int) bool { return older(&rss.Items[i].ObjectMeta, &rss.Items[j].ObjectMeta) })
	sort.Slice(ps.Items, func(i, j int) bool { return older(&ps.Items[i].ObjectMeta, &ps.Items[j].ObjectMeta) })
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDESIRED\tCURRENT\tREADY\tAGE\tIMAGES")
	for _, rs := range rss.Items {
		desired := int32(1)
		if rs.Spec.Replicas != nil {
			desired = *rs.Spec.Replicas
		}
		var images []string
		for _, ct := range rs.Spec.Template.Spec.Containers {
			images = append(images, ct.Image)
		}
		fmt.Fprintf(tw, "replicaset.apps/%s\t%d\t%d\t%d\t%s\t%s\n", rs.Name, desired, rs.Status.Replicas, rs.Status.ReadyReplicas,
			age(rs.CreationTimestamp, now), strings.Join(images, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	if len(ps.Items) == 0 {
		fmt.Fprintf(out, "No pods in namespace %s with labels %s.\n", namespace, selector)
		return nil
	}
	fmt.Fprintln(tw, "NAME\tREADY\tSTATUS\tRESTARTS\tAGE\tNODE")
	for i := range ps.Items {
		p := &ps.Items[i]
		ready, restarts := 0, int32(0)
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Ready {
				ready++
			}
			restarts += cs.RestartCount
		}
		node := p.Spec.NodeName
		if node == "" {
			node = "<none>"
		}
		fmt.Fprintf(tw, "pod/%s\t%d/%d\t%s\t%d\t%s\t%s\n", p.Name, ready, len(p.Spec.Containers), podStatus(p), restarts, age(p.CreationTimestamp, now), node)
	}
	return tw.Flush()
}

// podStatus is kubectl's STATUS column, for the states kwok simulates:
// Terminating, a waiting or terminated container's reason (such as
// CrashLoopBackOff), else the phase.
func podStatus(p *corev1.Pod) string {
	if p.DeletionTimestamp != nil {
		return "Terminating"
	}
	status := string(p.Status.Phase)
	if p.Status.Reason != "" {
		status = p.Status.Reason
	}
	for _, cs := range p.Status.ContainerStatuses {
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
			return cs.State.Waiting.Reason
		case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
			return cs.State.Terminated.Reason
		}
	}
	return status
}

func age(created metav1.Time, now time.Time) string {
	if created.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(created.Time))
}

func older(a, b *metav1.ObjectMeta) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}
