package reconciler

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/notify"
)

// alertSecretIndex indexes Alerts by namespace/name of their provider Secret.
const alertSecretIndex = ".airlock.alertSecret"

// Alerts routes Release events to the Alerts that select them (a
// notify.Router), and keeps each Alert's Ready condition (a reconciler of
// Alerts). Providers are built from the Alert's Secret, read uncached, and
// kept until the Alert's generation or the Secret's resourceVersion changes.
type Alerts struct {
	// Client is the manager's cached client: it lists Alerts and writes their status.
	Client client.Client
	// APIReader reads Secrets uncached.
	APIReader client.Reader
	// Events records a Warning on an Alert whose delivery failed for good. nil means none.
	Events events.EventRecorder
	// Hostname is syslog's HOSTNAME field. "" means NILVALUE.
	Hostname string

	mu        sync.Mutex
	providers map[types.NamespacedName]*alertProvider
}

type alertProvider struct {
	generation int64
	secret     string // namespace/name@resourceVersion
	provider   notify.Provider
}

// Route returns the providers of the Alerts in ev's namespace that select
// it. An Alert whose provider cannot be built is skipped: its Ready
// condition says why.
func (a *Alerts) Route(ctx context.Context, ev notify.Event) []notify.Target {
	var list v1alpha1.AlertList
	if err := a.Client.List(ctx, &list, client.InNamespace(ev.Namespace)); err != nil {
		log.FromContext(ctx).Info("list Alerts failed: notification not sent", "namespace", ev.Namespace, "error", err.Error())
		return nil
	}
	var out []notify.Target
	for i := range list.Items {
		al := &list.Items[i]
		if !notify.Selects(al, ev) {
			continue
		}
		p, err := a.provider(ctx, al)
		if err != nil {
			log.FromContext(ctx).Info("Alert's provider is not usable: notification not sent", "alert", client.ObjectKeyFromObject(al).String(), "error", err.Error())
			continue
		}
		out = append(out, notify.Target{Alert: client.ObjectKeyFromObject(al).String(), Type: al.Spec.Provider.Type, Provider: p})
	}
	return out
}

// Done records the end of a delivery in the Alert's status.lastDelivery,
// and a Warning event on the Alert when it was given up.
func (a *Alerts) Done(t notify.Target, ev notify.Event, attempts int, err error) {
	ctx := context.Background()
	ns, name, _ := strings.Cut(t.Alert, "/")
	al := &v1alpha1.Alert{}
	if gerr := a.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, al); gerr != nil {
		return // deleted meanwhile
	}
	d := &v1alpha1.AlertDelivery{Time: metav1.Now(), Result: v1alpha1.DeliveryDelivered, Event: ev.Reason, Release: ev.Name, Attempts: int32(min(attempts, math.MaxInt32))}
	if err != nil {
		d.Result, d.Message = v1alpha1.DeliveryFailed, clip(err.Error(), maxDeliveryMessage)
		if a.Events != nil {
			a.Events.Eventf(al, nil, corev1.EventTypeWarning, v1alpha1.ReasonDeliveryFailed, "Notify",
				"%s of Release %s/%s not delivered to %s: %v", ev.Reason, ev.Namespace, ev.Name, t.Type, err)
		}
	}
	before := al.DeepCopy()
	al.Status.LastDelivery = d
	if perr := a.Client.Status().Patch(ctx, al, client.MergeFrom(before)); perr != nil {
		log.FromContext(ctx).Info("record the Alert's last delivery failed", "alert", t.Alert, "error", perr.Error())
	}
}

// maxDeliveryMessage bounds status.lastDelivery.message, as the CRD does.
const maxDeliveryMessage = 1024

