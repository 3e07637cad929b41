package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/receiver"
)

type pushOptions struct {
	remote      remoteFlags
	output      outputFlag
	path        string
	source      string
	revision    string
	annotations []string
	ignorePaths []string
	created     string
	signKey     string
	notify      notifyFlags
}

func newPushArtifactCmd() *cobra.Command {
	o := &pushOptions{}
	cmd := &cobra.Command{
		Use:   "artifact oci://HOST/REPO:TAG --path=DIR --source=URL --revision=BRANCH@sha1:COMMIT",
		Short: "Pack a directory or file as a reproducible OCI artifact and push it",
		Example: `  airlock push artifact oci://registry.example.com/team/app:v1 --path=./deploy \
    --source="$(git config --get remote.origin.url)" \
    --revision="$(git branch --show-current)@sha1:$(git rev-parse HEAD)"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
	fs := cmd.Flags()
	fs.StringVar(&o.path, "path", "", "directory or file to pack (required)")
	fs.StringVar(&o.source, "source", "", "source URL, recorded as org.opencontainers.image.source (required)")
	fs.StringVar(&o.revision, "revision", "", "source revision as BRANCH@sha1:COMMIT, recorded as org.opencontainers.image.revision (required)")
	fs.StringArrayVarP(&o.annotations, "annotations", "a", nil, "extra manifest annotation key=value (repeatable)")
	fs.StringSliceVar(&o.ignorePaths, "ignore-paths", nil, "gitignore patterns to leave out, comma-separated (.git/ and .sourceignore are always honoured)")
	fs.StringVar(&o.created, "created", "", "creation time (RFC 3339) recorded in the artifact (default: $SOURCE_DATE_EPOCH, else the Unix epoch, for reproducible digests)")
	fs.StringVar(&o.signKey, "sign-key", "", "cosign private key file: sign the pushed digest (password from $COSIGN_PASSWORD or a prompt)")
	o.notify.register(fs, "after the push (and signature), send the generic HMAC-signed notification of the new tag and digest to this URL; a failed notification exits 3, the artifact stays pushed")
	o.remote.register(fs)
	o.output.register(fs, "json", "yaml")
	return cmd
}

func (o *pushOptions) run(cmd *cobra.Command, arg string) error {
	if err := o.output.validate(); err != nil {
		return err
	}
	ref, err := artifact.ParseReference(arg)
	if err != nil {
		return err
	}
	for flag, v := range map[string]string{"--path": o.path, "--source": o.source, "--revision": o.revision} {
		if v == "" {
			return fmt.Errorf("push %s: %s is required", ref, flag)
		}
	}
	annotations, err := parseAnnotations(o.annotations)
	if err != nil {
		return err
	}
	created, err := createdTime(o.created)
	if err != nil {
		return err
	}
	signer, err := loadSigner(cmd, o.signKey)
	if err != nil {
		return err
	}
	notifyKey, err := o.notify.secret()
	if err != nil {
		return err
	}
	client, err := o.remote.client(ref)
	if err != nil {
		return err
	}
	defer client.Close()
	res, err := client.Push(cmd.Context(), ref, o.path, artifact.PushOptions{
		Pack:        artifact.PackOptions{IgnorePaths: o.ignorePaths},
		Source:      o.source,
		Revision:    o.revision,
		Annotations: annotations,
		Created:     created,
		Progress:    progressOut(cmd),
	})
	if err != nil {
		return err
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(cmd.ErrOrStderr(), "skipped %s: not a regular file or directory\n", s)
	}
	out := pushOutput{PushResult: res}
	if signer != nil {
		sig, err := signer.sign(cmd, client, res.Ref)
		if err != nil {
			return fmt.Errorf("pushed %s, but signing failed: %w", res.URL, err)
		}
		out.Signature = sig
	}
	if ok, err := o.output.print(cmd.OutOrStdout(), out); ok {
		if err != nil {
			return err
		}
	} else {
		fmt.Fprintln(cmd.OutOrStdout(), res.URL)
		if out.Signature != "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "signed %s: signature %s\n", res.Digest, out.Signature)
		}
	}
	if notifyKey == nil {
		return nil
	}
	// The push is done and printed: a failed notification does not undo
	// it. It exits 3, so that a CI job sees a receiver it cannot reach,
	// and can accept the interval instead (|| [ $? -eq 3 ]).
	g := receiver.Generic{Event: receiver.EventPush, Repository: res.Ref.Name(), Tag: res.Ref.Tag, Digest: res.Digest}
	if err := receiver.Send(cmd.Context(), o.notify.url, notifyKey, g, receiver.SendOptions{}); err != nil {
		return &exitError{code: 3, err: fmt.Errorf("pushed %s, but the notification failed (the Release picks it up at its interval): %w", res.URL, err)}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "notified %s of %s\n", receiver.RedactURL(o.notify.url), res.URL)
	return nil
}

type pushOutput struct {
	*artifact.PushResult
	Signature string `json:"signature,omitempty"`
}

// createdTime is --created, else $SOURCE_DATE_EPOCH, else zero (the epoch).
func createdTime(flag string) (time.Time, error) {
	if flag != "" {
		t, err := time.Parse(time.RFC3339, flag)
		if err != nil {
			return t, fmt.Errorf("--created %q: want RFC 3339, for example 2024-01-02T15:04:05Z", flag)
		}
		return t, nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since the Unix epoch", s)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Time{}, nil
}
