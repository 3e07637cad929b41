//go:build !unix

package registry

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

var errWouldBlock = errors.New("lock held")

// flock has no implementation here: the registry's filesystem storage runs
// on Linux and macOS.
func flock(*os.File) error {
	return fmt.Errorf("locking the registry storage is not supported on %s: serve filesystem storage from Linux or macOS", runtime.GOOS)
}
