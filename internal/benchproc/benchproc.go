// Package benchproc runs the airlock CLI as a separate process for the
// benchmarks under bench/, measuring wall time and peak memory.
package benchproc

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// BuildCLI builds ./cmd/airlock into dir (run from the repository root).
func BuildCLI(dir string) (string, error) {
	bin := filepath.Join(dir, "airlock")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/airlock").CombinedOutput(); err != nil {
		return "", fmt.Errorf("build airlock (run from the repository root): %v\n%s", err, out)
	}
	return bin, nil
}

// Timed runs bin with args and returns its wall time and peak RSS in KiB.
// The peak is VmHWM from /proc, sampled while the process runs: rusage's
// ru_maxrss of a child can include the parent's pages from before exec,
// which would charge a large benchmark process to the CLI.
func Timed(bin string, args ...string) (time.Duration, int64, error) {
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	done := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		var max int64
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if v := vmHWM(cmd.Process.Pid); v > max {
				max = v
			}
			select {
			case <-done:
				peak <- max
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	d := time.Since(start)
	close(done)
	hwm := <-peak
	if err != nil {
		return 0, 0, fmt.Errorf("airlock %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return d, hwm, nil
}

// vmHWM is the peak resident set of pid in KiB, 0 when it cannot be read.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

// StartRegistry runs `airlock registry serve` on a free loopback port with
// filesystem storage, and returns its address and a stop function.
func StartRegistry(bin, storage string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "registry", "serve", "--addr", addr, "--storage", storage)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("registry did not start on %s", addr)
}
