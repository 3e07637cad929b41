package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/artifact"
)

func newBuildArtifactCmd() *cobra.Command {
	var path, out string
	var ignorePaths []string
	cmd := &cobra.Command{
		Use:   "artifact --path DIR -o out.tgz",
		Short: "Write the artifact's layer locally, byte-identical to what push uploads",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" || out == "" {
				return fmt.Errorf("build artifact: --path and --output are required")
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
	return cmd
}
