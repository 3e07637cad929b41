package notify

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// Target is one Alert's provider, resolved for one event.
type Target struct {
	// Alert names the Alert, namespace/name, for logs and metrics' callers.
	Alert string
	// Type is the provider type, for metrics.
	Type string
	// Provider delivers.
	Provider Provider
}

// Router resolves the Alerts that select an event. It runs on the
// dispatcher's workers, never on the reconciler's.
type Router interface {
	Route(ctx context.Context, ev Event) []Target
	// Done is told of the end of a delivery after attempts: err is nil
	// when it was delivered, else the last error of one given up.
	Done(t Target, ev Event, attempts int, err error)
}

// Metrics count deliveries and drops.
type Metrics struct {
	// Deliveries counts attempts by provider type and result: delivered,
	// retry (failed, to be tried again) or failed (given up).
	Deliveries *prometheus.CounterVec
	// Dropped counts events and deliveries dropped because the queue was full.
	Dropped prometheus.Counter
	// Queued is the number of items waiting, retries included.
	Queued prometheus.Gauge
}

// NewMetrics registers the notification metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_notification_deliveries_total",
			Help: "Notification delivery attempts, by provider type and result (delivered, retry, failed).",
		}, []string{"provider", "result"}),
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_notifications_dropped_total",
			Help: "Notifications dropped, oldest first, because the queue was full.",
		}),
		Queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_notification_queue_length",
			Help: "Notifications waiting to be routed or delivered, retries included.",
		}),
	}
	reg.MustRegister(m.Deliveries, m.Dropped, m.Queued)
	return m
}

// Dispatcher is a Notifier that queues events and delivers them on its own
// workers: Notify never blocks. When the queue is full the oldest item is
// dropped and counted. A failed delivery is tried again after a delay that
// doubles from BackoffBase up to BackoffMax, MaxAttempts times in all.
type Dispatcher struct {
	// Router finds each event's targets. Required.
	Router Router
	// QueueSize bounds the items waiting, retries included. 0 means 1000.
	QueueSize int
	// Workers deliver at once. 0 means 4.
	Workers int
	// MaxAttempts bounds the attempts per delivery. 0 means 6.
	MaxAttempts int
	// BackoffBase is the first retry delay. 0 means 2s.
	BackoffBase time.Duration
	// BackoffMax caps the retry delay. 0 means 2m.
	BackoffMax time.Duration
	// AttemptTimeout bounds one attempt. 0 means 15s.
	AttemptTimeout time.Duration
	// Metrics counts deliveries and drops. nil means none.
	Metrics *Metrics
	// Log receives one line per delivery given up. The zero value discards.
	Log logr.Logger

	mu      sync.Mutex
	queue   []item
	waiting int // retries waiting for their delay
	wake    chan struct{}
	once    sync.Once
}

// item is an event to route (target nil) or one delivery of it.
type item struct {
	ev      Event
	target  *Target
	attempt int
}

func (d *Dispatcher) init() {
	d.once.Do(func() { d.wake = make(chan struct{}, 1) })
}

func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Notify queues ev. It never blocks.
func (d *Dispatcher) Notify(ev Event) {
	d.push(item{ev: ev})
}

// push appends it, dropping the oldest item when the queue is full.
func (d *Dispatcher) push(it item) {
	d.init()
	d.mu.Lock()
	if len(d.queue)+d.waiting >= orDefault(d.QueueSize, 1000) && len(d.queue) > 0 {
		d.queue[0] = item{}
		d.queue = d.queue[1:]
		if d.Metrics != nil {
			d.Metrics.Dropped.Inc()
		}
	}
	d.queue = append(d.queue, it)
	d.gauge()
	d.mu.Unlock()
	d.signal()
}

func (d *Dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// gauge sets the queue length metric; d.mu is held.
func (d *Dispatcher) gauge() {
	if d.Metrics != nil {
		d.Metrics.Queued.Set(float64(len(d.queue) + d.waiting))
	}
}

func (d *Dispatcher) pop() (item, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.queue) == 0 {
		return item{}, false
	}
	it := d.queue[0]
	d.queue[0] = item{}
	d.queue = d.queue[1:]
	if len(d.queue) == 0 {
		d.queue = nil // let the backing array go
	}
	d.gauge()
	return it, true
}

// Start runs the workers until ctx ends (a manager.Runnable).
func (d *Dispatcher) Start(ctx context.Context) error {
	d.init()
	var wg sync.WaitGroup
	for range orDefault(d.Workers, 4) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.work(ctx)
		}()
	}
	wg.Wait()
	return nil
}

func (d *Dispatcher) work(ctx context.Context) {
	for {
		it, ok := d.pop()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-d.wake:
			}
			continue
		}
		d.signal() // another worker may take the next one
		if ctx.Err() != nil {
			return
		}
		if it.target == nil {
			for _, t := range d.Router.Route(ctx, it.ev) {
				d.push(item{ev: it.ev, target: &t})
			}
			continue
		}
		d.deliver(ctx, it)
	}
}

func (d *Dispatcher) deliver(ctx context.Context, it item) {
	actx, cancel := context.WithTimeout(ctx, orDefault(d.AttemptTimeout, 15*time.Second))
	err := it.target.Provider.Send(actx, it.ev)
	cancel()
	it.attempt++
	switch {
	case err == nil:
		d.count(it.target.Type, "delivered")
		d.Router.Done(*it.target, it.ev, it.attempt, nil)
	case ctx.Err() != nil:
		return // shutting down
	case IsPermanent(err) || it.attempt >= orDefault(d.MaxAttempts, 6):
		d.count(it.target.Type, "failed")
		d.Log.Info("notification not delivered", "alert", it.target.Alert, "provider", it.target.Type,
			"release", it.ev.Namespace+"/"+it.ev.Name, "reason", it.ev.Reason, "attempts", it.attempt, "error", err.Error())
		d.Router.Done(*it.target, it.ev, it.attempt, err)
	default:
		d.count(it.target.Type, "retry")
		d.retryLater(ctx, it)
	}
}

// retryLater pushes it again after its backoff, unless ctx ends first.
func (d *Dispatcher) retryLater(ctx context.Context, it item) {
	delay := d.backoff(it.attempt)
	d.mu.Lock()
	if d.waiting >= orDefault(d.QueueSize, 1000) {
		d.mu.Unlock()
		if d.Metrics != nil {
			d.Metrics.Dropped.Inc()
		}
		return
	}
	d.waiting++
	d.gauge()
	d.mu.Unlock()
	go func() {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		d.mu.Lock()
		d.waiting--
		d.mu.Unlock()
		if ctx.Err() == nil {
			d.push(it)
		}
	}()
}

// backoff is the delay before attempt+1: BackoffBase doubling per failed
// attempt, capped at BackoffMax.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	delay, limit := orDefault(d.BackoffBase, 2*time.Second), orDefault(d.BackoffMax, 2*time.Minute)
	for i := 1; i < attempt && delay < limit; i++ {
		delay *= 2
	}
	return min(delay, limit)
}

func (d *Dispatcher) count(provider, result string) {
	if d.Metrics != nil {
		d.Metrics.Deliveries.WithLabelValues(provider, result).Inc()
	}
}
