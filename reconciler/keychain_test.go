package reconciler_test

import "github.com/google/go-containerregistry/pkg/authn"

// emptyKeychain keeps the tests away from the machine's docker config.
type emptyKeychain struct{}

func (emptyKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.Anonymous, nil
}
