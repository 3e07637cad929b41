package progress

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

func TestNoProgressOffTerminal(t *testing.T) {
	src := strings.NewReader(strings.Repeat("x", MinSize*2))
	var log bytes.Buffer
	if r := Reader(src, &log, "pushing", MinSize*2); r != io.Reader(src) {
		t.Fatal("a buffer is not a terminal: the reader must be returned unwrapped")
	}
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if Enabled(f) {
		t.Fatal("a regular file is not a terminal")
	}
	if r := Reader(src, f, "pushing", 10); r != io.Reader(src) {
		t.Fatal("small transfers get no progress line")
	}
}

func TestProgressLine(t *testing.T) {
	var out bytes.Buffer
	p := &reader{r: strings.NewReader(strings.Repeat("x", 8<<20)), out: &out, label: "pushing", total: 8 << 20}
	if _, err := io.Copy(io.Discard, p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "pushing 8.0/8.0 MiB (100%)") || !strings.HasSuffix(out.String(), "\n") {
		t.Fatalf("progress output %q", out.String())
	}
}
