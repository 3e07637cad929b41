package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func newEventsReleaseCmd() *cobra.Command {
	var kube kubeFlags
	cmd := &cobra.Command{
		Use:   "release NAME",
		Short: "List a Release's events, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ac, err := kube.auditClient()
			if err != nil {
				return err
			}
			r, err := c.getRelease(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			evs, err := ac.Events(cmd.Context(), r)
			if err != nil {
				return err
			}
			if len(evs) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "No events for Release %s/%s (the API server keeps them for an hour by default).\n", r.Namespace, r.Name)
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "LAST SEEN\tTYPE\tREASON\tCOUNT\tMESSAGE")
			for _, e := range evs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", age(metav1.NewTime(e.Time)), e.Type, e.Reason, e.Count, oneLine(e.Message))
			}
			return tw.Flush()
		},
	}
	kube.register(cmd.Flags())
	return cmd
}
