package reconciler

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/verify"
)

// requirement is one set of keys that must have signed: the Release's
// spec.verify, or a ClusterTrustPolicy that covers its repository.
type requirement struct {
	// source names it in messages: "spec.verify" or "ClusterTrustPolicy NAME".
	source string
	policy verify.Policy
}

// trust is everything a Release's artifact must satisfy. No requirements
// means unsigned, which only --allow-unsigned accepts.
type trust struct {
	requirements []requirement
	// policies are the names of the ClusterTrustPolicies among requirements.
	policies []string
}

// fingerprint changes whenever the keys, thresholds or policies change, so
// that an unchanged digest is verified again under the new trust.
func (t *trust) fingerprint() string {
	if len(t.requirements) == 0 {
		return "unsigned"
	}
	h := sha256.New()
	for _, req := range t.requirements {
		fmt.Fprintf(h, "%s\nthreshold=%d\n", req.source, req.policy.Threshold)
		for _, k := range req.policy.Keys {
			fmt.Fprintf(h, "%s %s\n", k.Name, k.Fingerprint)
		}
		if len(req.policy.Upstream) > 0 {
			fmt.Fprintf(h, "upstream threshold=%d\n", req.policy.UpstreamThreshold)
			for _, k := range req.policy.Upstream {
				fmt.Fprintf(h, "upstream %s %s\n", k.Name, k.Fingerprint)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// trustFor gathers the requirements of rel: every ClusterTrustPolicy that
// covers spec.url, and spec.verify. A Release adds to the policies and
// cannot remove any.
func (r *Reconciler) trustFor(ctx context.Context, rel *v1alpha1.Release) (*trust, error) {
	t := &trust{}
	var list v1alpha1.ClusterTrustPolicyList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list ClusterTrustPolicies: %w", err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	var names []string
	for i := range list.Items {
		p := &list.Items[i]
		names = append(names, p.Name)
		matched, err := policyCovers(p, rel.Spec.URL)
		if err != nil {
			return nil, err
		}
		if !matched {
			continue
		}
		if r.ControllerNamespace == "" {
			return nil, &TrustPolicyError{Policy: p.Name, Err: errors.New("its keys Secret is in the controller's namespace, which this controller does not know: run it with --controller-namespace (the install sets POD_NAMESPACE)")}
		}
		key := types.NamespacedName{Namespace: r.ControllerNamespace, Name: p.Spec.KeysSecretRef.Name}
		keys, err := r.loadKeys(ctx, key, "ClusterTrustPolicy "+p.Name+" spec.keysSecretRef")
		if err != nil {
			return nil, err
		}
		t.requirements = append(t.requirements, requirement{source: "ClusterTrustPolicy " + p.Name, policy: verify.Policy{Keys: keys, Threshold: p.Spec.Threshold}})
		t.policies = append(t.policies, p.Name)
	}
	if len(names) > 0 && len(t.policies) == 0 {
		return nil, &NoTrustPolicyError{Release: ctrl.ObjectKeyFromObject(rel), URL: rel.Spec.URL, Policies: names}
	}
	if v := rel.Spec.Verify; v != nil {
		key := types.NamespacedName{Namespace: rel.Namespace, Name: v.KeysSecretRef.Name}
		keys, err := r.loadKeys(ctx, key, "spec.verify.keysSecretRef")
		if err != nil {
			return nil, err
		}
		policy := verify.Policy{Keys: keys, Threshold: v.Threshold}
		if up := v.Upstream; up != nil {
			key := types.NamespacedName{Namespace: rel.Namespace, Name: up.KeysSecretRef.Name}
			if policy.Upstream, err = r.loadKeys(ctx, key, "spec.verify.upstream.keysSecretRef"); err != nil {
				return nil, err
			}
			policy.UpstreamThreshold = up.Threshold
		}
		t.requirements = append(t.requirements, requirement{source: "spec.verify", policy: policy})
	}
	if len(t.requirements) == 0 && !r.AllowUnsignedInsecure {
		return nil, &VerificationRequiredError{Release: ctrl.ObjectKeyFromObject(rel)}
	}
	return t, nil
}

func policyCovers(p *v1alpha1.ClusterTrustPolicy, url string) (bool, error) {
	for _, pattern := range p.Spec.Repositories {
		ok, err := verify.MatchRepository(pattern, url)
		if err != nil {
			return false, &TrustPolicyError{Policy: p.Name, Err: fmt.Errorf("spec.repositories: %w", err)}
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// keyCache keeps the parsed keys of each keys Secret for one
// resourceVersion: a reconcile reads the Secret, and parses its keys only
// when it changed. Secrets with the same data share one parse: a site
// gives its signing key to every namespace, and each parsed key (its
// verifier's curve point) takes about 1.5 KiB.
type keyCache struct {
	mu      sync.Mutex
	secrets map[types.NamespacedName]cachedKeys
	// byData holds the keys parsed from each Secret data (by dataDigest)
	// that some entry of secrets uses.
	byData map[[sha256.Size]byte]*sharedKeys
	// parses counts the Secrets parsed, for tests.
	parses int
}

type cachedKeys struct {
	resourceVersion string
	keys            []verify.PublicKey
	err             error
	// data is the dataDigest of the Secret's data, when its keys are in byData.
	data   [sha256.Size]byte
	shared bool
}

type sharedKeys struct {
	keys  []verify.PublicKey
	users int
}

// dataDigest is the SHA-256 of a Secret's data: each key and value,
// length-prefixed, in key order.
func dataDigest(data map[string][]byte) [sha256.Size]byte {
	names := make([]string, 0, len(data))
	for k := range data {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	var n [8]byte
	for _, k := range names {
		for _, b := range [][]byte{[]byte(k), data[k]} {
			binary.BigEndian.PutUint64(n[:], uint64(len(b)))
			h.Write(n[:])
			h.Write(b)
		}
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// loadKeys returns the *.pub keys of Secret key, named without .pub. field
// names what refers to the Secret, for messages.
func (r *Reconciler) loadKeys(ctx context.Context, key types.NamespacedName, field string) ([]verify.PublicKey, error) {
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, key, s); err != nil {
		return nil, &SecretError{Secret: key, Field: field, Err: fmt.Errorf("%s: create it in namespace %s", apiMessage(err), key.Namespace)}
	}
	c := &r.keys
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.secrets[key]
	if ok && old.resourceVersion == s.ResourceVersion && s.ResourceVersion != "" {
		return old.keys, old.err
	}
	if c.secrets == nil {
		c.secrets = map[types.NamespacedName]cachedKeys{}
		c.byData = map[[sha256.Size]byte]*sharedKeys{}
	}
	e := cachedKeys{resourceVersion: s.ResourceVersion, data: dataDigest(s.Data)}
	if sh, ok := c.byData[e.data]; ok {
		sh.users++
		e.keys, e.shared = sh.keys, true
	} else {
		e.keys, e.err = parseKeys(s, field)
		c.parses++
		if e.err == nil { // errors name the Secret: never shared
			c.byData[e.data] = &sharedKeys{keys: e.keys, users: 1}
			e.shared = true
		}
	}
	if ok && old.shared {
		if sh := c.byData[old.data]; sh != nil {
			if sh.users--; sh.users == 0 {
				delete(c.byData, old.data)
			}
		}
	}
	c.secrets[key] = e
	return e.keys, e.err
}

// KeyParses is how many times a keys Secret was parsed (each parse follows a
// change of its resourceVersion).
func (r *Reconciler) KeyParses() int {
	r.keys.mu.Lock()
	defer r.keys.mu.Unlock()
	return r.keys.parses
}

func parseKeys(s *corev1.Secret, field string) ([]verify.PublicKey, error) {
	keys, err := verify.LoadPublicKeys(s.Data)
	key := ctrl.ObjectKeyFromObject(s)
	switch {
	case errors.Is(err, verify.ErrNoPublicKeys):
		return nil, &SecretError{Secret: key, Field: field,
			Err: fmt.Errorf("%w: add the cosign public keys, for example with `kubectl create secret generic %s --from-file=release.pub`", err, s.Name)}
	case err != nil:
		return nil, &SecretError{Secret: key, Field: field, Err: fmt.Errorf("%w: replace the key with the .pub file of `airlock keygen` or `cosign generate-key-pair`", err)}
	}
	return keys, nil
}
