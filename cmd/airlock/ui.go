package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/ui"
)

func newUICmd() *cobra.Command {
	var (
		kube    kubeFlags
		addr    string
		anyAddr bool
		refresh time.Duration
	)
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Serve the read-only web view of the Releases locally, through the kubeconfig",
		Long: `Serve the read-only web view (the Releases, each one's chain from source
commit to signer to digest to applied objects, history, rollbacks, drift
corrections, receipts and events, and the trace of any applied object) on
a loopback address, reading the cluster with the kubeconfig's credentials.
It never writes to the cluster. It prints a link with a one-time token:
the view lets in only a browser that opened that link.`,
		Example: `  airlock ui
  airlock ui -n apps --address 127.0.0.1:9000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkLoopbackAddr(addr, anyAddr); err != nil {
				return err
			}
			c, ac, err := kube.auditClient()
			if err != nil {
				return err
			}
			var raw [24]byte
			if _, err := rand.Read(raw[:]); err != nil {
				return err
			}
			token := hex.EncodeToString(raw[:])
			opts := ui.Options{Client: ac, Token: token, Refresh: refresh}
			if refresh == 0 {
				opts.Refresh = -1
			}
			h, err := ui.New(opts)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("--address %s: %w", addr, err)
			}
			next := "/"
			if cmd.Flags().Changed("namespace") {
				next = "/?namespace=" + c.namespace
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Serving the Releases of %s, read-only, at http://%s/login?token=%s&next=%s (Ctrl-C stops)\n", c.host, ln.Addr(), token, url.QueryEscape(next))
			return ui.Serve(cmd.Context(), ln, h)
		},
	}
	kube.register(cmd.Flags())
	cmd.Flags().StringVar(&addr, "address", "127.0.0.1:8089", "address to serve on; a loopback address unless --address-non-loopback-unsafe")
	cmd.Flags().BoolVar(&anyAddr, "address-non-loopback-unsafe", false, "allow an --address other machines can reach (UNSAFE: anyone with the printed link reads the cluster with your credentials)")
	cmd.Flags().DurationVar(&refresh, "refresh", 30*time.Second, "how often the pages reload themselves; 0 never")
	return cmd
}

// checkLoopbackAddr refuses an address other machines can reach, unless allowed.
func checkLoopbackAddr(addr string, allowAny bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--address %q: %w: want HOST:PORT, for example 127.0.0.1:8089", addr, err)
	}
	if allowAny || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--address %q: the host must be a loopback address (127.0.0.1, ::1 or localhost): the view reads the cluster with your credentials; serve it to others with airlock-controller --ui-addr and a token, or pass --address-non-loopback-unsafe", addr)
}
