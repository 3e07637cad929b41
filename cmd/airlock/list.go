package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/artifact"
)

func newListArtifactsCmd() *cobra.Command {
	var (
		remote remoteFlags
		output outputFlag
		opts   artifact.ListOptions
	)
	cmd := &cobra.Command{
		Use:   "artifacts oci://HOST/REPO",
		Short: "List a repository's tags with digest, source, revision and creation time",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.validate(); err != nil {
				return err
			}
			repo, err := artifact.ParseRepository(args[0])
			if err != nil {
				return err
			}
			opts.Remote = remote.options()
			entries, err := artifact.List(cmd.Context(), repo, opts)
			if err != nil {
				return err
			}
			if ok, err := output.print(cmd.OutOrStdout(), entries); ok {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TAG\tDIGEST\tSOURCE\tREVISION\tCREATED")
			for _, e := range entries {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Tag, e.Digest, e.Source, e.Revision, e.Created)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&opts.SemverRange, "filter-semver", "", "keep tags in this semver range, newest first (for example \">=1.0.0\")")
	cmd.Flags().StringVar(&opts.Regex, "filter-regex", "", "keep tags that match this regular expression")
	remote.register(cmd.Flags())
	output.register(cmd.Flags(), "json", "yaml")
	return cmd
}
