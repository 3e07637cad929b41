package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/airgap"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

// relocateFlags are the flags copy and export share.
type relocateFlags struct {
	src        remoteFlags
	withImages bool
	platform   string
	path       string
	output     outputFlag
	imageKeys  []string
}

func (f *relocateFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.BoolVar(&f.withImages, "with-images", false, "also carry every container image the artifact's workloads reference (tags resolved to digests)")
	fs.StringVar(&f.platform, "platform", "", "with --with-images, only this platform of multi-platform images (os/arch[/variant]; default: all)")
	fs.StringVar(&f.path, "kustomize-path", "", "with --with-images, the directory inside the artifact to render (default: its root)")
	fs.StringArrayVar(&f.imageKeys, "verify-images-key", nil, "with --with-images, refuse unless every image is signed (cosign) by this public key; names each image that is not (repeatable: any one key suffices)")
	f.src.register(fs)
}

func (f *relocateFlags) options(dst artifact.RemoteOptions, progress io.Writer) (airgap.RelocateOptions, error) {
	o := airgap.RelocateOptions{Src: f.src.options(), Dst: dst, WithImages: f.withImages, KustomizePath: f.path, Platform: f.platform, Progress: progress}
	if len(f.imageKeys) > 0 {
		if !f.withImages {
			return o, fmt.Errorf("--verify-images-key checks the images that --with-images carries: add --with-images")
		}
		p, err := verify.LoadPolicy(f.imageKeys, 1)
		if err != nil {
			return o, fmt.Errorf("--verify-images-key: %w", err)
		}
		o.ImagesPolicy = p
	}
	return o, nil
}

func printRelocated(w io.Writer, out *outputFlag, rel []artifact.Relocated) error {
	if ok, err := out.print(w, rel); ok {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tSOURCE\tTARGET")
	for _, r := range rel {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Role, r.Source, r.Target)
	}
	return tw.Flush()
}

func newCopyCmd() *cobra.Command {
	var f relocateFlags
	var dstCreds, dstCA string
	var dstInsecure bool
	cmd := &cobra.Command{
		Use:   "copy oci://SRC/REPO:TAG|@DIGEST oci://DST/REPO[:TAG]",
		Short: "Copy an artifact digest-for-digest with its signatures (and images) to another registry",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.output.validate(); err != nil {
				return err
			}
			src, err := artifact.ParseReference(args[0])
			if err != nil {
				return err
			}
			dstRef, err := parseDestination(args[1])
			if err != nil {
				return err
			}
			// The source's credentials go to the destination only when it
			// is the same registry.
			dstOpts := artifact.RemoteOptions{Creds: dstCreds, PlainHTTPInsecure: dstInsecure, CAFile: dstCA}
			if dstCreds == "" && dstRef.Registry == src.Registry {
				dstOpts.Creds = f.src.options().Creds
			}
			opts, err := f.options(dstOpts, progressOut(cmd))
			if err != nil {
				return err
			}
			rel, err := airgap.Copy(cmd.Context(), src, dstRef, opts)
			if err != nil {
				return err
			}
			return printRelocated(cmd.OutOrStdout(), &f.output, rel)
		},
	}
	f.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&dstCreds, "dest-creds", "", "destination registry credentials as user:password (default: the source's when the destination is the same registry, else docker's config.json and credential helpers)")
	fs.BoolVar(&dstInsecure, "dest-insecure-registry", false, "talk plain HTTP to the destination registry")
	fs.StringVar(&dstCA, "dest-ca-file", "", "PEM CA bundle for the destination registry")
	f.output.register(fs, "json", "yaml")
	return cmd
}

// parseDestination accepts oci://HOST/REPO[:TAG] (a digest is allowed when it
// is the source's).
func parseDestination(s string) (artifact.Reference, error) {
	if ref, err := artifact.ParseReference(s); err == nil {
		return ref, nil
	}
	return artifact.ParseRepository(s)
}