// clip is s cut to at most n bytes, on a rune boundary, marked with "…".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// provider is al's provider, built again when al or its Secret changed.
func (a *Alerts) provider(ctx context.Context, al *v1alpha1.Alert) (notify.Provider, error) {
	key := client.ObjectKeyFromObject(al)
	s := &corev1.Secret{}
	sk := types.NamespacedName{Namespace: al.Namespace, Name: al.Spec.Provider.SecretRef.Name}
	if err := a.APIReader.Get(ctx, sk, s); err != nil {
		return nil, &SecretError{Secret: sk, Field: "spec.provider.secretRef", Err: fmt.Errorf("%s: create it in namespace %s", apiMessage(err), al.Namespace)}
	}
	id := secretIdentity(s)
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.providers[key]; c != nil && c.generation == al.Generation && c.secret == id {
		return c.provider, nil
	}
	cfg, err := providerConfig(al, s)
	if err == nil {
		cfg.Hostname = a.Hostname
		var p notify.Provider
		if p, err = notify.New(cfg); err == nil {
			a.closeLocked(key)
			if a.providers == nil {
				a.providers = map[types.NamespacedName]*alertProvider{}
			}
			a.providers[key] = &alertProvider{generation: al.Generation, secret: id, provider: p}
			return p, nil
		}
	}
	return nil, &SecretError{Secret: sk, Field: "spec.provider.secretRef", Err: err}
}

// providerConfig reads al's Secret s into a provider configuration.
func providerConfig(al *v1alpha1.Alert, s *corev1.Secret) (notify.Config, error) {
	p := al.Spec.Provider
	cfg := notify.Config{
		Type: p.Type, Address: string(s.Data["address"]), HMACKey: s.Data["hmacKey"], CAData: s.Data["ca.crt"],
		Channel: p.Channel, Username: p.Username, PlainInsecure: p.Insecure,
	}
	if crt, key := s.Data["tls.crt"], s.Data["tls.key"]; len(crt) > 0 || len(key) > 0 {
		cert, err := tls.X509KeyPair(crt, key)
		if err != nil {
			return cfg, fmt.Errorf("tls.crt and tls.key: %v", err)
		}
		cfg.ClientCert = &cert
	}
	return cfg, nil
}

// closeLocked closes key's cached provider and forgets it; a.mu is held.
func (a *Alerts) closeLocked(key types.NamespacedName) {
	if c := a.providers[key]; c != nil {
		if cl, ok := c.provider.(io.Closer); ok {
			_ = cl.Close()
		}
		delete(a.providers, key)
	}
}

// Reconcile checks an Alert's provider and sets its Ready condition.
func (a *Alerts) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	al := &v1alpha1.Alert{}
	if err := a.Client.Get(ctx, req.NamespacedName, al); err != nil {
		if apierrors.IsNotFound(err) {
			a.mu.Lock()
			a.closeLocked(req.NamespacedName)
			a.mu.Unlock()
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	before := al.DeepCopy()
	cond := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonProviderConfigured,
		Message: fmt.Sprintf("sending to %s from Secret %s", al.Spec.Provider.Type, al.Spec.Provider.SecretRef.Name), ObservedGeneration: al.Generation}
	if al.Spec.Suspend {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, v1alpha1.ReasonSuspended, "spec.suspend is true: nothing is sent"
	} else if err := a.checkSources(al); err != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, err.Error()
	} else if _, err := a.provider(ctx, al); err != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, v1alpha1.ReasonSecretError, err.Error()
	}
	meta.SetStatusCondition(&al.Status.Conditions, cond)
	al.Status.ObservedGeneration = al.Generation
	if equality.Semantic.DeepEqual(before.Status, al.Status) {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, a.Client.Status().Patch(ctx, al, client.MergeFrom(before))
}

// checkSources refuses a selector that does not parse.
func (a *Alerts) checkSources(al *v1alpha1.Alert) error {
	for i, s := range al.Spec.EventSources {
		if s.Selector != nil {
			if _, err := metav1.LabelSelectorAsSelector(s.Selector); err != nil {
				return &SpecError{Field: fmt.Sprintf("spec.eventSources[%d].selector", i), Err: err}
			}
		}
	}
	return nil
}

// SetupWithManager registers the Alert reconciler: it watches Alerts and
// the metadata of their Secrets.
func (a *Alerts) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.Alert{}, alertSecretIndex, func(o client.Object) []string {
		al := o.(*v1alpha1.Alert)
		return []string{al.Namespace + "/" + al.Spec.Provider.SecretRef.Name}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("alert").
		For(&v1alpha1.Alert{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var list v1alpha1.AlertList
			if err := a.Client.List(ctx, &list, client.MatchingFields{alertSecretIndex: o.GetNamespace() + "/" + o.GetName()}); err != nil {
				return nil
			}
			reqs := make([]reconcile.Request, 0, len(list.Items))
			for _, al := range list.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&al)})
			}
			return reqs
		})).
		WithOptions(opts).
		Complete(a)
}
