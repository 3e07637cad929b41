package reconciler

import (
	"container/list"
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// Clients makes the uncached clients that apply, read and prune a Release's
// objects: as the controller itself, or impersonating a ServiceAccount.
// They are uncached on purpose: a cache would start an informer for every
// kind an artifact holds and keep every object in memory.
type Clients struct {
	// Config is the controller's own connection to the API server.
	Config *rest.Config
	// Scheme decodes typed objects; the applied objects are unstructured.
	Scheme *runtime.Scheme
	// Mapper maps kinds to resources; shared, and refreshed when a CRD appears.
	Mapper meta.RESTMapper
	// Metrics counts writes. nil means none.
	Metrics *Metrics
	// Max bounds the clients kept, one per identity (the controller, and
	// each ServiceAccount Releases apply as: with
	// --default-service-account, one per namespace). Beyond it the least
	// recently used is dropped; they share the controller's transport, so
	// a dropped client closes nothing. 0 means 64.
	Max int

	mu    sync.Mutex
	lru   list.List // of *keptKubeClient, most recently used first
	byKey map[string]*list.Element
}

type keptKubeClient struct {
	key    string
	client client.Client
}

// defaultMaxClients bounds the Kubernetes clients kept when Max (of
// Clients or RemoteClients) is 0.
const defaultMaxClients = 64

func (c *Clients) max() int {
	if c.Max > 0 {
		return c.Max
	}
	return defaultMaxClients
}

// For returns the client acting as serviceAccount in namespace, or as the
// controller when serviceAccount is "".
func (c *Clients) For(namespace, serviceAccount string) (client.Client, error) {
	key := ""
	if serviceAccount != "" {
		key = "system:serviceaccount:" + namespace + ":" + serviceAccount
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[key]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*keptKubeClient).client, nil
	}
	cfg := rest.CopyConfig(c.Config)
	if key != "" {
		cfg.Impersonate = rest.ImpersonationConfig{UserName: key}
	}
	var cl client.Client
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: c.Scheme, Mapper: c.Mapper})
	if err != nil {
		return nil, fmt.Errorf("client for %q: %w", key, err)
	}
	cl = wc
	if c.Metrics != nil {
		cl = countWrites(wc, c.Metrics)
	}
	if c.byKey == nil {
		c.byKey = map[string]*list.Element{}
	}
	c.byKey[key] = c.lru.PushFront(&keptKubeClient{key: key, client: cl})
	for c.lru.Len() > c.max() {
		victim := c.lru.Back() // the least recently used; "" (the controller's own) too
		delete(c.byKey, victim.Value.(*keptKubeClient).key)
		c.lru.Remove(victim)
	}
	return cl, nil
}

// countWrites wraps a client so that every write shows in the metrics,
// split by dry-run.
func countWrites(cl client.WithWatch, m *Metrics) client.Client {
	return interceptor.NewClient(cl, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			o := (&client.CreateOptions{}).ApplyOptions(opts)
			m.write("create", len(o.DryRun) > 0)
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			o := (&client.UpdateOptions{}).ApplyOptions(opts)
			m.write("update", len(o.DryRun) > 0)
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			o := (&client.PatchOptions{}).ApplyOptions(opts)
			m.write("patch", len(o.DryRun) > 0)
			return c.Patch(ctx, obj, patch, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			o := &client.ApplyOptions{}
			o.ApplyOptions(opts)
			m.write("apply", len(o.DryRun) > 0)
			return c.Apply(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			o := (&client.DeleteOptions{}).ApplyOptions(opts)
			m.write("delete", len(o.DryRun) > 0)
			return c.Delete(ctx, obj, opts...)
		},
	})
}
