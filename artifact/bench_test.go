package artifact_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"
)

// benchTree writes n YAML files totalling about size bytes.
func benchTree(b *testing.B, n int, size int) (string, int64) {
	b.Helper()
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var total int64
	for i := 0; i < n; i++ {
		var sb strings.Builder
		fmt.Fprintf(&sb, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%d\ndata:\n", i)
		for sb.Len() < size/n {
			fmt.Fprintf(&sb, "  key-%d: %q\n", rng.IntN(10000), fmt.Sprintf("%x", rng.Uint64()))
		}
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i%100), fmt.Sprintf("cm-%05d.yaml", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(sb.Len())
	}
	return dir, total
}

// BenchmarkPack: 5,000 files, 50 MiB; MB/s is of the uncompressed tree.
func BenchmarkPack(b *testing.B) {
	dir, total := benchTree(b, 5000, 50<<20)
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := artifact.Pack(context.Background(), dir, io.Discard, artifact.PackOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPushPull: push (pack included) then pull (extraction included)
// of 5,000 files, 50 MiB, through the in-process registry on loopback.
func BenchmarkPushPull(b *testing.B) {
	dir, total := benchTree(b, 5000, 50<<20)
	reg := registrytest.New(b)
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ref, _ := artifact.ParseReference(fmt.Sprintf("oci://%s/bench/app:v%d", reg.Addr, i))
		if _, err := artifact.Push(context.Background(), ref, dir, artifact.PushOptions{Remote: plainHTTP, Annotations: map[string]string{"run": fmt.Sprint(i)}}); err != nil {
			b.Fatal(err)
		}
		if _, err := artifact.Pull(context.Background(), ref, filepath.Join(b.TempDir(), "out"), artifact.PullOptions{Remote: plainHTTP}); err != nil {
			b.Fatal(err)
		}
	}
}
