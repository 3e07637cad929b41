package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// LockFileName is the lock file, in the storage directory, that a serving
// registry (Start) and the garbage collector hold for as long as they use the
// storage: distribution's collector is not safe alongside pushes.
const LockFileName = ".airlock-registry.lock"

// ErrStorageLocked is a storage directory in use by another registry or
// garbage collection.
var ErrStorageLocked = errors.New("registry storage is in use")

// StorageLock is an exclusive lock on a storage directory (flock on
// LockFileName), held until Unlock or the end of the process.
type StorageLock struct {
	f    *os.File
	once sync.Once
}

// LockStorage takes dir's lock without waiting. It fails with
// ErrStorageLocked, naming the lock file and the holder's pid, when a running
// registry or garbage collection holds it.
func LockStorage(dir string) (*StorageLock, error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock registry storage %s: %w", dir, err)
	}
	if err := flock(f); err != nil {
		holder := "another process"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = "process " + strconv.Itoa(pid)
			}
		}
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("%w: %s holds %s (a running `airlock registry serve` or `airlock registry gc`): stop it, then try again", ErrStorageLocked, holder, path)
		}
		return nil, fmt.Errorf("lock registry storage %s: %w", path, err)
	}
	// Name the holder for whoever finds the lock taken.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &StorageLock{f: f}, nil
}

// Unlock releases the lock. It is safe to call more than once.
func (l *StorageLock) Unlock() error {
	var err error
	l.once.Do(func() {
		// Closing the file releases the flock.
		err = l.f.Close()
	})
	return err
}
