package reconciler

import (
	"net/http"
	"strconv"
	"sync"
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
	Condition         *ConditionGauges
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
		Condition: newConditionGauges(),
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

var conditionTypes = [...]string{v1alpha1.ConditionReady, v1alpha1.ConditionReconciling,
	v1alpha1.ConditionStalled, v1alpha1.ConditionVerified, v1alpha1.ConditionHealthy}

// conditionStatuses are the statuses a condition series can have; the index
// + 1 is the status's code in ConditionGauges (0: no such condition).
var conditionStatuses = [...]string{"True", "False", "Unknown"}

// ConditionGauges is airlock_release_condition: one series, of value 1,
// for the current status of each condition of each Release, and none for
// the other statuses. It keeps one small array of status codes per Release
// and makes the series when scraped: a GaugeVec kept about 700 bytes per
// series (label pairs, hashes, the gauge), 3.5 KiB per Release, a tenth of
// the controller's live heap at 1,000 Releases.
type ConditionGauges struct {
	desc *prometheus.Desc

	mu        sync.Mutex
	byRelease map[types.NamespacedName]conditionCodes
}

// conditionCodes holds, for each of conditionTypes, 0 when the Release has
// no such condition, else 1 + the index of its status in conditionStatuses.
type conditionCodes [len(conditionTypes)]uint8

func newConditionGauges() *ConditionGauges {
	return &ConditionGauges{
		desc: prometheus.NewDesc("airlock_release_condition",
			"1 for the current status (True, False, Unknown) of each condition of each Release; the other statuses have no series.",
			[]string{"namespace", "name", "type", "status"}, nil),
		byRelease: map[types.NamespacedName]conditionCodes{},
	}
}

// Describe implements prometheus.Collector.
func (g *ConditionGauges) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector: it makes the series of every
// Release's current conditions.
func (g *ConditionGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for key, codes := range g.byRelease {
		for i, c := range codes {
			if c != 0 {
				ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, 1, key.Namespace, key.Name, conditionTypes[i], conditionStatuses[c-1])
			}
		}
	}
}

// Set records key's conditions: their current statuses replace the ones
// recorded before. The reconciler calls it after each status update.
func (g *ConditionGauges) Set(key types.NamespacedName, conds []metav1.Condition) {
	var codes conditionCodes
	for i, t := range conditionTypes {
		for _, c := range conds {
			if c.Type != t {
				continue
			}
			for j, s := range conditionStatuses {
				if string(c.Status) == s {
					codes[i] = uint8(j + 1)
				}
			}
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if codes == (conditionCodes{}) {
		delete(g.byRelease, key)
		return
	}
	g.byRelease[key] = codes
}

// delete drops key's series.
func (g *ConditionGauges) delete(key types.NamespacedName) {
	g.mu.Lock()
	delete(g.byRelease, key)
	g.mu.Unlock()
}

// recordConditions sets the condition gauges of one Release: one series,
// of value 1, for the current status of each condition it has.
func (m *Metrics) recordConditions(key types.NamespacedName, conds []metav1.Condition) {
	m.Condition.Set(key, conds)
}

// forget drops the gauges of a deleted Release.
func (m *Metrics) forget(key types.NamespacedName) {
	m.Condition.delete(key)
	m.ObjectsDrifted.DeletePartialMatch(prometheus.Labels{"namespace": key.Namespace, "name": key.Name})
	m.Rollbacks.DeletePartialMatch(prometheus.Labels{"namespace": key.Namespace, "name": key.Name})
}

func (m *Metrics) observe(result string, start time.Time) {
	m.ReconcileDuration.WithLabelValues(result).Observe(time.Since(start).Seconds())
}
