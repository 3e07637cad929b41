package reconciler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"airlock.dev/airlock/api/v1alpha1"
)

// dependsOnIndex is the index field of Releases that holds the
// namespace/name of each dependency. The Secrets and ConfigMaps a Release
// reads have none (releasesReading).
const dependsOnIndex = ".airlock.dependsOn"

// SetupWithManager registers the controller: it watches Releases, the
// metadata of Secrets and ConfigMaps (a change to a referenced Secret, or
// to a ConfigMap of spec.postBuild.substituteFrom, reconciles its
// Releases, without caching any data; ConfigMaps only from the first
// Release that reads one, watchConfigMapsFor), ClusterTrustPolicies (a
// change reconciles every Release: a new policy can refuse any of them),
// and the Ready condition of the Releases others depend on.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1alpha1.Release{}, dependsOnIndex, func(o client.Object) []string {
		var keys []string
		for _, k := range o.(*v1alpha1.Release).DependencyKeys() {
			keys = append(keys, k.String())
		}
		return keys
	}); err != nil {
		return err
	}

	if w := r.Receipts; w != nil {
		w.client, w.reader, w.metrics = r.Client, r.APIReader, r.Metrics
		w.init()
		if err := mgr.Add(w); err != nil {
			return err
		}
	}

	c, err := ctrl.NewControllerManagedBy(mgr).
		Named("release").
		For(&v1alpha1.Release{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{},
			predicate.AnnotationChangedPredicate{},
			deletingPredicate()))).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.releasesForSecret)).
		Watches(&v1alpha1.ClusterTrustPolicy{}, handler.EnqueueRequestsFromMapFunc(r.allReleases)).
		Watches(&v1alpha1.Release{}, handler.EnqueueRequestsFromMapFunc(r.releasesFor(dependsOnIndex)),
			builder.WithPredicates(readyChangedPredicate())).
		WithOptions(opts).
		Build(r)
	if err != nil {
		return err
	}
	configMaps := &metav1.PartialObjectMetadata{}
	configMaps.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	r.configMapWatch.start = func() error {
		return c.Watch(source.Kind[client.Object](mgr.GetCache(), configMaps,
			handler.EnqueueRequestsFromMapFunc(r.releasesReading("ConfigMap"))))
	}
	return nil
}

// lazyWatch is a watch started the first time a Release needs it.
type lazyWatch struct {
	// start starts the watch; nil means there is none to start (the
	// reconciler was not set up with a manager).
	start func() error

	mu      sync.Mutex
	started bool
}

// ensure starts the watch unless it has started.
func (w *lazyWatch) ensure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.start == nil {
		return nil
	}
	if err := w.start(); err != nil {
		return err
	}
	w.started = true
	return nil
}

func (w *lazyWatch) running() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.started
}

// watchConfigMapsFor starts the watch of ConfigMaps' metadata when rel
// reads ConfigMaps (spec.postBuild.substituteFrom, spec.chart.valuesFrom),
// before it reads them: a change after this reconcile's read then reaches
// rel through the watch, whose first list reconciles rel again. Until a
// Release reads a ConfigMap, the controller caches none: a cluster holds
// many, 11,000 at 1,000 Releases of 10 ConfigMaps, and most sites never
// substitute from one.
func (r *Reconciler) watchConfigMapsFor(rel *v1alpha1.Release) error {
	for _, k := range append(substituteFromKeys(rel), chartValuesFromKeys(rel)...) {
		if strings.HasPrefix(k, "ConfigMap/") {
			if err := r.configMapWatch.ensure(); err != nil {
				return fmt.Errorf("watch ConfigMaps for spec.postBuild.substituteFrom and spec.chart.valuesFrom: %w", err)
			}
			return nil
		}
	}
	return nil
}

// WatchesConfigMaps reports whether the controller has started its watch of
// ConfigMaps' metadata: only once a Release reads a ConfigMap.
func (r *Reconciler) WatchesConfigMaps() bool { return r.configMapWatch.running() }

