package reconciler

// This file is the Receiver controller: it turns each Receiver and its
// Secret into an endpoint of the receiver server (receiver_server.go), and
// writes the webhook path and the Ready condition to the Receiver's status.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/receiver"
)

// receiverSecretIndex: namespace/name of each Receiver's Secret.
const receiverSecretIndex = ".airlock.receiverSecret"

// Receivers is the Receiver controller and the HTTP endpoint that serves
// the Receivers' notifications. Every dependency is an explicit field.
type Receivers struct {
	// Client is the manager's cached client: it reads Receivers and
	// Releases, writes Receivers' status, and annotates the Releases a
	// notification names.
	Client client.Client
	// APIReader reads Secrets uncached.
	APIReader client.Reader
	// Events records, on each Release, the notification that reconciled it.
	// nil means none.
	Events events.EventRecorder
	// Metrics count the requests by outcome.
	Metrics *ReceiverMetrics
	// Mirrors are the controller's --registry-mirror rules: a notification
	// matches a Release by the repository the Release resolves to after them.
	Mirrors artifact.Mirrors
	// Clock is the time source. nil means the real clock.
	Clock clock.PassiveClock
	// ReplayWindow is how far a notification's time may be from now, and how
	// long a request is remembered to refuse its replay. 0 means 5m.
	ReplayWindow time.Duration
	// MaxBodyBytes bounds a request's body. 0 means DefaultReceiverMaxBody.
	MaxBodyBytes int64
	// MaxNonces bounds the requests remembered within the replay window; a
	// request beyond it is refused with 503 until older ones expire. 0 means
	// 10,000.
	MaxNonces int
	// TLSCertFile and TLSKeyFile serve HTTPS. Both "" means plain HTTP (put
	// the endpoint behind a TLS ingress).
	TLSCertFile, TLSKeyFile string

	mu        sync.RWMutex
	endpoints map[string]*endpoint            // webhook path → endpoint
	paths     map[types.NamespacedName]string // Receiver → its webhook path
	once      sync.Once
	nonces    *receiver.Nonces
}

// DefaultReceiverMaxBody is the default bound of a notification's body.
const DefaultReceiverMaxBody = 64 << 10

// endpoint is one Receiver as the server needs it: immutable once built.
type endpoint struct {
	key      types.NamespacedName
	kind     string // spec.type
	token    []byte
	events   []string
	registry string
	selector labels.Selector
}

// ReceiverMetrics are the receiver endpoint's Prometheus metrics.
type ReceiverMetrics struct {
	Requests          *prometheus.CounterVec
	ReconcileRequests prometheus.Counter
}

// NewReceiverMetrics creates the metrics and registers them with reg.
func NewReceiverMetrics(reg prometheus.Registerer) *ReceiverMetrics {
	m := &ReceiverMetrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_receiver_requests_total",
			Help: "Requests to the receiver endpoint by outcome: accepted (Releases reconciled), unmatched (no Release resolves to the repository), ignored (no event of spec.events), and refused ones that change nothing: not_found (no Receiver at the path), method, forged (missing or wrong signature or token), stale (time outside the replay window), replayed, too_large, malformed, busy (replay cache full), error.",
		}, []string{"reason"}),
		ReconcileRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_receiver_reconcile_requests_total",
			Help: "Releases whose reconcile a notification requested.",
		}),
	}
	reg.MustRegister(m.Requests, m.ReconcileRequests)
	return m
}

func (rs *Receivers) now() time.Time {
	if rs.Clock == nil {
		return time.Now()
	}
	return rs.Clock.Now()
}

func (rs *Receivers) window() time.Duration {
	if rs.ReplayWindow <= 0 {
		return 5 * time.Minute
	}
	return rs.ReplayWindow
}

func (rs *Receivers) initTables() {
	rs.once.Do(func() {
		rs.endpoints = map[string]*endpoint{}
		rs.paths = map[types.NamespacedName]string{}
		max := rs.MaxNonces
		if max <= 0 {
			max = 10000
		}
		rs.nonces = receiver.NewNonces(rs.window(), max)
	})
}

// SetupWithManager registers the Receiver controller, which watches
// Receivers and the metadata of their Secrets, and serves the endpoint on
// ln while the manager runs (on the leader only: it alone reconciles the
// Receivers that fill the endpoint's table).
func (rs *Receivers) SetupWithManager(ctx context.Context, mgr ctrl.Manager, ln net.Listener, opts controller.Options) error {
	rs.initTables()
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.Receiver{}, receiverSecretIndex, func(o client.Object) []string {
		rcv := o.(*v1alpha1.Receiver)
		return []string{rcv.Namespace + "/" + rcv.Spec.SecretRef.Name}
	}); err != nil {
		return err
	}
	if err := mgr.Add(&receiverServer{ln: ln, handler: rs, certFile: rs.TLSCertFile, keyFile: rs.TLSKeyFile}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("receiver").
		For(&v1alpha1.Receiver{}).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(rs.receiversForSecret)).
		WithOptions(opts).
		Complete(rs)
}

