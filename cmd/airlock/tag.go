package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/artifact"
)

func newTagArtifactCmd() *cobra.Command {
	var remote remoteFlags
	var tags []string
	cmd := &cobra.Command{
		Use:   "artifact oci://HOST/REPO:TAG|@sha256:DIGEST --tag NEW [--tag NEW2]",
		Short: "Point more tags at an artifact's digest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := artifact.ParseReference(args[0])
			if err != nil {
				return err
			}
			resolved, err := artifact.Tag(cmd.Context(), ref, tags, remote.options())
			if err != nil {
				return err
			}
			for _, t := range tags {
				fmt.Fprintln(cmd.OutOrStdout(), resolved.WithTag(t).WithDigest(resolved.Digest))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "tag to add (repeatable)")
	remote.register(cmd.Flags())
	return cmd
}
