// Package safetar extracts tar streams from untrusted sources. Every path is
// checked before it is written, and every write goes through an os.Root, so
// the kernel refuses to follow a link out of the destination even where a
// lexical check would be fooled.
package safetar

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// ErrUnsafe marks an entry refused for safety (its path, type or link target).
var ErrUnsafe = errors.New("unsafe archive entry")

// ErrTooLarge marks an archive over its size or entry limit.
var ErrTooLarge = errors.New("archive over the size limit")

// Options bounds an extraction. The zero value allows 100 MiB and 100,000 entries.
type Options struct {
	// MaxSize bounds the total bytes of regular-file content. 0 means 100 MiB.
	MaxSize int64
	// MaxEntries bounds the number of entries. 0 means 100,000.
	MaxEntries int
}

func (o Options) maxSize() int64 {
	if o.MaxSize <= 0 {
		return 100 << 20
	}
	return o.MaxSize
}

func (o Options) maxEntries() int {
	if o.MaxEntries <= 0 {
		return 100_000
	}
	return o.MaxEntries
}

// EntryError names the archive entry that was refused.
type EntryError struct {
	Name string
	Err  error
}

func (e *EntryError) Error() string { return fmt.Sprintf("archive entry %q: %v", e.Name, e.Err) }
func (e *EntryError) Unwrap() error { return e.Err }

