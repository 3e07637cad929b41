package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"airlock.dev/airlock/artifact"
)

// credsEnv holds registry credentials when no --creds is given. Only the
// CLI reads it: they are bound to the registry of the command's reference.
const credsEnv = "AIRLOCK_REGISTRY_CREDS"

// remoteFlags are the registry flags every command that talks to a registry takes.
type remoteFlags struct {
	creds    string
	insecure bool
	caFile   string
}

func (f *remoteFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.creds, "creds", "", "credentials as user:password for the registry of the command's reference, never sent to another host (default: $"+credsEnv+", then docker's config.json and credential helpers)")
	fs.BoolVar(&f.insecure, "insecure-registry", false, "talk plain HTTP to the registry (no TLS); only for a registry on a trusted network")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM file of CA certificates to trust for the registry's TLS certificate")
}

// options are the registry options of the flags: --creds, else
// $AIRLOCK_REGISTRY_CREDS, for the registry of the reference the command's
// operation is given (the library binds them to it: RemoteOptions.For).
func (f *remoteFlags) options() artifact.RemoteOptions {
	creds := f.creds
	if creds == "" {
		creds = os.Getenv(credsEnv)
	}
	return artifact.RemoteOptions{Creds: creds, PlainHTTPInsecure: f.insecure, CAFile: f.caFile}
}

// client builds one registry client for a command that makes several calls
// on ref, with the credentials bound to ref's registry.
func (f *remoteFlags) client(ref artifact.Reference) (*artifact.Client, error) {
	return artifact.NewClient(f.options().For(ref))
}

// outputFlag is -o/--output with the formats a command supports.
type outputFlag struct {
	format  string
	allowed []string
}

func (o *outputFlag) register(fs *pflag.FlagSet, allowed ...string) {
	o.allowed = allowed
	fs.StringVarP(&o.format, "output", "o", "", "output format: "+strings.Join(allowed, "|")+" (default: human-readable text)")
}

func (o *outputFlag) validate() error {
	if o.format == "" {
		return nil
	}
	for _, a := range o.allowed {
		if o.format == a {
			return nil
		}
	}
	return fmt.Errorf("--output %q: want one of %s", o.format, strings.Join(o.allowed, ", "))
}

// print writes v as JSON or YAML; it returns false for the text format, which
// the caller prints itself.
func (o *outputFlag) print(w io.Writer, v any) (bool, error) {
	switch o.format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return true, enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return true, err
		}
		_, err = w.Write(b)
		return true, err
	}
	return false, nil
}

// parseAnnotations turns repeated key=value flags into a map.
func parseAnnotations(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("annotation %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

// progressOut is where transfers draw their progress line: stderr, which
// gets one only when it is a terminal, and nowhere when $CI is set (CI logs
// are no place for redrawn lines).
func progressOut(cmd *cobra.Command) io.Writer {
	if os.Getenv("CI") != "" {
		return nil
	}
	return cmd.ErrOrStderr()
}
