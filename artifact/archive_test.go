package artifact_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"airlock.dev/airlock/artifact"
)

// archiveEntry is one entry of a crafted export tarball.
type archiveEntry struct {
	name, body, link string
	typ              byte
	// pax, when set, precedes the entry with a PAX header of these records
	// (such as "size=16"), and ustarSize then overrides the size field of the
	// entry's own header block: what a reader that skips the PAX header sees.
	pax       string
	ustarSize int64
}

func sha(b string) string {
	s := sha256.Sum256([]byte(b))
	return hex.EncodeToString(s[:])
}

func blobEntry(body string) archiveEntry {
	return archiveEntry{name: "blobs/sha256/" + sha(body), body: body}
}

// validExport returns the entries of a minimal export, as airlock export
// writes it, and the hex of its layer.
func validExport(t testing.TB) ([]archiveEntry, string) {
	t.Helper()
	cfg, layer := "{}", "the layer"
	m, err := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: digest.FromString(cfg), Size: int64(len(cfg))},
		Layers: []ocispec.Descriptor{{MediaType: artifact.ContentMediaType, Digest: digest.FromString(layer), Size: int64(len(layer))}}})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m)),
			Annotations: map[string]string{ocispec.AnnotationRefName: "reg.example/team/app:v1", artifact.AnnotationRole: "artifact"}}}})
	if err != nil {
		t.Fatal(err)
	}
	return []archiveEntry{
		{name: "oci-layout", body: `{"imageLayoutVersion":"1.0.0"}`},
		blobEntry(cfg),
		blobEntry(layer),
		blobEntry(string(m)),
		{name: "index.json", body: string(idx)},
		{name: artifact.ImagesLockFile, body: `{"artifact":"oci://reg.example/team/app:v1","images":[]}`},
	}, sha(layer)
}

