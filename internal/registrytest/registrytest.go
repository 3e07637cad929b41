// Package registrytest starts a real in-process registry for tests.
package registrytest

import (
	"context"
	"testing"

	"airlock.dev/airlock/internal/registry"
)

// New starts an in-memory registry on 127.0.0.1 and stops it when the test ends.
func New(t testing.TB) *registry.Server {
	t.Helper()
	return NewWithOptions(t, registry.Options{})
}

// NewWithOptions is New with storage, auth or TLS options.
func NewWithOptions(t testing.TB, opts registry.Options) *registry.Server {
	t.Helper()
	s, err := registry.Start(context.Background(), "127.0.0.1:0", opts)
	if err != nil {
		t.Fatalf("start registry: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
