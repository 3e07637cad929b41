// Command airlock-chart-render renders one Helm chart with Helm's template
// engine for airlock-controller, which does not link the engine (it would
// cost the controller about 13 MB of binary, and so of resident memory)
// and which kills this process when the render's time is up. It reads
// the request on stdin and writes the answer on stdout, as JSON
// (package build/renderproc), and runs only with an empty environment.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"airlock.dev/airlock/build/helmrender"
	"airlock.dev/airlock/build/renderproc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Environ(), os.Stdin, os.Stdout); err != nil {
		stop()
		fmt.Fprintln(os.Stderr, renderproc.DefaultName+":", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, environ []string, stdin io.Reader, stdout io.Writer) error {
	return renderproc.Serve(ctx, helmrender.Engine{}, environ, stdin, stdout)
}
