package main

import (
	"github.com/spf13/cobra"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

// signer signs pushed artifacts with a cosign key loaded before the push,
// so a wrong password or a bad key fails before anything is uploaded.
type signer struct {
	key *verify.PrivateKey
}

func loadSigner(cmd *cobra.Command, keyPath string) (*signer, error) {
	if keyPath == "" {
		return nil, nil
	}
	pw, err := readPassword(cmd.InOrStdin(), cmd.ErrOrStderr(), false)
	if err != nil {
		return nil, err
	}
	key, err := verify.LoadPrivateKeyFile(keyPath, pw)
	if err != nil {
		return nil, err
	}
	return &signer{key: key}, nil
}

// sign signs ref's digest through c (the client that pushed it) and
// returns the signature's reference.
func (s *signer) sign(cmd *cobra.Command, c *artifact.Client, ref artifact.Reference) (string, error) {
	res, err := verify.SignWith(cmd.Context(), c, ref, s.key, nil)
	if err != nil {
		return "", err
	}
	return ref.WithTag(res.SignatureTag).String(), nil
}
