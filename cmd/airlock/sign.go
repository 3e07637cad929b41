package main

import (
	"fmt"
	"os"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

type signOptions struct {
	remote      remoteFlags
	output      outputFlag
	key         string
	digest      string
	annotations []string
}

func newSignCmd() *cobra.Command {
	o := &signOptions{}
	cmd := &cobra.Command{
		Use:   "sign oci://HOST/REPO:TAG [--digest sha256:…]|oci://HOST/REPO@sha256:… --key NAME.key",
		Short: "Sign an artifact's digest with a cosign key, offline",
		Long: `Sign the artifact's manifest digest (a tag is resolved first) with a cosign
private key and store the signature where cosign does, on the
sha256-<hex>.sig tag, next to any signatures already there. Nothing is
uploaded to a transparency log: 'cosign verify --key NAME.pub
--insecure-ignore-tlog=true' accepts the signature. The digest reference
signed is printed on standard output.

A tag alone signs whatever it points to at that moment. Pin the digest you
reviewed with --digest (or oci://HOST/REPO:TAG@sha256:…): sign then refuses,
naming both digests, unless the tag still points at it.`,
		Example: `  COSIGN_PASSWORD=… airlock sign oci://registry.example.com/team/app:v1 --key cosign.key -a approved-by=alice
  airlock sign oci://registry.example.com/team/app:v1 --digest sha256:4692… --key cosign.key`,
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE:         func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
	fs := cmd.Flags()
	fs.StringVar(&o.key, "key", "", "cosign private key file (required); password from $COSIGN_PASSWORD or a prompt")
	fs.StringVar(&o.digest, "digest", "", "sha256:… the tag must point at: sign refuses if the tag moved since you reviewed it")
	fs.StringArrayVarP(&o.annotations, "annotations", "a", nil, "annotation key=value recorded in the signed payload (repeatable)")
	o.remote.register(fs)
	o.output.register(fs, "json", "yaml")
	return cmd
}

func (o *signOptions) run(cmd *cobra.Command, arg string) error {
	if err := o.output.validate(); err != nil {
		return err
	}
	ref, err := artifact.ParseReference(arg)
	if err != nil {
		return err
	}
	if o.key == "" {
		return fmt.Errorf("sign %s: --key is required: create a key pair with `airlock keygen`", ref)
	}
	if o.digest != "" {
		d, err := digest.Parse(o.digest)
		if err != nil {
			return fmt.Errorf("sign %s: --digest %q: %v (want sha256:<64 hex>)", ref, o.digest, err)
		}
		if ref.Digest != "" && ref.Digest != d.String() {
			return fmt.Errorf("sign %s: --digest %s differs from the reference's digest: give one of them", ref, d)
		}
		ref = ref.WithDigest(d.String())
	}
	annotations, err := parseAnnotations(o.annotations)
	if err != nil {
		return err
	}
	// Report a missing key file before asking for its password.
	if _, err := os.Stat(o.key); err != nil {
		_, err = verify.LoadPrivateKeyFile(o.key, nil)
		return fmt.Errorf("sign %s: %w", ref, err)
	}
	pw, err := readPassword(cmd.InOrStdin(), cmd.ErrOrStderr(), false)
	if err != nil {
		return fmt.Errorf("sign %s: %w", ref, err)
	}
	key, err := verify.LoadPrivateKeyFile(o.key, pw)
	if err != nil {
		return fmt.Errorf("sign %s: %w", ref, err)
	}
	sign := verify.Sign
	if ref.Tag != "" && ref.Digest != "" {
		sign = verify.SignPinned
	}
	res, err := sign(cmd.Context(), ref, key, annotations, o.remote.options())
	if err != nil {
		return err
	}
	signed := res.Ref.WithTag("").WithDigest(res.Digest)
	out := signOutput{Ref: signed.String(), SignResult: res, Key: o.key}
	if ok, err := o.output.print(cmd.OutOrStdout(), out); ok {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), signed.String())
	fmt.Fprintf(cmd.ErrOrStderr(), "signed %s with %s (fingerprint %s); signature stored on tag %s next to %d existing\n",
		res.Digest, o.key, res.Fingerprint, res.SignatureTag, res.Existing)
	if ref.Digest == "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "tag %s pointed to %s when signed; pin what you reviewed with --digest\n", ref.Tag, res.Digest)
	}
	return nil
}

type signOutput struct {
	Ref string `json:"ref"`
	*verify.SignResult
	Key string `json:"key"`
}
