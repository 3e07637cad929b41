package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/errdef"
)

// blobAt is where a blob's bytes are in an export tarball.
type blobAt struct {
	name   string // the tar entry, blobs/sha256/<hex>
	offset int64  // of its first byte
	size   int64
}

// archiveStore serves an export tarball's blobs from the offsets
// OpenArchive found in its one pass over the tar headers, each read as
// exactly its entry's bytes; it leaves Resolve (by index.json) to the OCI
// layout store it wraps. A blob is read from its own file handle, which
// net/http sends with sendfile(2) when it is a request body, so a push
// does not copy each layer through user space.
type archiveStore struct {
	oras.ReadOnlyTarget
	path  string
	blobs map[digest.Digest]blobAt
}

// Fetch returns the blob's bytes. A descriptor whose size is not the
// entry's is refused: the bytes would not be the ones checked.
func (s *archiveStore) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	b, ok := s.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("%s: %w", desc.Digest, errdef.ErrNotFound)
	}
	if desc.Size != b.size {
		return nil, fmt.Errorf("blob %s is %d bytes in the archive, but a descriptor gives %d: %w", desc.Digest, b.size, desc.Size, ErrArchiveAltered)
	}
	return s.open(b)
}

func (s *archiveStore) Exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	_, ok := s.blobs[desc.Digest]
	return ok, nil
}

func (s *archiveStore) open(b blobAt) (io.ReadCloser, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(b.offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return &blobReader{f: f, end: b.offset + b.size}, nil
}

// blobReader reads one blob of an export tarball: its file's bytes up to
// end. It reads the file's offset at each Read rather than counting, since
// sendfile(2) moves that offset too.
type blobReader struct {
	f   *os.File
	end int64
}

func (b *blobReader) Read(p []byte) (int, error) {
	pos, err := b.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	if pos >= b.end {
		return 0, io.EOF
	}
	if int64(len(p)) > b.end-pos {
		p = p[:b.end-pos]
	}
	return b.f.Read(p)
}

func (b *blobReader) Close() error { return b.f.Close() }

// SyscallConn lets net/http send the blob with sendfile(2) from the file's
// offset. It sends at most the request's Content-Length, which Fetch
// checked is the blob's size, so it never reads past the blob.
func (b *blobReader) SyscallConn() (syscall.RawConn, error) { return b.f.SyscallConn() }

// checkBlobs hashes every blob the store serves, as it serves them, at most
// one per core at a time, and returns the first mismatch in archive order.
func (s *archiveStore) checkBlobs(ctx context.Context, p string, order []digest.Digest) error {
	workers := min(runtime.GOMAXPROCS(0), 4, len(order))
	errs := make([]error, len(order))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = s.checkBlob(p, order[i])
			}
		}()
	}
	var err error
	for i := range order {
		if err = ctx.Err(); err != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *archiveStore) checkBlob(p string, want digest.Digest) error {
	b := s.blobs[want]
	rc, err := s.open(b)
	if err != nil {
		return fmt.Errorf("archive %s: read blob %s: %w", p, b.name, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, rc, make([]byte, 1<<20)) // 1 MiB a read, not 32 KiB
	if err == nil && n != b.size {
		err = fmt.Errorf("%d of %d bytes: %w", n, b.size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return fmt.Errorf("archive %s: read blob %s: %w", p, b.name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.Encoded() {
		return fmt.Errorf("archive %s: entry %q: blob %s has content with digest sha256:%s: %w: %w (or it was corrupted in transit); nothing was pushed", p, b.name, want, got, ErrDigest, ErrArchiveAltered)
	}
	return nil
}
