// Command artifact measures airlock's pack, push and pull throughput and the
// CLI's peak memory, against a registry in another process on loopback.
//
//	go run ./bench/artifact            # 5,000 files / 50 MiB, and a 500 MiB tree for RSS
//	go run ./bench/artifact -rss-mib 0 # throughput only
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/benchproc"
)

func main() {
	files := flag.Int("files", 5000, "files in the throughput tree")
	mib := flag.Int("mib", 50, "MiB in the throughput tree")
	rssMiB := flag.Int("rss-mib", 500, "MiB in the tree pushed and pulled for peak RSS (0 skips)")
	flag.Parse()
	if err := run(*files, *mib, *rssMiB); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(files, mib, rssMiB int) error {
	work, err := os.MkdirTemp("", "airlock-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := benchproc.BuildCLI(work)
	if err != nil {
		return err
	}
	addr, stop, err := benchproc.StartRegistry(bin, filepath.Join(work, "registry"))
	if err != nil {
		return err
	}
	defer stop()

	tree := filepath.Join(work, "tree")
	size, err := generate(tree, files, int64(mib)<<20)
	if err != nil {
		return err
	}
	fmt.Printf("tree: %d files, %.1f MiB of YAML\n", files, float64(size)/(1<<20))

	// Pack in process: the library function push and build call.
	var best time.Duration
	for i := 0; i < 3; i++ {
		start := time.Now()
		f, res, err := artifact.PackFile(context.Background(), tree, artifact.PackOptions{})
		if err != nil {
			return err
		}
		d := time.Since(start)
		f.Close()
		os.Remove(f.Name())
		if best == 0 || d < best {
			best = d
		}
		if i == 0 {
			fmt.Printf("layer: %.1f MiB compressed\n", float64(res.Size)/(1<<20))
		}
	}
	fmt.Printf("pack:  %6.0f MiB/s (best of 3, %v)\n", mibps(size, best), best.Round(time.Millisecond))

	ref := "oci://" + addr + "/bench/tree"
	push := func(tag, dir string) (time.Duration, int64, error) {
		return benchproc.Timed(bin, "push", "artifact", ref+":"+tag, "--path", dir, "--source", "https://example.com/bench.git",
			"--revision", "main@sha1:0000000000000000000000000000000000000000", "--insecure-registry")
	}
	pull := func(tag, dir string) (time.Duration, int64, error) {
		return benchproc.Timed(bin, "pull", "artifact", ref+":"+tag, "-o", dir, "--insecure-registry", "--max-size", "2Gi")
	}
	// Each push gets a fresh tree so the registry does not already hold the layer.
	d, rss, err := push("t1", tree)
	if err != nil {
		return err
	}
	fmt.Printf("push:  %6.0f MiB/s of tree (%v, CLI process, pack included), peak RSS %d MiB\n", mibps(size, d), d.Round(time.Millisecond), rss>>10)
	d, rss, err = pull("t1", filepath.Join(work, "pulled1"))
	if err != nil {
		return err
	}
	fmt.Printf("pull:  %6.0f MiB/s of tree (%v, CLI process, extraction included), peak RSS %d MiB\n", mibps(size, d), d.Round(time.Millisecond), rss>>10)

	if rssMiB > 0 {
		big := filepath.Join(work, "big")
		bsize, err := generate(big, 2000, int64(rssMiB)<<20)
		if err != nil {
			return err
		}
		os.RemoveAll(tree)
		d, rss, err := push("big", big)
		if err != nil {
			return err
		}
		fmt.Printf("push %d MiB tree: %v, peak RSS %d MiB\n", bsize>>20, d.Round(time.Millisecond), rss>>10)
		d, rss, err = pull("big", filepath.Join(work, "pulled-big"))
		if err != nil {
			return err
		}
		fmt.Printf("pull %d MiB tree: %v, peak RSS %d MiB\n", bsize>>20, d.Round(time.Millisecond), rss>>10)
	}
	return nil
}

func mibps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

// generate writes n Deployment-like YAML files totalling about size bytes,
// with enough variety that they compress like real manifests.
func generate(dir string, n int, size int64) (int64, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	per := size / int64(n)
	var total int64
	words := []string{"replicas", "image", "registry.example.com/team/service", "containerPort", "resources", "limits", "memory", "cpu", "env", "valueFrom", "secretKeyRef", "readinessProbe", "httpGet", "path", "/healthz"}
	for i := 0; i < n; i++ {
		var b bytes.Buffer
		fmt.Fprintf(&b, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc-%d\n  namespace: ns-%d\nspec:\n", i, i%50)
		for int64(b.Len()) < per {
			fmt.Fprintf(&b, "  %s-%d: %q\n", words[rng.IntN(len(words))], rng.IntN(1000), fmt.Sprintf("%x", rng.Uint64()))
		}
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i%100), fmt.Sprintf("svc-%05d.yaml", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return 0, err
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return 0, err
		}
		total += int64(b.Len())
	}
	return total, nil
}
