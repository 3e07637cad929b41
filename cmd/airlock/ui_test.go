package main

import (
	"strings"
	"testing"
)

// `airlock ui` serves on loopback only, unless told it is unsafe.
func TestUIAddressLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:8089", ":8089", "10.1.2.3:8089", "example.com:8089", "8089"} {
		_, stderr, code := airlock(t, "ui", "--address", addr, "--kubeconfig", "/nonexistent")
		if code == 0 || !strings.Contains(stderr, "--address") {
			t.Errorf("airlock ui --address %s: exit %d, %s; want a refusal naming --address", addr, code, stderr)
		}
	}
	for _, addr := range []string{"127.0.0.1:8089", "[::1]:8089", "localhost:0"} {
		if err := checkLoopbackAddr(addr, false); err != nil {
			t.Errorf("--address %s: %v", addr, err)
		}
	}
	if err := checkLoopbackAddr("0.0.0.0:8089", true); err != nil {
		t.Errorf("--address 0.0.0.0:8089 --address-non-loopback-unsafe: %v", err)
	}
}