func newExportCmd() *cobra.Command {
	var f relocateFlags
	var out, bundleFile, since string
	cmd := &cobra.Command{
		Use:   "export (oci://HOST/REPO:TAG|@DIGEST | -f bundle.yaml) -o site.tar [--since previous.tar]",
		Short: "Write an artifact (or a bundle of them), its signatures (and images) to one OCI image-layout tarball for an air gap",
		Args:  cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if bundleFile != "" || since != "" {
				return runExportBundle(cmd, &f, args, bundleFile, since, out)
			}
			if len(args) != 1 {
				return fmt.Errorf("export: give one artifact reference, or -f bundle.yaml")
			}
			ref, err := artifact.ParseReference(args[0])
			if err != nil {
				return err
			}
			if out == "" {
				return fmt.Errorf("export %s: --output FILE is required", ref)
			}
			opts, err := f.options(artifact.RemoteOptions{}, progressOut(cmd))
			if err != nil {
				return err
			}
			lock, rel, err := airgap.Export(cmd.Context(), ref, out, opts)
			if err != nil {
				return err
			}
			if err := printRelocated(cmd.OutOrStdout(), &f.output, rel); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: %d manifests, %d images pinned in %s\n", out, len(rel), len(lock.Images), artifact.ImagesLockFile)
			return nil
		},
	}
	f.register(cmd)
	// -o is the tarball, as in docker save; --format picks json|yaml.
	cmd.Flags().StringVarP(&out, "output", "o", "", "tarball to write (required)")
	cmd.Flags().StringVarP(&bundleFile, "file", "f", "", "bundle file listing the artifacts to export as one tarball (artifacts: [{ref, withImages, kustomizePath}])")
	cmd.Flags().StringVar(&since, "since", "", "a previous export (tarball, or its index.json) the site has imported: leave out every blob and manifest the site holds, and record them as assumed present (import checks they are at the mirror)")
	cmd.Flags().StringVar(&f.output.format, "format", "", "print the result as json|yaml")
	f.output.allowed = []string{"json", "yaml"}
	return cmd
}

// runExportBundle exports the bundle file (or the one reference in args)
// as one tarball, differential with --since.
func runExportBundle(cmd *cobra.Command, f *relocateFlags, args []string, bundleFile, since, out string) error {
	var b *airgap.Bundle
	switch {
	case bundleFile != "" && len(args) > 0:
		return fmt.Errorf("export: give either an artifact reference or -f bundle.yaml, not both")
	case bundleFile != "":
		if f.withImages || f.path != "" {
			return fmt.Errorf("export -f: withImages and kustomizePath are set per artifact in %s, not by flags", bundleFile)
		}
		var err error
		if b, err = airgap.ReadBundle(bundleFile); err != nil {
			return err
		}
	case len(args) == 1:
		b = &airgap.Bundle{Artifacts: []airgap.BundleArtifact{{Ref: args[0], WithImages: f.withImages, KustomizePath: f.path}}}
	default:
		return fmt.Errorf("export: give one artifact reference, or -f bundle.yaml")
	}
	if out == "" {
		return fmt.Errorf("export: --output FILE is required")
	}
	withImages := false
	for _, a := range b.Artifacts {
		withImages = withImages || a.WithImages
	}
	f.withImages = withImages
	opts, err := f.options(artifact.RemoteOptions{}, progressOut(cmd))
	if err != nil {
		return err
	}
	bi, rel, err := airgap.ExportBundle(cmd.Context(), b, out, airgap.BundleOptions{RelocateOptions: opts, Since: since})
	if err != nil {
		return err
	}
	if err := printRelocated(cmd.OutOrStdout(), &f.output, rel); err != nil {
		return err
	}
	var bytes int64
	for _, a := range bi.Assumed {
		bytes += a.Size
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: %d artifacts, %d manifests; %d blobs (%d bytes) left out, assumed at the site\n", out, len(bi.Artifacts), len(rel), len(bi.Assumed), bytes)
	return nil
}
