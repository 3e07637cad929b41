package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"airlock.dev/airlock/api/v1alpha1"
)

func newReconcileReleaseCmd() *cobra.Command {
	var (
		kube    kubeFlags
		wait    bool
		retry   bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "release NAME [--wait] [--retry]",
		Short: "Ask the controller to reconcile a Release now (resolve, verify, apply, prune)",
		Long: `Set the annotation ` + v1alpha1.ReconcileRequestAnnotation + ` to the current
time; the controller reconciles at once and copies the value to
status.lastHandledReconcileAt. With --wait, wait for that, and while Ready is
Unknown (Progressing: applied, waiting for health, or rolling back) wait on
for the verdict; exit 0 when the Release is Ready, 1 with the Ready message
when it is not.

With --retry, also set ` + v1alpha1.RetryRequestAnnotation + `: the controller
applies status.failedDigest, a digest it rolled back from
(spec.rollback.onFailure), once more.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kube.client()
			if err != nil {
				return err
			}
			token := time.Now().UTC().Format(time.RFC3339Nano)
			annotations := map[string]string{v1alpha1.ReconcileRequestAnnotation: token}
			if retry {
				annotations[v1alpha1.RetryRequestAnnotation] = token
			}
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
			r, err := c.patchRelease(cmd.Context(), args[0], patch)
			if err != nil {
				return err
			}
			key := r.Namespace + "/" + r.Name
			if !wait {
				fmt.Fprintf(cmd.OutOrStdout(), "requested a reconcile of Release %s\n", key)
				return nil
			}
			if r.Spec.Suspend {
				return fmt.Errorf("Release %s is suspended: nothing is reconciled until `airlock resume release %s -n %s`", key, r.Name, r.Namespace)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "waiting for the controller to reconcile Release %s\n", key)
			ctx := cmd.Context()
			deadline := time.Now().Add(timeout)
			for r.Status.LastHandledReconcileAt != token || r.Status.ObservedGeneration != r.Generation || progressing(r) {
				if time.Now().After(deadline) {
					if r.Status.LastHandledReconcileAt == token && progressing(r) {
						ready := meta.FindStatusCondition(r.Status.Conditions, v1alpha1.ConditionReady)
						return &exitError{code: 1, err: fmt.Errorf("Release %s: still Progressing after %s: %s", key, timeout, ready.Message)}
					}
					return fmt.Errorf("Release %s: not reconciled within %s: check that airlock-controller runs (its logs, and `airlock events release %s -n %s`)", key, timeout, r.Name, r.Namespace)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(250 * time.Millisecond):
				}
				if r, err = c.getRelease(ctx, args[0]); err != nil {
					return err
				}
			}
			ready := meta.FindStatusCondition(r.Status.Conditions, v1alpha1.ConditionReady)
			if ready == nil {
				return fmt.Errorf("Release %s reconciled but has no Ready condition", key)
			}
			if ready.Status != metav1.ConditionTrue {
				return &exitError{code: 1, err: fmt.Errorf("Release %s is not Ready (%s): %s", key, ready.Reason, ready.Message)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Release %s is Ready: %s\n", key, ready.Message)
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the controller has handled the request, and report Ready")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits")
	cmd.Flags().BoolVar(&retry, "retry", false, "apply again the digest the controller rolled back from (status.failedDigest), once")
	kube.register(cmd.Flags())
	return cmd
}

// progressing is Ready=Unknown Progressing: the controller has applied and
// waits for health (spec.wait), and will report the verdict by itself.
func progressing(r *v1alpha1.Release) bool {
	ready := meta.FindStatusCondition(r.Status.Conditions, v1alpha1.ConditionReady)
	return ready != nil && ready.Status == metav1.ConditionUnknown && ready.Reason == v1alpha1.ReasonProgressing
}
