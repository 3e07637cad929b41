package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/internal/registry"
)

func newRegistryServeCmd() *cobra.Command {
	var addr string
	var opts registry.Options
	cmd := &cobra.Command{
		Use:   "serve --addr 127.0.0.1:5000 --storage DIR",
		Short: "Serve a real OCI registry (distribution) with filesystem storage",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.StorageDir == "" {
				return fmt.Errorf("registry serve: --storage DIR is required (where blobs and manifests are kept)")
			}
			if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
				return fmt.Errorf("registry serve: --tls-cert and --tls-key go together")
			}
			if err := os.MkdirAll(opts.StorageDir, 0o755); err != nil {
				return fmt.Errorf("registry serve: %w", err)
			}
			opts.LogOutput = cmd.ErrOrStderr()
			s, err := registry.Start(cmd.Context(), addr, opts)
			if err != nil {
				return fmt.Errorf("registry serve: %w", err)
			}
			scheme := "http"
			if opts.TLSCertFile != "" {
				scheme = "https"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "registry serving %s://%s from %s\n", scheme, s.Addr, opts.StorageDir)
			select {
			case <-cmd.Context().Done():
				return s.Close()
			case err := <-waitErr(s):
				return err
			}
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&addr, "addr", "127.0.0.1:5000", "address to listen on")
	fs.StringVar(&opts.StorageDir, "storage", "", "directory for the registry's storage (required)")
	fs.StringVar(&opts.TLSCertFile, "tls-cert", "", "PEM certificate to serve HTTPS")
	fs.StringVar(&opts.TLSKeyFile, "tls-key", "", "PEM private key for --tls-cert")
	fs.StringVar(&opts.HtpasswdFile, "htpasswd", "", "bcrypt htpasswd file: require basic auth")
	return cmd
}

func waitErr(s *registry.Server) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- s.Wait() }()
	return ch
}
