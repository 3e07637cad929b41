package artifact

import (
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestParallelGzipDeterministic: the output depends on the input alone
// (not on write sizes or cores), and reads back with the standard library.
func TestParallelGzipDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, size := range []int{0, 1, gzipChunk - 1, gzipChunk, gzipChunk + 1, 5*gzipChunk + 12345} {
		in := make([]byte, size)
		for i := range in {
			in[i] = "abcdefgh\n"[rng.IntN(9)]
		}
		compress := func(step, procs int) []byte {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			var out bytes.Buffer
			z := newParallelGzip(&out, gzip.BestSpeed)
			for rest := in; len(rest) > 0; {
				k := min(step, len(rest))
				if _, err := z.Write(rest[:k]); err != nil {
					t.Fatal(err)
				}
				rest = rest[k:]
			}
			if err := z.Close(); err != nil {
				t.Fatal(err)
			}
			return out.Bytes()
		}
		a, b, c := compress(1<<30, 1), compress(4093, 2), compress(1<<20+7, 8)
		if !bytes.Equal(a, b) || !bytes.Equal(a, c) {
			t.Fatalf("size %d: output depends on write sizes or cores", size)
		}
		r, err := gzip.NewReader(bytes.NewReader(a))
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, in) {
			t.Fatalf("size %d: round trip failed: %v", size, err)
		}
	}
}
