package reconciler

import (
	"testing"

	"airlock.dev/airlock/artifact"
)

// TestRegistryClientsKeyedByCredentials: Releases share a registry client
// (its connections and auth cache) only when host, Secrets (by
// resourceVersion too), TLS material and plain HTTP all match.
func TestRegistryClientsKeyedByCredentials(t *testing.T) {
	rc := &RegistryClients{Max: 3}
	base := registryKey{Host: "registry.example.com", Creds: "team-a/pull@100"}
	get := func(k registryKey) *artifact.Client {
		t.Helper()
		c, err := rc.get(k, artifact.RemoteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := get(base)
	if get(base) != a {
		t.Fatal("the same key built a second client")
	}
	for name, k := range map[string]registryKey{
		"another tenant's Secret":  {Host: base.Host, Creds: "team-b/pull@100"},
		"a newer Secret version":   {Host: base.Host, Creds: "team-a/pull@101"},
		"anonymous":                {Host: base.Host},
		"another host":             {Host: "mirror.example.com", Creds: base.Creds},
		"plain HTTP":               {Host: base.Host, Creds: base.Creds, PlainHTTP: true},
		"a client certificate set": {Host: base.Host, Creds: base.Creds, Cert: "team-a/tls@7"},
	} {
		if get(k) == a {
			t.Errorf("%s shares the client of %v", name, base)
		}
	}
	if n := rc.Len(); n != rc.Max {
		t.Errorf("kept %d clients, want the bound %d", n, rc.Max)
	}
}
