package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"airlock.dev/airlock/api/v1alpha1"
)

func newDescribeReleaseCmd() *cobra.Command {
	var kube kubeFlags
	cmd := &cobra.Command{
		Use:     "release NAME",
		Aliases: []string{"releases", "rel"},
		Short:   "Show a Release's conditions, problems and their fix, inventory and history",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kube.client()
			if err != nil {
				return err
			}
			r, err := c.getRelease(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return describeRelease(cmd.OutOrStdout(), r)
		},
	}
	kube.register(cmd.Flags())
	return cmd
}

func describeRelease(out io.Writer, r *v1alpha1.Release) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	field := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, v) }
	field("Name", r.Name)
	field("Namespace", r.Namespace)
	field("URL", r.Spec.URL)
	field("Ref", describeRef(r.Spec.Ref))
	if prev, ok := r.Annotations[v1alpha1.PinnedByRollbackAnnotation]; ok {
		field("Pinned", fmt.Sprintf("by a rollback (previous ref %s): un-pin with `airlock rollback release %s -n %s --unpin`", prev, r.Name, r.Namespace))
	}
	if r.Spec.Rollback != nil && r.Spec.Rollback.OnFailure {
		field("Rollback", "on failure, to the newest healthy digest")
	}
	if r.Spec.Path != "" {
		field("Path", r.Spec.Path)
	}
	field("Interval", r.GetInterval().String())
	for i, hc := range r.Spec.HealthCheckExprs {
		k := "Health check"
		if i > 0 {
			k = ""
		}
		field(k, describeHealthCheck(hc))
	}
	trust := "no spec.verify: only the ClusterTrustPolicies covering the URL, or refused unless the controller runs with --allow-unsigned"
	if v := r.Spec.Verify; v != nil {
		trust = fmt.Sprintf("%d of the keys in Secret %s", max(v.Threshold, 1), v.KeysSecretRef.Name)
		if up := v.Upstream; up != nil {
			trust += fmt.Sprintf("; chain of trust: a site signature recording %d of the upstream keys in Secret %s, and their own signatures", max(up.Threshold, 1), up.KeysSecretRef.Name)
		}
	}
	field("Trust", trust)
	if r.Spec.RelocateImages {
		field("Images", "relocated to the mirror by digest, from the signed images lock")
	}
	field("Suspended", fmt.Sprint(r.Spec.Suspend))
	field("Age", age(r.CreationTimestamp))
	if err := w.Flush(); err != nil {
		return err
	}

	st := &r.Status
	fmt.Fprintln(out, "\nApplied:")
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "  Digest:\t%s\n", noneIfEmpty(st.LastAppliedDigest))
	if st.LastAttemptedDigest != "" && st.LastAttemptedDigest != st.LastAppliedDigest {
		what := "not applied"
		if st.LastAttemptedDigest == st.FailedDigest {
			what = "applied, failed health, rolled back"
		}
		fmt.Fprintf(w, "  Last attempted:\t%s (%s)\n", st.LastAttemptedDigest, what)
	}
	fmt.Fprintf(w, "  Source:\t%s\n", noneIfEmpty(st.LastAppliedSource))
	fmt.Fprintf(w, "  Revision:\t%s\n", noneIfEmpty(st.LastAppliedRevision))
	signers := make([]string, 0, len(st.Signers))
	for _, s := range st.Signers {
		signers = append(signers, fmt.Sprintf("%s (%s)", s.Name, s.Fingerprint))
	}
	fmt.Fprintf(w, "  Signed by:\t%s\n", noneIfEmpty(strings.Join(signers, ", ")))
	fmt.Fprintf(w, "  Trust policies:\t%s\n", noneIfEmpty(strings.Join(st.TrustPolicies, ", ")))
	if st.LastAppliedVersion != "" {
		fmt.Fprintf(w, "  Version:\t%s (spec.ref.semver never moves below it unless spec.ref.allowDowngrade)\n", st.LastAppliedVersion)
	}
	if st.FailedDigest != "" {
		fmt.Fprintf(w, "  Rolled back from:\t%s (not applied again until another digest is resolved, or `airlock reconcile release %s -n %s --retry`)\n", st.FailedDigest, r.Name, r.Namespace)
	}
	fmt.Fprintf(w, "  Drift corrections:\t%d\n", st.DriftCorrections)
	if err := w.Flush(); err != nil {
		return err
	}
	describeAirGap(out, st)

	fmt.Fprintln(out, "\nConditions:")
	if len(st.Conditions) == 0 {
		fmt.Fprintln(out, "  <none>: the controller has not reconciled this Release: is airlock-controller running?")
	} else {
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "  TYPE\tSTATUS\tREASON\tAGE\tMESSAGE")
		for _, c := range st.Conditions {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, age(c.LastTransitionTime), oneLine(c.Message))
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if st.ObservedGeneration != 0 && st.ObservedGeneration != r.Generation {
		fmt.Fprintf(out, "  (the controller has not seen the latest spec yet: generation %d, observed %d)\n", r.Generation, st.ObservedGeneration)
	}

	if len(st.Unhealthy) > 0 {
		fmt.Fprintln(out, "\nUnhealthy objects (at the last health check):")
		for _, u := range st.Unhealthy {
			fmt.Fprintf(out, "  %s\n", oneLine(u))
		}
	}

	if problems := releaseProblems(r); len(problems) > 0 {
		fmt.Fprintln(out, "\nProblems:")
		for _, p := range problems {
			fmt.Fprintf(out, "  %s (%s): %s\n", p.condition, p.reason, p.what)
			if p.fix != "" {
				fmt.Fprintf(out, "    Fix: %s\n", p.fix)
			}
		}
	}

	fmt.Fprintf(out, "\nInventory (%d objects):\n", len(st.Inventory))
	for _, o := range st.Inventory {
		gv := o.Version
		if o.Group != "" {
			gv = o.Group + "/" + o.Version
		}
		name := o.Name
		if o.Namespace != "" {
			name = o.Namespace + "/" + o.Name
		}
		fmt.Fprintf(out, "  %s %s %s\n", gv, o.Kind, name)
	}

	fmt.Fprintln(out, "\nHistory (newest first):")
	if len(st.History) == 0 {
		fmt.Fprintln(out, "  <none>")
		return nil
	}
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  APPLIED\tDIGEST\tREVISION\tSIGNERS\tHEALTH")
	for _, h := range st.History {
		fmt.Fprintf(w, "  %s ago\t%s\t%s\t%s\t%s\n", age(h.AppliedAt), h.Digest, noneIfEmpty(h.Revision), noneIfEmpty(strings.Join(h.Signers, ",")), noneIfEmpty(h.Health))
	}
	return w.Flush()
}

