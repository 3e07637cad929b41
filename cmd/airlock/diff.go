package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/artifact"
)

func newDiffArtifactCmd() *cobra.Command {
	var (
		remote      remoteFlags
		output      outputFlag
		path        string
		ignorePaths []string
		maxSize     string
	)
	cmd := &cobra.Command{
		Use:   "artifact oci://HOST/REPO:TAG|@sha256:DIGEST --path DIR",
		Short: "Compare an artifact with local files: exit 0 when equal, 1 when not",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.validate(); err != nil {
				return err
			}
			ref, err := artifact.ParseReference(args[0])
			if err != nil {
				return err
			}
			if path == "" {
				return fmt.Errorf("diff %s: --path is required", ref)
			}
			limit, err := parseSize(maxSize)
			if err != nil {
				return err
			}
			res, err := artifact.Diff(cmd.Context(), ref, path, artifact.PackOptions{IgnorePaths: ignorePaths},
				artifact.PullOptions{Remote: remote.options(), MaxSize: limit})
			if err != nil {
				// 2 keeps "could not compare" apart from 1, "differs".
				return &exitError{code: 2, err: err}
			}
			if ok, err := output.print(cmd.OutOrStdout(), res); ok {
				if err != nil {
					return err
				}
			} else if res.Equal() {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s and %s hold the same files\n", ref, path)
			} else {
				fmt.Fprint(cmd.OutOrStdout(), res.String())
			}
			if !res.Equal() {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "path", "", "local directory or file to compare (required)")
	cmd.Flags().StringSliceVar(&ignorePaths, "ignore-paths", nil, "gitignore patterns to leave out of the local tree")
	cmd.Flags().StringVar(&maxSize, "max-size", "100Mi", "largest artifact content to read")
	remote.register(cmd.Flags())
	output.register(cmd.Flags(), "json", "yaml")
	return cmd
}
