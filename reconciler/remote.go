package reconciler

import (
	"container/list"
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"airlock.dev/airlock/api/v1alpha1"
)

// maxKubeConfigBytes bounds the kubeconfig read from a Secret (the API
// server bounds a Secret at 1 MiB; a kubeconfig is a few KiB).
const maxKubeConfigBytes = 256 << 10

// KubeConfigError is a kubeconfig of spec.kubeConfig that cannot be used:
// it does not parse, or it authenticates other than with a static token or
// a client certificate held in it.
type KubeConfigError struct {
	Secret types.NamespacedName
	Key    string
	Err    error
}

func (e *KubeConfigError) Error() string {
	return fmt.Sprintf("kubeconfig in Secret %s, key %s (spec.kubeConfig.secretRef): %v", e.Secret, e.Key, e.Err)
}

func (e *KubeConfigError) Unwrap() error { return e.Err }

// RemoteClients makes and keeps the uncached clients of remote clusters,
// one per version of a kubeconfig Secret and identity, so that the
// Releases delivered to one spoke share a connection. A new version of the
// Secret (a new resourceVersion) drops the clients of the older ones. The
// zero value is usable.
type RemoteClients struct {
	// Scheme decodes typed objects. nil means client-go's.
	Scheme *runtime.Scheme
	// Metrics counts writes. nil means none.
	Metrics *Metrics
	// QPS and Burst bound the requests of each remote client. 0 means 50 and 100.
	QPS   float32
	Burst int
	// Max bounds the clients kept; the least recently used one is dropped
	// first. 0 means 64.
	Max int

	mu    sync.Mutex
	byKey map[remoteKey]*list.Element // of *remoteClient
	lru   list.List                   // most recently used first
}

// remoteKey names one client: a version of a kubeconfig Secret's key,
// and the ServiceAccount it impersonates ("" for the kubeconfig's own user).
type remoteKey struct {
	Secret          types.NamespacedName
	ResourceVersion string
	Key             string
	ServiceAccount  string
}

// remoteClient is a spoke's client and its RESTMapper, which maps kinds as
// the spoke serves them.
type remoteClient struct {
	key    remoteKey
	client client.Client
	mapper meta.RESTMapper
	server string
}

func (rc *RemoteClients) max() int {
	if rc.Max > 0 {
		return rc.Max
	}
	return defaultMaxClients
}

// Len is the number of clients kept.
func (rc *RemoteClients) Len() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.lru.Len()
}

// get returns the client of s's kubeconfig under key, impersonating
// serviceAccount of s's namespace when it is not "".
func (rc *RemoteClients) get(s *corev1.Secret, key, serviceAccount string) (*remoteClient, error) {
	k := remoteKey{Secret: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}, ResourceVersion: s.ResourceVersion, Key: key, ServiceAccount: serviceAccount}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.byKey == nil {
		rc.byKey = map[remoteKey]*list.Element{}
	}
	if e, ok := rc.byKey[k]; ok {
		rc.lru.MoveToFront(e)
		return e.Value.(*remoteClient), nil
	}
	rc.dropLocked(k.Secret, k.ResourceVersion)
	cfg, err := parseKubeConfig(s.Data[key])
	if err != nil {
		return nil, &KubeConfigError{Secret: k.Secret, Key: key, Err: err}
	}
	cfg.QPS, cfg.Burst = rc.QPS, rc.Burst
	if cfg.QPS == 0 {
		cfg.QPS = 50
	}
	if cfg.Burst == 0 {
		cfg.Burst = 100
	}
	cfg.UserAgent = "airlock-controller"
	if serviceAccount != "" {
		cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + s.Namespace + ":" + serviceAccount}
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, &KubeConfigError{Secret: k.Secret, Key: key, Err: err}
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, &KubeConfigError{Secret: k.Secret, Key: key, Err: fmt.Errorf("discovery of %s: %w", cfg.Host, err)}
	}
	wc, err := client.NewWithWatch(cfg, client.Options{HTTPClient: httpClient, Scheme: rc.Scheme, Mapper: mapper})
	if err != nil {
		return nil, &KubeConfigError{Secret: k.Secret, Key: key, Err: err}
	}
	var c client.Client = wc
	if rc.Metrics != nil {
		c = countWrites(wc, rc.Metrics)
	}
	out := &remoteClient{key: k, client: c, mapper: mapper, server: cfg.Host}
	rc.byKey[k] = rc.lru.PushFront(out)
	for rc.lru.Len() > rc.max() {
		rc.removeLocked(rc.lru.Back())
	}
	return out, nil
}

