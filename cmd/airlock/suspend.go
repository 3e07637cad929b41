package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newSuspendReleaseCmd builds `suspend release` (suspend true) and `resume
// release` (suspend false): a patch of spec.suspend.
func newSuspendReleaseCmd(suspend bool) *cobra.Command {
	var kube kubeFlags
	verb, short := "suspended", "Stop pulling, applying and pruning a Release (spec.suspend: true)"
	if !suspend {
		verb, short = "resumed", "Resume a suspended Release (spec.suspend: false); the controller reconciles it at once"
	}
	cmd := &cobra.Command{
		Use:   "release NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kube.client()
			if err != nil {
				return err
			}
			r, err := c.patchRelease(cmd.Context(), args[0], fmt.Appendf(nil, `{"spec":{"suspend":%t}}`, suspend))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s Release %s/%s\n", verb, r.Namespace, r.Name)
			return nil
		},
	}
	kube.register(cmd.Flags())
	return cmd
}
