package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestReadPassword(t *testing.T) {
	t.Run("env wins", func(t *testing.T) {
		t.Setenv(passwordEnv, "from-env")
		got, err := readPassword(strings.NewReader("from-stdin"), nil, true)
		if err != nil || string(got) != "from-env" {
			t.Fatalf("ReadPassword = %q, %v; want from-env", got, err)
		}
	})
	t.Run("empty env is a password", func(t *testing.T) {
		t.Setenv(passwordEnv, "")
		got, err := readPassword(strings.NewReader("from-stdin"), nil, false)
		if err != nil || len(got) != 0 {
			t.Fatalf("ReadPassword = %q, %v; want empty", got, err)
		}
	})
	t.Run("piped stdin, unchanged", func(t *testing.T) {
		unsetEnv(t, passwordEnv)
		got, err := readPassword(strings.NewReader("piped\n"), nil, false)
		if err != nil || string(got) != "piped\n" {
			t.Fatalf("ReadPassword = %q, %v; want %q", got, err, "piped\n")
		}
	})
	t.Run("stdin over the limit", func(t *testing.T) {
		unsetEnv(t, passwordEnv)
		_, err := readPassword(bytes.NewReader(make([]byte, maxPasswordSize+1)), nil, false)
		if err == nil || !strings.Contains(err.Error(), passwordEnv) {
			t.Fatalf("ReadPassword = %v, want an error naming %s", err, passwordEnv)
		}
	})
}

// unsetEnv unsets key for the test and restores it after.
func unsetEnv(t *testing.T, key string) {
	t.Helper()
	t.Setenv(key, "") // registers the restore
	os.Unsetenv(key)
}
