package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/api/v1alpha1"
)

func newRollbackReleaseCmd() *cobra.Command {
	var (
		kube     kubeFlags
		remote   remoteFlags
		to       string
		revision string
		steps    int
		yes      bool
		unpin    bool
		ctrlNS   string
	)
	cmd := &cobra.Command{
		Use:   "release NAME [--to DIGEST | --revision REV | --steps N] [--yes] | NAME --unpin",
		Short: "Pin a Release to a digest it applied before, after showing what will change",
		Long: `Pin the Release to an earlier entry of its status.history: spec.ref becomes
that digest, and the ref it replaces is kept in the annotation
` + v1alpha1.PinnedByRollbackAnnotation + `, so that --unpin restores it.
The controller verifies the digest again under the current trust policy, as
any digest, before it applies it.

Before changing anything the command verifies the digest's signatures under
the Release's own trust, as the controller does (the keys Secret of
spec.verify and every ClusterTrustPolicy covering spec.url, whose keys are
in --controller-namespace), and refuses a digest that does not verify. Then
it pulls the digest by digest, builds it
and server-side dry-run applies its objects, and lists the objects that
will be added, changed and removed (pruned); then it asks for confirmation
unless --yes. Without --to, --revision or --steps it goes one digest back.`,
		Example: `  airlock rollback release app -n apps
  airlock rollback release app --to sha256:3f9a…
  airlock rollback release app --revision v1.2.0 --yes
  airlock rollback release app --unpin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kube.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			r, err := c.getRelease(ctx, args[0])
			if err != nil {
				return err
			}
			if unpin {
				return unpinRelease(ctx, cmd.OutOrStdout(), c, r)
			}
			target, err := rollbackTarget(r, to, revision, steps)
			if err != nil {
				return err
			}
			p, err := previewDigest(ctx, c, r, "", target.Digest, remote.options(), ctrlNS, "roll back to")
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			printPreview(out, r, target, p)
			if !yes {
				fmt.Fprintf(out, "Pin Release %s/%s to %s? [y/N] ", r.Namespace, r.Name, shortHex(target.Digest))
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
					return &exitError{code: 1, err: errors.New("rollback not confirmed: nothing changed")}
				}
			}
			return pinRelease(ctx, out, c, r, target)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&to, "to", "", "the digest to roll back to (sha256:…), from `airlock history release NAME`")
	fs.StringVar(&revision, "revision", "", "the source revision to roll back to (the history's REVISION; the newest entry with it)")
	fs.IntVar(&steps, "steps", 0, "how many distinct digests back from the applied one (default 1)")
	fs.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	fs.BoolVar(&unpin, "unpin", false, "restore the spec.ref that a rollback replaced")
	fs.StringVar(&ctrlNS, "controller-namespace", defaultControllerNamespace, "the namespace the controller runs in, where the ClusterTrustPolicies' keys Secrets are")
	kube.register(fs)
	remote.register(fs)
	return cmd
}

// rollbackTarget picks the history entry that --to, --revision or --steps
// names (one digest back when none is given).
func rollbackTarget(r *v1alpha1.Release, to, revision string, steps int) (v1alpha1.HistoryEntry, error) {
	key := r.Namespace + "/" + r.Name
	set := 0
	for _, given := range []bool{to != "", revision != "", steps != 0} {
		if given {
			set++
		}
	}
	if set > 1 {
		return v1alpha1.HistoryEntry{}, errors.New("give one of --to, --revision and --steps")
	}
	if steps < 0 {
		return v1alpha1.HistoryEntry{}, fmt.Errorf("--steps %d: want a positive number", steps)
	}
	if set == 0 {
		steps = 1
	}
	applied := r.Status.LastAppliedDigest
	seen := map[string]bool{applied: true}
	n := 0
	for _, h := range r.Status.History {
		switch {
		case to != "" && h.Digest == to, revision != "" && h.Revision == revision:
			if h.Digest == applied {
				return h, fmt.Errorf("Release %s already has %s applied: nothing to roll back", key, h.Digest)
			}
			return h, nil
		case steps > 0 && !seen[h.Digest]:
			seen[h.Digest] = true
			if n++; n == steps {
				return h, nil
			}
		}
	}
	what := fmt.Sprintf("%d digests back", steps)
	switch {
	case to != "":
		what = to
	case revision != "":
		what = "revision " + revision
	}
	return v1alpha1.HistoryEntry{}, fmt.Errorf("Release %s: %s is not in status.history (the last %d applied digests): list them with `airlock history release %s -n %s`",
		key, what, v1alpha1.HistoryLimit, r.Name, r.Namespace)
}

func printPreview(w io.Writer, r *v1alpha1.Release, target v1alpha1.HistoryEntry, p *digestPreview) {
	fmt.Fprintf(w, "Rollback of Release %s/%s\n", r.Namespace, r.Name)
	fmt.Fprintf(w, "  from: %s%s\n", noneIfEmpty(r.Status.LastAppliedDigest), revisionNote(r.Status.LastAppliedRevision))
	fmt.Fprintf(w, "  to:   %s%s, applied %s ago, health %s\n", target.Digest, revisionNote(target.Revision), age(target.AppliedAt), noneIfEmpty(target.Health))
	printVerified(w, target.Digest, p.Signers)
	list := func(title string, names []string) { printObjects(w, title, names) }
	list("Added", p.Added)
	list("Changed", p.changedNames())
	if p.PruneDisabled {
		list("Left in place (spec.prune is false)", p.Removed)
	} else {
		list("Removed", p.Removed)
	}
	fmt.Fprintf(w, "Unchanged: %d objects\n", len(p.Unchanged))
	fmt.Fprintln(w, "The controller verifies the digest's signatures again under the current trust policy before it applies it.")
}

func revisionNote(rev string) string {
	if rev == "" {
		return ""
	}
	return " (" + rev + ")"
}

// pinRelease sets spec.ref to the target digest and keeps the ref it
// replaces in an annotation; a Release pinned by an earlier rollback keeps
// the ref from before the first one.
func pinRelease(ctx context.Context, out io.Writer, c *kubeClient, r *v1alpha1.Release, target v1alpha1.HistoryEntry) error {
	annotations := map[string]any{}
	if _, pinned := r.Annotations[v1alpha1.PinnedByRollbackAnnotation]; !pinned {
		prev, err := json.Marshal(r.Spec.Ref)
		if err != nil {
			return err
		}
		annotations[v1alpha1.PinnedByRollbackAnnotation] = string(prev)
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": annotations},
		"spec":     map[string]any{"ref": map[string]any{"digest": target.Digest, "tag": nil, "semver": nil}},
	})
	if err != nil {
		return err
	}
	if _, err := c.patchRelease(ctx, r.Name, patch); err != nil {
		return err
	}
	fmt.Fprintf(out, "Release %s/%s is pinned to %s%s; un-pin it with `airlock rollback release %s -n %s --unpin`\n",
		r.Namespace, r.Name, target.Digest, revisionNote(target.Revision), r.Name, r.Namespace)
	return nil
}

// unpinRelease restores the spec.ref recorded by a rollback.
func unpinRelease(ctx context.Context, out io.Writer, c *kubeClient, r *v1alpha1.Release) error {
	key := r.Namespace + "/" + r.Name
	saved, ok := r.Annotations[v1alpha1.PinnedByRollbackAnnotation]
	if !ok {
		return fmt.Errorf("Release %s is not pinned by a rollback (no annotation %s): change spec.ref by hand if it should move", key, v1alpha1.PinnedByRollbackAnnotation)
	}
	var prev v1alpha1.ArtifactRef
	if err := json.Unmarshal([]byte(saved), &prev); err != nil {
		return fmt.Errorf("Release %s annotation %s: %w: set spec.ref by hand and remove the annotation", key, v1alpha1.PinnedByRollbackAnnotation, err)
	}
	ref := map[string]any{"digest": nil, "tag": nil, "semver": nil, "allowDowngrade": nil}
	b, _ := json.Marshal(prev)
	var set map[string]any
	_ = json.Unmarshal(b, &set)
	for k, v := range set {
		ref[k] = v
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{v1alpha1.PinnedByRollbackAnnotation: nil}},
		"spec":     map[string]any{"ref": ref},
	})
	if err != nil {
		return err
	}
	if _, err := c.patchRelease(ctx, r.Name, patch); err != nil {
		return err
	}
	fmt.Fprintf(out, "Release %s is un-pinned: spec.ref is %s again\n", key, describeRef(prev))
	return nil
}