// describeAirGap shows the chain of trust of an imported artifact and the
// images relocated to the mirror, when there are any.
func describeAirGap(out io.Writer, st *v1alpha1.ReleaseStatus) {
	signer := func(s v1alpha1.Signer) string {
		if s.Name == "" {
			return s.Fingerprint
		}
		return s.Name + " (" + s.Fingerprint + ")"
	}
	if c := st.Chain; c != nil {
		fmt.Fprintln(out, "\nChain of trust:")
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		ups := make([]string, 0, len(c.UpstreamSigners))
		for _, s := range c.UpstreamSigners {
			ups = append(ups, signer(s))
		}
		how := "as the site signature records them (spec.verify.upstream is not set, so their signatures were not checked again)"
		if c.UpstreamVerified {
			how = "their own signatures verified at the site"
		}
		fmt.Fprintf(w, "  Upstream signers:\t%s: %s\n", noneIfEmpty(strings.Join(ups, ", ")), how)
		fmt.Fprintf(w, "  Site signer:\t%s\n", signer(c.SiteSigner))
		fmt.Fprintf(w, "  Imported at:\t%s\n", noneIfEmpty(c.ImportedAt))
		fmt.Fprintf(w, "  Imported from:\t%s\n", noneIfEmpty(c.UpstreamRef))
		fmt.Fprintf(w, "  Images lock:\t%s\n", noneIfEmpty(c.ImagesLock))
		_ = w.Flush()
	}
	if st.RelocatedImagesTotal > 0 {
		fmt.Fprintf(out, "\nRelocated images (%d):\n", st.RelocatedImagesTotal)
		for _, ri := range st.RelocatedImages {
			fmt.Fprintf(out, "  %s -> %s\n", ri.From, ri.To)
		}
		if more := st.RelocatedImagesTotal - len(st.RelocatedImages); more > 0 {
			fmt.Fprintf(out, "  … and %d more (status lists the first %d)\n", more, len(st.RelocatedImages))
		}
	}
}

