package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// HealthPath answers 200 "ok" when the registry's storage can be read and
// written, and 503 with the reason otherwise. It needs no credentials (a
// kubelet probe or a load balancer has none) and tells nothing about the
// content.
const HealthPath = "/healthz"

// healthTimeout bounds one storage check: a storage that does not answer in
// time is unhealthy.
const healthTimeout = 10 * time.Second

// healthProbeDir is where the check writes, beside distribution's own tree
// (docker/registry/v2), so the catalog and the collector never see it.
const healthProbeDir = "/.airlock-healthz"

// health serves HealthPath. driver nil (in-memory storage) is always healthy.
type health struct {
	driver storagedriver.StorageDriver
	// busy holds a token while a check runs: a storage that hangs makes
	// one goroutine wait on it, not one per probe.
	busy chan struct{}
}

func newHealth(d storagedriver.StorageDriver) *health {
	return &health{driver: d, busy: make(chan struct{}, 1)}
}

func (h *health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if err := h.check(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// check reads and writes a probe file through the storage driver.
func (h *health) check(ctx context.Context) error {
	if h.driver == nil {
		return nil
	}
	select {
	case h.busy <- struct{}{}:
	default:
		return errors.New("storage unhealthy: the previous storage check has not returned yet")
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		err := probe(context.WithoutCancel(ctx), h.driver)
		<-h.busy // free the slot before the answer goes out, so the next check finds it free
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("storage unhealthy: no answer from the storage in %s", healthTimeout)
	}
}

func probe(ctx context.Context, d storagedriver.StorageDriver) error {
	// As distribution's own storage check: the root answers (a root that
	// does not exist yet is an empty registry).
	if _, err := d.Stat(ctx, "/"); err != nil && !errors.As(err, new(storagedriver.PathNotFoundError)) {
		return fmt.Errorf("storage unhealthy: read: %w", err)
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	token := hex.EncodeToString(b)
	path := healthProbeDir + "/" + token
	if err := d.PutContent(ctx, path, []byte(token)); err != nil {
		return fmt.Errorf("storage unhealthy: write: %w", err)
	}
	defer func() { _ = d.Delete(ctx, path) }()
	got, err := d.GetContent(ctx, path)
	if err != nil {
		return fmt.Errorf("storage unhealthy: read back: %w", err)
	}
	if !bytes.Equal(got, []byte(token)) {
		return fmt.Errorf("storage unhealthy: read back %d bytes that differ from the %d written", len(got), len(token))
	}
	return nil
}
