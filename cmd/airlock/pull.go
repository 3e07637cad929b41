package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	"airlock.dev/airlock/artifact"
)

func newPullArtifactCmd() *cobra.Command {
	var (
		remote    remoteFlags
		output    outputFlag
		dir       string
		maxSize   string
		layerType string
	)
	cmd := &cobra.Command{
		Use:   "artifact oci://HOST/REPO:TAG|@sha256:DIGEST --output DIR",
		Short: "Pull an artifact by digest and extract it safely",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.validate(); err != nil {
				return err
			}
			ref, err := artifact.ParseReference(args[0])
			if err != nil {
				return err
			}
			if dir == "" {
				return fmt.Errorf("pull %s: --output DIR is required", ref)
			}
			limit, err := parseSize(maxSize)
			if err != nil {
				return err
			}
			res, err := artifact.Pull(cmd.Context(), ref, dir, artifact.PullOptions{
				Remote: remote.options(), MaxSize: limit, LayerMediaType: layerType, Progress: progressOut(cmd),
			})
			if err != nil {
				return err
			}
			if ok, err := output.print(cmd.OutOrStdout(), res); ok {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.URL)
			fmt.Fprintf(cmd.ErrOrStderr(), "extracted into %s (source %s, revision %s)\n", dir, orNone(res.Source), orNone(res.Revision))
			return nil
		},
	}
	fs := cmd.Flags()
	// -o is the directory here, as in `flux pull artifact`; --format picks json|yaml.
	fs.StringVarP(&dir, "output", "o", "", "directory to extract into; must be missing or empty (required)")
	fs.StringVar(&maxSize, "max-size", "100Mi", "largest extracted size to accept (for example 100Mi, 1Gi)")
	fs.StringVar(&layerType, "layer-media-type", "", "media type of the layer to extract (default: the Flux content layer, or the only tar+gzip layer)")
	remote.register(fs)
	fs.StringVar(&output.format, "format", "", "print the result as json|yaml")
	output.allowed = []string{"json", "yaml"}
	return cmd
}

func parseSize(s string) (int64, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil || q.Value() <= 0 {
		return 0, fmt.Errorf("--max-size %q: want a positive size such as 100Mi or 1Gi", s)
	}
	return q.Value(), nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
