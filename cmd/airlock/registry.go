package main

import (
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/receiver"
)

func newRegistryServeCmd() *cobra.Command {
	var addr string
	var opts registry.Options
	var notify notifyFlags
	cmd := &cobra.Command{
		Use:   "serve --addr 127.0.0.1:5000 --storage DIR",
		Short: "Serve a real OCI registry (distribution) with filesystem storage",
		Long: `Serve a real OCI registry (distribution) with filesystem storage.

GET /v2/_catalog lists the repositories (pages of up to 1000, n and last,
Link header). GET /healthz answers 200 "ok" while the storage can be read and
written, without credentials. The server holds DIR/` + registry.LockFileName + `
while it runs, so ` + "`airlock registry gc`" + ` cannot run under it.

--notify URL sends distribution's notification envelope of every manifest
push and delete to an airlock Receiver of type distribution, with
Authorization: Bearer and the token of --notify-secret FILE (or
$` + notifySecretEnv + `). Events wait in memory until the Receiver accepts
them; a restart of the registry loses those not yet sent.`,
		Args: cobra.NoArgs,
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
			token, err := notify.secret()
			if err != nil {
				return fmt.Errorf("registry serve: %w", err)
			}
			if token != nil {
				opts.Notify = []registry.NotifyEndpoint{{URL: notify.url, Headers: http.Header{"Authorization": {"Bearer " + string(token)}}}}
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
			if token != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "notifying %s of every manifest push and delete\n", receiver.RedactURL(notify.url))
			}
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
	notify.register(fs, "send distribution's notification envelope of every manifest push and delete to this URL, with Authorization: Bearer and the token")
	return cmd
}

func waitErr(s *registry.Server) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- s.Wait() }()
	return ch
}

func newRegistryGCCmd() *cobra.Command {
	var dir string
	var opts registry.GCOptions
	cmd := &cobra.Command{
		Use:   "gc --storage DIR [--dry-run] [--delete-untagged]",
		Short: "Delete unreferenced blobs from a stopped registry's storage",
		Long: `Delete the blobs no manifest references from the storage of
` + "`airlock registry serve`" + `, with distribution's own garbage collector.

Stop the registry first: the collector is not safe alongside pushes. gc takes
DIR/` + registry.LockFileName + ` and refuses to run while a registry serves DIR.
--delete-untagged also deletes manifests no tag points to (an artifact whose
tag was pushed over) and the blobs only they used; cosign signatures and OCI
1.1 referrers (listed in a tagged index on this registry) stay.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return fmt.Errorf("registry gc: --storage DIR is required (the --storage of registry serve)")
			}
			res, err := registry.GarbageCollect(cmd.Context(), dir, opts)
			if res != nil {
				printGC(cmd.OutOrStdout(), res)
			}
			if err != nil {
				return fmt.Errorf("registry gc: %w", err)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dir, "storage", "", "storage directory of the stopped registry (required)")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "print what would be deleted, delete nothing")
	fs.BoolVar(&opts.DeleteUntagged, "delete-untagged", false, "also delete manifests no tag points to, and their blobs")
	return cmd
}

func printGC(w io.Writer, res *registry.GCResult) {
	verb := "deleted"
	if res.DryRun {
		verb = "would delete"
	}
	for _, m := range res.Manifests {
		fmt.Fprintf(w, "%s manifest %s@%s\n", verb, m.Repository, m.Digest)
	}
	for _, b := range res.Blobs {
		if b.Size < 0 {
			fmt.Fprintf(w, "%s blob %s\n", verb, b.Digest)
			continue
		}
		fmt.Fprintf(w, "%s blob %s (%d bytes)\n", verb, b.Digest, b.Size)
	}
	fmt.Fprintf(w, "%s %d manifests, %d blobs (%d bytes), %d links\n", verb, len(res.Manifests), len(res.Blobs), res.Bytes, res.Links)
}