func describeRef(ref v1alpha1.ArtifactRef) string {
	switch {
	case ref.Digest != "":
		return "digest " + ref.Digest
	case ref.Semver != "":
		return "semver " + ref.Semver + " (the highest matching tag)"
	case ref.Tag != "":
		return "tag " + ref.Tag
	}
	return "tag latest"
}

// describeHealthCheck is one spec.healthCheckExprs entry on one line.
func describeHealthCheck(hc v1alpha1.HealthCheckExpr) string {
	parts := []string{"current: " + hc.Current}
	if hc.InProgress != "" {
		parts = append(parts, "inProgress: "+hc.InProgress)
	}
	if hc.Failed != "" {
		parts = append(parts, "failed: "+hc.Failed)
	}
	return fmt.Sprintf("%s %s (CEL) %s", hc.APIVersion, hc.Kind, strings.Join(parts, "; "))
}

// problem is a failing condition in plain words: what is wrong and the fix.
type problem struct {
	condition, reason, what, fix string
}

// releaseProblems lists the failing conditions. The controller's messages
// end with what to do ("…: sign the artifact with …"); that part becomes
// the fix, and a reason whose message has none gets the usual one.
func releaseProblems(r *v1alpha1.Release) []problem {
	var out []problem
	seen := map[string]bool{}
	// Ready first: the other conditions often repeat its message.
	conds := append([]metav1.Condition{}, r.Status.Conditions...)
	sort.SliceStable(conds, func(i, j int) bool {
		return conds[i].Type == v1alpha1.ConditionReady && conds[j].Type != v1alpha1.ConditionReady
	})
	for _, c := range conds {
		failing := c.Status == metav1.ConditionFalse && c.Type != v1alpha1.ConditionReconciling
		if c.Type == v1alpha1.ConditionStalled {
			failing = c.Status == metav1.ConditionTrue
		}
		if c.Reason == v1alpha1.ReasonSuspended || c.Reason == v1alpha1.ReasonVerificationSkipped {
			failing = false
		}
		if !failing || seen[c.Message] {
			continue
		}
		seen[c.Message] = true
		what, fix := splitFix(c.Message)
		if fix == "" {
			fix = reasonFixes[c.Reason]
		}
		out = append(out, problem{condition: c.Type, reason: c.Reason, what: oneLine(what), fix: oneLine(fix)})
	}
	if ready := meta.FindStatusCondition(r.Status.Conditions, v1alpha1.ConditionReady); ready != nil && ready.Status != metav1.ConditionTrue && r.Status.LastAppliedDigest != "" {
		out = append(out, problem{condition: "Running", reason: "PreviousDigest",
			what: "the objects of " + r.Status.LastAppliedDigest + " stay applied until a new digest passes every stage"})
	}
	return out
}

// fixVerbs start the "what to do" part of the controller's messages.
var fixVerbs = []string{"add ", "ask ", "check ", "create ", "delete ", "fix ", "grant ", "install ", "pass ", "push ", "refresh ", "remove ", "run ", "set ", "sign ", "use ", "wait "}

func splitFix(msg string) (what, fix string) {
	i := strings.LastIndex(msg, ": ")
	if i < 0 {
		return msg, ""
	}
	tail := msg[i+2:]
	for _, v := range fixVerbs {
		if strings.HasPrefix(tail, v) {
			return msg[:i], tail
		}
	}
	return msg, ""
}

// reasonFixes is the usual fix for a reason whose message names none.
var reasonFixes = map[string]string{
	v1alpha1.ReasonVerificationFailed:   "sign the artifact with a key in spec.verify.keysSecretRef (airlock push --sign-key, or airlock sign), or add the signer's .pub key to that Secret",
	v1alpha1.ReasonVerificationRequired: "add spec.verify with a Secret of trusted cosign public keys",
	v1alpha1.ReasonRegistryUnavailable:  "check that the registry in spec.url is reachable from the controller",
	v1alpha1.ReasonArtifactNotFound:     "push the artifact, or fix spec.url and spec.ref",
	v1alpha1.ReasonRegistryAuthFailed:   "check the credentials in spec.secretRef",
	v1alpha1.ReasonDependencyNotReady:   "wait for the Releases in spec.dependsOn, or fix them",
	v1alpha1.ReasonUnhealthy:            "check the events and logs of the objects named above",
	v1alpha1.ReasonApplyFailed:          "fix the objects named above in the source and push a new artifact",
	v1alpha1.ReasonRolledBack:           "fix the failed digest's objects and push a new artifact, or `airlock reconcile release NAME --retry` to apply it again",
}
