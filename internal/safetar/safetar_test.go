package safetar

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/malicious")

// entry is one tar entry of a test archive.
type entry struct {
	name, link string
	typ        byte
	body       string
	size       int64 // header size when it differs from len(body)
}

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if e.size != 0 {
			h.Size = e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
		if e.size != 0 {
			// A header that claims more than follows: the archive ends here.
			return buf.Bytes()
		}
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// maliciousArchives are the hostile inputs every extraction must refuse.
// They are also written to testdata/malicious (with -update) for the fuzz
// corpus and the pull tests.
func maliciousArchives(t testing.TB) map[string][]byte {
	return map[string][]byte{
		"dotdot":          makeTar(t, entry{name: "../x", body: "escape"}),
		"nested-dotdot":   makeTar(t, entry{name: "a/../../x", body: "escape"}),
		"absolute":        makeTar(t, entry{name: "/etc/x", body: "escape"}),
		"symlink-root":    makeTar(t, entry{name: "root", typ: tar.TypeSymlink, link: "/"}),
		"symlink-up":      makeTar(t, entry{name: "a/up", typ: tar.TypeSymlink, link: "../../x"}),
		"symlink-through": makeTar(t, entry{name: "d", typ: tar.TypeSymlink, link: "."}, entry{name: "d/l", typ: tar.TypeSymlink, link: "../x"}),
		"write-via-link":  makeTar(t, entry{name: "l", typ: tar.TypeSymlink, link: "sub"}, entry{name: "sub", typ: tar.TypeDir}, entry{name: "l", body: "overwrite"}),
		"hardlink":        makeTar(t, entry{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}),
		"chardev":         makeTar(t, entry{name: "null", typ: tar.TypeChar}),
		"fifo":            makeTar(t, entry{name: "pipe", typ: tar.TypeFifo}),
		"huge-header":     makeTar(t, entry{name: "bomb", body: "x", size: 10 << 30}),
		// Link chains: each target passes a lexical check, but climbs out
		// through a link written before (or after) it.
		"chain-dot":     makeTar(t, entry{name: "a", typ: tar.TypeSymlink, link: "."}, entry{name: "escape", typ: tar.TypeSymlink, link: "a/../secret"}),
		"chain-dir-up":  makeTar(t, entry{name: "sub", typ: tar.TypeDir}, entry{name: "d", typ: tar.TypeSymlink, link: "sub/.."}, entry{name: "x", typ: tar.TypeSymlink, link: "d/../etc"}),
		"chain-later":   makeTar(t, entry{name: "x", typ: tar.TypeSymlink, link: "d/../etc"}, entry{name: "d", typ: tar.TypeSymlink, link: "."}),
		"chain-in-dir":  makeTar(t, entry{name: "a/b", typ: tar.TypeSymlink, link: "."}, entry{name: "a/c", typ: tar.TypeSymlink, link: "b/../../x"}),
		"chain-dot-mid": makeTar(t, entry{name: "a", typ: tar.TypeSymlink, link: "."}, entry{name: "escape", typ: tar.TypeSymlink, link: "./a/./../secret"}),
	}
}

func TestWriteMaliciousCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/malicious")
	}
	dir := filepath.Join("testdata", "malicious")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range maliciousArchives(t) {
		if err := os.WriteFile(filepath.Join(dir, name+".tar"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExtractRefusesMalicious(t *testing.T) {
	want := map[string]string{
		"dotdot":          "escapes the destination",
		"nested-dotdot":   "escapes the destination",
		"absolute":        "absolute path",
		"symlink-root":    "points outside",
		"symlink-up":      "points outside",
		"symlink-through": "through symlink",
		"write-via-link":  "file exists",
		"hardlink":        "hard link",
		"chardev":         "device",
		"fifo":            "device or FIFO",
		"huge-header":     "limit",
		"chain-dot":       "after a path component",
		"chain-dir-up":    "after a path component",
		"chain-later":     "after a path component",
		"chain-in-dir":    "after a path component",
		"chain-dot-mid":   "after a path component",
	}
	archives := maliciousArchives(t)
	if len(archives) != len(want) {
		t.Fatalf("every malicious archive needs an expectation")
	}
	for name, b := range archives {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "out")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			err := Extract(bytes.NewReader(b), dir, Options{})
			if err == nil {
				t.Fatalf("extract %s: no error", name)
			}
			var ee *EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("error %v does not name the entry", err)
			}
			if !strings.Contains(err.Error(), want[name]) {
				t.Errorf("error %q, want it to mention %q", err, want[name])
			}
			assertNothingOutside(t, parent, dir)
			assertLinksInside(t, dir)
		})
	}
}

