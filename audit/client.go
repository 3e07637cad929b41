// Package audit reads what airlock wrote in a cluster, and only reads it:
// the Releases with their chain from source commit to signer to digest to
// applied objects, their events, and the trace from an applied object back
// to its Release. The CLI (`airlock trace`, `airlock ui`) and the
// controller's web view call it; its client refuses every request that is
// not a read before the request leaves the process.
package audit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"airlock.dev/airlock/api/v1alpha1"
)

// ErrWriteRefused is returned for any request the read-only client is asked
// to send that is not a GET or HEAD.
var ErrWriteRefused = errors.New("refused: this client only reads (get, list, watch)")

// ReadOnly returns a copy of cfg whose transport refuses every request that
// is not a GET or HEAD (get, list, watch and discovery are GETs) before it
// is sent, whatever the credentials would allow.
func ReadOnly(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	wrap := c.WrapTransport
	c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		if wrap != nil {
			rt = wrap(rt)
		}
		return readOnlyTransport{rt}
	}
	return c
}

type readOnlyTransport struct{ next http.RoundTripper }

func (t readOnlyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, ErrWriteRefused)
	}
	return t.next.RoundTrip(req)
}

// Client reads Releases, events and applied objects through a read-only
// transport.
type Client struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
	host   string
}

// NewClient connects to the cluster of cfg through ReadOnly(cfg). It sends
// nothing until it is used.
func NewClient(cfg *rest.Config) (*Client, error) {
	ro := ReadOnly(cfg)
	dyn, err := dynamic.NewForConfig(ro)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Host, err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(ro)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Host, err)
	}
	cached := memory.NewMemCacheClient(dc)
	mapper := restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(cached), cached, nil)
	return &Client{dyn: dyn, mapper: mapper, host: cfg.Host}, nil
}

var (
	releasesResource = v1alpha1.GroupVersion.WithResource("releases")
	eventsResource   = schema.GroupVersionResource{Version: "v1", Resource: "events"}
)

// Release is a Release as read from the cluster, with the status fields
// about receipts that this build of airlock may not know yet.
type Release struct {
	v1alpha1.Release
	// Receipts are the status fields whose name contains "receipt", at any
	// depth (the signed deployment receipts' digests), as dotted paths and
	// their values. Empty when the controller writes none.
	Receipts []Field `json:"receipts,omitempty"`
}

// Field is one status value, named by its dotted path.
type Field struct {
	Path  string `json:"path"`
	Value string `json:"value"`
}

// Ready is the Ready condition, or nil when there is none yet.
func (r *Release) Ready() *metav1.Condition {
	return meta.FindStatusCondition(r.Status.Conditions, v1alpha1.ConditionReady)
}

// Releases lists the Releases of namespace ("" means every namespace),
// sorted by namespace and name.
func (c *Client) Releases(ctx context.Context, namespace string) ([]Release, error) {
	l, err := c.dyn.Resource(releasesResource).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		what := "list Releases"
		if namespace != "" {
			what += " in namespace " + namespace
		}
		return nil, c.apiError(what, err)
	}
	out := make([]Release, 0, len(l.Items))
	for i := range l.Items {
		r, err := toRelease(&l.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Release reads one Release.
func (c *Client) Release(ctx context.Context, namespace, name string) (*Release, error) {
	u, err := c.dyn.Resource(releasesResource).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, c.apiError("get Release "+namespace+"/"+name, err)
	}
	return toRelease(u)
}

// maxReceiptFields bounds what one Release's status can put on a page.
const maxReceiptFields = 50

func toRelease(u *unstructured.Unstructured) (*Release, error) {
	var r Release
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &r.Release); err != nil {
		return nil, fmt.Errorf("decode Release %s/%s: %w: is this airlock older than the installed CRD?", u.GetNamespace(), u.GetName(), err)
	}
	r.ManagedFields = nil
	r.APIVersion, r.Kind = v1alpha1.GroupVersion.String(), v1alpha1.ReleaseKind
	if st, ok := u.Object["status"].(map[string]any); ok {
		r.Receipts = receiptFields(st)
	}
	return &r, nil
}

// receiptFields walks status for fields whose name contains "receipt" and
// returns their values flattened, in a stable order, at most
// maxReceiptFields of them.
func receiptFields(status map[string]any) []Field {
	var out []Field
	var walk func(path string, v any, inReceipt bool)
	walk = func(path string, v any, inReceipt bool) {
		if len(out) >= maxReceiptFields {
			return
		}
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(join(path, k), x[k], inReceipt || strings.Contains(strings.ToLower(k), "receipt"))
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e, inReceipt)
			}
		default:
			if inReceipt && v != nil {
				out = append(out, Field{Path: path, Value: fmt.Sprint(v)})
			}
		}
	}
	walk("status", status, false)
	return out
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// Event is the part of a core/v1 Event the views show.
type Event struct {
	Type    string    `json:"type"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Count   int32     `json:"count"`
	Time    time.Time `json:"time"`
}

// maxEvents bounds the events read for one Release.
const maxEvents = 500

// Events lists the events of a Release, oldest first (the API server keeps
// them for an hour by default).
func (c *Client) Events(ctx context.Context, rel *v1alpha1.Release) ([]Event, error) {
	l, err := c.dyn.Resource(eventsResource).Namespace(rel.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.uid=" + string(rel.UID),
		Limit:         maxEvents,
	})
	if err != nil {
		return nil, c.apiError("list the events of Release "+rel.Namespace+"/"+rel.Name, err)
	}
	evs := make([]Event, 0, len(l.Items))
	for i := range l.Items {
		var e coreEvent
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(l.Items[i].Object, &e); err != nil {
			return nil, fmt.Errorf("decode event %s: %w", l.Items[i].GetName(), err)
		}
		count := max(e.Count, 1)
		if e.Series != nil {
			count = max(e.Series.Count, 1)
		}
		evs = append(evs, Event{Type: e.Type, Reason: e.Reason, Message: e.Message, Count: count, Time: eventTime(&e)})
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	return evs, nil
}

type coreEvent struct {
	metav1.ObjectMeta `json:"metadata"`
	Type              string           `json:"type"`
	Reason            string           `json:"reason"`
	Message           string           `json:"message"`
	Count             int32            `json:"count"`
	FirstTimestamp    metav1.Time      `json:"firstTimestamp"`
	LastTimestamp     metav1.Time      `json:"lastTimestamp"`
	EventTime         metav1.MicroTime `json:"eventTime"`
	Series            *struct {
		Count            int32            `json:"count"`
		LastObservedTime metav1.MicroTime `json:"lastObservedTime"`
	} `json:"series"`
}

// eventTime is when an event was last seen, from whichever of the old and
// the new events API fields is set.
func eventTime(e *coreEvent) time.Time {
	t := e.CreationTimestamp.Time
	for _, c := range []time.Time{e.FirstTimestamp.Time, e.LastTimestamp.Time, e.EventTime.Time} {
		if c.After(t) {
			t = c
		}
	}
	if e.Series != nil && e.Series.LastObservedTime.After(t) {
		t = e.Series.LastObservedTime.Time
	}
	return t
}

// apiError adds what to do to the API errors a reader meets most.
func (c *Client) apiError(what string, err error) error {
	switch {
	case errors.Is(err, ErrWriteRefused):
		return fmt.Errorf("%s: %w", what, err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s: %w", what, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: %w: grant this identity get and list on it (for example the view ClusterRole)", what, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: %w: refresh the credentials for %s", what, err, c.host)
	}
	return fmt.Errorf("%s at %s: %w", what, c.host, err)
}
