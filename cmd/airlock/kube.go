package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/audit"
)

// The operator commands read the cluster through client-go's dynamic client
// and convert to the api types: the CLI links neither controller-runtime nor
// the reconciler, and stays small.

// now is the clock of ages in the operator commands' output; tests fix it.
var now = time.Now

var releasesResource = v1alpha1.GroupVersion.WithResource("releases")

// kubeFlags are kubectl's connection flags: --kubeconfig (else $KUBECONFIG,
// else ~/.kube/config), --context and -n/--namespace (else the context's).
type kubeFlags struct {
	kubeconfig string
	context    string
	namespace  string
}

func (f *kubeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	fs.StringVar(&f.context, "context", "", "kubeconfig context (default: the current context)")
	fs.StringVarP(&f.namespace, "namespace", "n", "", "namespace (default: the context's, else default)")
}

// kubeClient is a dynamic client and the namespace the flags select.
type kubeClient struct {
	dyn       dynamic.Interface
	namespace string
	host      string
	cfg       *rest.Config
}

func (f *kubeFlags) client() (*kubeClient, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: f.context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w: pass --kubeconfig or set KUBECONFIG", err)
	}
	cfg.UserAgent = "airlock"
	ns := f.namespace
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil {
			return nil, fmt.Errorf("load kubeconfig: %w", err)
		}
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Host, err)
	}
	return &kubeClient{dyn: dyn, namespace: ns, host: cfg.Host, cfg: cfg}, nil
}

// auditClient is client() and audit's read-only client on the same connection.
func (f *kubeFlags) auditClient() (*kubeClient, *audit.Client, error) {
	c, err := f.client()
	if err != nil {
		return nil, nil, err
	}
	ac, err := audit.NewClient(c.cfg)
	if err != nil {
		return nil, nil, err
	}
	return c, ac, nil
}

// apiError adds what to do to the API errors an operator meets most.
func (c *kubeClient) apiError(what string, err error) error {
	switch {
	case apierrors.IsNotFound(err) && isNoKind(err):
		return fmt.Errorf("%s: the cluster at %s has no Release API: install airlock with `airlock install --export | kubectl apply --server-side -f -`", what, c.host)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s: not found in namespace %s: list them with `airlock get releases -A`", what, c.namespace)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: %w: ask for a Role that grants it on releases.delivery.airlock.dev", what, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: %w: refresh your kubeconfig credentials", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// isNoKind tells a missing resource type (404 without details) from a
// missing object.
func isNoKind(err error) bool {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return false
	}
	d := se.Status().Details
	return d == nil || d.Name == ""
}

func (c *kubeClient) getRelease(ctx context.Context, name string) (*v1alpha1.Release, error) {
	u, err := c.dyn.Resource(releasesResource).Namespace(c.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, c.apiError("get Release "+c.namespace+"/"+name, err)
	}
	return toRelease(u)
}

// listReleases lists the namespace's Releases, or every namespace's, sorted
// by namespace and name (the server's order).
func (c *kubeClient) listReleases(ctx context.Context, all bool) ([]v1alpha1.Release, error) {
	ns, what := c.namespace, "list Releases in namespace "+c.namespace
	if all {
		ns, what = "", "list Releases"
	}
	l, err := c.dyn.Resource(releasesResource).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, c.apiError(what, err)
	}
	out := make([]v1alpha1.Release, 0, len(l.Items))
	for i := range l.Items {
		r, err := toRelease(&l.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, nil
}

func (c *kubeClient) patchRelease(ctx context.Context, name string, patch []byte) (*v1alpha1.Release, error) {
	u, err := c.dyn.Resource(releasesResource).Namespace(c.namespace).Patch(ctx, name, "application/merge-patch+json", patch, metav1.PatchOptions{FieldManager: "airlock"})
	if err != nil {
		return nil, c.apiError("patch Release "+c.namespace+"/"+name, err)
	}
	return toRelease(u)
}

func toRelease(u *unstructured.Unstructured) (*v1alpha1.Release, error) {
	var r v1alpha1.Release
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &r); err != nil {
		return nil, fmt.Errorf("decode Release %s/%s: %w: is this CLI older than the installed CRD?", u.GetNamespace(), u.GetName(), err)
	}
	r.ManagedFields = nil
	r.APIVersion, r.Kind = v1alpha1.GroupVersion.String(), v1alpha1.ReleaseKind
	return &r, nil
}

// age is kubectl's AGE: "5s", "3m12s", "4h", "12d".
func age(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now().Sub(t.Time))
}