// drop forgets every client of the Secret: it was deleted.
func (rc *RemoteClients) drop(secret types.NamespacedName) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.dropLocked(secret, "")
}

// dropLocked forgets the clients of the Secret's versions other than keep.
func (rc *RemoteClients) dropLocked(secret types.NamespacedName, keep string) {
	for e := rc.lru.Front(); e != nil; {
		next := e.Next()
		if k := e.Value.(*remoteClient).key; k.Secret == secret && k.ResourceVersion != keep {
			rc.removeLocked(e)
		}
		e = next
	}
}

func (rc *RemoteClients) removeLocked(e *list.Element) {
	delete(rc.byKey, e.Value.(*remoteClient).key)
	rc.lru.Remove(e)
}

// parseKubeConfig reads a kubeconfig into a rest.Config for its current
// context. Only what the kubeconfig itself holds is used: a static bearer
// token or a client certificate and key, and the server's CA. It refuses
// what would run a program or read a file on the controller's host (exec
// and auth-provider plugins, token and certificate files), basic auth, a
// proxy, plain HTTP and skipped TLS verification.
func parseKubeConfig(data []byte) (*rest.Config, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("is empty or missing")
	}
	if len(data) > maxKubeConfigBytes {
		return nil, fmt.Errorf("is %d bytes, more than the %d a kubeconfig may have", len(data), maxKubeConfigBytes)
	}
	kc, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("does not parse: %v", err)
	}
	ctxName := kc.CurrentContext
	if ctxName == "" && len(kc.Contexts) == 1 {
		for name := range kc.Contexts {
			ctxName = name
		}
	}
	kctx := kc.Contexts[ctxName]
	if kctx == nil {
		return nil, fmt.Errorf("has no current-context, or its context %q is missing: set current-context", ctxName)
	}
	cluster, user := kc.Clusters[kctx.Cluster], kc.AuthInfos[kctx.AuthInfo]
	if cluster == nil {
		return nil, fmt.Errorf("context %q names cluster %q, which it does not define", ctxName, kctx.Cluster)
	}
	if user == nil {
		return nil, fmt.Errorf("context %q names user %q, which it does not define", ctxName, kctx.AuthInfo)
	}
	server, err := checkCluster(kctx.Cluster, cluster)
	if err != nil {
		return nil, err
	}
	if err := checkUser(kctx.AuthInfo, user); err != nil {
		return nil, err
	}
	return &rest.Config{
		Host:        server,
		BearerToken: user.Token,
		TLSClientConfig: rest.TLSClientConfig{
			ServerName: cluster.TLSServerName,
			CAData:     cluster.CertificateAuthorityData,
			CertData:   user.ClientCertificateData,
			KeyData:    user.ClientKeyData,
		},
		Impersonate: rest.ImpersonationConfig{
			UserName: user.Impersonate, UID: user.ImpersonateUID, Groups: user.ImpersonateGroups, Extra: user.ImpersonateUserExtra,
		},
	}, nil
}

// usesOnly says what a kubeconfig may hold instead of a refused field.
const usesOnly = "the controller uses only a static token (token) or a client certificate (client-certificate-data and client-key-data) held in the kubeconfig: put one of those in the Secret, for example a ServiceAccount token of the remote cluster"

// checkCluster refuses what the controller does not use of a cluster entry,
// and returns its server as an https URL (a server without a scheme, which
// client-go accepts, is https).
func checkCluster(name string, c *clientcmdapi.Cluster) (string, error) {
	server := c.Server
	if server != "" && !strings.Contains(server, "://") {
		server = "https://" + server
	}
	u, err := url.Parse(server)
	switch {
	case c.Server == "":
		return "", fmt.Errorf("cluster %q has no server", name)
	case err != nil || u.Host == "":
		return "", fmt.Errorf("cluster %q: server %q is not a URL", name, c.Server)
	case u.Scheme != "https":
		return "", fmt.Errorf("cluster %q: server %s is not https: the controller talks to remote clusters over TLS only", name, c.Server)
	case c.InsecureSkipTLSVerify:
		return "", fmt.Errorf("cluster %q sets insecure-skip-tls-verify: put the server's CA in certificate-authority-data instead", name)
	case c.CertificateAuthority != "":
		return "", fmt.Errorf("cluster %q names the file %q (certificate-authority), which is not read on the controller's host: put the CA in certificate-authority-data instead", name, c.CertificateAuthority)
	case c.ProxyURL != "":
		return "", fmt.Errorf("cluster %q sets proxy-url, which the controller does not use for remote clusters: remove it", name)
	}
	return server, nil
}

