// Command image assembles the airlock-controller OCI image without Docker:
// a static binary per platform on an empty base (no shell, no libc), run as
// a non-root user. It pushes the multi-platform index to a registry, or
// writes it as an OCI image-layout tarball that `airlock import` relocates
// into an air-gapped site.
//
//	go run ./hack/image --tag v0.1.0 --push oci://registry.example.com/airlock/airlock-controller
//	go run ./hack/image --tag v0.1.0 --output airlock-controller.tar
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"airlock.dev/airlock/artifact"
)

func main() {
	var (
		tag       = flag.String("tag", "dev", "image tag, also the version stamped into the binary")
		platforms = flag.String("platforms", "linux/amd64,linux/arm64", "comma-separated os/arch list")
		push      = flag.String("push", "", "push to this repository, oci://HOST/REPO")
		output    = flag.String("output", "", "write an OCI image-layout tarball here")
		name_     = flag.String("name", "ghcr.io/airlock-dev/airlock-controller", "the image's name inside a tarball (its reference after `airlock import`)")
		insecure  = flag.Bool("insecure-registry", false, "push over plain HTTP")
	)
	flag.Parse()
	if (*push == "") == (*output == "") {
		fmt.Fprintln(os.Stderr, "image: give exactly one of --push or --output")
		os.Exit(2)
	}
	if err := run(context.Background(), *tag, strings.Split(*platforms, ","), *push, *output, *name_, *insecure); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, tag string, platforms []string, push, output, imageName string, insecure bool) error {
	work, err := os.MkdirTemp("", "airlock-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		os_, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok {
			return fmt.Errorf("platform %q: want os/arch", p)
		}
		img, err := buildImage(work, tag, os_, arch)
		if err != nil {
			return err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: os_, Architecture: arch}}})
		fmt.Fprintf(os.Stderr, "built %s/%s\n", os_, arch)
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}

	if push != "" {
		repo, err := artifact.ParseRepository(push)
		if err != nil {
			return err
		}
		opts := []name.Option{}
		if insecure {
			opts = append(opts, name.Insecure)
		}
		ref, err := name.ParseReference(repo.Name()+":"+tag, opts...)
		if err != nil {
			return err
		}
		if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
		fmt.Printf("oci://%s@%s\n", ref, d)
		return nil
	}
	dir := filepath.Join(work, "layout")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	ref := imageName + ":" + tag
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref,
		artifact.AnnotationRole:             "image",
	})); err != nil {
		return err
	}
	if err := tarDir(dir, output); err != nil {
		return err
	}
	fmt.Printf("%s@%s\n", ref, d)
	return nil
}

func buildImage(work, tag, goos, arch string) (v1.Image, error) {
	// airlock-chart-render, the process the controller renders Helm charts
	// in, next to the controller, where it looks for it.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, name := range []string{"airlock-controller", "airlock-chart-render"} {
		bin := filepath.Join(work, goos+"-"+arch, name)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+tag, "-o", bin, "./cmd/"+name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s for %s/%s (run from the repository root): %v\n%s", name, goos, arch, err, out)
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			return nil, err
		}
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o555, Size: int64(len(b)), ModTime: epoch, Typeflag: tar.TypeReg})
		tw.Write(b)
	}
	// A writable /tmp for a read-only root filesystem is an emptyDir in the Deployment.
	tw.WriteHeader(&tar.Header{Name: "tmp/", Mode: 0o1777, ModTime: epoch, Typeflag: tar.TypeDir})
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromReader(bytes.NewReader(buf.Bytes()), tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base, err := mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1), &v1.ConfigFile{
		Architecture: arch, OS: goos, Created: v1.Time{Time: epoch},
		Config: v1.Config{
			Entrypoint: []string{"/airlock-controller"},
			User:       "65532:65532",
			Labels:     map[string]string{"org.opencontainers.image.version": tag, "org.opencontainers.image.title": "airlock-controller"},
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	// AppendLayers records the layer's diff ID in the config.
	return mutate.AppendLayers(mutate.ConfigMediaType(base, types.OCIConfigJSON), layer)
}

// tarDir writes the files under dir into a tarball at out, paths relative to dir.
func tarDir(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
