package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/build"
)

// relocateFlags are the flags copy and export share.
type relocateFlags struct {
	src        remoteFlags
	withImages bool
	platform   string
	path       string
	output     outputFlag
}

func (f *relocateFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.BoolVar(&f.withImages, "with-images", false, "also carry every container image the artifact's workloads reference (tags resolved to digests)")
	fs.StringVar(&f.platform, "platform", "", "with --with-images, only this platform of multi-platform images (os/arch[/variant]; default: all)")
	fs.StringVar(&f.path, "kustomize-path", "", "with --with-images, the directory inside the artifact to render (default: its root)")
	f.src.register(fs)
}

// images renders the artifact with kustomize and lists its workloads' images.
func (f *relocateFlags) images(ctx context.Context, ref artifact.Reference) ([]string, error) {
	if !f.withImages {
		return nil, nil
	}
	tmp, err := os.MkdirTemp("", "airlock-images-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	pulled, err := artifact.Pull(ctx, ref, filepath.Join(tmp, "a"), artifact.PullOptions{Remote: f.src.options()})
	if err != nil {
		return nil, err
	}
	return discoverImages(ctx, pulled.Path, f.path, pulled.Digest)
}

// discoverImages builds the pulled artifact in dir and lists its workloads'
// images. ctx stops the build (Ctrl-C, SIGTERM).
func discoverImages(ctx context.Context, dir, path, digest string) ([]string, error) {
	objs, err := build.Build(ctx, dir, path, digest, build.Options{})
	if err != nil {
		return nil, fmt.Errorf("--with-images: %w", err)
	}
	var maps []map[string]any
	for _, o := range objs {
		maps = append(maps, o.Object)
	}
	return artifact.Images(maps), nil
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
			images, err := f.images(cmd.Context(), src)
			if err != nil {
				return err
			}
			dst := remoteFlags{creds: dstCreds, insecure: dstInsecure, caFile: dstCA}
			if dstCreds == "" {
				dst.creds = f.src.creds
			}
			rel, err := artifact.Copy(cmd.Context(), src, dstRef, artifact.RelocateOptions{
				Src: f.src.options(), Dst: dst.options(), Images: images, Platform: f.platform, Progress: cmd.ErrOrStderr(),
			})
			if err != nil {
				return err
			}
			return printRelocated(cmd.OutOrStdout(), &f.output, rel)
		},
	}
	f.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&dstCreds, "dest-creds", "", "destination registry credentials as user:password (default: as for the source)")
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
	var out string
	cmd := &cobra.Command{
		Use:   "export oci://HOST/REPO:TAG|@DIGEST -o site.tar",
		Short: "Write an artifact, its signatures (and images) to one OCI image-layout tarball for an air gap",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := artifact.ParseReference(args[0])
			if err != nil {
				return err
			}
			if out == "" {
				return fmt.Errorf("export %s: --output FILE is required", ref)
			}
			images, err := f.images(cmd.Context(), ref)
			if err != nil {
				return err
			}
			tmp, err := os.CreateTemp(filepath.Dir(out), ".airlock-export-*")
			if err != nil {
				return fmt.Errorf("export %s: %w", ref, err)
			}
			defer os.Remove(tmp.Name())
			lock, rel, err := artifact.Export(cmd.Context(), ref, tmp, artifact.RelocateOptions{
				Src: f.src.options(), Images: images, Platform: f.platform, Progress: cmd.ErrOrStderr(),
			})
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return fmt.Errorf("export %s: %w", ref, err)
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
	cmd.Flags().StringVar(&f.output.format, "format", "", "print the result as json|yaml")
	f.output.allowed = []string{"json", "yaml"}
	return cmd
}
