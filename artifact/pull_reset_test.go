package artifact_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"

	"airlock.dev/airlock/internal/testtree"
)

// TestPullConnectionResetIsNotADigestError: a connection reset in the
// middle of the layer is a transient registry failure, to be retried, not
// content that does not match its digest (which stalls a Release until a
// person acts). The fault suite found it reported as the latter.
func TestPullConnectionResetIsNotADigestError(t *testing.T) {
	reg := registrytest.New(t)
	src := testtree.Write(t, map[string]string{"big.yaml": strings.Repeat("key: value\n", 200_000)})
	pushRef := mustRef(t, "oci://"+reg.Addr+"/demo/app:v1")
	res, err := artifact.Push(context.Background(), pushRef, src, artifact.PushOptions{Remote: plainHTTP})
	if err != nil {
		t.Fatal(err)
	}
	upstream, _ := url.Parse("http://" + reg.Addr)
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+res.LayerDigest) {
			proxy.ServeHTTP(w, r)
			return
		}
		// Send the registry's own headers and the first half of the
		// layer, then reset.
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, not FIN
		}
		_ = conn.Close()
	}))
	t.Cleanup(srv.Close)

	ref := mustRef(t, "oci://"+strings.TrimPrefix(srv.URL, "http://")+"/demo/app:v1")
	_, err = artifact.Pull(context.Background(), ref, filepath.Join(t.TempDir(), "out"), artifact.PullOptions{Remote: plainHTTP})
	if err == nil {
		t.Fatal("pulled through a reset connection")
	}
	if errors.Is(err, artifact.ErrDigest) {
		t.Fatalf("a reset is reported as a digest mismatch: %v", err)
	}
	if !errors.Is(err, artifact.ErrUnreachable) && !errors.Is(err, artifact.ErrRegistryError) {
		t.Fatalf("got %v, want a registry failure (ErrUnreachable or ErrRegistryError)", err)
	}
}
