package artifact

import (
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// FuzzParseBundleIndex: ParseBundleIndex (bundle.json of an archive, hostile
// input) never panics, and whatever it accepts is within the bounds and
// well formed: 1 to MaxBundleArtifacts artifacts with distinct parseable
// names and valid digests, at most MaxSiteBlobs assumed blobs, each in a
// HOST/REPO with a valid digest and a size that is not negative.
// Seeds live in testdata/fuzz/FuzzParseBundleIndex.
func FuzzParseBundleIndex(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		bi, err := ParseBundleIndex(body)
		if err != nil {
			return
		}
		if len(bi.Artifacts) == 0 || len(bi.Artifacts) > MaxBundleArtifacts || len(bi.Assumed) > MaxSiteBlobs {
			t.Fatalf("accepted %d artifacts, %d assumed", len(bi.Artifacts), len(bi.Assumed))
		}
		names := map[string]bool{}
		for _, a := range bi.Artifacts {
			if _, err := ParseReference(Scheme + a.Name); err != nil || names[a.Name] || digest.Digest(a.Digest).Validate() != nil {
				t.Fatalf("accepted artifact %+v", a)
			}
			names[a.Name] = true
		}
		for _, a := range bi.Assumed {
			r, err := ParseRepository(Scheme + a.Repository)
			if err != nil || r.Tag != "" || r.Digest != "" || a.Size < 0 || digest.Digest(a.Digest).Validate() != nil {
				t.Fatalf("accepted assumed blob %+v", a)
			}
		}
	})
}

// TestBundleIndexLimits: bundle.json over each bound is refused as too
// large, before its entries are used.
func TestBundleIndexLimits(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	artifacts := func(n int) string {
		var parts []string
		for i := 0; i < n; i++ {
			parts = append(parts, fmt.Sprintf(`{"name":"r.example/a%d:v1","digest":%q}`, i, d))
		}
		return strings.Join(parts, ",")
	}
	assumed := func(n int) string {
		return strings.TrimSuffix(strings.Repeat(`{"repository":"r.example/i","digest":"`+d+`","size":1},`, n), ",")
	}
	for name, body := range map[string]string{
		"artifacts": `{"artifacts":[` + artifacts(MaxBundleArtifacts+1) + `]}`,
		"assumed":   `{"artifacts":[` + artifacts(1) + `],"assumed":[` + assumed(MaxSiteBlobs+1) + `]}`,
		"size":      `{"artifacts":[` + artifacts(1) + `],"pad":"` + strings.Repeat("x", MaxManifestSize) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseBundleIndex([]byte(body)); err == nil || !strings.Contains(err.Error(), ErrTooLarge.Error()) {
				t.Fatalf("over the %s bound: %v, want %v", name, err, ErrTooLarge)
			}
		})
	}
	if _, err := ParseBundleIndex([]byte(`{"artifacts":[` + artifacts(MaxBundleArtifacts) + `]}`)); err != nil {
		t.Fatalf("at the bound: %v", err)
	}
}
