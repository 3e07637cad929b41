package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"airlock.dev/airlock/audit"
)

func newTraceCmd() *cobra.Command {
	var (
		kube   kubeFlags
		output outputFlag
	)
	cmd := &cobra.Command{
		Use:   "trace KIND/NAME",
		Short: "Trace an applied object to its Release, digest, signers, source commit and drift corrections",
		Example: `  airlock trace deployment/web -n apps
  airlock trace clusterrole/web-reader -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.validate(); err != nil {
				return err
			}
			c, ac, err := kube.auditClient()
			if err != nil {
				return err
			}
			t, err := ac.Trace(cmd.Context(), c.namespace, args[0])
			if err != nil {
				return err
			}
			if ok, err := output.print(cmd.OutOrStdout(), t); ok {
				return err
			}
			return printTrace(cmd.OutOrStdout(), t)
		},
	}
	kube.register(cmd.Flags())
	output.register(cmd.Flags(), "json", "yaml")
	return cmd
}

func printTrace(w io.Writer, t *audit.Trace) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	when := func(p *time.Time) string {
		if p == nil {
			return "<unknown>"
		}
		return p.Format(time.RFC3339) + " (" + age(metav1.NewTime(*p)) + " ago)"
	}
	fmt.Fprintf(tw, "Object:\t%s (%s)\n", t.Object, t.Object.APIVersion)
	rel := "Release " + t.Release.Namespace + "/" + t.Release.Name
	if !t.InInventory {
		rel += " (not in its inventory: kept or copied, no longer applied by it)"
	}
	fmt.Fprintf(tw, "Release:\t%s\n", rel)
	if t.Ready != nil {
		fmt.Fprintf(tw, "Ready:\t%s %s: %s\n", t.Ready.Status, t.Ready.Reason, oneLine(t.Ready.Message))
	}
	fmt.Fprintf(tw, "Digest:\t%s\n", noneIfEmpty(t.Digest))
	if t.Version != "" {
		fmt.Fprintf(tw, "Version:\t%s\n", t.Version)
	}
	fmt.Fprintf(tw, "Revision:\t%s\n", noneIfEmpty(t.Revision))
	fmt.Fprintf(tw, "Source:\t%s\n", noneIfEmpty(t.Source))
	signers := make([]string, 0, len(t.Signers))
	for _, s := range t.Signers {
		signers = append(signers, s.Name+" ("+s.Fingerprint+")")
	}
	fmt.Fprintf(tw, "Signers:\t%s\n", noneIfEmpty(strings.Join(signers, ", ")))
	if ch := t.Chain; ch != nil {
		ups := make([]string, 0, len(ch.UpstreamSigners))
		for _, s := range ch.UpstreamSigners {
			ups = append(ups, s.Name+" ("+s.Fingerprint+")")
		}
		fmt.Fprintf(tw, "Chain:\tsite %s, upstream %s (verified at the site: %t), from %s, imported %s\n",
			ch.SiteSigner.Name, noneIfEmpty(strings.Join(ups, ", ")), ch.UpstreamVerified, noneIfEmpty(ch.UpstreamRef), noneIfEmpty(ch.ImportedAt))
	}
	fmt.Fprintf(tw, "Digest applied:\t%s\n", when(t.DigestAppliedAt))
	fmt.Fprintf(tw, "Object last applied:\t%s\n", when(t.LastApplied))
	for _, r := range t.Receipts {
		fmt.Fprintf(tw, "Receipt:\t%s = %s\n", r.Path, r.Value)
	}
	fmt.Fprintf(tw, "Drift corrections:\t%d on this object in the events kept; %d objects in all on the Release\n", len(t.DriftCorrections), t.ReleaseDriftCorrections)
	for _, e := range t.DriftCorrections {
		fmt.Fprintf(tw, "  %s\t%s\n", e.Time.UTC().Format(time.RFC3339), oneLine(e.Message))
	}
	return tw.Flush()
}
