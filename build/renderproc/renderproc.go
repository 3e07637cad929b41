// Package renderproc renders Helm charts in a separate process,
// airlock-chart-render: Process is the build.ChartRenderer of the
// controller, and Serve is the process's side. Neither links Helm's
// template engine: the process brings its own renderer to Serve.
//
// One request and one answer per process, as JSON: the request on the
// process's stdin, the answer on its stdout. The process starts with an
// empty environment, and is killed when the build's context ends (its
// timeout), which a render in the controller's own process could not be.
package renderproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"strings"
	"time"

	"airlock.dev/airlock/build"
)

// DefaultName is the renderer's executable, which the controller looks
// for next to its own.
const DefaultName = "airlock-chart-render"

// answer is the process's one answer: Render, or Error and its Hint.
type answer struct {
	Render *build.ChartRender `json:",omitempty"`
	Error  string             `json:",omitempty"`
	Hint   string             `json:",omitempty"`
}

// Process renders each chart in a new process of the executable Path.
type Process struct {
	// Path is the airlock-chart-render executable. "" is an error.
	Path string
	// MaxAnswerBytes bounds what is read of the process's answer; a
	// longer one is refused and the process killed. 0 means three times
	// the request's MaxBytes plus 1 MiB (the answer holds the rendered
	// templates, at most MaxBytes, and the CRD files, JSON-encoded).
	MaxAnswerBytes int64
}

var _ build.ChartRenderer = Process{}

// maxStderr bounds what is kept of the process's stderr.
const maxStderr = 4 << 10

const installHint = "install " + DefaultName + " next to airlock-controller (the controller's image has it at /" + DefaultName + "), or give its path with --chart-renderer"

// RenderChart runs the process with req on its stdin, with an empty
// environment, and kills it when ctx ends.
func (p Process) RenderChart(ctx context.Context, req *build.ChartRequest) (*build.ChartRender, error) {
	if p.Path == "" {
		return nil, build.WithHint(errors.New("no chart renderer executable is set"), installHint)
	}
	in, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode the chart for %s: %w", p.Path, err)
	}
	limit := p.MaxAnswerBytes
	if limit <= 0 {
		limit = 3*req.MaxBytes + 1<<20
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := p.command(ctx)
	cmd.Stdin = bytes.NewReader(in)
	stderr := &headBuffer{max: maxStderr}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, exec.ErrNotFound) {
			return nil, build.WithHint(fmt.Errorf("the chart renderer %s does not exist", p.Path), installHint)
		}
		return nil, build.WithHint(fmt.Errorf("start the chart renderer %s: %w", p.Path, err), installHint)
	}
	out, rerr := io.ReadAll(io.LimitReader(stdout, limit+1))
	if int64(len(out)) > limit {
		cancel() // kills the process
		_ = cmd.Wait()
		return nil, fmt.Errorf("the chart renderer's answer is over %d bytes, so the rendered chart is too large: render fewer objects, or raise --build-max-total-bytes", limit)
	}
	werr := cmd.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("render stopped, its process killed: %w", err)
	}
	if werr == nil {
		werr = rerr
	}
	if werr != nil {
		return nil, build.WithHint(fmt.Errorf("the chart renderer %s failed (%v)%s", p.Path, werr, stderr.fatal()),
			"raise the controller's memory limit if it ran out of memory; else report it with the chart")
	}
	var a answer
	if err := json.Unmarshal(out, &a); err != nil {
		return nil, fmt.Errorf("the chart renderer %s answered something that is not its JSON answer (%d bytes): check that it is the same version as the controller", p.Path, len(out))
	}
	if a.Error != "" {
		err := errors.New(a.Error)
		if a.Hint != "" {
			err = build.WithHint(err, a.Hint)
		}
		return nil, err
	}
	if a.Render == nil {
		return nil, fmt.Errorf("the chart renderer %s answered neither a render nor an error: check that it is the same version as the controller", p.Path)
	}
	return a.Render, nil
}

// command is the process, with an empty environment: nothing of the
// controller's (credentials included) reaches the chart's templates.
func (p Process) command(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.Path)
	cmd.Env = []string{}
	cmd.WaitDelay = 5 * time.Second // after a kill, do not wait on the pipes for long
	return cmd
}

// headBuffer keeps the first max bytes written to it.
type headBuffer struct {
	max int
	buf bytes.Buffer
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - h.buf.Len(); room > 0 {
		h.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// fatal is the Go runtime's own first line of the process's stderr
// ("fatal error: ...", "runtime: out of memory..."), which quotes nothing
// of the chart; any other output is only counted, as it may quote values.
func (h *headBuffer) fatal() string {
	if h.buf.Len() == 0 {
		return ""
	}
	line, _, _ := strings.Cut(h.buf.String(), "\n")
	if strings.HasPrefix(line, "fatal error: ") || strings.HasPrefix(line, "runtime: ") {
		return ": " + line
	}
	return fmt.Sprintf(" (%d bytes on stderr, not shown: they may quote values)", h.buf.Len())
}

// Serve reads one request from in, renders it with r, and writes the
// answer to out: airlock-chart-render's main. It refuses to run with a
// non-empty environment (environ), which Process never gives it. Its error
// is for an answer it cannot write or a request it cannot read; a render's
// failure is the answer.
func Serve(ctx context.Context, r build.ChartRenderer, environ []string, in io.Reader, out io.Writer) error {
	if len(environ) > 0 {
		return fmt.Errorf("%s runs with an empty environment, as airlock-controller starts it, so that no variable of the controller reaches a chart (got %d variables): run it with `env -i`", DefaultName, len(environ))
	}
	dec := json.NewDecoder(in)
	dec.UseNumber() // values keep their numbers as written, as build.ChartValues reads them
	var req build.ChartRequest
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("read the request on stdin: %w", err)
	}
	var a answer
	func() {
		defer func() {
			if p := recover(); p != nil {
				a = answer{Error: fmt.Sprintf("render failed: %v", p)}
			}
		}()
		render, err := r.RenderChart(ctx, &req)
		if err != nil {
			a = answer{Error: err.Error(), Hint: build.HintOf(err)}
			return
		}
		a.Render = render
	}()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	return enc.Encode(a)
}
