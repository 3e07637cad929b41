// Command airgap measures `airlock export --with-images` and `airlock import`
// throughput and peak memory with about 1 GiB of images, between registry
// processes on loopback and a tarball on local disk.
//
//	go run ./bench/airgap [-mib 1024]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/random"
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
	bin := filepath.Join(work, "airlock")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/airlock").CombinedOutput(); err != nil {
		return fmt.Errorf("build airlock (run from the repository root): %v\n%s", err, out)
	}
	up, stopUp, err := startRegistry(bin, filepath.Join(work, "upstream"))
	if err != nil {
		return err
	}
	defer stopUp()
	site, stopSite, err := startRegistry(bin, filepath.Join(work, "site"))
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
	if _, _, err := timed(bin, "push", "artifact", "oci://"+up+"/bench/app:v1", "--path", app, "--source", "s", "--revision", "r", "--insecure-registry"); err != nil {
		return err
	}

	tarball := filepath.Join(work, "site.tar")
	d, rss, err := timed(bin, "export", "oci://"+up+"/bench/app:v1", "-o", tarball, "--with-images", "--insecure-registry")
	if err != nil {
		return err
	}
	fi, _ := os.Stat(tarball)
	size := fi.Size()
	fmt.Printf("export: %.0f MiB tarball in %v: %.0f MiB/s, peak RSS %d MiB\n", float64(size)/(1<<20), d.Round(time.Millisecond), float64(size)/(1<<20)/d.Seconds(), rss>>10)
	d, rss, err = timed(bin, "import", tarball, "oci://"+site+"/mirror", "--insecure-registry")
	if err != nil {
		return err
	}
	fmt.Printf("import: %.0f MiB tarball in %v: %.0f MiB/s (blob check pass included), peak RSS %d MiB\n", float64(size)/(1<<20), d.Round(time.Millisecond), float64(size)/(1<<20)/d.Seconds(), rss>>10)
	return nil
}

func timed(bin string, args ...string) (time.Duration, int64, error) {
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("airlock %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return d, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss, nil
}

func startRegistry(bin, storage string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "registry", "serve", "--addr", addr, "--storage", storage)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("registry did not start on %s", addr)
}
