package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

// Keys of the receipt key Secret: a cosign private key and its password, as
// `cosign generate-key-pair k8s://NS/NAME` writes them.
const (
	ReceiptKeyEntry      = "cosign.key"
	ReceiptPasswordEntry = "cosign.password"
)

// ReceiptWriter signs and stores deployment receipts (verify.WriteReceipt)
// asynchronously, with retries: a reconcile only queues a receipt and never
// waits for it or fails because of it. It is a manager Runnable; the
// Reconciler adds it in SetupWithManager.
type ReceiptWriter struct {
	// Cluster is this cluster's name (--cluster-name).
	Cluster string
	// KeySecret is the Secret holding the cluster's cosign key
	// (ReceiptKeyEntry, ReceiptPasswordEntry), in the controller's namespace.
	KeySecret types.NamespacedName
	// Version is the controller's version, recorded in each receipt.
	Version string
	// Attempts bounds the tries per receipt; 0 means 5.
	Attempts int
	// Backoff is the first delay between tries, doubled each time; 0 means 2s.
	Backoff time.Duration
	// Queue bounds the receipts waiting; 0 means 256. Past it a receipt is
	// dropped and counted.
	Queue int

	// Set by the Reconciler.
	client  ctrl.Client
	reader  ctrl.Reader
	metrics *Metrics

	once    sync.Once
	jobs    chan receiptJob
	mu      sync.Mutex
	queued  map[types.NamespacedName]string // the stamp queued or written last
	key     *verify.PrivateKey
	keyRV   string
	cluster string // kube-system's UID
}

type receiptJob struct {
	rel    types.NamespacedName
	stamp  string
	ref    artifact.Reference
	client *artifact.Client
	pred   verify.ReceiptPredicate
}

func (w *ReceiptWriter) init() {
	w.once.Do(func() {
		n := w.Queue
		if n <= 0 {
			n = 256
		}
		w.jobs = make(chan receiptJob, n)
		w.queued = map[types.NamespacedName]string{}
	})
}

// NeedLeaderElection: only the leader writes receipts, as only it reconciles.
func (w *ReceiptWriter) NeedLeaderElection() bool { return true }

// Start writes queued receipts until ctx ends.
func (w *ReceiptWriter) Start(ctx context.Context) error {
	w.init()
	for {
		select {
		case <-ctx.Done():
			return nil
		case j := <-w.jobs:
			w.write(ctx, j)
		}
	}
}

func (w *ReceiptWriter) count(result string) {
	if w.metrics != nil {
		w.metrics.Receipts.WithLabelValues(result).Inc()
	}
}

// write tries j until it is stored, then records it in the Release's
// status. Failures are logged and counted; after the last try it gives up
// (the next controller start tries again).
func (w *ReceiptWriter) write(ctx context.Context, j receiptJob) {
	logger := log.FromContext(ctx).WithValues("release", j.rel.String(), "digest", j.ref.Digest)
	attempts, delay := w.Attempts, w.Backoff
	if attempts <= 0 {
		attempts = 5
	}
	if delay <= 0 {
		delay = 2 * time.Second
	}
	for i := 1; ; i++ {
		written, err := w.try(ctx, &j)
		if err == nil {
			w.count("success")
			w.record(ctx, j, written)
			return
		}
		w.count("failure")
		logger.Info("deployment receipt not stored", "attempt", i, "of", attempts, "error", err.Error())
		if i >= attempts {
			w.count("dropped")
			w.mu.Lock()
			if w.queued[j.rel] == j.stamp {
				delete(w.queued, j.rel)
			}
			w.mu.Unlock()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay *= 2
	}
}

func (w *ReceiptWriter) try(ctx context.Context, j *receiptJob) (*verify.WrittenReceipt, error) {
	key, err := w.loadKey(ctx)
	if err != nil {
		return nil, err
	}
	if j.pred.Cluster.ID == "" {
		id, err := w.clusterID(ctx)
		if err != nil {
			return nil, err
		}
		j.pred.Cluster.ID = id
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return verify.WriteReceipt(ctx, j.client, j.ref, key, &j.pred)
}

// record writes status.receipt with a merge patch of that field alone.
func (w *ReceiptWriter) record(ctx context.Context, j receiptJob, written *verify.WrittenReceipt) {
	st := v1alpha1.ReceiptStatus{ArtifactDigest: j.ref.Digest, AppliedAt: metav1.NewTime(j.pred.AppliedAt), Digest: written.Digest,
		Event: j.pred.Event, Cluster: w.Cluster, WrittenAt: metav1.Now()}
	body, err := json.Marshal(map[string]any{"status": map[string]any{"receipt": st}})
	if err == nil {
		rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Namespace: j.rel.Namespace, Name: j.rel.Name}}
		if w.metrics != nil {
			w.metrics.write("patch", false)
		}
		err = w.client.Status().Patch(ctx, rel, ctrl.RawPatch(types.MergePatchType, body))
	}
	if err != nil {
		log.FromContext(ctx).Info("deployment receipt stored, but not recorded in status.receipt", "release", j.rel.String(), "receipt", written.Digest, "error", err.Error())
	}
}

