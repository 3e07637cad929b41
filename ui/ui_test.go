package ui_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/audit"
	"airlock.dev/airlock/internal/envtestenv"
	"airlock.dev/airlock/ui"
)

func TestMain(m *testing.M) {
	code := m.Run()
	envtestenv.Stop()
	os.Exit(code)
}

const (
	token   = "0123456789abcdef-test-token"
	digest1 = "sha256:3f9a2b7c1e0d4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c"
	digest2 = "sha256:7c1e0d4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c3f9a2b"
	fp      = "9b1d3f5a7c9e0b2d4f6a8c0e1f3b5d7f9a1c3e5b7d9f0a2c4e6b8d0f1a3c5e7b"
	// xss is what a hostile artifact or API user could put in a Release's
	// revision, condition message or event.
	xss = `<script>alert(1)</script><img src=http://xss.invalid/x onerror=alert(2)>`
)

// fixture: a namespace with the Release web (Ready, signed, applied, with
// a rollback and a drift correction), the Release evil whose revision,
// message and event carry an XSS attempt, and web's ConfigMap applied by
// the airlock field manager.
type fixture struct {
	ns   string
	view *httptest.Server
	// paths are the requests the view served.
	mu    sync.Mutex
	paths []string
}

func (f *fixture) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := envtestenv.Start(t)
	ctx := context.Background()
	f := &fixture{ns: env.Namespace(t)}
	ns := f.ns
	now := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
	web := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: v1alpha1.ReleaseSpec{URL: "oci://registry.example/team/web", Ref: v1alpha1.ArtifactRef{Semver: ">=1.0.0"}}}
	evil := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "evil", Namespace: ns}, Spec: v1alpha1.ReleaseSpec{URL: "oci://registry.example/team/evil"}}
	for _, r := range []*v1alpha1.Release{web, evil} {
		if err := env.Client.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	web.Status = v1alpha1.ReleaseStatus{
		Conditions:        []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSucceeded, Message: "applied 1.1.0 (3f9a2b7c1e0d): 2 objects", LastTransitionTime: now}},
		LastAppliedDigest: digest1, ShortDigest: "3f9a2b7c1e0d", LastAppliedVersion: "1.1.0",
		LastAppliedRevision: "main@sha1:4f2a9c0d1e7b3a5c6d8e9f0a1b2c3d4e5f6a7b8c", LastAppliedSource: "https://git.example/team/web",
		Signers:          []v1alpha1.Signer{{Name: "ci", Fingerprint: fp}},
		Inventory:        []v1alpha1.ObjectRef{{Version: "v1", Kind: "ConfigMap", Namespace: ns, Name: "web-config"}, {Group: "apps", Version: "v1", Kind: "Deployment", Namespace: ns, Name: "web"}},
		DriftCorrections: 1,
		History: []v1alpha1.HistoryEntry{
			{Digest: digest1, AppliedAt: now, Revision: "main@sha1:4f2a9c0d", Version: "1.1.0", Signers: []string{"ci"}, Health: v1alpha1.HealthHealthy, RollbackOf: digest2},
			{Digest: digest2, AppliedAt: now, Revision: "main@sha1:77aa00bb", Version: "1.2.0", Signers: []string{"ci"}, Health: "Unhealthy", RolledBack: true},
			{Digest: digest1, AppliedAt: now, Revision: "main@sha1:4f2a9c0d", Version: "1.1.0", Signers: []string{"ci"}, Health: v1alpha1.HealthHealthy},
		},
	}
	evil.Status = v1alpha1.ReleaseStatus{
		Conditions:          []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonBuildFailed, Message: xss, LastTransitionTime: now}},
		LastAppliedDigest:   digest2,
		LastAppliedRevision: xss,
	}
	for _, r := range []*v1alpha1.Release{web, evil} {
		if err := env.Client.Status().Update(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	event := func(rel *v1alpha1.Release, name, reason, msg string) {
		e := &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: ns},
			InvolvedObject: corev1.ObjectReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.ReleaseKind, Namespace: ns, Name: rel.Name, UID: rel.UID},
			Reason:         reason, Message: msg, Type: "Normal", Count: 1, FirstTimestamp: now, LastTimestamp: now,
			Source: corev1.EventSource{Component: "airlock-controller"},
		}
		if err := env.Client.Create(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	event(web, "web.drift", v1alpha1.ReasonDriftCorrected, "corrected 1 objects changed outside airlock: ConfigMap "+ns+"/web-config")
	event(evil, "evil.xss", v1alpha1.ReasonBuildFailed, xss)

	// web's ConfigMap, applied as the controller applies: server-side, by
	// the airlock field manager, with the Release's labels.
	cm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "web-config", "namespace": ns, "labels": map[string]any{v1alpha1.NameLabel: "web", v1alpha1.NamespaceLabel: ns}},
		"data":     map[string]any{"k": "v"},
	}}
	if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(cm), client.FieldOwner(audit.FieldManager), client.ForceOwnership); err != nil {
		t.Fatal(err)
	}

	ac, err := audit.NewClient(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ui.New(ui.Options{Client: ac, Token: token, Refresh: -1})
	if err != nil {
		t.Fatal(err)
	}
	f.view = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.paths = append(f.paths, r.URL.Path)
		f.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(f.view.Close)
	return f
}

