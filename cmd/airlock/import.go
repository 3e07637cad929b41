package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/airgap"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

func newImportCmd() *cobra.Command {
	var (
		dst        remoteFlags
		output     outputFlag
		verifyKeys []string
		threshold  int
		signKey    string
	)
	cmd := &cobra.Command{
		Use:   "import site.tar oci://MIRROR[/PREFIX]",
		Short: "Push an export tarball into a site registry, digests unchanged; optionally verify upstream and sign for the site",
		Example: `  airlock import site.tar oci://mirror.site.local/airgap \
    --verify-key upstream.pub --sign-key site.key`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.validate(); err != nil {
				return err
			}
			mirror, err := artifact.ParseMirror(args[1])
			if err != nil {
				return err
			}
			if signKey != "" && len(verifyKeys) == 0 {
				return fmt.Errorf("import: --sign-key needs --verify-key: the site signs only what verified upstream")
			}
			opts := airgap.ImportOptions{Dst: dst.options(), Progress: progressOut(cmd)}
			if len(verifyKeys) > 0 {
				if opts.Policy, err = verify.LoadPolicy(verifyKeys, threshold); err != nil {
					return err
				}
			}
			// Load the site key before anything is pushed.
			signer, err := loadSigner(cmd, signKey)
			if err != nil {
				return err
			}
			if signer != nil {
				opts.SiteKey = signer.key
			}
			if len(verifyKeys) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "import %s: unverified: no --verify-key, so the tarball is trusted as it is and its upstream signatures are not checked; pass --verify-key upstream.pub to check them before anything is pushed\n", args[0])
			}
			results, err := airgap.ImportBundle(cmd.Context(), args[0], mirror, opts)
			if err != nil {
				return err
			}
			var rel []artifact.Relocated
			for _, res := range results {
				if res.Upstream != nil {
					for _, s := range res.Upstream.Signers {
						fmt.Fprintf(cmd.ErrOrStderr(), "upstream signature verified on %s: %s (%s)\n", res.Upstream.Ref, s.Fingerprint, s.Name)
					}
				}
				rel = append(rel, res.Relocated...)
			}
			// One artifact prints its result, a bundle the list of them.
			var printed any = results
			if len(results) == 1 {
				printed = results[0]
			}
			if ok, err := output.print(cmd.OutOrStdout(), printed); ok {
				return err
			}
			return printRelocated(cmd.OutOrStdout(), &output, rel)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&verifyKeys, "verify-key", nil, "upstream public key: verify the artifact's signatures in the tarball before pushing anything (repeatable)")
	fs.IntVar(&threshold, "threshold", 1, "with --verify-key, how many distinct upstream keys must have signed")
	fs.StringVar(&signKey, "sign-key", "", "site private key: after a verified import, add a site signature recording the upstream signers")
	dst.register(fs)
	output.register(fs, "json", "yaml")
	return cmd
}
