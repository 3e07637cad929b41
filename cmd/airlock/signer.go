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
	pw, err := verify.ReadPassword(cmd.InOrStdin(), cmd.ErrOrStderr(), false)
	if err != nil {
		return nil, err
	}
	key, err := verify.LoadPrivateKeyFile(keyPath, pw)
	if err != nil {
		return nil, err
	}
	return &signer{key: key}, nil
}

// sign signs ref's digest and returns the signature's reference.
func (s *signer) sign(cmd *cobra.Command, ref artifact.Reference, remote artifact.RemoteOptions) (string, error) {
	res, err := verify.Sign(cmd.Context(), ref, s.key, nil, remote)
	if err != nil {
		return "", err
	}
	return ref.WithTag(res.SignatureTag).String(), nil
}