func get(t *testing.T, url string, hdr http.Header) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

var bearer = http.Header{"Authorization": {"Bearer " + token}}

// The pages over plain HTTP: the list, a Release's chain, and the trace of
// an applied object, with the security headers on each.
func TestPages(t *testing.T) {
	f := newFixture(t)
	code, hdr, body := get(t, f.view.URL+"/?namespace="+f.ns, bearer)
	if code != http.StatusOK {
		t.Fatalf("list: %d %s", code, body)
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'; script-src 'none'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Content-Type":            "text/html; charset=utf-8",
	} {
		if !strings.Contains(hdr.Get(k), want) {
			t.Errorf("header %s = %q, want it to contain %q", k, hdr.Get(k), want)
		}
	}
	for _, want := range []string{`href="/releases/` + f.ns + `/web"`, `href="/releases/` + f.ns + `/evil"`, "3f9a2b7c1e0d", "main@sha1:4f2a9c0d1e7b", ">ci<", "2 Releases"} {
		if !strings.Contains(body, want) {
			t.Errorf("the list lacks %q", want)
		}
	}

	code, _, body = get(t, f.view.URL+"/releases/"+f.ns+"/web", bearer)
	if code != http.StatusOK {
		t.Fatalf("release: %d %s", code, body)
	}
	for _, want := range []string{
		"https://git.example/team/web", fp, digest1, "version 1.1.0",
		`href="/trace?object=deployment.apps%2fweb&amp;namespace=` + f.ns + `"`,
		"rolled back", "rollback of <code>7c1e0d4f5a6b</code>",
		"1 objects corrected", "ConfigMap " + f.ns + "/web-config",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the Release page lacks %q", want)
		}
	}

	code, _, body = get(t, f.view.URL+"/trace?object=configmap/web-config&namespace="+f.ns, bearer)
	if code != http.StatusOK {
		t.Fatalf("trace: %d %s", code, body)
	}
	for _, want := range []string{"ConfigMap " + f.ns + "/web-config", `href="/releases/` + f.ns + `/web"`, digest1, "main@sha1:4f2a9c0d1e7b", "1 on this object"} {
		if !strings.Contains(body, want) {
			t.Errorf("the trace lacks %q", want)
		}
	}
	if code, _, body := get(t, f.view.URL+"/trace?object=configmap/nothing&namespace="+f.ns, bearer); code != http.StatusNotFound || !strings.Contains(body, "not found") {
		t.Errorf("trace of a missing object: %d, want 404 naming it", code)
	}
	if code, _, _ := get(t, f.view.URL+"/releases/"+f.ns+"/nothing", bearer); code != http.StatusNotFound {
		t.Errorf("a missing Release: %d, want 404", code)
	}
}

