// Package progress draws a transfer progress line on a terminal, and nothing
// anywhere else (CI logs, pipes, files).
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// MinSize is the smallest transfer that gets a progress line.
const MinSize = 4 << 20

// Enabled reports whether w is an interactive terminal. (The CLI passes no
// writer at all in CI; this package reads no environment.)
func Enabled(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// Reader wraps r and redraws "label done/total MiB (pct%)" on out, at most
// five times a second. It returns r itself when out is not a terminal or the
// transfer is small.
func Reader(r io.Reader, out io.Writer, label string, total int64) io.Reader {
	if out == nil || total < MinSize || !Enabled(out) {
		return r
	}
	return &reader{r: r, out: out, label: label, total: total}
}

type reader struct {
	r     io.Reader
	out   io.Writer
	label string
	total int64
	done  int64
	last  time.Time
	once  sync.Once
}

func (p *reader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if now := time.Now(); now.Sub(p.last) > 200*time.Millisecond || err != nil {
		p.last = now
		fmt.Fprintf(p.out, "\r%s %.1f/%.1f MiB (%d%%)", p.label, float64(p.done)/(1<<20), float64(p.total)/(1<<20), p.done*100/p.total)
	}
	if err != nil {
		p.once.Do(func() { fmt.Fprintln(p.out) })
	}
	return n, err
}
