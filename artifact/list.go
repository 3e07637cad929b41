package artifact

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"oras.land/oras-go/v2/registry/remote"
)

// Bounds on reading a repository's tag list. A registry that pages past
// them is refused, never cut short: a semver range resolved from part of
// the list could pick an older version than the one pushed.
const (
	// MaxTagPages bounds the pages of one tag listing: 100 requests.
	MaxTagPages = 100
	// MaxTags bounds the tags of one repository: 10,000.
	MaxTags = 10_000
)

// tagLimits are the bounds listTags applies (tests lower them).
var tagLimits = struct{ pages, tags int }{MaxTagPages, MaxTags}

// listTags reads every tag of repo, page after page, within tagLimits: over
// either cap is an ErrTooLarge error naming repo and the cap.
func listTags(ctx context.Context, client *remote.Repository, repo Reference) ([]string, error) {
	var tags []string
	pages := 0
	err := client.Tags(ctx, "", func(page []string) error {
		pages++
		tags = append(tags, page...)
		switch {
		case pages > tagLimits.pages:
			return fmt.Errorf("list tags of %s: %w: the registry sent more than %d pages of tags (MaxTagPages), and a version picked from part of the list could be an older one: delete old tags, or pin the reference to a tag or digest", repo, ErrTooLarge, tagLimits.pages)
		case len(tags) > tagLimits.tags:
			return fmt.Errorf("list tags of %s: %w: the repository has more than %d tags (MaxTags), and a version picked from part of the list could be an older one: delete old tags, or pin the reference to a tag or digest", repo, ErrTooLarge, tagLimits.tags)
		}
		return nil
	})
	if errors.Is(err, ErrTooLarge) {
		return nil, err
	}
	if err != nil {
		return nil, classify("list tags of", repo, err)
	}
	return tags, nil
}

// ListOptions filters a listing. The zero value lists every tag.
type ListOptions struct {
	Remote RemoteOptions
	// SemverRange keeps tags that parse as semver and fall in the range
	// (for example ">=1.0.0 <2.0.0"), sorted newest first. "" means no filter.
	SemverRange string
	// Regex keeps tags that match. "" means no filter.
	Regex string
}

// ListEntry is one tag of a repository.
type ListEntry struct {
	Tag      string `json:"tag"`
	Digest   string `json:"digest"`
	URL      string `json:"url"`
	Source   string `json:"source,omitempty"`
	Revision string `json:"revision,omitempty"`
	Created  string `json:"created,omitempty"`
}

// List returns the tags of repo with their digests and annotations.
func List(ctx context.Context, repo Reference, opts ListOptions) ([]ListEntry, error) {
	var re *regexp.Regexp
	if opts.Regex != "" {
		var err error
		if re, err = regexp.Compile(opts.Regex); err != nil {
			return nil, fmt.Errorf("--filter-regex %q: %v", opts.Regex, err)
		}
	}
	var constraint *semver.Constraints
	if opts.SemverRange != "" {
		var err error
		if constraint, err = semver.NewConstraint(opts.SemverRange); err != nil {
			return nil, fmt.Errorf("--filter-semver %q: %v (want a range such as \">=1.0.0\")", opts.SemverRange, err)
		}
	}
	client, err := opts.Remote.For(repo).Repository(repo)
	if err != nil {
		return nil, err
	}
	tags, err := listTags(ctx, client, repo)
	if err != nil {
		return nil, err
	}

	versions := map[string]*semver.Version{}
	var kept []string
	for _, t := range tags {
		if re != nil && !re.MatchString(t) {
			continue
		}
		if constraint != nil {
			v, err := parseSemverTag(t)
			if err != nil || !constraint.Check(v) {
				continue
			}
			versions[t] = v
		}
		kept = append(kept, t)
	}
	if constraint != nil {
		sort.SliceStable(kept, func(i, j int) bool { return versions[kept[i]].GreaterThan(versions[kept[j]]) })
	} else {
		sort.Strings(kept)
	}

	out := make([]ListEntry, 0, len(kept))
	for _, t := range kept {
		ref, m, err := fetchManifest(ctx, client, repo.WithTag(t))
		if err != nil {
			return nil, err
		}
		out = append(out, ListEntry{
			Tag:      t,
			Digest:   ref.Digest,
			URL:      ref.String(),
			Source:   m.Annotations[AnnotationSource],
			Revision: m.Annotations[AnnotationRevision],
			Created:  m.Annotations[AnnotationCreated],
		})
	}
	return out, nil
}

// LatestSemver returns the newest tag of repo in the range (for a Release's
// semver ref). A tag list over MaxTagPages or MaxTags is an error, never
// a pick from the part read.
func LatestSemver(ctx context.Context, repo Reference, semverRange string, opts RemoteOptions) (string, error) {
	c, err := NewClient(opts.For(repo))
	if err != nil {
		return "", err
	}
	return c.LatestSemver(ctx, repo, semverRange)
}

// LatestSemver is LatestSemver through this client.
func (c *Client) LatestSemver(ctx context.Context, repo Reference, semverRange string) (string, error) {
	constraint, err := semver.NewConstraint(semverRange)
	if err != nil {
		return "", fmt.Errorf("semver range %q: %v", semverRange, err)
	}
	client, err := c.Repository(repo)
	if err != nil {
		return "", err
	}
	tags, err := listTags(ctx, client, repo)
	if err != nil {
		return "", err
	}
	var best *semver.Version
	var bestTag string
	for _, t := range tags {
		v, err := parseSemverTag(t)
		if err != nil || !constraint.Check(v) {
			continue
		}
		if best == nil || v.GreaterThan(best) {
			best, bestTag = v, t
		}
	}
	if best == nil {
		return "", fmt.Errorf("list tags of %s: no tag matches semver range %q: push a matching tag or widen the range", repo, semverRange)
	}
	return bestTag, nil
}

// parseSemverTag accepts MAJOR.MINOR.PATCH[-PRE][+BUILD], with an optional
// leading "v"; a partial version such as "v1" is not a release tag.
func parseSemverTag(t string) (*semver.Version, error) {
	return semver.StrictNewVersion(strings.TrimPrefix(t, "v"))
}
