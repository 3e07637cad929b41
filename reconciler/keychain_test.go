package reconciler_test

import "github.com/google/go-containerregistry/pkg/authn"

// emptyKeychain keeps the tests away from the machine's docker config.
type emptyKeychain struct{}

func (emptyKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.Anonymous, nil
}

// staticKeychain holds one account for one registry host; every other host
// is anonymous.
type staticKeychain struct{ host, user, password string }

func (k staticKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() != k.host {
		return authn.Anonymous, nil
	}
	return &authn.Basic{Username: k.user, Password: k.password}, nil
}
