package verify

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestMatchRepository(t *testing.T) {
	for _, tc := range []struct {
		name, pattern, repo string
		want                bool
	}{
		{"double star covers a deep path", "registry.example.com/team-a/**", "oci://registry.example.com/team-a/apps/web", true},
		{"double star covers one segment", "registry.example.com/team-a/**", "registry.example.com/team-a/web", true},
		{"double star covers the directory itself", "registry.example.com/team-a/**", "registry.example.com/team-a", true},
		{"another team", "registry.example.com/team-a/**", "registry.example.com/team-b/web", false},
		{"a prefix of a segment is not the segment", "registry.example.com/team-a/**", "registry.example.com/team-ab/web", false},
		{"another host", "registry.example.com/team-a/**", "evil.example.com/team-a/web", false},
		{"star is one segment", "registry.example.com/*/web", "registry.example.com/team-a/web", true},
		{"star is not two segments", "registry.example.com/*/web", "registry.example.com/a/b/web", false},
		{"star inside a segment", "registry.example.com/team-*/web", "registry.example.com/team-c/web", true},
		{"exact", "oci://127.0.0.1:5000/app", "oci://127.0.0.1:5000/app", true},
		{"exact is not a prefix", "127.0.0.1:5000/app", "127.0.0.1:5000/app/sub", false},
		{"double star in the middle", "registry.example.com/**/prod", "registry.example.com/a/b/prod", true},
		{"double star in the middle needs the tail", "registry.example.com/**/prod", "registry.example.com/a/b/dev", false},
		{"everything on a host", "registry.example.com/**", "registry.example.com/x", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MatchRepository(tc.pattern, tc.repo)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("MatchRepository(%q, %q) = %v, want %v", tc.pattern, tc.repo, got, tc.want)
			}
		})
	}
}

func TestMatchRepositoryMalformed(t *testing.T) {
	for _, p := range []string{"registry.example.com//x", "registry.example.com/[a", "registry.example.com/x/"} {
		if _, err := MatchRepository(p, "registry.example.com/x/y"); err == nil {
			t.Errorf("MatchRepository(%q) accepted a malformed pattern", p)
		}
	}
}

func TestLoadPolicy(t *testing.T) {
	a, b := testKey(t, "a"), testKey(t, "b")
	pa, pb := filepath.Join(keyDir, "a", "a.pub"), filepath.Join(keyDir, "b", "b.pub")
	p, err := LoadPolicy([]string{pa, pb}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Keys) != 2 || p.Keys[0].Fingerprint != a.pub.Fingerprint || p.Keys[1].Fingerprint != b.pub.Fingerprint || p.Keys[0].Name != pa || p.Threshold != 2 {
		t.Errorf("policy = %+v", p)
	}
	if _, err := LoadPolicy([]string{pa}, 2); !errors.Is(err, ErrPolicy) {
		t.Errorf("threshold over the keys: err = %v, want ErrPolicy", err)
	}
	_, err = LoadPolicy([]string{pa, filepath.Join(keyDir, "missing.pub"), filepath.Join(keyDir, "a", "a.key")}, 1)
	if !errors.Is(err, ErrKey) {
		t.Errorf("unreadable keys: err = %v, want ErrKey", err)
	}
	if _, err := LoadPolicy(nil, 0); !errors.Is(err, ErrPolicy) {
		t.Errorf("no keys: err = %v, want ErrPolicy", err)
	}
}
