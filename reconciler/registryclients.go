package reconciler

import (
	"fmt"
	"sync"

	"airlock.dev/airlock/artifact"
)

// RegistryClients keeps the registry clients of recent reconciles, one per
// registry host, credentials, TLS material and plain-HTTP setting, so that
// reconciles reuse connections and tokens. A key names the Secrets it was
// built from by namespace, name and resourceVersion: Releases with different
// credentials never share a client (nor its auth cache), and a changed
// Secret gets a new client. Beyond Max clients, the least recently used one
// is dropped and its idle connections closed.
type RegistryClients struct {
	// Max bounds the clients kept. 0 means 64.
	Max int

	mu    sync.Mutex
	tick  uint64
	byKey map[string]*keptClient
}

type keptClient struct {
	client   *artifact.Client
	lastUsed uint64
}

// registryKey identifies the client of one Release's registry: host, plain
// HTTP, and the Secrets its credentials and TLS material came from.
type registryKey struct {
	Host      string
	PlainHTTP bool
	// Creds is "namespace/name@resourceVersion" of spec.secretRef; "" is anonymous.
	Creds string
	// Cert is "namespace/name@resourceVersion" of spec.certSecretRef; "" is none.
	Cert string
}

func (k registryKey) String() string {
	return fmt.Sprintf("host=%s plainHTTP=%t creds=%q cert=%q", k.Host, k.PlainHTTP, k.Creds, k.Cert)
}

func (rc *RegistryClients) max() int {
	if rc.Max > 0 {
		return rc.Max
	}
	return 64
}

// get returns the client kept for key, or builds one from opts. A nil
// RegistryClients builds a new client every time.
func (rc *RegistryClients) get(key registryKey, opts artifact.RemoteOptions) (*artifact.Client, error) {
	if rc == nil {
		return artifact.NewClient(opts)
	}
	k := key.String()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.tick++
	if e, ok := rc.byKey[k]; ok {
		e.lastUsed = rc.tick
		return e.client, nil
	}
	c, err := artifact.NewClient(opts)
	if err != nil {
		return nil, err
	}
	if rc.byKey == nil {
		rc.byKey = map[string]*keptClient{}
	}
	rc.byKey[k] = &keptClient{client: c, lastUsed: rc.tick}
	for len(rc.byKey) > rc.max() {
		var victim string
		var oldest uint64
		for k, e := range rc.byKey {
			if victim == "" || e.lastUsed < oldest {
				victim, oldest = k, e.lastUsed
			}
		}
		// A reconcile still using it keeps working: only idle connections close.
		rc.byKey[victim].client.Close()
		delete(rc.byKey, victim)
	}
	return c, nil
}

// Len is the number of clients kept.
func (rc *RegistryClients) Len() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.byKey)
}
