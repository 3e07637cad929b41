package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

// defaultControllerNamespace is where `airlock install` runs the controller,
// and so where ClusterTrustPolicies' keys Secrets are.
const defaultControllerNamespace = "airlock-system"

var (
	secretsResource              = corev1.SchemeGroupVersion.WithResource("secrets")
	clusterTrustPoliciesResource = v1alpha1.GroupVersion.WithResource("clustertrustpolicies")
)

// trustRequirement is one set of keys that must have signed a Release's
// artifact, as the controller gathers them: a ClusterTrustPolicy that
// covers spec.url, or spec.verify.
type trustRequirement struct {
	source string // "spec.verify" or "ClusterTrustPolicy NAME"
	policy verify.Policy
}

// releaseTrust reads the trust the controller verifies r's artifacts
// against: every ClusterTrustPolicy that covers spec.url (its keys Secret
// in controllerNS), then spec.verify (its keys Secret in r's namespace).
// None means the Release is unsigned, which the controller accepts only
// with --allow-unsigned.
func releaseTrust(ctx context.Context, c *kubeClient, r *v1alpha1.Release, controllerNS string) ([]trustRequirement, error) {
	var reqs []trustRequirement
	list, err := c.dyn.Resource(clusterTrustPoliciesResource).List(ctx, metav1.ListOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("list ClusterTrustPolicies: %w: a rollback or diff verifies its digest under the same trust as the controller's; ask for read access to clustertrustpolicies.delivery.airlock.dev", err)
	}
	var names []string
	if list != nil {
		sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].GetName() < list.Items[j].GetName() })
		for _, u := range list.Items {
			var p v1alpha1.ClusterTrustPolicy
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p); err != nil {
				return nil, fmt.Errorf("ClusterTrustPolicy %s: %w", u.GetName(), err)
			}
			names = append(names, p.Name)
			covers := false
			for _, pattern := range p.Spec.Repositories {
				ok, err := verify.MatchRepository(pattern, r.Spec.URL)
				if err != nil {
					return nil, fmt.Errorf("ClusterTrustPolicy %s spec.repositories: %w", p.Name, err)
				}
				covers = covers || ok
			}
			if !covers {
				continue
			}
			keys, err := secretKeys(ctx, c, controllerNS, p.Spec.KeysSecretRef.Name, "ClusterTrustPolicy "+p.Name+" spec.keysSecretRef",
				"pass --controller-namespace if the controller does not run in "+controllerNS)
			if err != nil {
				return nil, err
			}
			reqs = append(reqs, trustRequirement{source: "ClusterTrustPolicy " + p.Name, policy: verify.Policy{Keys: keys, Threshold: p.Spec.Threshold}})
		}
	}
	if len(names) > 0 && len(reqs) == 0 {
		return nil, fmt.Errorf("no ClusterTrustPolicy covers %s (policies: %s): the controller refuses every digest of this Release; add its repository to a policy's spec.repositories", r.Spec.URL, strings.Join(names, ", "))
	}
	if v := r.Spec.Verify; v != nil {
		keys, err := secretKeys(ctx, c, r.Namespace, v.KeysSecretRef.Name, "spec.verify.keysSecretRef", "")
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, trustRequirement{source: "spec.verify", policy: verify.Policy{Keys: keys, Threshold: v.Threshold}})
	}
	return reqs, nil
}

// secretKeys reads the cosign public keys (*.pub, named without .pub) of
// Secret ns/name; field names what refers to it.
func secretKeys(ctx context.Context, c *kubeClient, ns, name, field, hint string) ([]verify.PublicKey, error) {
	u, err := c.dyn.Resource(secretsResource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		msg := fmt.Sprintf("read the trusted keys of %s, Secret %s/%s: %v: a rollback or diff verifies its digest under the same keys as the controller's", field, ns, name, err)
		if hint != "" {
			msg += "; " + hint
		}
		return nil, errors.New(msg)
	}
	var s corev1.Secret
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s); err != nil {
		return nil, fmt.Errorf("Secret %s/%s: %w", ns, name, err)
	}
	keys, err := verify.LoadPublicKeys(s.Data)
	switch {
	case errors.Is(err, verify.ErrNoPublicKeys):
		return nil, fmt.Errorf("Secret %s/%s (%s) holds no key ending in .pub: the controller refuses every digest; add the cosign public keys", ns, name, field)
	case err != nil:
		return nil, fmt.Errorf("Secret %s/%s (%s): %w", ns, name, field, err)
	}
	return keys, nil
}

// foundSigner is a key that signed a digest, and the trust requirement
// (spec.verify or a ClusterTrustPolicy) it met.
type foundSigner struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	For         string `json:"for"`
}

// signersText is "name (fingerprint), … for requirement; …".
func signersText(signers []foundSigner) string {
	var met []string
	for i := 0; i < len(signers); {
		j := i
		var names []string
		for ; j < len(signers) && signers[j].For == signers[i].For; j++ {
			names = append(names, signers[j].Name+" ("+shortFingerprint(signers[j].Fingerprint)+")")
		}
		met = append(met, strings.Join(names, ", ")+" for "+signers[i].For)
		i = j
	}
	return strings.Join(met, "; ")
}

// verifyCandidate checks ref against every requirement, through client
// rc, and returns the signers by requirement and the artifact manifest
// that verification read (to pull exactly it). The first requirement that
// is not met refuses the digest; action names what is refused ("roll back
// to").
func verifyCandidate(ctx context.Context, rc *artifact.Client, ref artifact.Reference, reqs []trustRequirement, action string) ([]foundSigner, []byte, error) {
	var found []foundSigner
	var manifest []byte
	for _, req := range reqs {
		res, err := verify.VerifyWith(ctx, rc, ref, req.policy)
		if err != nil {
			return nil, nil, &exitError{code: verifyExitCode(err), err: fmt.Errorf("refusing to %s %s: it does not verify under %s, which the controller would check too: %w", action, ref.Digest, req.source, err)}
		}
		if manifest == nil {
			manifest = res.Manifest
		}
		for _, s := range res.Signers {
			found = append(found, foundSigner{Name: s.Name, Fingerprint: s.Fingerprint, For: req.source})
		}
	}
	return found, manifest, nil
}

func shortFingerprint(f string) string {
	if len(f) > 12 {
		return f[:12]
	}
	return f
}
