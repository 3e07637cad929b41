package verify

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Policy is the trust material for verification: which keys are trusted and
// how many of them must have signed.
type Policy struct {
	// Keys are the trusted public keys. Keys with the same fingerprint count once.
	Keys []PublicKey
	// Threshold is how many distinct trusted keys must have signed the exact
	// digest. 0 means 1.
	Threshold int
	// Upstream, when set, requires a chain of trust: one of Keys (the site)
	// signed with an import record naming an upstream signer, and that
	// upstream key's own signature over the same digest verifies too.
	// nil means no chain is required.
	Upstream []PublicKey
	// UpstreamThreshold is how many distinct Upstream keys must have signed
	// the digest and be recorded by one site signature. 0 means 1.
	UpstreamThreshold int
}

// upstreamThreshold is UpstreamThreshold with its default applied.
func (p Policy) upstreamThreshold() int {
	if p.UpstreamThreshold == 0 {
		return 1
	}
	return p.UpstreamThreshold
}

// threshold is Threshold with its default applied.
func (p Policy) threshold() int {
	if p.Threshold == 0 {
		return 1
	}
	return p.Threshold
}

// distinctKeys returns the keys with duplicates (same fingerprint) removed,
// in order.
func (p Policy) distinctKeys() []PublicKey {
	seen := map[string]bool{}
	var out []PublicKey
	for _, k := range p.Keys {
		if seen[k.Fingerprint] {
			continue
		}
		seen[k.Fingerprint] = true
		out = append(out, k)
	}
	return out
}

// Validate reports a policy that can never pass or was built by hand without
// LoadPublicKey: no keys, a negative threshold, or a threshold over the
// number of distinct keys.
func (p Policy) Validate() error {
	if len(p.Keys) == 0 {
		return fmt.Errorf("%w: no trusted public keys: give at least one (--key FILE.pub, or a key in the policy's Secret)", ErrPolicy)
	}
	for i, k := range p.Keys {
		if k.verifier == nil || k.Fingerprint == "" {
			return fmt.Errorf("%w: key %d (%q) was not loaded: build keys with verify.LoadPublicKey", ErrPolicy, i, k.Name)
		}
	}
	for i, k := range p.Upstream {
		if k.verifier == nil || k.Fingerprint == "" {
			return fmt.Errorf("%w: upstream key %d (%q) was not loaded: build keys with verify.LoadPublicKey", ErrPolicy, i, k.Name)
		}
	}
	if p.Threshold < 0 {
		return fmt.Errorf("%w: threshold %d is negative: want 1 or more (0 means 1)", ErrPolicy, p.Threshold)
	}
	if n := len(p.distinctKeys()); p.threshold() > n {
		return fmt.Errorf("%w: threshold %d is more than the %d distinct trusted keys: lower the threshold or add keys", ErrPolicy, p.threshold(), n)
	}
	if len(p.Upstream) > 0 {
		up := Policy{Keys: p.Upstream, Threshold: p.UpstreamThreshold}
		if p.UpstreamThreshold < 0 {
			return fmt.Errorf("%w: upstream threshold %d is negative: want 1 or more (0 means 1)", ErrPolicy, p.UpstreamThreshold)
		}
		if n := len(up.distinctKeys()); up.threshold() > n {
			return fmt.Errorf("%w: upstream threshold %d is more than the %d distinct upstream keys: lower the threshold or add upstream keys", ErrPolicy, up.threshold(), n)
		}
	}
	return nil
}

// LoadPolicy reads the public key files and returns the policy that requires
// threshold of them (0 means 1), checked with Validate. Each key is named by
// its path as given, for messages. Every unreadable key is reported, joined.
func LoadPolicy(keyFiles []string, threshold int) (Policy, error) {
	p := Policy{Threshold: threshold}
	var errs []error
	for _, file := range keyFiles {
		k, err := LoadPublicKeyFile(file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		k.Name = file
		p.Keys = append(p.Keys, k)
	}
	if err := errors.Join(errs...); err != nil {
		return Policy{}, err
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// MatchRepository reports whether repository (HOST/PATH, oci:// optional)
// matches pattern: segments split on "/", "**" matches any number of them
// (none included), any other segment matches one as path.Match does ("*",
// "team-*"). A malformed pattern is an error.
func MatchRepository(pattern, repository string) (bool, error) {
	pat := strings.Split(strings.TrimPrefix(pattern, "oci://"), "/")
	repo := strings.Split(strings.TrimPrefix(repository, "oci://"), "/")
	for _, seg := range pat {
		if seg == "" {
			return false, fmt.Errorf("repository pattern %q has an empty path segment: want HOST/PATH such as registry.example.com/team-a/**", pattern)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return false, fmt.Errorf("repository pattern %q: segment %q: %v", pattern, seg, err)
		}
	}
	return matchSegments(pat, repo), nil
}

func matchSegments(pat, repo []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(repo); i++ {
				if matchSegments(pat[1:], repo[i:]) {
					return true
				}
			}
			return false
		}
		if len(repo) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], repo[0]); !ok {
			return false
		}
		pat, repo = pat[1:], repo[1:]
	}
	return len(repo) == 0
}
