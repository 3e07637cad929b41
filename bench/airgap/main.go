// Command airgap measures `airlock export --with-images` and `airlock import`
// throughput and peak memory with about 1 GiB of images, between registry
// processes on loopback and a tarball on local disk.
//
//	go run ./bench/airgap [-mib 1024]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"

	"airlock.dev/airlock/internal/benchproc"
)

func main() {
	mib := flag.Int64("mib", 1024, "MiB of image layers to carry")
	flag.Parse()
	if err := run(*mib); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(mib int64) error {
	work, err := os.MkdirTemp("", "airlock-airgap-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := benchproc.BuildCLI(work)
	if err != nil {
		return err
	}
	up, stopUp, err := benchproc.StartRegistry(bin, filepath.Join(work, "upstream"))
	if err != nil {
		return err
	}
	defer stopUp()
	site, stopSite, err := benchproc.StartRegistry(bin, filepath.Join(work, "site"))
	if err != nil {
		return err
	}
	defer stopSite()

	// 8 random (incompressible) layers make the image.
	const layers = 8
	img, err := random.Image(mib<<20/layers, layers)
	if err != nil {
		return err
	}
	imgRef, _ := name.ParseReference(up+"/bench/big:1.0", name.Insecure)
	if err := ggcrremote.Write(imgRef, img); err != nil {
		return err
	}
	app := filepath.Join(work, "app")
	os.MkdirAll(app, 0o755)
	os.WriteFile(filepath.Join(app, "pod.yaml"), []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\nspec:\n  containers:\n  - name: big\n    image: "+up+"/bench/big:1.0\n"), 0o644)
	if _, _, err := benchproc.Timed(bin, "push", "artifact", "oci://"+up+"/bench/app:v1", "--path", app, "--source", "s", "--revision", "r", "--insecure-registry"); err != nil {
		return err
	}

	tarball := filepath.Join(work, "site.tar")
	d, rss, err := benchproc.Timed(bin, "export", "oci://"+up+"/bench/app:v1", "-o", tarball, "--with-images", "--insecure-registry")
	if err != nil {
		return err
	}
	fi, _ := os.Stat(tarball)
	size := fi.Size()
	fmt.Printf("export: %.0f MiB tarball in %v: %.0f MiB/s, peak RSS %d MiB\n", float64(size)/(1<<20), d.Round(time.Millisecond), float64(size)/(1<<20)/d.Seconds(), rss>>10)
	d, rss, err = benchproc.Timed(bin, "import", tarball, "oci://"+site+"/mirror", "--insecure-registry")
	if err != nil {
		return err
	}
	fmt.Printf("import: %.0f MiB tarball in %v: %.0f MiB/s (blob check pass included), peak RSS %d MiB\n", float64(size)/(1<<20), d.Round(time.Millisecond), float64(size)/(1<<20)/d.Seconds(), rss>>10)
	return nil
}
