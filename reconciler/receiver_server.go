package reconciler

// This file is the receiver endpoint: it authenticates a notification with
// its Receiver's token before it reads the body, bounds the body, refuses
// stale and replayed requests, and annotates the Releases of the Receiver's
// namespace whose resolved repository the notification names, so that they
// reconcile now rather than at their interval.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/receiver"
)

// Outcomes of a request, the reason label of airlock_receiver_requests_total.
const (
	receiverAccepted  = "accepted"
	receiverUnmatched = "unmatched"
	receiverIgnored   = "ignored"
	receiverNotFound  = "not_found"
	receiverMethod    = "method"
	receiverForged    = "forged"
	receiverStale     = "stale"
	receiverReplayed  = "replayed"
	receiverTooLarge  = "too_large"
	receiverMalformed = "malformed"
	receiverBusy      = "busy"
	receiverError     = "error"
)

// answer is the outcome of one request: its status code, metric reason and
// message.
type answer struct {
	code    int
	reason  string
	message string
}

// ServeHTTP serves one notification. It answers 202 when the notification
// was accepted, whether or not a Release matched; 200 when it changes
// nothing on purpose (a replay, a time outside the window, no event the
// Receiver accepts), so that a registry does not send it again; and an error
// code otherwise. Every answer is counted by reason.
func (rs *Receivers) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rs.initTables()
	a := rs.serve(w, req)
	rs.Metrics.Requests.WithLabelValues(a.reason).Inc()
	if a.code != http.StatusAccepted && a.code != http.StatusOK {
		log.FromContext(req.Context()).V(1).Info("receiver refused a request", "path", req.URL.Path, "reason", a.reason, "message", a.message)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(a.code)
	fmt.Fprintln(w, a.message)
}

func (rs *Receivers) serve(w http.ResponseWriter, req *http.Request) answer {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return answer{http.StatusMethodNotAllowed, receiverMethod, "only POST"}
	}
	ep := rs.lookup(req.URL.Path)
	if ep == nil {
		return answer{http.StatusNotFound, receiverNotFound, "no Receiver at this path"}
	}
	now := rs.now()

	// Who sent it, before a byte of the body is read.
	var sig []byte
	ts := req.Header.Get(receiver.TimestampHeader)
	switch ep.kind {
	case v1alpha1.ReceiverGenericHMAC:
		s, err := receiver.ParseSignature(req.Header.Get(receiver.SignatureHeader))
		if err != nil {
			return answer{http.StatusUnauthorized, receiverForged, err.Error()}
		}
		if _, err := receiver.ParseTimestamp(ts, now, rs.window()); err != nil {
			if errors.Is(err, receiver.ErrStale) {
				return answer{http.StatusOK, receiverStale, "ignored: " + err.Error()}
			}
			return answer{http.StatusUnauthorized, receiverForged, err.Error()}
		}
		sig = s
	case v1alpha1.ReceiverDistribution, v1alpha1.ReceiverHarbor:
		if !receiver.AuthorizationMatches(req.Header.Get("Authorization"), ep.token) {
			return answer{http.StatusUnauthorized, receiverForged, "missing or wrong Authorization: Bearer token"}
		}
	case v1alpha1.ReceiverQuay:
		// Quay sends no credentials: the unguessable path is all there is.
	default:
		return answer{http.StatusNotFound, receiverNotFound, "no Receiver at this path"}
	}

	max := rs.MaxBodyBytes
	if max <= 0 {
		max = DefaultReceiverMaxBody
	}
	if req.ContentLength > max {
		return answer{http.StatusRequestEntityTooLarge, receiverTooLarge, fmt.Sprintf("body of %d bytes, more than %d", req.ContentLength, max)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, max))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return answer{http.StatusRequestEntityTooLarge, receiverTooLarge, fmt.Sprintf("body more than %d bytes", max)}
		}
		return answer{http.StatusBadRequest, receiverMalformed, "read body: " + err.Error()}
	}
	if sig != nil && !receiver.VerifySignature(ep.token, ts, body, sig) {
		return answer{http.StatusUnauthorized, receiverForged, "wrong " + receiver.SignatureHeader + ": sign the timestamp, \".\" and the body with the Receiver's token"}
	}

	var notes []receiver.Notification
	switch ep.kind {
	case v1alpha1.ReceiverGenericHMAC:
		notes, err = receiver.ParseGeneric(body)
	case v1alpha1.ReceiverDistribution:
		notes, err = receiver.ParseDistribution(body)
	case v1alpha1.ReceiverHarbor:
		notes, err = receiver.ParseHarbor(body)
	case v1alpha1.ReceiverQuay:
		notes, err = receiver.ParseQuay(body)
	}
	if err != nil {
		return answer{http.StatusBadRequest, receiverMalformed, err.Error()}
	}
	// The registries put their time in the body, which is authenticated by
	// now (Quay's is not, and has no time).
	if ep.kind == v1alpha1.ReceiverDistribution || ep.kind == v1alpha1.ReceiverHarbor {
		for _, n := range notes {
			if n.Time.IsZero() {
				return answer{http.StatusOK, receiverStale, "ignored: " + n.String() + " has no time, so its freshness cannot be checked"}
			}
			if err := receiver.Fresh(n.Time, now, rs.window()); err != nil {
				return answer{http.StatusOK, receiverStale, "ignored: " + n.String() + ": " + err.Error()}
			}
		}
	}

	// The same request twice within the window is a replay: the nonce is
	// the path, the timestamp header and the body (an HMAC covers both; a
	// registry's event has its own ID and time in the body).
	h := sha256.New()
	for _, part := range []string{req.URL.Path, ts, string(body)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	nonce := hex.EncodeToString(h.Sum(nil))
	if err := rs.nonces.Add(nonce, now); err != nil {
		if errors.Is(err, receiver.ErrReplayCacheFull) {
			w.Header().Set("Retry-After", "60")
			return answer{http.StatusServiceUnavailable, receiverBusy, "too many notifications within the replay window: retry later"}
		}
		return answer{http.StatusOK, receiverReplayed, "ignored: already received"}
	}

	notes = slices.DeleteFunc(notes, func(n receiver.Notification) bool { return !slices.Contains(ep.events, n.Event) })
	if len(notes) == 0 {
		return answer{http.StatusOK, receiverIgnored, fmt.Sprintf("ignored: no event of %v", ep.events)}
	}
	n, err := rs.requestReconciles(req.Context(), ep, notes, now)
	if err != nil {
		rs.nonces.Forget(nonce) // the sender's retry is not a replay
		return answer{http.StatusServiceUnavailable, receiverError, err.Error()}
	}
	if n == 0 {
		return answer{http.StatusAccepted, receiverUnmatched, "accepted: no Release in " + ep.key.Namespace + " resolves to " + names(notes, ep)}
	}
	return answer{http.StatusAccepted, receiverAccepted, fmt.Sprintf("accepted: %d Releases to reconcile", n)}
}