func writeArchive(t testing.TB, entries []archiveEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// patch rewrites the header block at off and fixes its checksum.
	patch := func(off int, f func(block []byte)) {
		b := buf.Bytes()[off : off+512]
		f(b)
		copy(b[148:156], "        ")
		sum := 0
		for _, c := range b {
			sum += int(c)
		}
		copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	}
	for _, e := range entries {
		if e.pax != "" {
			rec := " " + e.pax + "\n"
			n := len(rec) + 2
			rec = fmt.Sprintf("%d%s", n, rec)
			if err := tw.Flush(); err != nil {
				t.Fatal(err)
			}
			off := buf.Len()
			if err := tw.WriteHeader(&tar.Header{Name: "PaxHeader", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(rec))}); err != nil {
				t.Fatal(err)
			}
			tw.Write([]byte(rec))
			patch(off, func(b []byte) { b[156] = tar.TypeXHeader })
		}
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		// archive/tar will not write a file name with a trailing slash: write
		// it without, then patch the name field.
		rawName := typ == tar.TypeReg && strings.HasSuffix(e.name, "/")
		h := &tar.Header{Name: strings.TrimSuffix(e.name, "/"), Linkname: e.link, Typeflag: typ, Mode: 0o644}
		if !rawName {
			h.Name = e.name
		}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		off := buf.Len()
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
		if e.pax != "" {
			patch(off, func(b []byte) { copy(b[124:136], fmt.Sprintf("%011o\x00", e.ustarSize)) })
		}
		if rawName {
			patch(off, func(b []byte) { copy(b[:100], e.name+string(make([]byte, 100-len(e.name)))) })
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openArchiveBytes(t testing.TB, b []byte) (*artifact.Archive, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "site.tar")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return artifact.OpenArchive(context.Background(), p)
}

// alteredArchives are export tarballs OpenArchive must refuse, each with
// the entry its error must name.
func alteredArchives(t testing.TB) map[string]struct {
	entries []archiveEntry
	entry   string
} {
	t.Helper()
	valid, layer := validExport(t)
	with := func(extra ...archiveEntry) []archiveEntry {
		return append(append([]archiveEntry{}, valid...), extra...)
	}
	evil := "evil content"
	type c = struct {
		entries []archiveEntry
		entry   string
	}
	return map[string]c{
		// The store cleans names, and the last of a name wins: each of these
		// would have it serve evil bytes under the verified layer's digest.
		"dot-slash":      {with(archiveEntry{name: "./blobs/sha256/" + layer, body: evil}), "./blobs/sha256/" + layer},
		"double-slash":   {with(archiveEntry{name: "blobs//sha256/" + layer, body: evil}), "blobs//sha256/" + layer},
		"dotdot":         {with(archiveEntry{name: "blobs/sha256/../sha256/" + layer, body: evil}), "blobs/sha256/../sha256/" + layer},
		"trailing-slash": {with(archiveEntry{name: "blobs/sha256/" + layer + "/", body: evil}), "blobs/sha256/" + layer + "/"},
		"backslash":      {with(archiveEntry{name: `blobs\sha256\` + layer, body: evil}), `blobs\sha256\` + layer},
		"duplicate":      {with(archiveEntry{name: "blobs/sha256/" + layer, body: "the layer"}), "blobs/sha256/" + layer},
		"symlink":        {with(archiveEntry{name: "blobs/sha256/" + sha("x"), typ: tar.TypeSymlink, link: "../../index.json"}), "blobs/sha256/" + sha("x")},
		"hardlink":       {with(archiveEntry{name: "blobs/sha256/" + sha("y"), typ: tar.TypeLink, link: "index.json"}), "blobs/sha256/" + sha("y")},
		"chardev":        {with(archiveEntry{name: "blobs/sha256/" + sha("z"), typ: tar.TypeChar}), "blobs/sha256/" + sha("z")},
		"uppercase-hex":  {with(archiveEntry{name: "blobs/sha256/" + strings.ToUpper(sha(evil)), body: evil}), "blobs/sha256/" + strings.ToUpper(sha(evil))},
		"short-hex":      {with(archiveEntry{name: "blobs/sha256/abc", body: evil}), "blobs/sha256/abc"},
		"sha512":         {with(archiveEntry{name: "blobs/sha512/" + strings.Repeat("ab", 64), body: evil}), "blobs/sha512/" + strings.Repeat("ab", 64)},
		"index-twice":    {with(valid[4]), "index.json"},
		"lock-twice":     {with(valid[5]), artifact.ImagesLockFile},
		"outside":        {with(archiveEntry{name: "README", body: "hi"}), "README"},
		"outside-dir":    {with(archiveEntry{name: "blobs/other/", typ: tar.TypeDir}), "blobs/other/"},
		// A PAX header says 9 bytes, the header block itself 4: readers that
		// honour PAX check "the layer", the store serves "the ".
		// The same trick on index.json: the layout store, which resolves
		// by it, would read another index than the one checked.
		"pax-size-index": {append(append([]archiveEntry{}, valid[:4]...), archiveEntry{name: "index.json", body: valid[4].body, pax: fmt.Sprintf("size=%d", len(valid[4].body)), ustarSize: 2}, valid[5]), "index.json"},
		"pax-size":       {append(append([]archiveEntry{}, valid[:2]...), append([]archiveEntry{{name: "blobs/sha256/" + layer, body: "the layer", pax: "size=9", ustarSize: 4}}, valid[3:]...)...), "blobs/sha256/" + layer},
	}
}

func TestOpenArchiveRefusesAltered(t *testing.T) {
	valid, _ := validExport(t)
	dirs := append([]archiveEntry{{name: "blobs/", typ: tar.TypeDir}, {name: "blobs/sha256", typ: tar.TypeDir}}, valid...)
	for name, entries := range map[string][]archiveEntry{"valid": valid, "with-directories": dirs} {
		a, err := openArchiveBytes(t, writeArchive(t, entries))
		if err != nil {
			t.Errorf("%s export refused: %v", name, err)
			continue
		}
		if _, _, err := a.Artifact(); err != nil {
			t.Errorf("%s export: %v", name, err)
		}
	}
	for name, tc := range alteredArchives(t) {
		t.Run(name, func(t *testing.T) {
			_, err := openArchiveBytes(t, writeArchive(t, tc.entries))
			if err == nil {
				t.Fatal("the altered archive was opened")
			}
			if !errors.Is(err, artifact.ErrArchiveAltered) {
				t.Errorf("got %v, want ErrArchiveAltered", err)
			}
			for _, want := range []string{fmt.Sprintf("%q", tc.entry), "altered", "nothing was pushed"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %s", err, want)
				}
			}
		})
	}
}

// FuzzOpenArchive: OpenArchive never panics, and never opens an archive
// whose store would serve, under a blob's name, content of another digest.
func FuzzOpenArchive(f *testing.F) {
	valid, _ := validExport(f)
	f.Add(writeArchive(f, valid))
	for _, tc := range alteredArchives(f) {
		f.Add(writeArchive(f, tc.entries))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := openArchiveBytes(t, b)
		if err != nil {
			return
		}
		// Every blob name, as the store indexes it (cleaned, the last one
		// winning), must serve content of that digest.
		tr := tar.NewReader(bytes.NewReader(b))
		for {
			hdr, err := tr.Next()
			if err != nil {
				break
			}
			name := path.Clean(hdr.Name)
			alg, enc, ok := strings.Cut(strings.TrimPrefix(name, "blobs/"), "/")
			if !strings.HasPrefix(name, "blobs/") || !ok {
				continue
			}
			d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
			if d.Validate() != nil {
				continue
			}
			rc, err := a.Store.Fetch(context.Background(), ocispec.Descriptor{Digest: d})
			if err != nil {
				continue
			}
			got, err := d.Algorithm().FromReader(rc)
			rc.Close()
			if err == nil && got.Encoded() != enc {
				t.Fatalf("opened an archive whose store serves %s for %s", got, d)
			}
			if _, err := io.Copy(io.Discard, tr); err != nil {
				break
			}
		}
	})
}

// TestArchiveStoreServesExactBlobs: the archive's store serves a blob as
// exactly its entry's bytes, refuses a descriptor of another size (the
// bytes sent would not be the ones checked), and a blob sent as an HTTP
// request body (by sendfile(2), the store's reader being a syscall.Conn)
// arrives whole and alone, nothing of the entries after it.
func TestArchiveStoreServesExactBlobs(t *testing.T) {
	entries, layer := validExport(t)
	a, err := openArchiveBytes(t, writeArchive(t, entries))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	desc := ocispec.Descriptor{MediaType: artifact.ContentMediaType, Digest: digest.Digest("sha256:" + layer), Size: int64(len("the layer"))}

	wrong := desc
	wrong.Size = 4
	if rc, err := a.Store.Fetch(ctx, wrong); !errors.Is(err, artifact.ErrArchiveAltered) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("fetch with size 4 of a 9-byte blob: %v, want ErrArchiveAltered", err)
	}

	rc, err := a.Store.Fetch(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(b) != "the layer" {
		t.Fatalf("read %q, %v; want %q", b, err, "the layer")
	}

	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
	}))
	defer srv.Close()
	rc, err = a.Store.Fetch(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, ok := rc.(syscall.Conn); !ok {
		t.Errorf("the blob reader %T is not a syscall.Conn: net/http cannot send it with sendfile", rc)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, srv.URL, rc)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = desc.Size
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("PUT the blob: %v", err)
	}
	resp.Body.Close()
	if body := <-got; body != "the layer" {
		t.Errorf("the server received %q, want %q", body, "the layer")
	}
}
