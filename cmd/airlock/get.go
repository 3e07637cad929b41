package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"

	"airlock.dev/airlock/api/v1alpha1"
)

func newGetReleasesCmd() *cobra.Command {
	var (
		kube   kubeFlags
		output outputFlag
		all    bool
	)
	cmd := &cobra.Command{
		Use:     "releases [NAME]",
		Aliases: []string{"release", "rel"},
		Short:   "List Releases with their Ready state, applied digest, revision and signers",
		Example: `  airlock get releases -A
  airlock get releases -n apps -o wide`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.validate(); err != nil {
				return err
			}
			c, err := kube.client()
			if err != nil {
				return err
			}
			var rels []v1alpha1.Release
			if len(args) == 1 {
				r, err := c.getRelease(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				rels = []v1alpha1.Release{*r}
			} else if rels, err = c.listReleases(cmd.Context(), all); err != nil {
				return err
			}
			switch output.format {
			case "json", "yaml":
				if len(args) == 1 {
					_, err := output.print(cmd.OutOrStdout(), rels[0])
					return err
				}
				list := v1alpha1.ReleaseList{Items: rels}
				list.APIVersion, list.Kind = v1alpha1.GroupVersion.String(), "ReleaseList"
				_, err := output.print(cmd.OutOrStdout(), list)
				return err
			}
			if len(rels) == 0 {
				if all {
					fmt.Fprintln(cmd.ErrOrStderr(), "No Releases found.")
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "No Releases found in namespace %s.\n", c.namespace)
				}
				return nil
			}
			return printReleases(cmd.OutOrStdout(), rels, all, output.format == "wide")
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list the Releases of every namespace")
	kube.register(cmd.Flags())
	output.register(cmd.Flags(), "wide", "json", "yaml")
	return cmd
}

// printReleases prints kubectl-like columns; wide adds the URL and when the
// applied digest was applied.
func printReleases(w io.Writer, rels []v1alpha1.Release, withNamespace, wide bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	cols := []string{"NAME", "READY", "DIGEST", "REVISION", "SIGNERS", "AGE"}
	if withNamespace {
		cols = append([]string{"NAMESPACE"}, cols...)
	}
	if wide {
		cols = append(cols, "URL", "LAST-APPLIED")
	}
	fmt.Fprintln(tw, strings.Join(append(cols, "MESSAGE"), "\t"))
	for i := range rels {
		r := &rels[i]
		ready, msg := "Unknown", ""
		if c := meta.FindStatusCondition(r.Status.Conditions, v1alpha1.ConditionReady); c != nil {
			ready, msg = string(c.Status), c.Message
		}
		if r.Spec.Suspend {
			ready += " (suspended)"
		}
		row := []string{r.Name, ready, noneIfEmpty(r.Status.ShortDigest), noneIfEmpty(shortRevision(r.Status.LastAppliedRevision)), noneIfEmpty(signerNames(r.Status.Signers)), age(r.CreationTimestamp)}
		if withNamespace {
			row = append([]string{r.Namespace}, row...)
		}
		if wide {
			last := "<none>"
			if len(r.Status.History) > 0 {
				last = age(r.Status.History[0].AppliedAt)
			}
			row = append(row, r.Spec.URL, last)
		}
		fmt.Fprintln(tw, strings.Join(append(row, oneLine(msg)), "\t"))
	}
	return tw.Flush()
}

// shortRevision shortens BRANCH@sha1:COMMIT to 12 hex digits of the commit.
func shortRevision(rev string) string {
	branch, commit, ok := strings.Cut(rev, "@sha1:")
	if !ok || len(commit) <= 12 {
		return rev
	}
	return branch + "@sha1:" + commit[:12]
}

func signerNames(s []v1alpha1.Signer) string {
	names := make([]string, 0, len(s))
	for _, x := range s {
		names = append(names, x.Name)
	}
	return strings.Join(names, ",")
}

func noneIfEmpty(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// oneLine keeps a table row on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
