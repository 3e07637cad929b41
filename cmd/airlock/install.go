package main

import (
	"bytes"
	"errors"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/config"
)

func newInstallCmd() *cobra.Command {
	var (
		export   bool
		image    string
		receiver bool
	)
	cmd := &cobra.Command{
		Use:   "install --export",
		Short: "Print the install manifests: Namespace, Release CRD, RBAC and the controller Deployment",
		Long: `Print the manifests that 'kubectl apply -k config/default' applies, for
'kubectl apply --server-side -f -' or a GitOps repository.`,
		Example: `  airlock install --export | kubectl apply --server-side -f -
  airlock install --export --image registry.example.com/airlock-controller:v0.1.0 > airlock.yaml
  airlock install --export --receiver | kubectl apply --server-side -f -   # with the receiver endpoint on :9292`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !export {
				return errors.New("install applies nothing itself: run `airlock install --export | kubectl apply --server-side -f -`")
			}
			out := config.Install
			if image != "" {
				out = bytes.ReplaceAll(out, []byte("image: "+config.DefaultImage+"\n"), []byte("image: "+image+"\n"))
			}
			if receiver {
				var err error
				if out, err = config.WithReceiver(out); err != nil {
					return err
				}
			}
			_, err := cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().BoolVar(&export, "export", false, "print the manifests to standard output")
	cmd.Flags().BoolVar(&receiver, "receiver", false, "open the receiver endpoint for Receivers: the controller's --receiver-addr="+config.ReceiverAddr+" and the Service airlock-controller-receiver (as config/receiver does)")
	cmd.Flags().StringVar(&image, "image", "", "controller image (default: "+config.DefaultImage+", as built by hack/image)")
	return cmd
}
