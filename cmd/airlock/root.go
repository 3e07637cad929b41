package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "airlock",
		Short:         "Deliver Kubernetes configuration as signed OCI artifacts",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Verb groups, as in Flux: `airlock push artifact`, `airlock list artifacts`.
	push := &cobra.Command{Use: "push", Short: "Push artifacts to a registry"}
	push.AddCommand(newPushArtifactCmd())
	build := &cobra.Command{Use: "build", Short: "Build artifacts locally"}
	build.AddCommand(newBuildArtifactCmd())
	pull := &cobra.Command{Use: "pull", Short: "Pull artifacts from a registry"}
	pull.AddCommand(newPullArtifactCmd())
	tag := &cobra.Command{Use: "tag", Short: "Tag artifacts"}
	tag.AddCommand(newTagArtifactCmd())
	list := &cobra.Command{Use: "list", Short: "List artifacts"}
	list.AddCommand(newListArtifactsCmd())
	diff := &cobra.Command{Use: "diff", Short: "Compare artifacts with local files, or a Release with a candidate digest"}
	diff.AddCommand(newDiffArtifactCmd())
	diff.AddCommand(newDiffReleaseCmd())
	reg := &cobra.Command{Use: "registry", Short: "Run an embedded OCI registry"}
	reg.AddCommand(newRegistryServeCmd(), newRegistryGCCmd())

	root.AddCommand(push, build, pull, tag, list, diff, reg, newVersionCmd())
	root.AddCommand(newCopyCmd(), newExportCmd(), newImportCmd())
	signCmd, verifyCmd := newSignCmd(), newVerifyCmd()
	signCmd.AddCommand(newSignBlobCmd())
	verifyCmd.AddCommand(newVerifyBlobCmd())
	root.AddCommand(newKeygenCmd(), signCmd, verifyCmd, newReceiptsCmd())

	// Operator commands, through the kubeconfig.
	get := &cobra.Command{Use: "get", Short: "List Releases in the cluster"}
	get.AddCommand(newGetReleasesCmd())
	describe := &cobra.Command{Use: "describe", Short: "Show a Release in detail"}
	describe.AddCommand(newDescribeReleaseCmd())
	reconcile := &cobra.Command{Use: "reconcile", Short: "Reconcile a Release now"}
	reconcile.AddCommand(newReconcileReleaseCmd())
	suspend := &cobra.Command{Use: "suspend", Short: "Suspend a Release"}
	suspend.AddCommand(newSuspendReleaseCmd(true))
	resume := &cobra.Command{Use: "resume", Short: "Resume a suspended Release"}
	resume.AddCommand(newSuspendReleaseCmd(false))
	events := &cobra.Command{Use: "events", Short: "List a Release's events"}
	events.AddCommand(newEventsReleaseCmd())
	rollback := &cobra.Command{Use: "rollback", Short: "Pin a Release to a digest it applied before"}
	rollback.AddCommand(newRollbackReleaseCmd())
	history := &cobra.Command{Use: "history", Short: "List the digests a Release applied"}
	history.AddCommand(newHistoryReleaseCmd())
	root.AddCommand(get, describe, reconcile, suspend, resume, events, rollback, history, newInstallCmd(), newTraceCmd(), newUICmd())
	return root
}
