package main

import (
	"bytes"
	"fmt"
	"net/url"
	"os"

	"github.com/spf13/pflag"

	"airlock.dev/airlock/receiver"
)

// notifySecretEnv holds a Receiver's token when no --notify-secret is
// given. Only the CLI reads it.
const notifySecretEnv = "AIRLOCK_NOTIFY_SECRET"

// maxNotifySecret bounds the token file.
const maxNotifySecret = 4 << 10

// notifyFlags are --notify and --notify-secret: a Receiver's URL and token.
type notifyFlags struct {
	url        string
	secretFile string
}

func (f *notifyFlags) register(fs *pflag.FlagSet, what string) {
	fs.StringVar(&f.url, "notify", "", what+" (an airlock Receiver's URL: the controller's --receiver-addr and the Receiver's status.webhookPath)")
	fs.StringVar(&f.secretFile, "notify-secret", "", "file holding the Receiver's token (its Secret's key \"token\"); default: $"+notifySecretEnv)
}

// secret checks --notify and returns the token: --notify-secret's file
// without its trailing newline, else $AIRLOCK_NOTIFY_SECRET. nil when
// --notify is not set.
func (f *notifyFlags) secret() ([]byte, error) {
	if f.url == "" {
		if f.secretFile != "" {
			return nil, fmt.Errorf("--notify-secret without --notify: give the Receiver's URL")
		}
		return nil, nil
	}
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--notify: want http(s)://HOST[:PORT]/hook/…, the Receiver's URL")
	}
	var token []byte
	switch {
	case f.secretFile != "":
		fi, err := os.Stat(f.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--notify-secret: %w", err)
		}
		if fi.Size() > maxNotifySecret {
			return nil, fmt.Errorf("--notify-secret %s: %d bytes, more than %d: want the Receiver's token alone", f.secretFile, fi.Size(), maxNotifySecret)
		}
		b, err := os.ReadFile(f.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--notify-secret: %w", err)
		}
		token = bytes.TrimRight(b, "\r\n")
	case os.Getenv(notifySecretEnv) != "":
		token = []byte(os.Getenv(notifySecretEnv))
	default:
		return nil, fmt.Errorf("--notify %s: the Receiver's token is missing: pass --notify-secret FILE or set $%s", receiver.RedactURL(f.url), notifySecretEnv)
	}
	if len(token) < receiver.MinTokenBytes {
		return nil, fmt.Errorf("--notify %s: the token has %d bytes, want %d or more, as the Receiver's Secret holds", receiver.RedactURL(f.url), len(token), receiver.MinTokenBytes)
	}
	return token, nil
}