// loadKey reads and decrypts the cluster key, again only when its Secret changed.
func (w *ReceiptWriter) loadKey(ctx context.Context) (*verify.PrivateKey, error) {
	var s corev1.Secret
	if err := w.reader.Get(ctx, w.KeySecret, &s); err != nil {
		return nil, fmt.Errorf("read the receipt key Secret %s: %w", w.KeySecret, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.key != nil && w.keyRV == s.ResourceVersion {
		return w.key, nil
	}
	k, err := verify.LoadPrivateKey(s.Data[ReceiptKeyEntry], s.Data[ReceiptPasswordEntry])
	if err != nil {
		return nil, fmt.Errorf("receipt key Secret %s (entries %s and %s): %w", w.KeySecret, ReceiptKeyEntry, ReceiptPasswordEntry, err)
	}
	w.key, w.keyRV = k, s.ResourceVersion
	return k, nil
}

// clusterID is the UID of the kube-system namespace.
func (w *ReceiptWriter) clusterID(ctx context.Context) (string, error) {
	w.mu.Lock()
	id := w.cluster
	w.mu.Unlock()
	if id != "" {
		return id, nil
	}
	var ns corev1.Namespace
	if err := w.reader.Get(ctx, types.NamespacedName{Name: "kube-system"}, &ns); err != nil {
		return "", fmt.Errorf("read namespace kube-system for the cluster's identity: %w", err)
	}
	w.mu.Lock()
	w.cluster = string(ns.UID)
	w.mu.Unlock()
	return string(ns.UID), nil
}

// queueReceipt queues a receipt when rel is Ready (or rolled back, healthy)
// on the digest its newest history entry applied, and none was written or
// queued for that entry. It never blocks.
func (r *Reconciler) queueReceipt(ctx context.Context, rel *v1alpha1.Release) {
	w := r.Receipts
	if w == nil || len(rel.Status.History) == 0 {
		return
	}
	w.init()
	h := rel.Status.History[0]
	if h.Digest != rel.Status.LastAppliedDigest {
		return
	}
	ready := meta.IsStatusConditionTrue(rel.Status.Conditions, v1alpha1.ConditionReady)
	rolledBack := h.RollbackOf != "" && h.Health == v1alpha1.HealthHealthy
	if !ready && !rolledBack {
		return
	}
	stamp := h.Digest + "@" + strconv.FormatInt(h.AppliedAt.Unix(), 10)
	if rc := rel.Status.Receipt; rc != nil && rc.ArtifactDigest+"@"+strconv.FormatInt(rc.AppliedAt.Unix(), 10) == stamp {
		return
	}
	key := ctrl.ObjectKeyFromObject(rel)
	w.mu.Lock()
	if w.queued[key] == stamp {
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()

	repo, err := r.repository(rel)
	if err != nil {
		return
	}
	c, err := r.registryClient(ctx, rel, repo)
	if err != nil {
		log.FromContext(ctx).Info("deployment receipt not queued", "error", err.Error())
		w.count("dropped")
		return
	}
	j := receiptJob{rel: key, stamp: stamp, ref: repo.WithTag("").WithDigest(h.Digest), client: c, pred: r.receiptPredicate(rel, h)}
	select {
	case w.jobs <- j:
		w.mu.Lock()
		w.queued[key] = stamp
		w.mu.Unlock()
	default:
		w.count("dropped")
	}
}

// receiptPredicate is what the receipt for history entry h records.
func (r *Reconciler) receiptPredicate(rel *v1alpha1.Release, h v1alpha1.HistoryEntry) verify.ReceiptPredicate {
	st := &rel.Status
	p := verify.ReceiptPredicate{
		Event:         verify.ReceiptReady,
		Cluster:       verify.ReceiptCluster{Name: r.Receipts.Cluster},
		Release:       verify.ReceiptRelease{Namespace: rel.Namespace, Name: rel.Name, UID: string(rel.UID), Generation: st.LastAppliedGeneration},
		Artifact:      verify.ReceiptArtifact{URL: rel.Spec.URL, Digest: h.Digest, Revision: h.Revision, Source: st.LastAppliedSource, Version: h.Version},
		TrustPolicies: st.TrustPolicies,
		RollbackOf:    h.RollbackOf,
		AppliedAt:     h.AppliedAt.UTC(),
		ReadyAt:       r.now().UTC(),
		Controller:    verify.ReceiptController{Version: r.Receipts.Version},
		Health:        verify.ReceiptHealth{Result: v1alpha1.HealthUnknown},
	}
	if h.RollbackOf != "" {
		p.Event = verify.ReceiptRollback
	}
	for _, s := range st.Signers {
		p.Signers = append(p.Signers, verify.ReceiptSigner{Name: s.Name, Fingerprint: s.Fingerprint})
	}
	if c := st.Chain; c != nil {
		rc := &verify.ReceiptChain{SiteSigner: verify.ReceiptSigner{Name: c.SiteSigner.Name, Fingerprint: c.SiteSigner.Fingerprint},
			UpstreamVerified: c.UpstreamVerified, UpstreamRef: c.UpstreamRef, ImportedAt: c.ImportedAt}
		for _, s := range c.UpstreamSigners {
			rc.UpstreamSigners = append(rc.UpstreamSigners, verify.ReceiptSigner{Name: s.Name, Fingerprint: s.Fingerprint})
		}
		p.Chain = rc
	}
	ids := make([]string, 0, len(st.Inventory))
	for _, o := range st.Inventory {
		ids = append(ids, strings.Join([]string{o.Group, o.Version, o.Kind, o.Namespace, o.Name}, "/"))
	}
	p.Inventory = verify.ReceiptInventory{Objects: len(ids), Digest: verify.InventoryDigest(ids)}
	r.mu.Lock()
	if d := r.desired[ctrl.ObjectKeyFromObject(rel)]; d != nil && d.digest == h.Digest {
		p.Rendered = "sha256:" + d.hash
	}
	r.mu.Unlock()
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionHealthy); c != nil {
		switch c.Status {
		case metav1.ConditionTrue:
			p.Health = verify.ReceiptHealth{Result: v1alpha1.HealthHealthy, Message: c.Message}
		case metav1.ConditionFalse:
			p.Health = verify.ReceiptHealth{Result: v1alpha1.HealthUnhealthy, Message: c.Message}
		default:
			p.Health.Message = c.Message
		}
	}
	return p
}
