package artifact

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	gzip "github.com/klauspost/compress/gzip"

	gitignore "github.com/monochromegane/go-gitignore"
	"github.com/opencontainers/go-digest"
)

// Media types shared with the Flux toolkit, so either side reads the other's artifacts.
const (
	ConfigMediaType  = "application/vnd.cncf.flux.config.v1+json"
	ContentMediaType = "application/vnd.cncf.flux.content.v1.tar+gzip"

	AnnotationSource   = "org.opencontainers.image.source"
	AnnotationRevision = "org.opencontainers.image.revision"
	AnnotationCreated  = "org.opencontainers.image.created"

	// SourceIgnoreFile in the packed tree holds extra gitignore patterns, as in Flux.
	SourceIgnoreFile = ".sourceignore"
)

// epoch is the fixed time stamped on every entry, so packs are reproducible.
var epoch = time.Unix(0, 0).UTC()

// ErrEmpty is returned when a path holds nothing to pack.
var ErrEmpty = errors.New("nothing to pack")

// PackOptions selects what goes into an artifact. The zero value packs every
// file except .git/ and the patterns in the tree's .sourceignore.
type PackOptions struct {
	// IgnorePaths are extra gitignore patterns. nil means none.
	IgnorePaths []string
	// Prefix is a directory that holds every entry in the archive, as the
	// chart's name does in a Helm chart archive. "" means none.
	Prefix string
}

// PackResult describes a packed layer.
type PackResult struct {
	Digest digest.Digest
	Size   int64
	// Files is the number of regular files packed.
	Files int
	// Skipped lists paths that are neither files nor directories (symlinks,
	// sockets), which are left out.
	Skipped []string
}

// localFile is one entry of a tree to pack, in the order it is packed.
type localFile struct {
	rel  string // slash path inside the archive
	abs  string
	dir  bool
	exec bool
	size int64
}

// walkTree lists what Pack puts in the archive for path, sorted.
func walkTree(path string, opts PackOptions) ([]localFile, []string, error) {
	info, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("path %s does not exist: pass the directory or file to pack with --path", path)
		}
		return nil, nil, fmt.Errorf("path %s: %w", path, err)
	}
	if info.Mode().IsRegular() {
		return []localFile{{rel: filepath.Base(path), abs: path, exec: info.Mode()&0o111 != 0, size: info.Size()}}, nil, nil
	}
	if !info.IsDir() {
		return nil, nil, fmt.Errorf("path %s is neither a file nor a directory", path)
	}
	patterns := append([]string{".git/"}, opts.IgnorePaths...)
	if b, err := os.ReadFile(filepath.Join(path, SourceIgnoreFile)); err == nil {
		patterns = append(patterns, strings.Split(string(b), "\n")...)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("read %s: %w", filepath.Join(path, SourceIgnoreFile), err)
	}
	absRoot, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, err
	}
	matcher := gitignore.NewGitIgnoreFromReader(absRoot, strings.NewReader(strings.Join(patterns, "\n")))

	var files []localFile
	var skipped []string
	err = filepath.WalkDir(absRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == absRoot {
			return nil
		}
		rel, _ := filepath.Rel(absRoot, p)
		rel = filepath.ToSlash(rel)
		if matcher.Match(p, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			files = append(files, localFile{rel: rel, abs: p, dir: true})
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			files = append(files, localFile{rel: rel, abs: p, exec: fi.Mode()&0o111 != 0, size: fi.Size()})
		default:
			skipped = append(skipped, rel)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("walk %s: %w", path, err)
	}
	regular := 0
	for _, f := range files {
		if !f.dir {
			regular++
		}
	}
	if regular == 0 {
		return nil, nil, fmt.Errorf("path %s: %w: it holds no files (after .git/, .sourceignore and --ignore-paths)", path, ErrEmpty)
	}
	// WalkDir visits in lexical order, so the list is already sorted.
	return files, skipped, nil
}

// Pack writes path (a directory or a single file) as a reproducible
// tar+gzip layer to w: entries sorted, owner, times and modes normalised,
// and deterministic compression. The same tree gives the same bytes.
func Pack(ctx context.Context, path string, w io.Writer, opts PackOptions) (*PackResult, error) {
	files, skipped, err := walkTree(path, opts)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	// BestSpeed: YAML still shrinks 5–10×. Members of 512 KiB compress on
	// every core; the bytes depend on the input alone.
	gz := newParallelGzip(cw, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	res := &PackResult{Skipped: skipped}
	buf := make([]byte, 256<<10)
	if opts.Prefix != "" {
		if err := tw.WriteHeader(&tar.Header{Name: opts.Prefix + "/", ModTime: epoch, Format: tar.FormatPAX, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if opts.Prefix != "" {
			f.rel = opts.Prefix + "/" + f.rel
		}
		hdr := &tar.Header{Name: f.rel, ModTime: epoch, Format: tar.FormatPAX}
		if f.dir {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, f.rel+"/", 0o755
		} else {
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, f.size
			if f.exec {
				hdr.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("pack %s: %w", f.rel, err)
		}
		if f.dir {
			continue
		}
		if err := copyFile(tw, f, buf); err != nil {
			return nil, err
		}
		res.Files++
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	res.Digest = digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
	res.Size = cw.n
	return res, nil
}

func copyFile(w io.Writer, f localFile, buf []byte) error {
	in, err := os.Open(f.abs)
	if err != nil {
		return fmt.Errorf("pack %s: %w", f.rel, err)
	}
	defer in.Close()
	n, err := io.CopyBuffer(w, io.LimitReader(in, f.size), buf)
	if err != nil {
		return fmt.Errorf("pack %s: %w", f.rel, err)
	}
	if n != f.size {
		return fmt.Errorf("pack %s: file changed while packing (%d of %d bytes): retry when the tree is still", f.rel, n, f.size)
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// PackFile packs path into a new temporary file and returns it, rewound,
// with the result. The caller closes and removes the file.
func PackFile(ctx context.Context, path string, opts PackOptions) (*os.File, *PackResult, error) {
	f, err := os.CreateTemp("", "airlock-pack-*.tgz")
	if err != nil {
		return nil, nil, fmt.Errorf("create temporary file for the layer: %w", err)
	}
	res, err := Pack(ctx, path, f, opts)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, nil, err
	}
	return f, res, nil
}
