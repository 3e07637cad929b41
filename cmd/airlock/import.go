package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

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
			var policy verify.Policy
			if len(verifyKeys) > 0 {
				if policy, err = verify.LoadPolicy(verifyKeys, threshold); err != nil {
					return err
				}
			}
			// Load the site key before anything is pushed.
			signer, err := loadSigner(cmd, signKey)
			if err != nil {
				return err
			}
			a, err := artifact.OpenArchive(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, upstreamRef, err := a.Artifact()
			if err != nil {
				return err
			}
			var upstream *verify.Result
			if len(policy.Keys) > 0 {
				if upstream, err = verify.VerifyArchive(cmd.Context(), a, policy); err != nil {
					return fmt.Errorf("import %s refused, nothing pushed: %w", args[0], err)
				}
				for _, s := range upstream.Signers {
					fmt.Fprintf(cmd.ErrOrStderr(), "upstream signature verified: %s (%s)\n", s.Fingerprint, s.Name)
				}
			}
			rel, err := artifact.Import(cmd.Context(), a, mirror, artifact.ImportOptions{Dst: dst.options(), Progress: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			if signer != nil {
				target := artifact.MirrorImage(mirror.Registry, mirror.Repository, upstreamRef)
				res, err := verify.Sign(cmd.Context(), target, signer.key, verify.ChainAnnotations(upstream, upstreamRef.String(), time.Now()), dst.options())
				if err != nil {
					return fmt.Errorf("imported, but the site signature failed: %w", err)
				}
				rel = append(rel, artifact.Relocated{Role: "site-signature", Source: upstreamRef.String(), Target: target.WithTag(res.SignatureTag).String(), Digest: res.Digest})
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
