package reconciler

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kubeConfigWith is a kubeconfig for https://spoke.example:6443 whose
// cluster and user edit changes.
func kubeConfigWith(t *testing.T, cluster func(*clientcmdapi.Cluster), user func(*clientcmdapi.AuthInfo)) []byte {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	c := &clientcmdapi.Cluster{Server: "https://spoke.example:6443", CertificateAuthorityData: []byte("ca")}
	u := &clientcmdapi.AuthInfo{Token: "t0ken"}
	if cluster != nil {
		cluster(c)
	}
	if user != nil {
		user(u)
	}
	kc.Clusters["spoke"], kc.AuthInfos["hub"] = c, u
	kc.Contexts["spoke"] = &clientcmdapi.Context{Cluster: "spoke", AuthInfo: "hub"}
	kc.CurrentContext = "spoke"
	b, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseKubeConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster func(*clientcmdapi.Cluster)
		user    func(*clientcmdapi.AuthInfo)
		refused string // "" means accepted
	}{
		{name: "token"},
		{name: "client certificate", user: func(u *clientcmdapi.AuthInfo) {
			*u = clientcmdapi.AuthInfo{ClientCertificateData: []byte("crt"), ClientKeyData: []byte("key")}
		}},
		{name: "exec plugin", user: func(u *clientcmdapi.AuthInfo) {
			*u = clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{Command: "aws", APIVersion: "client.authentication.k8s.io/v1"}}
		}, refused: `exec plugin "aws", which the controller never runs`},
		{name: "auth-provider plugin", user: func(u *clientcmdapi.AuthInfo) {
			u.AuthProvider = &clientcmdapi.AuthProviderConfig{Name: "oidc"}
		}, refused: `auth-provider plugin "oidc"`},
		{name: "token file", user: func(u *clientcmdapi.AuthInfo) { u.TokenFile = "/var/run/secrets/token" }, refused: `token file "/var/run/secrets/token"`},
		{name: "certificate file", user: func(u *clientcmdapi.AuthInfo) {
			*u = clientcmdapi.AuthInfo{ClientCertificate: "/etc/crt", ClientKeyData: []byte("key")}
		}, refused: "client-certificate or client-key files"},
		{name: "basic auth", user: func(u *clientcmdapi.AuthInfo) { *u = clientcmdapi.AuthInfo{Username: "a", Password: "b"} }, refused: "username and password"},
		{name: "no credentials", user: func(u *clientcmdapi.AuthInfo) { *u = clientcmdapi.AuthInfo{} }, refused: "neither a token nor"},
		{name: "CA file", cluster: func(c *clientcmdapi.Cluster) { c.CertificateAuthority = "/etc/ca.crt" }, refused: `names the file "/etc/ca.crt"`},
		{name: "server without a scheme", cluster: func(c *clientcmdapi.Cluster) { c.Server = "spoke.example:6443" }},
		{name: "plain HTTP", cluster: func(c *clientcmdapi.Cluster) { c.Server = "http://spoke.example:8080" }, refused: "is not https"},
		{name: "TLS not verified", cluster: func(c *clientcmdapi.Cluster) { c.InsecureSkipTLSVerify = true }, refused: "insecure-skip-tls-verify"},
		{name: "proxy", cluster: func(c *clientcmdapi.Cluster) { c.ProxyURL = "http://proxy:3128" }, refused: "proxy-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseKubeConfig(kubeConfigWith(t, tc.cluster, tc.user))
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if cfg.Host != "https://spoke.example:6443" || string(cfg.CAData) != "ca" {
					t.Fatalf("config %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.refused) {
				t.Fatalf("got %v, want an error with %q", err, tc.refused)
			}
		})
	}
	for name, data := range map[string]string{"empty": "", "not YAML": "{{{", "no context": "apiVersion: v1\nkind: Config\n"} {
		if _, err := parseKubeConfig([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := parseKubeConfig(make([]byte, maxKubeConfigBytes+1)); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("oversized: %v", err)
	}
}

// TestRemoteClientsCache: one client per Secret version and identity,
// dropped when the Secret changes, and at most Max of them.
func TestRemoteClientsCache(t *testing.T) {
	rc := &RemoteClients{Max: 2}
	secret := func(name, rv string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, ResourceVersion: rv},
			Data: map[string][]byte{"value": kubeConfigWith(t, func(c *clientcmdapi.Cluster) { c.CertificateAuthorityData = nil }, nil)}}
	}
	get := func(s *corev1.Secret, sa string) *remoteClient {
		t.Helper()
		c, err := rc.get(s, "value", sa)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a1 := get(secret("a", "1"), "")
	if get(secret("a", "1"), "") != a1 {
		t.Fatal("the same Secret version made a second client")
	}
	if get(secret("a", "1"), "deployer") == a1 {
		t.Fatal("another ServiceAccount shares the kubeconfig user's client")
	}
	if rc.Len() != 2 {
		t.Fatalf("%d clients, want 2", rc.Len())
	}
	a2 := get(secret("a", "2"), "")
	if a2 == a1 || rc.Len() != 1 {
		t.Fatalf("a new version of the Secret: new client %v, %d clients kept (want 1: the old version's are dropped)", a2 != a1, rc.Len())
	}
	get(secret("b", "1"), "")
	get(secret("a", "2"), "") // a is now the most recently used
	get(secret("c", "1"), "") // over Max: b goes
	if rc.Len() != 2 {
		t.Fatalf("%d clients, want Max 2", rc.Len())
	}
	for k := range rc.byKey {
		if k.Secret.Name == "b" {
			t.Fatal("the least recently used client was kept over Max")
		}
	}
	rc.drop(a2.key.Secret)
	if rc.Len() != 1 {
		t.Fatalf("%d clients after the Secret was deleted, want 1", rc.Len())
	}
	if _, err := rc.get(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "d"}}, "value", ""); err == nil {
		t.Fatal("a Secret without the key made a client")
	}
}
