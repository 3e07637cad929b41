package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/api/v1alpha1"
)

func newHistoryReleaseCmd() *cobra.Command {
	var (
		kube   kubeFlags
		output outputFlag
	)
	cmd := &cobra.Command{
		Use:     "release NAME",
		Aliases: []string{"releases", "rel"},
		Short:   "List the digests a Release applied, newest first, with their health and rollbacks",
		Example: `  airlock history release app -n apps
  airlock history release app -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.validate(); err != nil {
				return err
			}
			c, err := kube.client()
			if err != nil {
				return err
			}
			r, err := c.getRelease(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			history := r.Status.History
			if history == nil {
				history = []v1alpha1.HistoryEntry{}
			}
			if ok, err := output.print(cmd.OutOrStdout(), history); ok {
				return err
			}
			if len(history) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "Release %s/%s has applied nothing yet.\n", r.Namespace, r.Name)
				return nil
			}
			return printHistory(cmd.OutOrStdout(), r)
		},
	}
	kube.register(cmd.Flags())
	output.register(cmd.Flags(), "json", "yaml")
	return cmd
}

// printHistory prints one row per history entry; REV is what --revision of
// `airlock rollback release` takes (1 is the newest).
func printHistory(w io.Writer, r *v1alpha1.Release) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "#\tDIGEST\tREVISION\tSIGNERS\tAPPLIED\tHEALTH\tNOTE")
	for i, h := range r.Status.History {
		var notes []string
		if h.Digest == r.Status.LastAppliedDigest && i == 0 {
			notes = append(notes, "applied")
		}
		if h.RolledBack {
			notes = append(notes, "rolled back")
		}
		if h.RollbackOf != "" {
			notes = append(notes, "rollback of "+shortHex(h.RollbackOf))
		}
		if h.Digest == r.Status.FailedDigest && h.RolledBack {
			notes = append(notes, "held (retry with airlock reconcile release "+r.Name+" --retry)")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s ago\t%s\t%s\n", i+1, h.Digest, noneIfEmpty(shortRevision(h.Revision)),
			noneIfEmpty(strings.Join(h.Signers, ",")), age(h.AppliedAt), noneIfEmpty(h.Health), strings.Join(notes, ", "))
	}
	return tw.Flush()
}

// shortHex is a digest's first 12 hex digits.
func shortHex(d string) string {
	_, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) < 12 {
		return d
	}
	return hex[:12]
}
