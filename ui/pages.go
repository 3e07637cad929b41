package ui

import (
	"net/http"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/audit"
)

// shortDigest is a digest's first 12 hex digits.
func shortDigest(d string) string {
	_, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) < 12 {
		return d
	}
	return hex[:12]
}

// page is what every page's layout reads.
type page struct {
	Title   string
	Refresh int
	// Object and Namespace fill the trace search form in the header.
	Object, Namespace string
}

type listPage struct {
	page
	Filter string
	Rows   []releaseRow
	Ready  int
}

// releaseRow is one line of the Releases list.
type releaseRow struct {
	Namespace, Name string
	Ready, Reason   string
	Message         string
	Digest          string
	Revision        string
	Signers         string
	Age             string
	Suspended       bool
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	ns := r.URL.Query().Get("namespace")
	rels, err := s.opts.Client.Releases(r.Context(), ns)
	if err != nil {
		s.fail(w, "Releases", err)
		return
	}
	s.render(w, http.StatusOK, listView(s.listData(ns, rels)))
}

func (s *server) listData(ns string, rels []audit.Release) listPage {
	p := listPage{page: page{Title: "Releases", Refresh: s.refresh(), Namespace: ns}, Filter: ns, Rows: make([]releaseRow, 0, len(rels))}
	now := s.opts.Now()
	for i := range rels {
		rel := &rels[i]
		row := releaseRow{
			Namespace: rel.Namespace, Name: rel.Name, Ready: "Unknown",
			Digest: rel.Status.LastAppliedDigest, Revision: rel.Status.LastAppliedRevision,
			Signers: signerNames(rel.Status.Signers), Age: age(now, rel.CreationTimestamp.Time),
			Suspended: rel.Spec.Suspend,
		}
		if c := rel.Ready(); c != nil {
			row.Ready, row.Reason, row.Message = string(c.Status), c.Reason, c.Message
			if c.Status == metav1.ConditionTrue {
				p.Ready++
			}
		}
		p.Rows = append(p.Rows, row)
	}
	return p
}

func signerNames(ss []v1alpha1.Signer) string {
	names := make([]string, 0, len(ss))
	for _, s := range ss {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

type releasePage struct {
	page
	R          *audit.Release
	Ready      *metav1.Condition
	Age        string
	Inventory  []inventoryRow
	History    []historyRow
	Rollbacks  []historyRow
	Drift      []audit.Event
	Events     []audit.Event
	EventsErr  string
	Unfinished bool
}

type inventoryRow struct {
	Object string
	// Trace is the trace form of the object (KIND.GROUP/NAME).
	Trace     string
	Namespace string
}

type historyRow struct {
	v1alpha1.HistoryEntry
	N       int
	Age     string
	Current bool
}

func (s *server) release(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	rel, err := s.opts.Client.Release(r.Context(), ns, name)
	if err != nil {
		s.fail(w, "Release "+ns+"/"+name, err)
		return
	}
	p := s.releaseData(rel)
	evs, err := s.opts.Client.Events(r.Context(), &rel.Release)
	if err != nil {
		p.EventsErr = err.Error()
	}
	p.Events = evs
	p.Drift = driftEvents(evs)
	s.render(w, http.StatusOK, releaseView(p))
}

func (s *server) releaseData(rel *audit.Release) releasePage {
	now := s.opts.Now()
	p := releasePage{
		page: page{Title: "Release " + rel.Namespace + "/" + rel.Name, Refresh: s.refresh(), Namespace: rel.Namespace},
		R:    rel, Ready: rel.Ready(), Age: age(now, rel.CreationTimestamp.Time),
	}
	st := &rel.Status
	for _, o := range st.Inventory {
		kind := strings.ToLower(o.Kind)
		if o.Group != "" {
			kind += "." + o.Group
		}
		obj := o.Kind + " " + o.Name
		if o.Namespace != "" {
			obj = o.Kind + " " + o.Namespace + "/" + o.Name
		}
		p.Inventory = append(p.Inventory, inventoryRow{Object: obj, Trace: kind + "/" + o.Name, Namespace: o.Namespace})
	}
	for i, h := range st.History {
		row := historyRow{HistoryEntry: h, N: i + 1, Age: age(now, h.AppliedAt.Time), Current: i == 0 && h.Digest == st.LastAppliedDigest}
		p.History = append(p.History, row)
		if h.RolledBack || h.RollbackOf != "" {
			p.Rollbacks = append(p.Rollbacks, row)
		}
	}
	return p
}

func driftEvents(evs []audit.Event) []audit.Event {
	var out []audit.Event
	for _, e := range evs {
		if e.Reason == v1alpha1.ReasonDriftCorrected {
			out = append(out, e)
		}
	}
	return out
}

type tracePage struct {
	page
	T     *audit.Trace
	Err   string
	Asked bool
}

// maxQuery bounds the trace form's fields.
const maxQuery = 512

func (s *server) trace(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	obj, ns := strings.TrimSpace(q.Get("object")), strings.TrimSpace(q.Get("namespace"))
	p := tracePage{page: page{Title: "Trace", Object: obj, Namespace: ns}}
	if obj == "" {
		s.render(w, http.StatusOK, traceView(p))
		return
	}
	p.Asked = true
	if len(obj) > maxQuery || len(ns) > maxQuery {
		p.Err = "the object or namespace is longer than 512 characters"
		s.render(w, http.StatusBadRequest, traceView(p))
		return
	}
	t, err := s.opts.Client.Trace(r.Context(), ns, obj)
	if err != nil {
		p.Err = err.Error()
		s.render(w, statusOf(err), traceView(p))
		return
	}
	p.T = t
	p.Title = "Trace " + t.Object.String()
	s.render(w, http.StatusOK, traceView(p))
}