// CleanName checks an entry name and returns it as a clean relative slash
// path. It refuses absolute paths, ".." components and empty names.
func CleanName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty name", ErrUnsafe)
	}
	if strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`) || (len(name) > 1 && name[1] == ':') {
		return "", fmt.Errorf("%w: absolute path", ErrUnsafe)
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: NUL byte in name", ErrUnsafe)
	}
	for _, part := range strings.Split(strings.ReplaceAll(name, `\`, "/"), "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: path escapes the destination with ..", ErrUnsafe)
		}
	}
	clean := path.Clean(name)
	if clean == "." {
		return ".", nil
	}
	return clean, nil
}

// checkLinkTarget refuses a symlink at entry name whose target could lead
// outside the root. A lexical check alone is fooled by link chains: with
// "a -> .", the target "a/../secret" reads as "secret" but the kernel climbs
// from the root itself; "d -> sub/..", then "x -> d/../etc" does the same.
//
// The rule: ".." may only lead a target ("../../base/x"), never follow a
// name ("a/../x"). Leading ".." components climb from the link's own
// directory, which is a real directory (no entry is written below a symlink,
// see checkNoLinkParents, and a directory is never replaced), and the
// lexical check bounds how far they climb. After that the target only goes
// down, and going down from inside the root stays inside: each step is a
// real child or a symlink that by the same rule resolves inside. This holds
// whatever order the entries come in and whatever links are written later,
// which following the links already written would not ("x -> d/../etc"
// first, "d -> ." after), and it needs no state. A ".." after a name is
// never needed: write the target without it.
func checkLinkTarget(name, target string) error {
	if target == "" || path.IsAbs(target) || strings.HasPrefix(target, `\`) || strings.ContainsRune(target, 0) {
		return fmt.Errorf("%w: symlink to %q points outside the destination", ErrUnsafe, target)
	}
	named := false
	for _, part := range strings.Split(target, "/") {
		switch part {
		case "", ".":
		case "..":
			if named {
				return fmt.Errorf("%w: symlink to %q has .. after a path component, which a link chain can turn outside the destination: write the target without it", ErrUnsafe, target)
			}
		default:
			named = true
		}
	}
	if !linkStaysInside(name, target) {
		return fmt.Errorf("%w: symlink to %q points outside the destination", ErrUnsafe, target)
	}
	return nil
}

// linkStaysInside reports whether a symlink at entry name with target stays
// inside the root, judged lexically.
func linkStaysInside(name, target string) bool {
	if target == "" || path.IsAbs(target) || strings.HasPrefix(target, `\`) {
		return false
	}
	joined := path.Join(path.Dir(name), target)
	return joined != ".." && !strings.HasPrefix(joined, "../")
}

// Extract reads a tar stream into dir, which must exist. Regular files,
// directories and symlinks that stay inside dir are written; hard links,
// devices, FIFOs and anything that escapes dir are refused with an error
// naming the entry. On error, dir may hold a partial tree: extract into a
// staging directory and discard it on failure.
func Extract(r io.Reader, dir string, opts Options) (err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()

	tr := tar.NewReader(r)
	remaining := opts.maxSize()
	entries := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		entries++
		if entries > opts.maxEntries() {
			return &EntryError{Name: hdr.Name, Err: fmt.Errorf("%w: more than %d entries", ErrTooLarge, opts.maxEntries())}
		}
		name, err := CleanName(hdr.Name)
		if err != nil {
			return &EntryError{Name: hdr.Name, Err: err}
		}
		if name == "." {
			continue
		}
		// Never write through a symlink, even one that stays inside: the
		// lexical checks below judge paths as written, so the path must be real.
		if err := checkNoLinkParents(root, name); err != nil {
			return &EntryError{Name: hdr.Name, Err: err}
		}
		if err := mkdirAll(root, path.Dir(name)); err != nil {
			return &EntryError{Name: hdr.Name, Err: err}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := mkdirAll(root, name); err != nil {
				return &EntryError{Name: hdr.Name, Err: err}
			}
		case tar.TypeReg, tar.TypeRegA:
			if hdr.Size < 0 || hdr.Size > remaining {
				return &EntryError{Name: hdr.Name, Err: fmt.Errorf("%w: %d bytes would pass the limit of %d bytes (raise --max-size if the artifact is trusted)", ErrTooLarge, hdr.Size, opts.maxSize())}
			}
			remaining -= hdr.Size
			if err := writeFile(root, name, hdr, tr); err != nil {
				return &EntryError{Name: hdr.Name, Err: err}
			}
		case tar.TypeSymlink:
			if err := checkLinkTarget(name, hdr.Linkname); err != nil {
				return &EntryError{Name: hdr.Name, Err: err}
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return &EntryError{Name: hdr.Name, Err: err}
			}
		case tar.TypeLink:
			return &EntryError{Name: hdr.Name, Err: fmt.Errorf("%w: hard link to %q", ErrUnsafe, hdr.Linkname)}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return &EntryError{Name: hdr.Name, Err: fmt.Errorf("%w: device or FIFO (type %q)", ErrUnsafe, hdr.Typeflag)}
		case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
			// Handled by archive/tar; never reach here as entries.
		default:
			return &EntryError{Name: hdr.Name, Err: fmt.Errorf("%w: unsupported entry type %q", ErrUnsafe, hdr.Typeflag)}
		}
	}
}

// checkNoLinkParents refuses a name whose parent directories include a symlink.
func checkNoLinkParents(root *os.Root, name string) error {
	parts := strings.Split(path.Dir(name), "/")
	for i := range parts {
		if parts[0] == "." {
			break
		}
		prefix := strings.Join(parts[:i+1], "/")
		fi, err := root.Lstat(prefix)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%w: path goes through symlink %q", ErrUnsafe, prefix)
		}
	}
	return nil
}

func mkdirAll(root *os.Root, dir string) error {
	if dir == "." || dir == "" {
		return nil
	}
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return nil
}

func writeFile(root *os.Root, name string, hdr *tar.Header, r io.Reader) error {
	mode := fs.FileMode(0o644)
	if hdr.Mode&0o111 != 0 {
		mode = 0o755
	}
	// O_EXCL: an entry never overwrites an earlier one (or a symlink planted by one).
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, hdr.Size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n != hdr.Size {
		return fmt.Errorf("truncated: %d of %d bytes", n, hdr.Size)
	}
	return nil
}
