package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
)

// GCOptions configures GarbageCollect.
type GCOptions struct {
	// DryRun reports what would be deleted and writes nothing to the
	// storage. false deletes.
	DryRun bool
	// DeleteUntagged also deletes the manifests no tag points to (an
	// artifact whose tag was pushed over), then the blobs only they
	// referenced. Manifests a tagged index lists stay, so do OCI 1.1
	// referrers, which clients list in the referrers tag schema's index
	// (distribution has no referrers API). false keeps every manifest and deletes
	// only blobs no manifest references (uploads whose manifest never came).
	DeleteUntagged bool
}

// GCResult is what a garbage collection deleted (or, in a dry run, would
// delete).
type GCResult struct {
	DryRun bool
	// Manifests are the untagged manifests removed from their repository.
	Manifests []GCManifest
	// Blobs are the blobs removed from the storage (layers, configs and
	// the manifests' own bytes), by digest.
	Blobs []GCBlob
	// Bytes is the sum of the blobs' sizes.
	Bytes int64
	// Links is how many repository links to blobs (layer links, tag
	// entries of removed manifests) were removed.
	Links int
}

// GCManifest is a manifest removed from a repository.
type GCManifest struct {
	Repository string
	Digest     digest.Digest
}

// GCBlob is a blob removed from the storage. Size is -1 when it could not
// be read before the removal.
type GCBlob struct {
	Digest digest.Digest
	Size   int64
}

// GarbageCollect deletes what no manifest (with DeleteUntagged: no tagged
// manifest) references from the registry storage in dir, with
// distribution's own collector (mark and sweep). That collector is not safe
// alongside pushes, so it runs only on a stopped registry: it holds dir's
// lock for its whole run, and fails with ErrStorageLocked while a registry
// serves dir.
func GarbageCollect(ctx context.Context, dir string, opts GCOptions) (*GCResult, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("garbage-collect registry storage: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("garbage-collect registry storage %s: not a directory", dir)
	}
	lock, err := LockStorage(dir)
	if err != nil {
		return nil, fmt.Errorf("garbage-collect registry storage %s: %w", dir, err)
	}
	defer lock.Unlock()
	if _, err := os.Stat(filepath.Join(dir, "docker", "registry", "v2")); err != nil {
		return nil, fmt.Errorf("garbage-collect registry storage %s: it holds no registry data (no docker/registry/v2): give the --storage directory of `airlock registry serve`", dir)
	}

	d, err := factory.Create(ctx, "filesystem", map[string]any{"rootdirectory": dir})
	if err != nil {
		return nil, fmt.Errorf("garbage-collect registry storage %s: %w", dir, err)
	}
	rec := &sweepRecorder{StorageDriver: d, dryRun: opts.DryRun}
	ns, err := storage.NewRegistry(ctx, rec)
	if err != nil {
		return nil, fmt.Errorf("garbage-collect registry storage %s: %w", dir, err)
	}
	// The collector's own DryRun deletes nothing and so reports nothing
	// back; the recorder instead sees every deletion and, in a dry run,
	// refuses every write, so a dry run is the real run without effect.
	// The collector logs every deletion through logrus' standard logger;
	// the result reports them. As in NewHandler, this is process-wide.
	logrus.SetOutput(io.Discard)
	err = storage.MarkAndSweep(ctx, rec, ns, storage.GCOpts{RemoveUntagged: opts.DeleteUntagged, Quiet: true})
	res := rec.result()
	if err != nil {
		return res, fmt.Errorf("garbage-collect registry storage %s (after %d blobs, %d manifests): %w", dir, len(res.Blobs), len(res.Manifests), err)
	}
	return res, nil
}

// sweepRecorder is the storage driver the collector runs on: it records
// every deletion and, in a dry run, performs none and refuses writes.
type sweepRecorder struct {
	storagedriver.StorageDriver
	dryRun bool

	mu  sync.Mutex
	res GCResult
}

var errDryRunWrite = errors.New("dry run: the garbage collector tried to write to the storage")

func (r *sweepRecorder) Delete(ctx context.Context, path string) error {
	blob, isBlob := blobOfPath(path)
	size := int64(-1)
	if isBlob {
		if fi, err := r.StorageDriver.Stat(ctx, path+"/data"); err == nil {
			size = fi.Size()
		}
	}
	if !r.dryRun {
		if err := r.StorageDriver.Delete(ctx, path); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case isBlob:
		r.res.Blobs = append(r.res.Blobs, GCBlob{Digest: blob, Size: size})
		if size > 0 {
			r.res.Bytes += size
		}
	default:
		if repo, dgst, ok := manifestOfPath(path); ok {
			r.res.Manifests = append(r.res.Manifests, GCManifest{Repository: repo, Digest: dgst})
		} else {
			r.res.Links++
		}
	}
	return nil
}

func (r *sweepRecorder) PutContent(ctx context.Context, path string, content []byte) error {
	if r.dryRun {
		return errDryRunWrite
	}
	return r.StorageDriver.PutContent(ctx, path, content)
}

func (r *sweepRecorder) Writer(ctx context.Context, path string, append bool) (storagedriver.FileWriter, error) {
	if r.dryRun {
		return nil, errDryRunWrite
	}
	return r.StorageDriver.Writer(ctx, path, append)
}

func (r *sweepRecorder) Move(ctx context.Context, from, to string) error {
	if r.dryRun {
		return errDryRunWrite
	}
	return r.StorageDriver.Move(ctx, from, to)
}

func (r *sweepRecorder) result() *GCResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.res
	res.DryRun = r.dryRun
	sort.Slice(res.Blobs, func(i, j int) bool { return res.Blobs[i].Digest < res.Blobs[j].Digest })
	sort.Slice(res.Manifests, func(i, j int) bool {
		a, b := res.Manifests[i], res.Manifests[j]
		return a.Repository < b.Repository || a.Repository == b.Repository && a.Digest < b.Digest
	})
	return &res
}

// Paths of distribution's storage layout (registry/storage/paths.go) that
// the collector deletes.
const (
	blobsRoot        = "/docker/registry/v2/blobs/"
	repositoriesRoot = "/docker/registry/v2/repositories/"
	revisionsDir     = "/_manifests/revisions/"
)

// blobOfPath: /docker/registry/v2/blobs/<alg>/<2 hex>/<hex>.
func blobOfPath(p string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(p, blobsRoot)
	if !ok {
		return "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(parts[0]), parts[2])
	return d, d.Validate() == nil
}

// manifestOfPath: /docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>.
func manifestOfPath(p string) (string, digest.Digest, bool) {
	rest, ok := strings.CutPrefix(p, repositoriesRoot)
	if !ok {
		return "", "", false
	}
	repo, rev, ok := strings.Cut(rest, revisionsDir)
	if !ok {
		return "", "", false
	}
	alg, enc, ok := strings.Cut(rev, "/")
	if !ok {
		return "", "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
	return repo, d, d.Validate() == nil
}
