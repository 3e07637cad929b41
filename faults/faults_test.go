package faults

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"airlock.dev/airlock/internal/envtestenv"
	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/internal/tlstest"
	"airlock.dev/airlock/verify"
)

var iterations = flag.Int("iterations", 2, "runs of each fault case")

// controllerBin is airlock-controller, built once per test binary.
var controllerBin string

func TestMain(m *testing.M) {
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.WriteTo(nopWriter{})))
	code := func() int {
		if os.Getenv("KUBEBUILDER_ASSETS") == "" {
			return m.Run() // every test skips with the fix
		}
		dir, err := os.MkdirTemp("", "airlock-faults-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		controllerBin = filepath.Join(dir, "airlock-controller")
		// The controller is built without -race: it is the system under
		// test, not the test.
		// airlock-chart-render beside it, where the controller looks for it.
		build := exec.Command("go", "build", "-o", dir, "airlock.dev/airlock/cmd/airlock-controller", "airlock.dev/airlock/cmd/airlock-chart-render")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "faults: build airlock-controller: %v\n%s", err, out)
			return 1
		}
		defer envtestenv.Stop()
		return m.Run()
	}()
	os.Exit(code)
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// suite is what the worlds share: the API server, the registry, the
// signing key, and the certificate the API server proxies serve.
type suite struct {
	env          *envtestenv.Env
	reg          *registry.Server
	key          *verify.PrivateKey
	pub          []byte
	apiURL       *url.URL
	apiTransport http.RoundTripper
	proxyTLS     *tls.Config
	proxyCA      []byte

	violations atomic.Int64
	runs       atomic.Int64
}

func (s *suite) count(violations int) {
	s.violations.Add(int64(violations))
	s.runs.Add(1)
}

func newSuite(t *testing.T) *suite {
	env := envtestenv.Start(t)
	s := &suite{env: env, reg: registrytest.New(t)}
	priv, pub, err := verify.GenerateKeyPair([]byte("faults"))
	if err != nil {
		t.Fatal(err)
	}
	if s.key, err = verify.LoadPrivateKey(priv, []byte("faults")); err != nil {
		t.Fatal(err)
	}
	s.pub = pub
	// The API server proxies terminate TLS with their own certificate and
	// reach the API server as its administrator: so they see every request
	// (which process applies, which one writes the Lease) and can answer
	// 5xx; the controllers' kubeconfig trusts the proxies' CA.
	host := env.Config.Host
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	if s.apiURL, err = url.Parse(host); err != nil {
		t.Fatal(err)
	}
	if s.apiTransport, err = rest.TransportFor(env.Config); err != nil {
		t.Fatal(err)
	}
	files := tlstest.New(t)
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	s.proxyTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.proxyCA = files.CAPEM
	return s
}

// faultCase is one fault, run in a fresh world per iteration.
type faultCase struct {
	name string
	run  func(w *world)
}

func TestFaults(t *testing.T) {
	start := time.Now()
	s := newSuite(t)
	cases := append(registryCases(), apiserverCases()...)
	var mu sync.Mutex
	var names []string
	t.Run("cases", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				for i := range *iterations {
					t.Run(fmt.Sprint(i+1), func(t *testing.T) {
						c.run(s.newWorld(t))
					})
				}
				mu.Lock()
				names = append(names, c.name)
				mu.Unlock()
			})
		}
	})
	t.Logf("cases: %s", strings.Join(names, " "))
	summary := fmt.Sprintf("faults: %d cases, %d iterations each, %d runs, %d violations, %s",
		len(names), *iterations, s.runs.Load(), s.violations.Load(), time.Since(start).Round(time.Second))
	t.Log(summary)
	fmt.Println(summary)
	if v := s.violations.Load(); v != 0 {
		t.Errorf("%d invariant violations", v)
	}
}