// ShardCache limits opts' Release informer to the Releases selector
// matches: one shard of --watch-label-selector. The controller reads
// Releases only from that informer, and every watch of another object maps
// it to Releases by listing that informer, so a shard never reconciles a
// Release outside its selector. A nil or empty selector means every Release.
func ShardCache(opts cache.Options, selector labels.Selector) cache.Options {
	if selector == nil || selector.Empty() {
		return opts
	}
	byObject := make(map[client.Object]cache.ByObject, len(opts.ByObject)+1)
	for o, b := range opts.ByObject {
		byObject[o] = b
	}
	byObject[&v1alpha1.Release{}] = cache.ByObject{Label: selector}
	opts.ByObject = byObject
	return opts
}

// releasesFor maps an object to the Releases whose index field names it.
func (r *Reconciler) releasesFor(index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list v1alpha1.ReleaseList
		if err := r.Client.List(ctx, &list, client.MatchingFields{index: o.GetNamespace() + "/" + o.GetName()}); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, rel := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: rel.Namespace, Name: rel.Name}})
		}
		return reqs
	}
}

func deletingPredicate() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool { return !e.ObjectNew.GetDeletionTimestamp().IsZero() },
		CreateFunc: func(event.CreateEvent) bool { return true },
		DeleteFunc: func(event.DeleteEvent) bool { return true },
	}
}

func readyChangedPredicate() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(event.CreateEvent) bool { return false },
		DeleteFunc: func(event.DeleteEvent) bool { return true },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.Release)
			n, ok2 := e.ObjectNew.(*v1alpha1.Release)
			if !ok1 || !ok2 {
				return false
			}
			a := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionReady)
			b := meta.FindStatusCondition(n.Status.Conditions, v1alpha1.ConditionReady)
			return (a == nil) != (b == nil) || (a != nil && b != nil && a.Status != b.Status)
		},
	}
}

// releasesForSecret maps a Secret to the Releases that reference it, or to
// every Release when it is the keys Secret of a ClusterTrustPolicy.
func (r *Reconciler) releasesForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	if r.ControllerNamespace != "" && o.GetNamespace() == r.ControllerNamespace {
		var policies v1alpha1.ClusterTrustPolicyList
		if err := r.Client.List(ctx, &policies); err == nil {
			for _, p := range policies.Items {
				if p.Spec.KeysSecretRef.Name == o.GetName() {
					return r.allReleases(ctx, o)
				}
			}
		}
	}
	return r.releasesReading("Secret")(ctx, o)
}

// releasesReading maps a Secret or ConfigMap (kind) to the Releases that
// read it: a Release reads Secrets and ConfigMaps of its own namespace
// only, so it looks at the Releases of the object's namespace, from the
// cache and without copying them. It needs no index: an index of the
// Secrets and ConfigMaps kept two sets of keys per Release and name it
// held, about 1 KiB per Release.
func (r *Reconciler) releasesReading(kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list v1alpha1.ReleaseList
		if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		for i := range list.Items {
			if reads(&list.Items[i], kind, o.GetName()) {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}})
			}
		}
		return reqs
	}
}

// reads says whether rel reads the Secret or ConfigMap (kind) name of its
// own namespace: for its registry, TLS, keys or remote cluster
// (SecretNames), or for substitution, chart values and decryption.
func reads(rel *v1alpha1.Release, kind, name string) bool {
	if kind == "Secret" && slices.Contains(rel.SecretNames(), name) {
		return true
	}
	key := kind + "/" + rel.Namespace + "/" + name
	return slices.Contains(substituteFromKeys(rel), key) || slices.Contains(chartValuesFromKeys(rel), key)
}

// allReleases maps any object to every Release.
func (r *Reconciler) allReleases(ctx context.Context, _ client.Object) []reconcile.Request {
	var list v1alpha1.ReleaseList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, rel := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: rel.Namespace, Name: rel.Name}})
	}
	return reqs
}
