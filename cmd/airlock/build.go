package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/build"
)

func newBuildArtifactCmd() *cobra.Command {
	var path, out, buildPath string
	var ignorePaths, decryptKeys, components []string
	cmd := &cobra.Command{
		Use:   "artifact --path DIR -o out.tgz",
		Short: "Write the artifact's layer locally, byte-identical to what push uploads",
		Long: `Write the artifact's layer locally, byte-identical to what push uploads.

With --decrypt-key, first build the directory as the controller would with
spec.decryption, to check locally that every SOPS-encrypted file the build
reads decrypts with the site's key. The layer still holds the files as they
are (encrypted); nothing decrypted is written or printed, only the names of
the files decrypted and of the Secrets built, with their key counts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" || out == "" {
				return fmt.Errorf("build artifact: --path and --output are required")
			}
			if len(decryptKeys) > 0 {
				if err := checkDecrypt(cmd, path, buildPath, components, decryptKeys); err != nil {
					return err
				}
			}
			tmp, err := os.CreateTemp(filepath.Dir(out), ".airlock-build-*")
			if err != nil {
				return fmt.Errorf("build artifact: create %s: %w", out, err)
			}
			defer os.Remove(tmp.Name())
			res, err := artifact.Pack(cmd.Context(), path, tmp, artifact.PackOptions{IgnorePaths: ignorePaths})
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return fmt.Errorf("build artifact: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Digest)
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: %d files, %d bytes\n", out, res.Files, res.Size)
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "path", "", "directory or file to pack (required)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write the tar+gzip layer to (required)")
	cmd.Flags().StringSliceVar(&ignorePaths, "ignore-paths", nil, "gitignore patterns to leave out")
	cmd.Flags().StringArrayVar(&decryptKeys, "decrypt-key", nil, "age identity file (age-keygen) or armored PGP private key: build first and check that the SOPS-encrypted files decrypt (repeatable)")
	cmd.Flags().StringVar(&buildPath, "build-path", ".", "with --decrypt-key: the directory inside --path to build, as spec.path")
	cmd.Flags().StringArrayVar(&components, "component", nil, "with --decrypt-key: a component directory to layer on top, relative to --build-path, as spec.components (repeatable)")
	return cmd
}

// checkDecrypt builds dir/buildPath with the keys, as the controller would
// with spec.decryption, and reports what was decrypted and built; never a value.
func checkDecrypt(cmd *cobra.Command, dir, buildPath string, components, keyFiles []string) error {
	keys := &build.Decryption{Source: "the --decrypt-key files"}
	for _, f := range keyFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("build artifact: --decrypt-key: %w", err)
		}
		if err := keys.AddKey(f, b); err != nil {
			return fmt.Errorf("build artifact: --decrypt-key: %w", err)
		}
	}
	stderr := cmd.ErrOrStderr()
	var decrypted int
	keys.OnDecrypt = func(file string) {
		decrypted++
		fmt.Fprintf(stderr, "decrypted %s\n", file)
	}
	opts := build.Options{Decrypt: keys}
	if len(components) > 0 {
		opts.Site = &build.Site{Components: components}
	}
	objs, err := build.Build(cmd.Context(), dir, buildPath, "the local directory "+dir, opts)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if o.GetKind() != "Secret" || o.GetAPIVersion() != "v1" {
			continue
		}
		data, _ := o.Object["data"].(map[string]any)
		str, _ := o.Object["stringData"].(map[string]any)
		fmt.Fprintf(stderr, "built Secret %s: %d keys\n", qualified(o.GetNamespace(), o.GetName()), len(data)+len(str))
	}
	fmt.Fprintf(stderr, "built %d objects; decrypted %d files with %d keys\n", len(objs), decrypted, keys.Len())
	return nil
}

func qualified(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}
