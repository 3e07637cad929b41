package reconciler

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	kauth "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
)

func (r *Reconciler) getSecret(ctx context.Context, rel *v1alpha1.Release, name, field string) (*corev1.Secret, error) {
	key := types.NamespacedName{Namespace: rel.Namespace, Name: name}
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, key, s); err != nil {
		return nil, &SecretError{Secret: key, Field: field, Err: fmt.Errorf("%s: create it in namespace %s", apiMessage(err), rel.Namespace)}
	}
	return s, nil
}

// remoteOptions builds the registry options from the Release's Secrets,
// and the key of its registry client (all but the host): the Secrets it
// came from, by namespace, name and resourceVersion. The controller's own
// environment and docker config never supply credentials.
func (r *Reconciler) remoteOptions(ctx context.Context, rel *v1alpha1.Release) (artifact.RemoteOptions, registryKey, error) {
	opts := artifact.RemoteOptions{
		PlainHTTPInsecure: rel.Spec.Insecure,
		Keychain:          authn.NewMultiKeychain(), // never the controller's own docker config
		UserAgent:         "airlock-controller",
	}
	id := registryKey{PlainHTTP: rel.Spec.Insecure}
	if r.Metrics != nil {
		opts.WrapTransport = r.Metrics.wrapTransport
	}
	if ref := rel.Spec.SecretRef; ref != nil {
		s, err := r.getSecret(ctx, rel, ref.Name, "spec.secretRef")
		if err != nil {
			return opts, id, err
		}
		kc, err := dockerConfigKeychain(ctx, s)
		if err != nil {
			return opts, id, &SecretError{Secret: client.ObjectKeyFromObject(s), Field: "spec.secretRef", Err: err}
		}
		opts.Keychain = kc
		id.Creds = secretIdentity(s)
	}
	if ref := rel.Spec.CertSecretRef; ref != nil {
		s, err := r.getSecret(ctx, rel, ref.Name, "spec.certSecretRef")
		if err != nil {
			return opts, id, err
		}
		id.Cert = secretIdentity(s)
		opts.CAData = s.Data["ca.crt"]
		if crt, key := s.Data["tls.crt"], s.Data["tls.key"]; len(crt) > 0 || len(key) > 0 {
			cert, err := tls.X509KeyPair(crt, key)
			if err != nil {
				return opts, id, &SecretError{Secret: client.ObjectKeyFromObject(s), Field: "spec.certSecretRef", Err: fmt.Errorf("tls.crt and tls.key: %v", err)}
			}
			opts.ClientCert = &cert
		}
		if len(opts.CAData) == 0 && opts.ClientCert == nil {
			return opts, id, &SecretError{Secret: client.ObjectKeyFromObject(s), Field: "spec.certSecretRef", Err: fmt.Errorf("holds neither ca.crt nor tls.crt and tls.key")}
		}
	}
	return opts, id, nil
}

// secretIdentity names one version of a Secret: namespace/name@resourceVersion.
func secretIdentity(s *corev1.Secret) string {
	return s.Namespace + "/" + s.Name + "@" + s.ResourceVersion
}

// dockerConfigKeychain reads a kubernetes.io/dockerconfigjson Secret (or a
// legacy .dockercfg one) with go-containerregistry's pull-secret keychain,
// which matches hosts as the kubelet does. A Secret of another type that
// holds one of those keys is read as that type.
func dockerConfigKeychain(ctx context.Context, s *corev1.Secret) (authn.Keychain, error) {
	typed := s.DeepCopy()
	switch {
	case len(s.Data[corev1.DockerConfigJsonKey]) > 0:
		typed.Type = corev1.SecretTypeDockerConfigJson
	case len(s.Data[corev1.DockerConfigKey]) > 0:
		typed.Type = corev1.SecretTypeDockercfg
	default:
		return nil, fmt.Errorf("holds no %s: create it with `kubectl create secret docker-registry`", corev1.DockerConfigJsonKey)
	}
	kc, err := kauth.NewFromPullSecrets(ctx, []corev1.Secret{*typed})
	if err != nil {
		return nil, fmt.Errorf("%s is not a docker config: %v", corev1.DockerConfigJsonKey, err)
	}
	return kc, nil
}
