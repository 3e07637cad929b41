package envtestenv

import (
	"sync"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// A second API server, shared by the test binary's tests of remote
// clusters: the spoke that a Release on Start's API server (the hub)
// applies to through spec.kubeConfig.
var sharedSpoke struct {
	mu  sync.Mutex
	env *Env
}

// StartSpoke returns the test binary's spoke API server, starting it on
// first use. It is a separate kube-apiserver and etcd from Start's, with
// RBAC, and without controllers. Give each test its own namespace with
// Env.Namespace. It skips the test when KUBEBUILDER_ASSETS is unset, like
// Start. Stop stops it.
func StartSpoke(t testing.TB) *Env {
	t.Helper()
	Start(t) // skips without assets
	sharedSpoke.mu.Lock()
	defer sharedSpoke.mu.Unlock()
	if sharedSpoke.env != nil {
		return sharedSpoke.env
	}
	e, err := start("")
	if err != nil {
		t.Fatalf("start the spoke API server: %v", err)
	}
	sharedSpoke.env = e
	return e
}

func stopSpoke() {
	sharedSpoke.mu.Lock()
	defer sharedSpoke.mu.Unlock()
	if sharedSpoke.env != nil {
		_ = sharedSpoke.env.env.Stop()
		sharedSpoke.env = nil
	}
}

// KubeConfig is a kubeconfig that connects as cfg does (its server, CA,
// client certificate or token), in namespace by default.
func KubeConfig(cfg *rest.Config, namespace string) ([]byte, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "user", Namespace: namespace}
	kc.CurrentContext = "envtest"
	return clientcmd.Write(*kc)
}
