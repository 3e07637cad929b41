package ui

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"
	"golang.org/x/net/html"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/audit"
)

// Hostile values from the cluster or the request, for each place a page
// puts a value: element text, an attribute's value, and a link.
const (
	hostileText = `<script>alert(1)</script><img src=x onerror=alert(2)>`
	hostileAttr = `x" onmouseover="alert(3)" y="`
	hostileURL  = `javascript:alert(4)//?a=1&b=<2>#"`
)

// parsePage renders c and parses it as a browser would.
func parsePage(t *testing.T, c templ.Component) *html.Node {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(&buf)
	if err != nil {
		t.Fatalf("parse the rendered page: %v", err)
	}
	return doc
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func text(n *html.Node) string {
	var b strings.Builder
	walk(n, func(c *html.Node) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	})
	return b.String()
}

// noInjection fails when the page holds an element or an attribute that
// only a hostile value could have made.
func noInjection(t *testing.T, name string, doc *html.Node) {
	t.Helper()
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		if n.Data == "script" || n.Data == "img" {
			t.Errorf("%s: a hostile value became a <%s> element", name, n.Data)
		}
		for _, a := range n.Attr {
			if strings.HasPrefix(a.Key, "on") || a.Key == "y" || a.Key == "src" {
				t.Errorf("%s: a hostile value became the attribute %s=%q of <%s>", name, a.Key, a.Val, n.Data)
			}
			if a.Key == "href" && !strings.HasPrefix(a.Val, "/") {
				t.Errorf("%s: <a href=%q> leaves the view", name, a.Val)
			}
		}
	})
}

// byID is the element with id, or nil.
func byID(doc *html.Node, id string) *html.Node {
	var found *html.Node
	walk(doc, func(n *html.Node) {
		if v, ok := attr(n, "id"); ok && v == id && found == nil {
			found = n
		}
	})
	return found
}

