package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// passwordEnv holds the private key's password, as for the cosign CLI.
const passwordEnv = "COSIGN_PASSWORD"

// maxPasswordSize bounds a password piped on standard input.
const maxPasswordSize = 64 << 10

// readPassword returns the private key password the way the cosign CLI finds
// it: $COSIGN_PASSWORD when set (even empty); else a prompt on stderr when
// stdin is a terminal, asked twice when confirm is set (for a new key); else
// everything piped on stdin, unchanged (a trailing newline is part of the
// password, as in cosign). A nil stdin means an empty password.
func readPassword(stdin io.Reader, stderr io.Writer, confirm bool) ([]byte, error) {
	if pw, ok := os.LookupEnv(passwordEnv); ok {
		return []byte(pw), nil
	}
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return promptPassword(int(f.Fd()), stderr, confirm)
	}
	if stdin == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(stdin, maxPasswordSize+1))
	if err != nil {
		return nil, fmt.Errorf("read password from standard input: %w", err)
	}
	if len(b) > maxPasswordSize {
		return nil, fmt.Errorf("password on standard input is over %d bytes: set %s instead", maxPasswordSize, passwordEnv)
	}
	return b, nil
}

func promptPassword(fd int, stderr io.Writer, confirm bool) ([]byte, error) {
	fmt.Fprint(stderr, "Enter password for private key: ")
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, fmt.Errorf("read password from terminal: %w", err)
	}
	if !confirm {
		return pw, nil
	}
	fmt.Fprint(stderr, "Enter password for private key again: ")
	again, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, fmt.Errorf("read password from terminal: %w", err)
	}
	if !bytes.Equal(pw, again) {
		return nil, fmt.Errorf("passwords do not match: run the command again")
	}
	return pw, nil
}
