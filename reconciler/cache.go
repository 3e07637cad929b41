package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	godigest "github.com/opencontainers/go-digest"

	"airlock.dev/airlock/artifact"
)

// Cache keeps pulled artifacts on disk, keyed by digest, so Releases that
// share a digest skip the download. It holds at most MaxEntries artifacts,
// each bounded by the pull's MaxSize, and evicts the least recently used one
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

	mu      sync.Mutex
	tick    uint64
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	dir      string
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
	done   func()
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
		return &CachedArtifact{Dir: e.dir, Result: e.result, done: sync.OnceFunc(func() { c.done(e) })}, nil
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
	}
	close(e.ready)
	if e.err != nil {
		return nil, e.err
	}
	c.evict()
	return &CachedArtifact{Dir: e.dir, Result: e.result, done: sync.OnceFunc(func() { c.done(e) })}, nil
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
	for len(c.entries) > c.max() {
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
		delete(c.entries, victim)
	}
}
