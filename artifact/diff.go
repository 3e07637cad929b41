package artifact

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"airlock.dev/airlock/internal/safetar"
)

// DiffResult lists how a local tree differs from an artifact: Added files
// are only local, Removed only in the artifact, Changed in both with
// different content or mode.
type DiffResult struct {
	Digest  string   `json:"digest"`
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Changed []string `json:"changed"`
}

// Equal reports whether the trees hold the same files.
func (d *DiffResult) Equal() bool {
	return len(d.Added)+len(d.Removed)+len(d.Changed) == 0
}

type fileSum struct {
	sum  [sha256.Size]byte
	exec bool
}

// Diff compares the artifact at ref with the local path, file by file,
// streaming the layer without extracting it.
func Diff(ctx context.Context, ref Reference, path string, pack PackOptions, opts PullOptions) (*DiffResult, error) {
	files, _, err := walkTree(path, pack)
	if err != nil && !errors.Is(err, ErrEmpty) {
		return nil, err
	}
	local := map[string]fileSum{}
	for _, f := range files {
		if f.dir {
			continue
		}
		s, err := hashFile(f)
		if err != nil {
			return nil, err
		}
		local[f.rel] = s
	}

	c, err := NewClient(opts.Remote.For(ref))
	if err != nil {
		return nil, err
	}
	ref, _, _, rc, verify, err := c.openLayer(ctx, ref, opts)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	gz, err := gzip.NewReader(rc)
	if err != nil {
		return nil, fmt.Errorf("diff %s: layer is not gzip: %v", ref, err)
	}
	remote := map[string]fileSum{}
	tr := tar.NewReader(gz)
	budget := opts.maxSize()
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("diff %s: read layer: %w", ref, err)
		}
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA {
			continue
		}
		name, err := safetar.CleanName(hdr.Name)
		if err != nil {
			return nil, fmt.Errorf("diff %s: %w", ref, &safetar.EntryError{Name: hdr.Name, Err: err})
		}
		if hdr.Size > budget {
			return nil, fmt.Errorf("diff %s: entry %q: %w", ref, hdr.Name, safetar.ErrTooLarge)
		}
		budget -= hdr.Size
		h := sha256.New()
		if _, err := io.Copy(h, tr); err != nil {
			return nil, fmt.Errorf("diff %s: read %s: %w", ref, hdr.Name, err)
		}
		var s fileSum
		copy(s.sum[:], h.Sum(nil))
		s.exec = hdr.Mode&0o111 != 0
		remote[name] = s
	}
	if err := verify(); err != nil {
		return nil, err
	}

	res := &DiffResult{Digest: ref.Digest, Added: []string{}, Removed: []string{}, Changed: []string{}}
	for name, l := range local {
		r, ok := remote[name]
		switch {
		case !ok:
			res.Added = append(res.Added, name)
		case r != l:
			res.Changed = append(res.Changed, name)
		}
	}
	for name := range remote {
		if _, ok := local[name]; !ok {
			res.Removed = append(res.Removed, name)
		}
	}
	sort.Strings(res.Added)
	sort.Strings(res.Removed)
	sort.Strings(res.Changed)
	return res, nil
}

func hashFile(f localFile) (fileSum, error) {
	in, err := os.Open(f.abs)
	if err != nil {
		return fileSum{}, err
	}
	defer in.Close()
	h := sha256.New()
	if _, err := io.Copy(h, in); err != nil {
		return fileSum{}, fmt.Errorf("read %s: %w", f.rel, err)
	}
	var s fileSum
	copy(s.sum[:], h.Sum(nil))
	s.exec = f.exec
	return s, nil
}

// String renders the differences as lines "+ added", "- removed", "~ changed".
func (d *DiffResult) String() string {
	var b strings.Builder
	for _, n := range d.Added {
		fmt.Fprintf(&b, "+ %s\n", n)
	}
	for _, n := range d.Removed {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	for _, n := range d.Changed {
		fmt.Fprintf(&b, "~ %s\n", n)
	}
	return b.String()
}
