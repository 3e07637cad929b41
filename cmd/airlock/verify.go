package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

type verifyOptions struct {
	remote    remoteFlags
	output    outputFlag
	keys      []string
	threshold int
	upstream  []string
	// upstreamThreshold is --upstream-threshold.
	upstreamThreshold int
	// requireReceipt and receiptKeys are --require-receipt and --receipt-key.
	requireReceipt string
	receiptKeys    []string
}

func newVerifyCmd() *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify oci://HOST/REPO:TAG|oci://HOST/REPO@sha256:… --key a.pub [--key b.pub …] [--threshold N]",
		Short: "Verify an artifact's cosign signatures against trusted keys, offline",
		Long: `Verify that at least --threshold distinct trusted keys (default 1) have valid
cosign signatures over exactly the artifact's digest (a tag is resolved
first). Signatures made by 'airlock sign' and by 'cosign sign --key …
--tlog-upload=false' are accepted; no transparency log is consulted.

Prints the keys that signed and the artifact's source and revision.
Exit status: 0 verified; 1 not verified (no signatures, untrusted signer,
signature for another digest, malformed signatures, threshold not met);
2 could not check (registry unreachable, unreadable key, bad arguments).`,
		Example:      `  airlock verify oci://registry.example.com/team/app:v1 --key team.pub --key security.pub --threshold 2`,
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE:         func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&o.keys, "key", nil, "trusted cosign public key file (required, repeatable)")
	fs.IntVar(&o.threshold, "threshold", 1, "how many distinct trusted keys must have signed")
	fs.StringArrayVar(&o.upstream, "require-upstream", nil, "require a chain of trust: a --key signature recording an import verified against this upstream public key, and that key's own signature (repeatable)")
	fs.IntVar(&o.upstreamThreshold, "upstream-threshold", 1, "with --require-upstream, how many distinct upstream keys must have signed and be recorded by the site signature")
	fs.StringVar(&o.requireReceipt, "require-receipt", "", "also require a deployment receipt from this cluster (its --cluster-name), signed with a --receipt-key, recording the digest as Healthy: a promotion gate")
	fs.StringArrayVar(&o.receiptKeys, "receipt-key", nil, "with --require-receipt, the cluster's receipt public key (repeatable)")
	o.remote.register(fs)
	o.output.register(fs, "json", "yaml")
	return cmd
}

func (o *verifyOptions) run(cmd *cobra.Command, arg string) error {
	if err := o.output.validate(); err != nil {
		return &exitError{code: 2, err: err}
	}
	ref, err := artifact.ParseReference(arg)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if len(o.keys) == 0 {
		return &exitError{code: 2, err: fmt.Errorf("verify %s: --key is required: pass the public key of each trusted signer", ref)}
	}
	if o.threshold < 1 {
		return &exitError{code: 2, err: fmt.Errorf("verify %s: --threshold %d: want 1 or more", ref, o.threshold)}
	}
	p, err := verify.LoadPolicy(o.keys, o.threshold)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("verify %s: %w", ref, err)}
	}
	if len(o.upstream) > 0 {
		up, err := verify.LoadPolicy(o.upstream, 0)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("verify %s: --require-upstream: %w", ref, err)}
		}
		// The same check as the controller's spec.verify.upstream.
		p.Upstream, p.UpstreamThreshold = up.Keys, o.upstreamThreshold
		if err := p.Validate(); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("verify %s: --upstream-threshold: %w", ref, err)}
		}
	}
	var receiptKeys verify.Policy
	if (o.requireReceipt == "") != (len(o.receiptKeys) == 0) {
		return &exitError{code: 2, err: fmt.Errorf("verify %s: --require-receipt and --receipt-key go together", ref)}
	}
	if o.requireReceipt != "" {
		if receiptKeys, err = verify.LoadPolicy(o.receiptKeys, 0); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("verify %s: --receipt-key: %w", ref, err)}
		}
	}
	res, err := verify.Verify(cmd.Context(), ref, p, o.remote.options())
	if err != nil {
		return &exitError{code: verifyExitCode(err), err: err}
	}
	out := verifyOutput{Result: res}
	if o.requireReceipt != "" {
		// The receipt is for the digest just verified, not whatever the tag
		// points to by now.
		pinned, _ := artifact.ParseReference(res.Ref)
		c, err := o.remote.client(pinned)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		out.Receipt, err = verify.RequireReceipt(cmd.Context(), c, pinned, verify.ReceiptRequirement{Cluster: o.requireReceipt, Keys: receiptKeys.Keys})
		if err != nil {
			return &exitError{code: verifyExitCode(err), err: err}
		}
	}
	if ok, err := o.output.print(cmd.OutOrStdout(), out); ok {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "Verified %s\n", res.Ref)
	fmt.Fprintf(w, "Signed by %d of %d required keys:\n", len(res.Signers), res.Threshold)
	for _, s := range res.Signers {
		fmt.Fprintf(w, "  %s  %s\n", s.Fingerprint, s.Name)
		if up := s.Annotations[verify.ChainUpstreamSigners]; up != "" {
			fmt.Fprintf(w, "    imported %s from %s after verifying upstream signer(s) %s\n",
				orNone(s.Annotations[verify.ChainImportedAt]), orNone(s.Annotations[verify.ChainUpstreamRef]), up)
		}
	}
	for _, s := range res.Upstream {
		fmt.Fprintf(w, "Upstream signature verified: %s  %s\n", s.Fingerprint, s.Name)
	}
	if c := res.Chain; c != nil && c.ImagesLock != "" {
		fmt.Fprintf(w, "Images lock signed by the site: %s\n", c.ImagesLock)
	}
	if res.Source != "" {
		fmt.Fprintf(w, "Source:   %s\n", res.Source)
	}
	if res.Revision != "" {
		fmt.Fprintf(w, "Revision: %s\n", res.Revision)
	}
	if r := out.Receipt; r != nil {
		fmt.Fprintf(w, "Receipt:  %s from cluster %s (%s/%s), %s at %s, signed by %s\n", r.Digest, r.Predicate.Cluster.Name,
			r.Predicate.Release.Namespace, r.Predicate.Release.Name, r.Predicate.Health.Result, r.Predicate.ReadyAt.UTC().Format(time.RFC3339), r.Signer.Name)
	}
	return nil
}

// verifyOutput is verify's -o json: the verification, and the receipt
// --require-receipt accepted.
type verifyOutput struct {
	*verify.Result
	Receipt *verify.Receipt `json:"receipt,omitempty"`
}

// verifyExitCode is 1 when the artifact is not verified and 2 when it could
// not be checked.
func verifyExitCode(err error) int {
	for _, reason := range []error{verify.ErrNoSignatures, verify.ErrUntrustedSigner, verify.ErrDigestMismatch, verify.ErrMalformed, verify.ErrThresholdNotMet, verify.ErrChainNotMet, verify.ErrNoReceipt} {
		if errors.Is(err, reason) {
			return 1
		}
	}
	return 2
}
