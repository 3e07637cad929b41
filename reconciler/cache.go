package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	godigest "github.com/opencontainers/go-digest"

	"airlock.dev/airlock/artifact"
)

// Cache keeps pulled artifacts on disk, keyed by digest, so Releases that
// share a digest skip the download, and a drift check rebuilds the objects
// it applied from here instead of keeping them in memory. It holds at most
// MaxEntries artifacts and MaxBytes of extracted content, each artifact
// bounded by the pull's MaxSize, and evicts the least recently used one
// that is not in use.
//
// A digest names content, not permission to read it: Get serves an entry
// only to a caller that shows the manifest its own registry, with its own
// credentials, served for that digest in this reconcile. A Release can
// never read another tenant's private artifact from the cache by pinning
// its digest.
type Cache struct {
	// Dir holds one directory per digest. It is emptied when the cache starts.
	Dir string
	// MaxEntries bounds the number of artifacts kept. 0 means 32.
	MaxEntries int
	// MaxBytes bounds the extracted bytes kept, over all artifacts; the
	// artifacts in use are kept even above it. 0 means 1 GiB.
	MaxBytes int64

	mu      sync.Mutex
	tick    uint64
	bytes   int64
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	dir      string
	size     int64
	result   *artifact.PullResult
	err      error
	ready    chan struct{}
	users    int
	lastUsed uint64
}

// CachedArtifact is a pulled artifact in the cache. Call Release when done.
type CachedArtifact struct {
	Dir    string
	Result *artifact.PullResult
	// Manifest is the manifest the caller showed for the digest.
	Manifest []byte
	done     func()
}

// Release lets the cache evict the artifact.
func (a *CachedArtifact) Release() { a.done() }

// NewCache empties dir and returns a cache in it.
func NewCache(dir string, maxEntries int) (*Cache, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clear artifact cache %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create artifact cache %s: %w", dir, err)
	}
	return &Cache{Dir: dir, MaxEntries: maxEntries, entries: map[string]*cacheEntry{}}, nil
}

func (c *Cache) max() int {
	if c.MaxEntries > 0 {
		return c.MaxEntries
	}
	return 32
}

func (c *Cache) maxBytes() int64 {
	if c.MaxBytes > 0 {
		return c.MaxBytes
	}
	return 1 << 30
}

// Bytes is the extracted size of the artifacts in the cache.
func (c *Cache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// ErrNoManifestProof is a cache lookup without the manifest of the digest
// looked up.
var ErrNoManifestProof = errors.New("the artifact cache serves a digest only with its manifest as read from the caller's own registry")

// Get returns the artifact with digest, calling pull to fetch it into a new
// directory when it is not cached. Concurrent calls for one digest pull
// once. manifest is the digest's manifest as the caller's registry served it
// to the caller's client; Get refuses a manifest that does not hash to digest.
func (c *Cache) Get(ctx context.Context, digest string, manifest []byte, pull func(ctx context.Context, dir string) (*artifact.PullResult, error)) (*CachedArtifact, error) {
	want, err := godigest.Parse(digest)
	if err != nil {
		return nil, fmt.Errorf("artifact cache: digest %q: %w", digest, err)
	}
	if manifest == nil || want.Algorithm().FromBytes(manifest) != want {
		return nil, fmt.Errorf("artifact cache: %s: %w", digest, ErrNoManifestProof)
	}
	c.mu.Lock()
	c.tick++
	e, ok := c.entries[digest]
	if ok {
		e.users++
		e.lastUsed = c.tick
		c.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			c.done(e)
			return nil, ctx.Err()
		}
		if e.err != nil {
			c.done(e)
			return nil, e.err
		}
		return &CachedArtifact{Dir: e.dir, Result: e.result, Manifest: manifest, done: sync.OnceFunc(func() { c.done(e) })}, nil
	}
	e = &cacheEntry{dir: filepath.Join(c.Dir, strings.ReplaceAll(digest, ":", "-")), ready: make(chan struct{}), users: 1, lastUsed: c.tick}
	c.entries[digest] = e
	c.mu.Unlock()

	e.result, e.err = pull(ctx, e.dir)
	if e.err != nil {
		c.mu.Lock()
		delete(c.entries, digest) // a failed pull is not cached
		c.mu.Unlock()
		_ = os.RemoveAll(e.dir)
	} else {
		size := dirSize(e.dir)
		c.mu.Lock()
		e.size = size
		c.bytes += size
		c.mu.Unlock()
	}
	close(e.ready)
	if e.err != nil {
		return nil, e.err
	}
	c.evict()
	return &CachedArtifact{Dir: e.dir, Result: e.result, Manifest: manifest, done: sync.OnceFunc(func() { c.done(e) })}, nil
}

func (c *Cache) done(e *cacheEntry) {
	c.mu.Lock()
	e.users--
	c.mu.Unlock()
	c.evict()
}

func (c *Cache) evict() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.entries) > c.max() || c.bytes > c.maxBytes() {
		var victim string
		var oldest uint64
		for d, e := range c.entries {
			select {
			case <-e.ready:
			default:
				continue
			}
			if e.users == 0 && (victim == "" || e.lastUsed < oldest) {
				victim, oldest = d, e.lastUsed
			}
		}
		if victim == "" {
			return // every entry is in use
		}
		_ = os.RemoveAll(c.entries[victim].dir)
		c.bytes -= c.entries[victim].size
		delete(c.entries, victim)
	}
}
