package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

type receiptsOptions struct {
	remote remoteFlags
	output outputFlag
	keys   []string
}

func newReceiptsCmd() *cobra.Command {
	o := &receiptsOptions{}
	cmd := &cobra.Command{
		Use:   "receipts oci://HOST/REPO[:TAG|@sha256:…] --key cluster.pub [--key …]",
		Short: "List where and when an artifact was deployed, from its signed deployment receipts",
		Long: `List the deployment receipts stored next to the artifact's digest (a tag is
resolved first): the in-toto statements a controller started with
--receipt-key-secret signs with its cluster key and stores as cosign
attestations on the sha256-<hex>.att tag when a Release becomes Ready on the
digest, or rolls back to it.

Only receipts whose signature verifies with one of the --key cluster public
keys, and whose statement names this digest, are listed. The others are
skipped: their content is not shown, since anyone with push access could
have written it; how many were skipped, and why, is printed on standard
error (and under "skipped" with -o json). Other attestations (provenance,
SBOMs) are ignored.

Exit status: 0 listed (even none); 2 could not check (registry, keys).`,
		Example: `  airlock receipts oci://registry.example.com/team/app:v1 --key staging.pub --key production.pub
  airlock receipts oci://registry.example.com/team/app@sha256:4692… --key staging.pub -o json`,
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE:         func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&o.keys, "key", nil, "a cluster's public key (the .pub of its receipt key; required, repeatable)")
	o.remote.register(fs)
	o.output.register(fs, "json", "yaml")
	return cmd
}

func (o *receiptsOptions) run(cmd *cobra.Command, arg string) error {
	if err := o.output.validate(); err != nil {
		return &exitError{code: 2, err: err}
	}
	ref, err := artifact.ParseReference(arg)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if len(o.keys) == 0 {
		return &exitError{code: 2, err: fmt.Errorf("receipts %s: --key is required: pass the public key of each cluster whose receipts to trust", ref)}
	}
	keys, err := verify.LoadPolicy(o.keys, 0)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("receipts %s: %w", ref, err)}
	}
	c, err := o.remote.client(ref)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	rs, err := verify.ReadReceipts(cmd.Context(), c, ref, keys.Keys)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if ok, err := o.output.print(cmd.OutOrStdout(), rs); ok {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "Receipts for %s\n", rs.Ref)
	if len(rs.Receipts) == 0 {
		fmt.Fprintln(w, "No verified receipts.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLUSTER\tRELEASE\tEVENT\tHEALTH\tAPPLIED\tREADY\tREVISION\tSIGNED BY")
		for _, r := range rs.Receipts {
			p := r.Predicate
			fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Cluster.Name, p.Release.Namespace, p.Release.Name, p.Event, p.Health.Result,
				p.AppliedAt.UTC().Format(time.RFC3339), p.ReadyAt.UTC().Format(time.RFC3339), orNone(p.Artifact.Revision), r.Signer.Name)
		}
		tw.Flush()
	}
	for _, s := range rs.Skipped {
		fmt.Fprintf(cmd.ErrOrStderr(), "skipped receipt %s: %s\n", s.Digest, s.Reason)
	}
	return nil
}
