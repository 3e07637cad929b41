package notify_test

import (
	"context"
	"testing"
	"time"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/notify"
)

// BenchmarkNotifyEndpointDown is what a reconcile pays to notify while the
// endpoint hangs: the queue stays full and every Notify drops the oldest.
func BenchmarkNotifyEndpointDown(b *testing.B) {
	hang := providerFunc(func(ctx context.Context, _ notify.Event) error { <-ctx.Done(); return ctx.Err() })
	d := &notify.Dispatcher{Router: &router{targets: []notify.Target{{Alert: "a/b", Type: "generic", Provider: hang}}},
		QueueSize: 1000, AttemptTimeout: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Start(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	ev := event(v1alpha1.AlertEventReady)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d.Notify(ev)
	}
}