// Only the token, a session from /login, or a trusted proxy's header let a
// request in; a login link sends the browser nowhere but this server.
func TestAuthentication(t *testing.T) {
	f := newFixture(t)
	list := f.view.URL + "/?namespace=" + f.ns
	if code, _, body := get(t, list, nil); code != http.StatusUnauthorized || !strings.Contains(body, `name="token"`) || strings.Contains(body, "/releases/") {
		t.Errorf("no credentials: %d, want 401 and the sign-in form only", code)
	}
	if code, _, _ := get(t, list, http.Header{"Authorization": {"Bearer wrong-token-0123456789"}}); code != http.StatusUnauthorized {
		t.Errorf("a wrong token: %d, want 401", code)
	}
	if code, _, _ := get(t, list, http.Header{"X-Forwarded-User": {"alice"}}); code != http.StatusUnauthorized {
		t.Errorf("a proxy header no one configured: %d, want 401", code)
	}
	if code, _, _ := get(t, f.view.URL+"/login?token=wrong&next=/", nil); code != http.StatusUnauthorized {
		t.Errorf("login with a wrong token: %d, want 401", code)
	}
	code, hdr, _ := get(t, f.view.URL+"/login?token="+token+"&next="+url.QueryEscape("/releases/"+f.ns+"/web"), nil)
	if code != http.StatusSeeOther || hdr.Get("Location") != "/releases/"+f.ns+"/web" {
		t.Fatalf("login: %d to %q, want 303 to the Release", code, hdr.Get("Location"))
	}
	cookie := hdr.Get("Set-Cookie")
	if !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") {
		t.Errorf("session cookie %q, want HttpOnly and SameSite=Strict", cookie)
	}
	session := strings.SplitN(cookie, ";", 2)[0]
	if code, _, _ := get(t, list, http.Header{"Cookie": {session}}); code != http.StatusOK {
		t.Errorf("with the session cookie: %d, want 200", code)
	}
	forged := session[:len(session)-4] + "0000"
	if code, _, _ := get(t, list, http.Header{"Cookie": {forged}}); code != http.StatusUnauthorized {
		t.Errorf("with a forged session cookie: %d, want 401", code)
	}
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example"} {
		if _, hdr, _ := get(t, f.view.URL+"/login?token="+token+"&next="+url.QueryEscape(next), nil); hdr.Get("Location") != "/" {
			t.Errorf("login with next %q went to %q, want /", next, hdr.Get("Location"))
		}
	}

	// Behind a proxy, the configured header lets a request in.
	env := envtestenv.Start(t)
	ac, err := audit.NewClient(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ui.New(ui.Options{Client: ac, ProxyUserHeader: "X-Forwarded-User"})
	if err != nil {
		t.Fatal(err)
	}
	proxied := httptest.NewServer(h)
	defer proxied.Close()
	if code, _, _ := get(t, proxied.URL+"/?namespace="+f.ns, http.Header{"X-Forwarded-User": {"alice"}}); code != http.StatusOK {
		t.Errorf("behind the proxy, with its header: %d, want 200", code)
	}
	if code, _, _ := get(t, proxied.URL+"/?namespace="+f.ns, http.Header{"Authorization": {"Bearer " + token}}); code != http.StatusUnauthorized {
		t.Errorf("behind the proxy, without its header: %d, want 401", code)
	}
	if _, err := ui.New(ui.Options{Client: ac}); err == nil {
		t.Error("a view without a token or a proxy header was built")
	}
}

// chromium returns Debian's chromium, or skips when it is missing outside
// CI (CI=true fails instead: .ci/run installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: .ci/run installs it (apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed: `apt-get install -y chromium` to run the browser test (CI=true makes this a failure)")
	return ""
}

// recordingProxy answers every request with 403 and records its host: with
// chromium's --proxy-server pointing at it, every request to a host other
// than the loopback view lands here.
type recordingProxy struct {
	mu    sync.Mutex
	hosts []string
}

func (p *recordingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.hosts = append(p.hosts, r.Method+" "+r.Host)
	p.mu.Unlock()
	http.Error(w, "recorded and refused", http.StatusForbidden)
}

// reset forgets what the proxy saw and returns it.
func (p *recordingProxy) reset() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hosts
	p.hosts = nil
	return h
}

func (p *recordingProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.hosts...)
}