func (rs *Receivers) receiversForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.ReceiverList
	if err := rs.Client.List(ctx, &list, client.MatchingFields{receiverSecretIndex: o.GetNamespace() + "/" + o.GetName()}); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, rcv := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: rcv.Namespace, Name: rcv.Name}})
	}
	return reqs
}

// Reconcile serves a Receiver at the path its token gives, or stops serving
// it when it is gone or its Secret is unusable, and records which in its
// status.
func (rs *Receivers) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	rs.initTables()
	var rcv v1alpha1.Receiver
	if err := rs.Client.Get(ctx, req.NamespacedName, &rcv); err != nil {
		if apierrors.IsNotFound(err) {
			rs.remove(req.NamespacedName)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	before := rcv.DeepCopy()
	cond := metav1.Condition{Type: v1alpha1.ConditionReady, ObservedGeneration: rcv.Generation}
	ep, path, err := rs.endpointFor(ctx, &rcv)
	switch {
	case err == nil:
		rs.put(req.NamespacedName, path, ep)
		rcv.Status.WebhookPath = path
		cond.Status, cond.Reason = metav1.ConditionTrue, v1alpha1.ReceiverReasonReady
		cond.Message = fmt.Sprintf("serving %s notifications of events %v at %s on the receiver endpoint", rcv.Spec.Type, ep.events, path)
	default:
		rs.remove(req.NamespacedName)
		rcv.Status.WebhookPath = ""
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, v1alpha1.ReceiverReasonSecretError, err.Error()
		if se := (*SpecError)(nil); errors.As(err, &se) {
			cond.Reason = v1alpha1.ReasonInvalidSpec
		}
	}
	meta.SetStatusCondition(&rcv.Status.Conditions, cond)
	rcv.Status.ObservedGeneration = rcv.Generation
	if !equality.Semantic.DeepEqual(before.Status, rcv.Status) {
		if err := rs.Client.Status().Patch(ctx, &rcv, client.MergeFrom(before)); err != nil {
			return reconcile.Result{}, err
		}
	}
	if errors.Is(err, errReadSecret) {
		return reconcile.Result{}, err // the API server failed: retry
	}
	// A missing or changed Secret reconciles again through its watch.
	return reconcile.Result{}, nil
}

// errReadSecret: the API server failed to answer for the Secret.
var errReadSecret = errors.New("read Secret")

// endpointFor reads the Receiver's Secret and builds its endpoint.
func (rs *Receivers) endpointFor(ctx context.Context, rcv *v1alpha1.Receiver) (*endpoint, string, error) {
	key := types.NamespacedName{Namespace: rcv.Namespace, Name: rcv.Name}
	sel := labels.Everything()
	if rcv.Spec.Selector != nil {
		s, err := metav1.LabelSelectorAsSelector(rcv.Spec.Selector)
		if err != nil {
			return nil, "", &SpecError{Field: "spec.selector", Err: err}
		}
		sel = s
	}
	var secret corev1.Secret
	sk := types.NamespacedName{Namespace: rcv.Namespace, Name: rcv.Spec.SecretRef.Name}
	if err := rs.APIReader.Get(ctx, sk, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "", fmt.Errorf("Secret %s not found: create it with the key %q (%d bytes or more, for example openssl rand -hex 32)", sk, v1alpha1.ReceiverTokenKey, receiver.MinTokenBytes)
		}
		return nil, "", fmt.Errorf("%w %s: %w", errReadSecret, sk, err)
	}
	token := secret.Data[v1alpha1.ReceiverTokenKey]
	if len(token) < receiver.MinTokenBytes {
		return nil, "", fmt.Errorf("Secret %s: key %q holds %d bytes, want %d or more (for example openssl rand -hex 32)", sk, v1alpha1.ReceiverTokenKey, len(token), receiver.MinTokenBytes)
	}
	ep := &endpoint{
		key:      key,
		kind:     rcv.Spec.Type,
		token:    slices.Clone(token),
		events:   rcv.Spec.AcceptedEvents(),
		registry: rcv.Spec.Registry,
		selector: sel,
	}
	return ep, receiver.WebhookPath(token, rcv.Namespace, rcv.Name), nil
}

func (rs *Receivers) put(key types.NamespacedName, path string, ep *endpoint) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if old, ok := rs.paths[key]; ok && old != path {
		delete(rs.endpoints, old)
	}
	rs.paths[key] = path
	rs.endpoints[path] = ep
}

func (rs *Receivers) remove(key types.NamespacedName) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if old, ok := rs.paths[key]; ok {
		delete(rs.endpoints, old)
		delete(rs.paths, key)
	}
}

func (rs *Receivers) lookup(path string) *endpoint {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	return rs.endpoints[path]
}
