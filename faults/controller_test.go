package faults

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// controller is one airlock-controller process, restarted whenever it exits
// until it is stopped (as a kubelet restarts a crashed pod), with its own
// path to the API server: a TCPProxy (refusals, resets, restarts) in front
// of a TLS-terminating HTTPProxy (5xx, and what the process sends: its
// applies and its Lease writes), in front of the real API server.
type controller struct {
	w    *world
	name string
	tcp  *TCPProxy
	api  *HTTPProxy
	args []string
	log  string

	mu       sync.Mutex
	cmd      *exec.Cmd
	starts   int
	stopping bool
	exited   chan struct{}
}

// instance names the running process: the controller's name and how many
// times it was started.
func (c *controller) instance() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%s#%d", c.name, c.starts)
}

func (w *world) startController(name string) *controller {
	w.t.Helper()
	s := w.s
	api, err := StartHTTP(HTTPOptions{Target: s.apiURL, Transport: s.apiTransport, TLS: s.proxyTLS})
	if err != nil {
		w.t.Fatal(err)
	}
	tcp, err := StartTCP(api.Addr)
	if err != nil {
		w.t.Fatal(err)
	}
	dir := filepath.Join(w.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["faults"] = &clientcmdapi.Cluster{Server: "https://" + tcp.Addr, CertificateAuthorityData: s.proxyCA}
	kc.AuthInfos["faults"] = &clientcmdapi.AuthInfo{} // the proxy authenticates upstream
	kc.Contexts["faults"] = &clientcmdapi.Context{Cluster: "faults", AuthInfo: "faults"}
	kc.CurrentContext = "faults"
	kcPath := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kcPath); err != nil {
		w.t.Fatal(err)
	}
	c := &controller{
		w: w, name: name, tcp: tcp, api: api, log: filepath.Join(dir, "controller.log"),
		exited: make(chan struct{}),
		args: []string{
			"--kubeconfig", kcPath,
			"--leader-elect", "--leader-election-namespace", w.ns,
			// The Lease the cases read: one per world's namespace already,
			// so the shard's selector need not name it.
			"--leader-election-id", leaseName,
			// The world's namespace is the controller's own, where it may
			// apply as itself, as the install's airlock-system is.
			"--controller-namespace", w.ns, "--no-cross-namespace-refs",
			"--metrics-addr", "0", "--health-addr", "0",
			"--backoff-base", "200ms",
			"--concurrent", "2",
			"--cache-dir", filepath.Join(dir, "cache"),
			"--watch-label-selector", worldLabel + "=" + w.ns,
		},
	}
	api.AddHook(Hook{Before: func(r *http.Request) {
		if name, ok := w.applied(r); ok {
			w.record(apiEvent{proc: c.instance(), object: name})
			w.onApply(c, name)
		}
	}, After: func(r *http.Request, resp *http.Response) {
		if isLeaseWrite(r) && resp.StatusCode < 300 {
			w.record(apiEvent{proc: c.instance(), lease: true})
		}
	}})
	go c.supervise()
	w.mu.Lock()
	w.ctrls = append(w.ctrls, c)
	w.mu.Unlock()
	w.t.Cleanup(func() {
		c.stop()
		tcp.Close()
		_ = api.Close()
	})
	return c
}

func (c *controller) supervise() {
	defer close(c.exited)
	for {
		logf, err := os.OpenFile(c.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			c.w.t.Errorf("controller %s: open log: %v", c.name, err)
			return
		}
		cmd := exec.Command(controllerBin, c.args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		c.mu.Lock()
		if c.stopping {
			c.mu.Unlock()
			logf.Close()
			return
		}
		err = cmd.Start()
		if err == nil {
			c.cmd = cmd
			c.starts++
			fmt.Fprintf(logf, "--- faults: %s#%d started, pid %d\n", c.name, c.starts, cmd.Process.Pid)
		}
		c.mu.Unlock()
		if err != nil {
			logf.Close()
			c.w.t.Errorf("controller %s: start %s: %v", c.name, controllerBin, err)
			return
		}
		err = cmd.Wait()
		fmt.Fprintf(logf, "--- faults: %s exited: %v\n", c.name, err)
		logf.Close()
		c.mu.Lock()
		stop := c.stopping
		c.mu.Unlock()
		if stop {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill sends SIGKILL to the running process; the supervisor starts a new one.
func (c *controller) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
	}
}

// crash sends SIGKILL to the running process and starts no other.
func (c *controller) crash() {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	c.kill()
}

// stop ends the process for good: SIGTERM, then SIGKILL after 10s.
func (c *controller) stop() {
	c.mu.Lock()
	c.stopping = true
	cmd := c.cmd
	c.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-c.exited:
		return
	case <-time.After(10 * time.Second):
	}
	c.kill()
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		c.w.t.Errorf("controller %s did not exit after SIGKILL", c.name)
	}
}

// logTail is the end of the controller's log, for failure messages.
func (c *controller) logTail() string {
	b, _ := os.ReadFile(c.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return fmt.Sprintf("--- log of controller %s (%s):\n%s", c.name, c.log, b)
}

// applied reports whether r is a server-side apply (not a dry run) of a
// ConfigMap in the world's namespace, and the ConfigMap's name.
func (w *world) applied(r *http.Request) (string, bool) {
	if r.Method != http.MethodPatch || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/apply-patch") {
		return "", false
	}
	if r.URL.Query().Get("dryRun") != "" {
		return "", false
	}
	prefix := "/api/v1/namespaces/" + w.ns + "/configmaps/"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		return "", false
	}
	return path.Base(r.URL.Path), true
}

func isLeaseWrite(r *http.Request) bool {
	return (r.Method == http.MethodPut || r.Method == http.MethodPost) &&
		strings.Contains(r.URL.Path, "/apis/coordination.k8s.io/") && strings.Contains(r.URL.Path, "/leases")
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
