package artifact

import (
	"bytes"
	"io"
	"runtime"
	"sync"

	gzip "github.com/klauspost/compress/gzip"
)

// gzipChunk is how much input each gzip member holds. Members are cut by
// byte count alone, so the output depends only on the input, never on how
// it was written or on the number of cores.
const gzipChunk = 512 << 10

// parallelGzip compresses its input as a series of independent gzip members
// of gzipChunk bytes each, several at a time, and writes them in order. A
// multi-member stream is plain gzip (RFC 1952), read by Go's gzip.Reader,
// Flux and GNU gzip alike.
type parallelGzip struct {
	w       io.Writer
	level   int
	buf     []byte
	pending []chan member
	max     int
	members int // members dispatched so far
	err     error
}

type member struct {
	b   *bytes.Buffer
	err error
}

func newParallelGzip(w io.Writer, level int) *parallelGzip {
	return &parallelGzip{w: w, level: level, buf: make([]byte, 0, gzipChunk), max: runtime.GOMAXPROCS(0)}
}

// Buffers and compressors are reused, so memory stays at a few chunks
// however large the input.
var (
	chunkPool  = sync.Pool{New: func() any { return make([]byte, 0, gzipChunk) }}
	memberPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	writerPool sync.Map // level → *sync.Pool of *gzip.Writer
)

func gzipWriter(level int, w io.Writer) (*gzip.Writer, error) {
	pool, _ := writerPool.LoadOrStore(level, &sync.Pool{})
	if zw, ok := pool.(*sync.Pool).Get().(*gzip.Writer); ok {
		zw.Reset(w)
		return zw, nil
	}
	return gzip.NewWriterLevel(w, level)
}

func putGzipWriter(level int, zw *gzip.Writer) {
	pool, _ := writerPool.Load(level)
	pool.(*sync.Pool).Put(zw)
}

func (p *parallelGzip) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if p.err != nil {
			return n, p.err
		}
		k := min(len(b), gzipChunk-len(p.buf))
		p.buf = append(p.buf, b[:k]...)
		b, n = b[k:], n+k
		if len(p.buf) == gzipChunk {
			p.dispatch()
		}
	}
	return n, p.err
}

// dispatch compresses the buffered chunk in the background, first writing
// out the oldest finished member when too many are in flight.
func (p *parallelGzip) dispatch() {
	chunk := p.buf
	p.buf = chunkPool.Get().([]byte)[:0]
	p.members++
	ch := make(chan member, 1)
	p.pending = append(p.pending, ch)
	go func() {
		out := memberPool.Get().(*bytes.Buffer)
		out.Reset()
		zw, err := gzipWriter(p.level, out)
		if err == nil {
			_, err = zw.Write(chunk)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
			putGzipWriter(p.level, zw)
		}
		chunkPool.Put(chunk[:0])
		ch <- member{out, err}
	}()
	for len(p.pending) >= p.max && p.err == nil {
		p.writeOldest()
	}
}

func (p *parallelGzip) writeOldest() {
	m := <-p.pending[0]
	p.pending = p.pending[1:]
	defer memberPool.Put(m.b)
	if p.err != nil {
		return
	}
	if p.err = m.err; p.err == nil {
		_, p.err = p.w.Write(m.b.Bytes())
	}
}

// Close compresses what is left and writes every member out, in order.
func (p *parallelGzip) Close() error {
	// A partial last chunk, or one empty member so that empty input is gzip too.
	if len(p.buf) > 0 || p.members == 0 {
		p.dispatch()
	}
	for len(p.pending) > 0 {
		p.writeOldest()
	}
	return p.err
}
