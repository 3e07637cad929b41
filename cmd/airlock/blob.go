package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/verify"
)

// newSignBlobCmd is `airlock sign blob`: `cosign sign-blob --key` offline.
func newSignBlobCmd() *cobra.Command {
	var key, output string
	cmd := &cobra.Command{
		Use:   "blob FILE --key NAME.key [--output-signature FILE.sig]",
		Short: "Sign a file with a cosign key, offline, as cosign sign-blob does",
		Long: `Sign the file's content (SHA-256) with a cosign private key and write the
base64 signature, as 'cosign sign-blob --key NAME.key --tlog-upload=false'
does: 'cosign verify-blob --key NAME.pub --signature FILE.sig
--insecure-ignore-tlog=true FILE' accepts it, and so does 'airlock verify
blob'. Nothing is uploaded anywhere.`,
		Example:      `  COSIGN_PASSWORD=… airlock sign blob airlock_linux_amd64 --key release.key --output-signature airlock_linux_amd64.sig`,
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return fmt.Errorf("sign blob %s: --key is required: create a key pair with `airlock keygen`", args[0])
			}
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("sign blob: %w", err)
			}
			defer f.Close()
			if _, err := os.Stat(key); err != nil {
				_, err = verify.LoadPrivateKeyFile(key, nil)
				return fmt.Errorf("sign blob %s: %w", args[0], err)
			}
			pw, err := readPassword(cmd.InOrStdin(), cmd.ErrOrStderr(), false)
			if err != nil {
				return fmt.Errorf("sign blob %s: %w", args[0], err)
			}
			k, err := verify.LoadPrivateKeyFile(key, pw)
			if err != nil {
				return fmt.Errorf("sign blob %s: %w", args[0], err)
			}
			sig, err := k.SignBlob(f)
			if err != nil {
				return fmt.Errorf("sign blob %s: %w", args[0], err)
			}
			if output == "" {
				_, err = fmt.Fprintln(cmd.OutOrStdout(), string(sig))
				return err
			}
			if err := os.WriteFile(output, sig, 0o644); err != nil {
				return fmt.Errorf("sign blob %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "signed %s with %s (fingerprint %s): %s\n", args[0], key, k.Public.Fingerprint, output)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "cosign private key file (required); password from $COSIGN_PASSWORD or a prompt")
	cmd.Flags().StringVar(&output, "output-signature", "", "write the base64 signature here instead of standard output")
	return cmd
}

// newVerifyBlobCmd is `airlock verify blob`: `cosign verify-blob --key` offline.
func newVerifyBlobCmd() *cobra.Command {
	var key, sigFile string
	cmd := &cobra.Command{
		Use:   "blob FILE --key NAME.pub --signature FILE.sig",
		Short: "Verify a file's signature made by 'airlock sign blob' or 'cosign sign-blob --key'",
		Long: `Verify that --signature (base64, as 'cosign sign-blob' writes it) is a
signature of the file's content by the --key public key. No transparency
log is consulted. Exit status: 0 verified; 1 not verified; 2 could not
check (unreadable file or key).`,
		Example:      `  airlock verify blob airlock_linux_amd64 --key airlock-release.pub --signature airlock_linux_amd64.sig`,
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" || sigFile == "" {
				return &exitError{code: 2, err: fmt.Errorf("verify blob %s: --key and --signature are required", args[0])}
			}
			pub, err := verify.LoadPublicKeyFile(key)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("verify blob %s: %w", args[0], err)}
			}
			sig, err := readBounded(sigFile, verify.MaxBlobSignatureSize)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("verify blob %s: signature: %w", args[0], err)}
			}
			f, err := os.Open(args[0])
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("verify blob: %w", err)}
			}
			defer f.Close()
			if err := pub.VerifyBlob(f, sig); err != nil {
				code := 2
				if errors.Is(err, verify.ErrUntrustedSigner) || errors.Is(err, verify.ErrMalformed) {
					code = 1
				}
				return &exitError{code: code, err: fmt.Errorf("verify blob %s with signature %s: %w", args[0], sigFile, err)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Verified %s: signed by %s (%s)\n", args[0], key, pub.Fingerprint)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "cosign public key file (required)")
	cmd.Flags().StringVar(&sigFile, "signature", "", "the base64 signature file (required)")
	return cmd
}

// readBounded reads a file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes", path, limit)
	}
	return b, nil
}