// assertNothingOutside checks that parent holds only dir.
func assertNothingOutside(t *testing.T, parent, dir string) {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(dir) {
		t.Fatalf("extraction wrote outside its directory: %v", entries)
	}
}

func TestExtractGoodArchive(t *testing.T) {
	b := makeTar(t,
		entry{name: "dir/", typ: tar.TypeDir},
		entry{name: "dir/a.yaml", body: "a: 1\n"},
		entry{name: "./b.yaml", body: "b: 2\n"},
		entry{name: "dir/link", typ: tar.TypeSymlink, link: "a.yaml"},
	)
	dir := t.TempDir()
	if err := Extract(bytes.NewReader(b), dir, Options{}); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		got = append(got, rel)
		return err
	})
	sort.Strings(got)
	if strings.Join(got, ",") != ".,b.yaml,dir,dir/a.yaml,dir/link" {
		t.Fatalf("extracted %v", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "dir/link")); string(b) != "a: 1\n" {
		t.Fatalf("link reads %q", b)
	}
}

func TestExtractSizeLimit(t *testing.T) {
	b := makeTar(t, entry{name: "a", body: strings.Repeat("x", 600)}, entry{name: "b", body: strings.Repeat("y", 600)})
	err := Extract(bytes.NewReader(b), t.TempDir(), Options{MaxSize: 1000})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("got %v, want ErrTooLarge naming entry b", err)
	}
	if err := Extract(bytes.NewReader(b), t.TempDir(), Options{MaxSize: 1200}); err != nil {
		t.Fatalf("within the limit: %v", err)
	}
}

func TestExtractEntryLimit(t *testing.T) {
	b := makeTar(t, entry{name: "a", body: "1"}, entry{name: "b", body: "2"}, entry{name: "c", body: "3"})
	if err := Extract(bytes.NewReader(b), t.TempDir(), Options{MaxEntries: 2}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

func TestExtractDuplicateEntryRefused(t *testing.T) {
	b := makeTar(t, entry{name: "a", body: "1"}, entry{name: "a", body: "2"})
	if err := Extract(bytes.NewReader(b), t.TempDir(), Options{}); err == nil {
		t.Fatal("a second entry overwrote the first")
	}
}

func FuzzExtract(f *testing.F) {
	for _, b := range maliciousArchives(f) {
		f.Add(b)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "malicious", "*.tar"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "out")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = Extract(bytes.NewReader(b), dir, Options{MaxSize: 1 << 20, MaxEntries: 1000})
		assertNothingOutside(t, parent, dir)
		assertLinksInside(t, dir)
	})
}

// assertLinksInside resolves every symlink under dir as the kernel would,
// following the links the archive wrote, and fails if one leads outside.
func assertLinksInside(t *testing.T, dir string) {
	t.Helper()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Type()&os.ModeSymlink == 0 {
			return nil
		}
		budget := 40
		got, ok := resolveLink(p, &budget)
		rel, _ := filepath.Rel(dir, p)
		if !ok {
			return nil // a loop: the kernel refuses it too (ELOOP)
		}
		if got != dir && !strings.HasPrefix(got, dir+string(filepath.Separator)) {
			target, _ := os.Readlink(p)
			t.Fatalf("symlink %s -> %s resolves to %s, outside %s", rel, target, got, dir)
		}
		return nil
	})
}

// resolveLink resolves the absolute path p component by component, following
// symlinks that exist and treating missing components as plain names (a
// later entry could still create them). ok is false once budget links
// have been followed, as the kernel gives up after 40 (ELOOP).
func resolveLink(p string, budget *int) (string, bool) {
	cur := string(filepath.Separator)
	for _, part := range strings.Split(filepath.ToSlash(p), "/") {
		switch part {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(next)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if *budget--; *budget < 0 {
			return "", false
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", false
		}
		if !filepath.IsAbs(target) {
			target = cur + string(filepath.Separator) + target
		}
		var ok bool
		if cur, ok = resolveLink(target, budget); !ok {
			return "", false
		}
	}
	return cur, true
}
