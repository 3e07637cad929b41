package artifact_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"
)

// pagingRegistry starts a real registry holding team/app with the given
// semver tags, and a front that asks it for one tag per page, as a registry
// with a small page size answers.
func pagingRegistry(t *testing.T, tags int) (direct, paged artifact.Reference) {
	t.Helper()
	ctx := context.Background()
	reg := registrytest.New(t)
	ref := pushRaw(t, reg.Addr, "team/app:0.0.1", gz(t, []byte("x")), artifact.ContentMediaType, nil)
	repo, err := plainHTTP.Repository(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := repo.Resolve(ctx, ref.Digest)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < tags; i++ {
		if err := repo.Tag(ctx, desc, fmt.Sprintf("1.0.%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	target := &url.URL{Scheme: "http", Host: reg.Addr}
	front := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		if q := r.Out.URL.Query(); strings.HasSuffix(r.Out.URL.Path, "/tags/list") && q.Get("n") == "" {
			q.Set("n", "1")
			r.Out.URL.RawQuery = q.Encode()
		}
	}})
	t.Cleanup(front.Close)
	direct = mustRef(t, "oci://"+reg.Addr+"/team/app:x").WithTag("")
	paged = direct
	paged.Registry = strings.TrimPrefix(front.URL, "http://")
	return direct, paged
}

// TestLatestSemverRefusesEndlessPages: a tag list over the page or tag cap
// is an error naming the repository and the cap, never a pick from the
// pages read so far (which could be an older version).
func TestLatestSemverRefusesEndlessPages(t *testing.T) {
	ctx := context.Background()
	direct, paged := pagingRegistry(t, 8)

	// Within the caps, every page is read: the newest tag is on the last one.
	if got, err := artifact.LatestSemver(ctx, paged, ">=1.0.0", plainHTTP); err != nil || got != "1.0.7" {
		t.Fatalf("LatestSemver over 8 pages = %q, %v; want 1.0.7", got, err)
	}

	defer artifact.SetTagLimits(5, artifact.MaxTags)()
	_, err := artifact.LatestSemver(ctx, paged, ">=1.0.0", plainHTTP)
	if !errors.Is(err, artifact.ErrTooLarge) || !strings.Contains(err.Error(), paged.String()) || !strings.Contains(err.Error(), "5 pages") {
		t.Fatalf("8 pages over a cap of 5: got %v, want ErrTooLarge naming %s and the cap", err, paged)
	}
	if _, err := artifact.List(ctx, paged, artifact.ListOptions{Remote: plainHTTP}); !errors.Is(err, artifact.ErrTooLarge) {
		t.Fatalf("list over the page cap: got %v, want ErrTooLarge", err)
	}

	artifact.SetTagLimits(artifact.MaxTagPages, 6)
	_, err = artifact.LatestSemver(ctx, direct, ">=1.0.0", plainHTTP)
	if !errors.Is(err, artifact.ErrTooLarge) || !strings.Contains(err.Error(), direct.String()) || !strings.Contains(err.Error(), "6 tags") {
		t.Fatalf("8 tags in one page over a cap of 6: got %v, want ErrTooLarge naming %s and the cap", err, direct)
	}
}
