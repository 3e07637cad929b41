package artifact

import (
	"context"
	"fmt"

	"oras.land/oras-go/v2"
)

// Tag points each of tags at ref's manifest (a tag is resolved first) and
// returns ref with its digest.
func Tag(ctx context.Context, ref Reference, tags []string, opts RemoteOptions) (Reference, error) {
	if len(tags) == 0 {
		return ref, fmt.Errorf("tag %s: no new tag given: pass --tag NEW", ref)
	}
	for _, t := range tags {
		if !ValidTag(t) {
			return ref, fmt.Errorf("tag %s: invalid tag %q: a tag is 1 to 128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'", ref, t)
		}
	}
	repo, err := opts.For(ref).Repository(ref)
	if err != nil {
		return ref, err
	}
	resolved, _, err := fetchManifest(ctx, repo, ref)
	if err != nil {
		return ref, err
	}
	if _, err := oras.TagN(ctx, repo, resolved.Digest, tags, oras.DefaultTagNOptions); err != nil {
		return resolved, classify("tag", resolved, err)
	}
	return resolved, nil
}