func checkUser(name string, u *clientcmdapi.AuthInfo) error {
	switch {
	case u.Exec != nil:
		return fmt.Errorf("user %q authenticates with the exec plugin %q, which the controller never runs: %s", name, u.Exec.Command, usesOnly)
	case u.AuthProvider != nil:
		return fmt.Errorf("user %q authenticates with the auth-provider plugin %q, which the controller never runs: %s", name, u.AuthProvider.Name, usesOnly)
	case u.TokenFile != "":
		return fmt.Errorf("user %q names the token file %q, which is not read on the controller's host: %s", name, u.TokenFile, usesOnly)
	case u.ClientCertificate != "" || u.ClientKey != "":
		return fmt.Errorf("user %q names client-certificate or client-key files, which are not read on the controller's host: %s", name, usesOnly)
	case u.Username != "" || u.Password != "":
		return fmt.Errorf("user %q authenticates with a username and password: %s", name, usesOnly)
	case u.Token == "" && (len(u.ClientCertificateData) == 0 || len(u.ClientKeyData) == 0):
		return fmt.Errorf("user %q has neither a token nor both client-certificate-data and client-key-data: %s", name, usesOnly)
	}
	return nil
}

// kubeConfigKey is the Secret's key of spec.kubeConfig: secretRef.key, or
// "value", then "value.yaml", as Flux reads it.
func kubeConfigKey(ref v1alpha1.SecretKeyReference, s *corev1.Secret) string {
	if ref.Key != "" {
		return ref.Key
	}
	if _, ok := s.Data["value"]; !ok {
		if _, ok := s.Data["value.yaml"]; ok {
			return "value.yaml"
		}
	}
	return "value"
}

// remoteTarget is the client of the cluster spec.kubeConfig names: its
// Secret read as serviceAccount (when it is not "", so that a Release
// author uses only a kubeconfig the ServiceAccount may read), and, on the
// remote cluster, impersonating the same ServiceAccount.
func (r *Reconciler) remoteTarget(ctx context.Context, rel *v1alpha1.Release, serviceAccount string) (*remoteClient, error) {
	ref := rel.Spec.KubeConfig.SecretRef
	key := types.NamespacedName{Namespace: rel.Namespace, Name: ref.Name}
	if r.Remotes == nil {
		return nil, &SpecError{Field: "spec.kubeConfig", Err: fmt.Errorf("this controller does not deliver to remote clusters: remove spec.kubeConfig")}
	}
	var reader client.Reader = r.APIReader
	as := "the controller"
	if serviceAccount != "" {
		c, err := r.Clients.For(rel.Namespace, serviceAccount)
		if err != nil {
			return nil, err
		}
		reader, as = c, "ServiceAccount "+rel.Namespace+"/"+serviceAccount
	}
	s := &corev1.Secret{}
	if err := reader.Get(ctx, key, s); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			r.Remotes.drop(key)
			return nil, &SecretError{Secret: key, Field: "spec.kubeConfig.secretRef", Err: fmt.Errorf("not found: create it in namespace %s with the remote cluster's kubeconfig under the key value", rel.Namespace)}
		case apierrors.IsForbidden(err):
			return nil, &SecretError{Secret: key, Field: "spec.kubeConfig.secretRef", Err: fmt.Errorf("%s may not read it: %s: grant it get on this Secret with a Role and RoleBinding", as, apiMessage(err))}
		}
		return nil, &SecretError{Secret: key, Field: "spec.kubeConfig.secretRef", Err: fmt.Errorf("read as %s: %s", as, apiMessage(err))}
	}
	rc, err := r.Remotes.get(s, kubeConfigKey(ref, s), serviceAccount)
	if err != nil {
		return nil, err
	}
	who := "the user of the kubeconfig in Secret " + key.String() + " on " + rc.server
	if serviceAccount != "" {
		who = "ServiceAccount " + rel.Namespace + "/" + serviceAccount + " on " + rc.server + " (impersonated by the user of the kubeconfig in Secret " + key.String() + ")"
	}
	r.identities.Store(client.ObjectKeyFromObject(rel), who)
	return rc, nil
}
