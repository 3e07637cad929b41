// Command bundle measures a bundle of 10 artifacts, each with its own
// image, between registry processes on loopback: the full export, a
// differential export (--since the full one) after 1 of the 10 changed,
// and the import throughput of the full bundle.
//
//	go run ./bench/bundle [-mib 40] [-registry-dir /dev/shm] [-cpuprofile import.pprof] [-memprofile import.mem.pprof]
//
// The registries keep their storage in the work directory, on disk, where
// distribution's filesystem driver fsyncs every blob, link and directory
// it writes: at the site registry that costs the import as much as
// airlock's own side on a slow disk. -registry-dir (a tmpfs) leaves it out.
//
// With -cpuprofile (or -memprofile), the full bundle is imported a second
// time in this process, through airgap.ImportBundle as the CLI calls it,
// into another prefix of the site registry, and profiled: the registry
// runs in its own process, so the profile holds only the import's side.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"

	"airlock.dev/airlock/airgap"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/benchproc"
)

const artifacts = 10

var cpuProfile, memProfile, registryDir string

func main() {
	mib := flag.Int64("mib", 40, "MiB of image layers per artifact")
	flag.StringVar(&registryDir, "registry-dir", "", "directory for the registries' storage (a tmpfs such as /dev/shm leaves the disk's fsyncs out); \"\" means the work directory")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of an in-process import of the full bundle to this file")
	flag.StringVar(&memProfile, "memprofile", "", "write an allocation profile of an in-process import of the full bundle to this file")
	flag.Parse()
	if err := run(*mib); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(mib int64) error {
	work, err := os.MkdirTemp("", "airlock-bundle-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := benchproc.BuildCLI(work)
	if err != nil {
		return err
	}
	storage := work
	if registryDir != "" {
		if storage, err = os.MkdirTemp(registryDir, "airlock-bundle-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(storage)
	}
	up, stopUp, err := benchproc.StartRegistry(bin, filepath.Join(storage, "upstream"))
	if err != nil {
		return err
	}
	defer stopUp()
	site, stopSite, err := benchproc.StartRegistry(bin, filepath.Join(storage, "site"))
	if err != nil {
		return err
	}
	defer stopSite()

	var bundle strings.Builder
	bundle.WriteString("artifacts:\n")
	for i := 0; i < artifacts; i++ {
		if err := pushApp(bin, work, up, i, mib); err != nil {
			return err
		}
		fmt.Fprintf(&bundle, "- ref: oci://%s/bench/app%d:v1\n  withImages: true\n", up, i)
	}
	bf := filepath.Join(work, "bundle.yaml")
	if err := os.WriteFile(bf, []byte(bundle.String()), 0o644); err != nil {
		return err
	}

	base := filepath.Join(work, "base.tar")
	d, rss, err := benchproc.Timed(bin, "export", "-f", bf, "-o", base, "--insecure-registry")
	if err != nil {
		return err
	}
	report("full export (base)", base, d, rss)
	d, rss, err = benchproc.Timed(bin, "import", base, "oci://"+site+"/mirror", "--insecure-registry")
	if err != nil {
		return err
	}
	fi, _ := os.Stat(base)
	fmt.Printf("import of the full bundle: %.0f MiB in %v: %.0f MiB/s (blob check pass included), peak RSS %d MiB\n",
		float64(fi.Size())/(1<<20), d.Round(time.Millisecond), float64(fi.Size())/(1<<20)/d.Seconds(), rss>>10)
	if cpuProfile != "" || memProfile != "" {
		if err := profileImport(base, site); err != nil {
			return err
		}
	}

	if err := pushApp(bin, work, up, 3, mib); err != nil { // 1 of 10 changes
		return err
	}
	full := filepath.Join(work, "full.tar")
	d, rss, err = benchproc.Timed(bin, "export", "-f", bf, "-o", full, "--insecure-registry")
	if err != nil {
		return err
	}
	report("full export, 1 of 10 changed", full, d, rss)
	diff := filepath.Join(work, "diff.tar")
	d, rss, err = benchproc.Timed(bin, "export", "-f", bf, "-o", diff, "--since", base, "--insecure-registry")
	if err != nil {
		return err
	}
	report("differential export --since base", diff, d, rss)
	d, rss, err = benchproc.Timed(bin, "import", diff, "oci://"+site+"/mirror", "--insecure-registry")
	if err != nil {
		return err
	}
	fmt.Printf("import of the differential onto the base mirror: %v, peak RSS %d MiB\n", d.Round(time.Millisecond), rss>>10)
	return nil
}

func report(what, p string, d time.Duration, rss int64) {
	fi, _ := os.Stat(p)
	fmt.Printf("%s: %.1f MiB in %v, peak RSS %d MiB\n", what, float64(fi.Size())/(1<<20), d.Round(time.Millisecond), rss>>10)
}

// pushApp writes a new random image bench/img<i>:1.0 (4 incompressible
// layers) and pushes bench/app<i>:v1, whose Pod uses it.
func pushApp(bin, work, up string, i int, mib int64) error {
	const layers = 4
	img, err := random.Image(mib<<20/layers, layers)
	if err != nil {
		return err
	}
	image := fmt.Sprintf("%s/bench/img%d:1.0", up, i)
	r, _ := name.ParseReference(image, name.Insecure)
	if err := ggcrremote.Write(r, img); err != nil {
		return err
	}
	app := filepath.Join(work, fmt.Sprintf("app%d", i))
	if err := os.MkdirAll(app, 0o755); err != nil {
		return err
	}
	pod := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: app%d\nspec:\n  containers:\n  - name: app\n    image: %s\n", i, image)
	if err := os.WriteFile(filepath.Join(app, "pod.yaml"), []byte(pod), 0o644); err != nil {
		return err
	}
	_, _, err = benchproc.Timed(bin, "push", "artifact", fmt.Sprintf("oci://%s/bench/app%d:v1", up, i), "--path", app, "--source", "s", "--revision", "r", "--insecure-registry")
	return err
}

// profileImport imports the tarball at p in this process into another
// prefix of the site registry, writing the profiles asked for.
func profileImport(p, site string) error {
	mirror, err := artifact.ParseMirror("oci://" + site + "/profiled")
	if err != nil {
		return err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	if memProfile != "" {
		runtime.MemProfileRate = 64 << 10
	}
	start := time.Now()
	_, err = airgap.ImportBundle(context.Background(), p, mirror, airgap.ImportOptions{Dst: artifact.RemoteOptions{PlainHTTPInsecure: true}})
	d := time.Since(start)
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return fmt.Errorf("profiled import: %w", err)
	}
	fi, _ := os.Stat(p)
	fmt.Printf("profiled in-process import: %v: %.0f MiB/s\n", d.Round(time.Millisecond), float64(fi.Size())/(1<<20)/d.Seconds())
	if memProfile != "" {
		f, err := os.Create(memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		return pprof.Lookup("allocs").WriteTo(f, 0)
	}
	return nil
}