// Hostile values come out as the same text, the same attribute value and
// links to this view that carry them as data, on every page that shows
// them; none becomes an element, an attribute or a script link.
func TestHostileValuesEscaped(t *testing.T) {
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	s := &server{opts: Options{Refresh: 30 * time.Second, Now: func() time.Time { return now }}}
	rel := benchRelease(1, now)
	rel.Status.Conditions[0].Message = hostileText
	rel.Status.LastAppliedRevision = hostileText
	rel.Status.LastAppliedDigest = hostileAttr
	rel.Status.History[0].Digest = hostileAttr
	rel.Status.Inventory = []v1alpha1.ObjectRef{{Version: "v1", Kind: "ConfigMap", Namespace: hostileURL, Name: hostileURL}}

	// Element text: the Ready message and the revision of the chain.
	p := s.releaseData(&rel)
	p.page.Object = hostileAttr
	doc := parsePage(t, releaseView(p))
	noInjection(t, "Release page", doc)
	for id, want := range map[string]string{"ready-message": hostileText, "chain-revision": hostileText, "chain-digest": hostileAttr} {
		if n := byID(doc, id); n == nil || text(n) != want {
			t.Errorf("Release page: #%s does not read %q as text", id, want)
		}
	}
	// Attribute values: the trace form's object field and the history's
	// digest title.
	var titles, values []string
	var hrefs []string
	walk(doc, func(n *html.Node) {
		if v, ok := attr(n, "title"); ok {
			titles = append(titles, v)
		}
		if v, ok := attr(n, "value"); ok && n.Data == "input" {
			values = append(values, v)
		}
		if v, ok := attr(n, "href"); ok && strings.HasPrefix(v, "/trace?") {
			hrefs = append(hrefs, v)
		}
	})
	if len(titles) == 0 || titles[0] != hostileAttr {
		t.Errorf("Release page: the history's first digest title is %q, want %q", titles, hostileAttr)
	}
	if len(values) == 0 || values[0] != hostileAttr {
		t.Errorf("Release page: the trace form's object field is %q, want %q", values, hostileAttr)
	}
	// A link: the applied object's trace carries its name and namespace as
	// query values, not as a scheme, a path, a fragment or more parameters.
	if len(hrefs) != 1 {
		t.Fatalf("Release page: trace links %q, want one", hrefs)
	}
	u, err := url.Parse(hrefs[0])
	if err != nil {
		t.Fatalf("Release page: trace link %q: %v", hrefs[0], err)
	}
	if q := u.Query(); u.Scheme != "" || u.Path != "/trace" || u.Fragment != "" || len(q) != 2 || q.Get("object") != "configmap/"+hostileURL || q.Get("namespace") != hostileURL {
		t.Errorf("Release page: trace link %q reads as scheme %q, path %q, query %v, fragment %q; want /trace with object=configmap/%s and namespace=%s", hrefs[0], u.Scheme, u.Path, u.Query(), u.Fragment, hostileURL, hostileURL)
	}

	// The list links a Release by namespace and name: each one path segment.
	evil := benchRelease(2, now)
	evil.Namespace, evil.Name = hostileURL, hostileAttr
	doc = parsePage(t, listView(s.listData(hostileText, []audit.Release{evil})))
	noInjection(t, "list", doc)
	var releaseLinks []string
	walk(doc, func(n *html.Node) {
		if v, ok := attr(n, "href"); ok && strings.HasPrefix(v, "/releases/") {
			releaseLinks = append(releaseLinks, v)
		}
	})
	if len(releaseLinks) != 1 {
		t.Fatalf("list: Release links %q, want one", releaseLinks)
	}
	u, err = url.Parse(releaseLinks[0])
	if err != nil {
		t.Fatalf("list: Release link %q: %v", releaseLinks[0], err)
	}
	segs := strings.Split(u.EscapedPath(), "/")
	if len(segs) != 4 || u.RawQuery != "" || u.Fragment != "" {
		t.Fatalf("list: Release link %q has path segments %q, query %q, fragment %q: want /releases/NAMESPACE/NAME and nothing else", releaseLinks[0], segs, u.RawQuery, u.Fragment)
	}
	if ns, _ := url.PathUnescape(segs[2]); ns != hostileURL {
		t.Errorf("list: Release link %q names namespace %q, want %q", releaseLinks[0], ns, hostileURL)
	}
	if name, _ := url.PathUnescape(segs[3]); name != hostileAttr {
		t.Errorf("list: Release link %q names %q, want %q", releaseLinks[0], name, hostileAttr)
	}

	// The trace page and the sign-in page, with hostile values where each
	// puts one.
	at := now
	tr := &audit.Trace{Object: audit.TracedObject{APIVersion: "v1", Kind: "ConfigMap", Namespace: "ns", Name: hostileText},
		Release: audit.ReleaseRef{Namespace: hostileURL, Name: hostileURL}, Revision: hostileText, DigestAppliedAt: &at,
		Ready: &metav1.Condition{Status: metav1.ConditionFalse, Message: hostileText}}
	doc = parsePage(t, traceView(tracePage{page: page{Title: "Trace " + hostileText, Object: hostileAttr, Namespace: hostileAttr}, T: tr, Asked: true, Err: hostileText}))
	noInjection(t, "trace", doc)
	if n := byID(doc, "trace-error"); n == nil || text(n) != hostileText {
		t.Errorf("trace: #trace-error does not read %q as text", hostileText)
	}
	doc = parsePage(t, loginView(loginPage{page: page{Title: "Sign in"}, Next: hostileAttr, Token: true, Failed: true}))
	noInjection(t, "sign-in", doc)
	walk(doc, func(n *html.Node) {
		if v, _ := attr(n, "name"); v == "next" {
			if got, _ := attr(n, "value"); got != hostileAttr {
				t.Errorf("sign-in: the next field is %q, want %q", got, hostileAttr)
			}
		}
	})
	doc = parsePage(t, errorView(errorPage{page: page{Title: hostileText}, Err: hostileText}))
	noInjection(t, "error", doc)
}
