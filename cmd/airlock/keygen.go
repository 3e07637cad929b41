package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/verify"
)

func newKeygenCmd() *cobra.Command {
	var prefix string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen [--output-key-prefix NAME]",
		Short: "Generate a cosign key pair (NAME.key, NAME.pub) for signing artifacts",
		Long: `Generate an ECDSA P-256 key pair in the formats of 'cosign generate-key-pair':
NAME.key, encrypted with a password, and NAME.pub. The password comes from
$COSIGN_PASSWORD, else a prompt (asked twice) when standard input is a
terminal, else standard input. Keys made by the cosign CLI work in airlock,
and airlock's keys work in the cosign CLI.`,
		Example:      `  COSIGN_PASSWORD=… airlock keygen --output-key-prefix release`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			privPath, pubPath := prefix+".key", prefix+".pub"
			if !force {
				for _, p := range []string{privPath, pubPath} {
					if _, err := os.Stat(p); err == nil {
						return fmt.Errorf("keygen: %s already exists: pass --force to overwrite it, or choose another --output-key-prefix", p)
					} else if !errors.Is(err, fs.ErrNotExist) {
						return fmt.Errorf("keygen: %w", err)
					}
				}
			}
			pw, err := readPassword(cmd.InOrStdin(), cmd.ErrOrStderr(), true)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			privPEM, pubPEM, err := verify.GenerateKeyPair(pw)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			pub, err := verify.LoadPublicKey(pubPath, pubPEM)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			if err := writeKeyFile(privPath, privPEM, 0o600, force); err != nil {
				return err
			}
			if err := writeKeyFile(pubPath, pubPEM, 0o644, force); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "Private key written to", privPath)
			fmt.Fprintln(out, "Public key written to", pubPath)
			fmt.Fprintln(out, "Fingerprint:", pub.Fingerprint)
			return nil
		},
	}
	cmd.Flags().StringVar(&prefix, "output-key-prefix", "cosign", "write the key pair to NAME.key and NAME.pub")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing key files")
	return cmd
}

// writeKeyFile writes a key file with perm, refusing to replace an existing
// file unless force is set.
func writeKeyFile(path string, b []byte, perm os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !force {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, perm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("keygen: %s already exists: pass --force to overwrite it", path)
		}
		return fmt.Errorf("keygen: write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("keygen: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keygen: write %s: %w", path, err)
	}
	// O_CREATE's perm does not apply to a file that already existed (--force).
	return os.Chmod(path, perm)
}