// dumpDOM loads url in a fresh headless chromium, with every non-loopback
// request sent to proxy, and returns the DOM after load.
func dumpDOM(t *testing.T, bin, proxy, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		// The browser's own services that a page's forms or a start wake.
		"--disable-features=AutofillServerCommunication,OptimizationHints,MediaRouter,Translate,NetworkTimeServiceQuerying",
		"--user-data-dir="+t.TempDir(), "--proxy-server="+proxy, "--dump-dom", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v\n%s", url, err, stderr.String())
	}
	return string(out)
}

// The view in headless Chromium: the list renders, one Release's chain is
// shown, an XSS attempt in a Release's message, revision and event is
// escaped text and not an element, and no request goes to any host but
// the view's.
func TestBrowser(t *testing.T) {
	bin := chromium(t)
	f := newFixture(t)
	proxy := &recordingProxy{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = ps.Serve(ln) }()
	t.Cleanup(func() { _ = ps.Close() })
	proxyURL := "http://" + ln.Addr().String()

	// The proxy sees what does not go to loopback: checked first, so that
	// an empty record below means something.
	dumpDOM(t, bin, proxyURL, "http://proxy-check.invalid/")
	if hosts := proxy.seen(); !slices.Contains(hosts, "GET proxy-check.invalid") {
		t.Fatalf("the recording proxy saw %v, want the request to proxy-check.invalid: chromium does not use it", hosts)
	}
	// Debian's chromium calls Google services of its own (with Debian's API
	// keys: accounts.google.com, www.google.com, …), whatever the page and
	// the flags: the hosts it calls for an empty page, and Google's service
	// domains, are the browser's, not the view's.
	proxy.reset()
	dumpDOM(t, bin, proxyURL, "about:blank")
	baseline := proxy.reset()
	own := func(h string) bool {
		host, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(h, "CONNECT "), "GET "), ":")
		return slices.Contains(baseline, h) || strings.HasSuffix(host, ".google.com") || strings.HasSuffix(host, ".googleapis.com")
	}

	login := func(next string) string {
		return f.view.URL + "/login?token=" + token + "&next=" + url.QueryEscape(next)
	}
	list := dumpDOM(t, bin, proxyURL, login("/?namespace="+f.ns))
	for _, want := range []string{`<table id="releases">`, `href="/releases/` + f.ns + `/web"`, "3f9a2b7c1e0d", "main@sha1:4f2a9c0d1e7b"} {
		if !strings.Contains(list, want) {
			t.Errorf("the list in the browser lacks %q:\n%s", want, list)
		}
	}
	chain := dumpDOM(t, bin, proxyURL, login("/releases/"+f.ns+"/web"))
	for _, want := range []string{`<ol class="chain" id="chain">`, `<code id="chain-revision">main@sha1:4f2a9c0d1e7b3a5c6d8e9f0a1b2c3d4e5f6a7b8c</code>`, fp, `<code id="chain-digest">` + digest1 + `</code>`, "Deployment " + f.ns + "/web"} {
		if !strings.Contains(chain, want) {
			t.Errorf("the Release's chain in the browser lacks %q:\n%s", want, chain)
		}
	}
	escaped := `&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=http://xss.invalid/x onerror=alert(2)&gt;`
	for name, dom := range map[string]string{"list": list, "evil": dumpDOM(t, bin, proxyURL, login("/releases/"+f.ns+"/evil"))} {
		if strings.Contains(dom, "<script>alert(1)</script>") || strings.Contains(dom, "<img src=") || strings.Contains(dom, "onerror=\"") {
			t.Errorf("%s page: the XSS attempt became elements of the DOM:\n%s", name, dom)
		}
		if !strings.Contains(dom, escaped) {
			t.Errorf("%s page: the XSS attempt is not shown as escaped text:\n%s", name, dom)
		}
	}
	for _, h := range proxy.seen() {
		if !own(h) {
			t.Errorf("the browser sent a request to a host other than the view: %s (its own, for an empty page: %v)", h, baseline)
		}
	}
	paths := strings.Join(f.seen(), " ")
	for _, want := range []string{"/login", "/style.css", "/releases/" + f.ns + "/web", "/releases/" + f.ns + "/evil"} {
		if !strings.Contains(paths, want) {
			t.Errorf("the view never served %s (it served %s)", want, paths)
		}
	}
}
