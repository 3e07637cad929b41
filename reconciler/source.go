package reconciler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/verify"
)

// Source finds and fetches artifacts in a registry.
type Source interface {
	// Resolve returns ref with its digest set, with one HEAD request.
	Resolve(ctx context.Context, ref artifact.Reference, opts artifact.RemoteOptions) (artifact.Reference, error)
	// LatestSemver returns the highest tag of repo in semverRange.
	LatestSemver(ctx context.Context, repo artifact.Reference, semverRange string, opts artifact.RemoteOptions) (string, error)
	// Pull fetches ref by digest and extracts it into dir, which must not exist.
	Pull(ctx context.Context, ref artifact.Reference, dir string, opts artifact.PullOptions) (*artifact.PullResult, error)
}

// Verifier checks an artifact's signatures against a trust policy.
type Verifier interface {
	// Verify returns the keys of policy that signed ref's digest, or the
	// verify package's *verify.Error when fewer than its threshold did.
	Verify(ctx context.Context, ref artifact.Reference, policy verify.Policy, opts artifact.RemoteOptions) ([]v1alpha1.Signer, error)
}

// RegistrySource is the Source backed by the artifact package.
type RegistrySource struct{}

func (RegistrySource) Resolve(ctx context.Context, ref artifact.Reference, opts artifact.RemoteOptions) (artifact.Reference, error) {
	return artifact.Resolve(ctx, ref, opts)
}

func (RegistrySource) LatestSemver(ctx context.Context, repo artifact.Reference, semverRange string, opts artifact.RemoteOptions) (string, error) {
	return artifact.LatestSemver(ctx, repo, semverRange, opts)
}

func (RegistrySource) Pull(ctx context.Context, ref artifact.Reference, dir string, opts artifact.PullOptions) (*artifact.PullResult, error) {
	return artifact.Pull(ctx, ref, dir, opts)
}

// Cache keeps pulled artifacts on disk, keyed by digest, so Releases that
// share a digest and reconciles after a restart of the build skip the
// registry. It holds at most MaxEntries artifacts, each bounded by the pull's
// MaxSize, and evicts the least recently used one that is not in use.
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

// Get returns the artifact with digest, calling pull to fetch it into a new
// directory when it is not cached. Concurrent calls for one digest pull once.
func (c *Cache) Get(ctx context.Context, digest string, pull func(ctx context.Context, dir string) (*artifact.PullResult, error)) (*CachedArtifact, error) {
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