// requestReconciles annotates, once each, the Releases of the Receiver's
// namespace (and selector) whose resolved repository a notification names,
// as `airlock reconcile` does, and returns how many.
func (rs *Receivers) requestReconciles(ctx context.Context, ep *endpoint, notes []receiver.Notification, now time.Time) (int, error) {
	var list v1alpha1.ReleaseList
	if err := rs.Client.List(ctx, &list, client.InNamespace(ep.key.Namespace), client.MatchingLabelsSelector{Selector: ep.selector}); err != nil {
		return 0, fmt.Errorf("list Releases in %s: %w", ep.key.Namespace, err)
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		v1alpha1.ReconcileRequestAnnotation: now.UTC().Format(time.RFC3339Nano),
	}}})
	if err != nil {
		return 0, err
	}
	count := 0
	for i := range list.Items {
		rel := &list.Items[i]
		n, ok := rs.matches(ep, rel, notes)
		if !ok {
			continue
		}
		if err := rs.Client.Patch(ctx, rel, client.RawPatch(types.MergePatchType, patch)); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return count, fmt.Errorf("request a reconcile of Release %s/%s: %w", rel.Namespace, rel.Name, err)
		}
		count++
		rs.Metrics.ReconcileRequests.Inc()
		if rs.Events != nil {
			rs.Events.Eventf(rel, nil, "Normal", "ReconcileRequested", "Receive", "Receiver %s: %s", ep.key.Name, n)
		}
		log.FromContext(ctx).Info("receiver requested a reconcile", "receiver", ep.key, "release", rel.Name, "notification", n.String())
	}
	return count, nil
}

// matches returns the first notification that names rel's repository, as
// the controller resolves it: spec.url after the mirror rules, compared with
// the notification's host (or the Receiver's spec.registry) and repository.
// A notification without a host compares the repository path alone.
func (rs *Receivers) matches(ep *endpoint, rel *v1alpha1.Release, notes []receiver.Notification) (receiver.Notification, bool) {
	repo, err := artifact.ParseRepository(rel.Spec.URL)
	if err != nil {
		return receiver.Notification{}, false
	}
	repo = rs.Mirrors.Rewrite(repo)
	for _, n := range notes {
		if !strings.EqualFold(repo.Repository, n.Repository) {
			continue
		}
		host := n.Host
		if ep.registry != "" {
			host = ep.registry
		}
		if host == "" || strings.EqualFold(repo.Registry, host) {
			return n, true
		}
	}
	return receiver.Notification{}, false
}

func names(notes []receiver.Notification, ep *endpoint) string {
	var out []string
	for _, n := range notes {
		if ep.registry != "" {
			n.Host = ep.registry
		}
		if name := n.Name(); !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return strings.Join(out, ", ")
}

// receiverServer serves the endpoint while the manager runs.
type receiverServer struct {
	ln                net.Listener
	handler           http.Handler
	certFile, keyFile string
}

// NeedLeaderElection: only the leader reconciles Receivers, so only the
// leader knows their paths.
func (s *receiverServer) NeedLeaderElection() bool { return true }

func (s *receiverServer) Start(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan error, 1)
	go func() {
		var err error
		if s.certFile != "" {
			err = srv.ServeTLS(s.ln, s.certFile, s.keyFile)
		} else {
			err = srv.Serve(s.ln)
		}
		done <- err
	}()
	select {
	case err := <-done:
		return fmt.Errorf("receiver endpoint on %s: %w", s.ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
