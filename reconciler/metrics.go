package reconciler

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"airlock.dev/airlock/api/v1alpha1"
)

// Metrics are the controller's Prometheus metrics. NewMetrics registers them;
// a test gives each controller its own registry so the counts are its own.
type Metrics struct {
	ReconcileDuration *prometheus.HistogramVec
	Condition         *prometheus.GaugeVec
	RegistryRequests  *prometheus.CounterVec
	ObjectsApplied    prometheus.Counter
	ObjectsPruned     prometheus.Counter
	ObjectsDrifted    *prometheus.CounterVec
	APIWrites         *prometheus.CounterVec
	Rollbacks         *prometheus.CounterVec
	// Receipts counts deployment receipt writes (issue 15).
	Receipts *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ReconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "airlock_reconcile_duration_seconds",
			Help:    "Duration of Release reconciles, by result (success, failure, noop).",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"result"}),
		Condition: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "airlock_release_condition",
			Help: "1 for the current status (True, False, Unknown) of each condition of each Release; the other statuses have no series.",
		}, []string{"namespace", "name", "type", "status"}),
		RegistryRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_registry_requests_total",
			Help: "HTTP requests to registries, by method and status code (0 when no response came).",
		}, []string{"method", "status"}),
		ObjectsApplied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_objects_applied_total",
			Help: "Objects applied with server-side apply (not dry-run).",
		}),
		ObjectsPruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_objects_pruned_total",
			Help: "Objects deleted because they left the artifact or their Release was deleted.",
		}),
		ObjectsDrifted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_objects_drifted_total",
			Help: "Objects found changed or deleted outside airlock, and corrected, by Release.",
		}, []string{"namespace", "name"}),
		APIWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_apiserver_writes_total",
			Help: "Writes to the Kubernetes API by verb, and whether they were dry-run.",
		}, []string{"verb", "dry_run"}),
		Rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_rollbacks_total",
			Help: "Automatic rollbacks after a digest failed health, by Release and result (success: the earlier digest is applied and healthy; failure: the rollback failed and the Release is Stalled).",
		}, []string{"namespace", "name", "result"}),
	}
	m.Receipts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airlock_receipts_total",
		Help: "Deployment receipt writes by result (success: stored; failure: a try failed and is retried; dropped: given up after the last try, or the queue was full).",
	}, []string{"result"})
	reg.MustRegister(m.ReconcileDuration, m.Condition, m.RegistryRequests, m.ObjectsApplied,
		m.ObjectsPruned, m.ObjectsDrifted, m.APIWrites, m.Rollbacks, m.Receipts)
	return m
}

// wrapTransport counts registry requests by method and status.
func (m *Metrics) wrapTransport(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		m.RegistryRequests.WithLabelValues(req.Method, strconv.Itoa(status)).Inc()
		return resp, err
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (m *Metrics) write(verb string, dryRun bool) {
	m.APIWrites.WithLabelValues(verb, strconv.FormatBool(dryRun)).Inc()
}

var conditionTypes = []string{v1alpha1.ConditionReady, v1alpha1.ConditionReconciling,
	v1alpha1.ConditionStalled, v1alpha1.ConditionVerified, v1alpha1.ConditionHealthy}

// recordConditions sets the condition gauges of one Release: one series,
// of value 1, for the current status of each condition it has. The series
// of the other statuses are deleted, not kept at 0: at 1,000 Releases the
// 15 series each took a quarter of the controller's live heap.
func (m *Metrics) recordConditions(key types.NamespacedName, conds []metav1.Condition) {
	for _, t := range conditionTypes {
		current := ""
		for _, c := range conds {
			if c.Type == t {
				current = string(c.Status)
			}
		}
		for _, s := range []string{"True", "False", "Unknown"} {
			if s == current {
				m.Condition.WithLabelValues(key.Namespace, key.Name, t, s).Set(1)
			} else {
				m.Condition.DeleteLabelValues(key.Namespace, key.Name, t, s)
			}
		}
	}
}

// forget drops the gauges of a deleted Release.
func (m *Metrics) forget(key types.NamespacedName) {
	m.Condition.DeletePartialMatch(prometheus.Labels{"namespace": key.Namespace, "name": key.Name})
	m.ObjectsDrifted.DeletePartialMatch(prometheus.Labels{"namespace": key.Namespace, "name": key.Name})
	m.Rollbacks.DeletePartialMatch(prometheus.Labels{"namespace": key.Namespace, "name": key.Name})
}

func (m *Metrics) observe(result string, start time.Time) {
	m.ReconcileDuration.WithLabelValues(result).Observe(time.Since(start).Seconds())
}
