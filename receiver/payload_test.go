package receiver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testDigest = "sha256:0f4b2a7c5d1e9f8a3b6c2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607182"

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsers(t *testing.T) {
	tests := []struct {
		name  string
		parse func([]byte) ([]Notification, error)
		file  string
		want  []Notification
	}{
		{
			name:  "generic",
			parse: ParseGeneric,
			file:  "generic.json",
			want:  []Notification{{Event: EventPush, Host: "registry.example.com:5000", Repository: "team/app", Tag: "1.2.0", Digest: testDigest}},
		},
		{
			// The manifest push and the tag delete; the blob push and the
			// pull are left out.
			name:  "distribution",
			parse: ParseDistribution,
			file:  "distribution-push.json",
			want: []Notification{
				{Event: EventPush, Host: "registry.example.com:5000", Repository: "team/app", Tag: "1.2.0", Digest: testDigest,
					ID: "3c1b3b2e-7c55-4b3e-a5e0-6a3c5b0c1f6d", Time: time.Date(2026, 12, 2, 3, 0, 0, 123456789, time.UTC)},
				{Event: EventDelete, Host: "registry.example.com:5000", Repository: "team/app", Tag: "1.1.0",
					ID: "6f4e6e51-af88-4e61-d813-9d6f8e3f4c90", Time: time.Date(2026, 12, 2, 3, 0, 2, 0, time.UTC)},
			},
		},
		{
			name:  "harbor push",
			parse: ParseHarbor,
			file:  "harbor-push.json",
			want:  []Notification{{Event: EventPush, Host: "harbor.example.com", Repository: "team/app", Tag: "1.2.0", Digest: testDigest, Time: time.Unix(1796180400, 0)}},
		},
		{
			name:  "harbor push, CloudEvents format",
			parse: ParseHarbor,
			file:  "harbor-cloudevents-push.json",
			want: []Notification{{Event: EventPush, Host: "harbor.example.com", Repository: "team/app", Tag: "1.2.0", Digest: testDigest,
				ID: "5a8e1c3f-0b4d-4f2a-9c6e-7d1b2a3c4e5f", Time: time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)}},
		},
		{
			name:  "harbor scan is not a push",
			parse: ParseHarbor,
			file:  "harbor-scan.json",
		},
		{
			name:  "quay",
			parse: ParseQuay,
			file:  "quay-push.json",
			want: []Notification{
				{Event: EventPush, Host: "quay.example.com", Repository: "team/app", Tag: "1.2.0"},
				{Event: EventPush, Host: "quay.example.com", Repository: "team/app", Tag: "latest"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse(readTestdata(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Errorf("notifications (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRefusals(t *testing.T) {
	tests := []struct {
		name  string
		parse func([]byte) ([]Notification, error)
		body  string
		want  string // in the error
	}{
		{"generic not JSON", ParseGeneric, `repository=x`, "generic notification"},
		{"generic unknown field", ParseGeneric, `{"repository":"r.example.com/a","tag":"v1","extra":1}`, "unknown field"},
		{"generic two values", ParseGeneric, `{"repository":"r.example.com/a","tag":"v1"}{}`, "more than one"},
		{"generic no host", ParseGeneric, `{"repository":"app","tag":"v1"}`, "repository"},
		{"generic no tag or digest", ParseGeneric, `{"repository":"r.example.com/a"}`, "neither tag nor digest"},
		{"generic bad tag", ParseGeneric, `{"repository":"r.example.com/a","tag":"-x"}`, "invalid tag"},
		{"generic unknown event", ParseGeneric, `{"event":"pull","repository":"r.example.com/a","tag":"v1"}`, `event "pull"`},
		{"distribution not JSON", ParseDistribution, `[`, "distribution envelope"},
		{"distribution too many events", ParseDistribution, `{"events":[` + strings.Repeat(`{},`, MaxEvents) + `{}]}`, "more than 100"},
		{"harbor CloudEvent bad time", ParseHarbor, `{"specversion":"1.0","id":"x","type":"harbor.artifact.pushed","time":"yesterday","data":{}}`, "want RFC 3339"},
		{"harbor too many resources", ParseHarbor, `{"type":"PUSH_ARTIFACT","event_data":{"resources":[` + strings.Repeat(`{},`, MaxEvents) + `{}]}}`, "more than 100"},
		{"quay not JSON", ParseQuay, `{"updated_tags":"v1"}`, "quay payload"},
		{"quay too many tags", ParseQuay, `{"repository":"a/b","updated_tags":[` + strings.Repeat(`"t",`, MaxEvents) + `"t"]}`, "more than 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse([]byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parse = %v, %v; want an error containing %q", got, err, tt.want)
			}
		})
	}
}

// A registry's events that cannot name a repository and a tag or digest are
// left out rather than refused: the registry would send the body again and
// again.
func TestRegistryParsersLeaveOutUnusableEvents(t *testing.T) {
	got, err := ParseDistribution([]byte(`{"events":[
		{"action":"delete","target":{"repository":"team/app"}},
		{"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"team/app","tag":"..bad"}}]}`))
	if err != nil || len(got) != 0 {
		t.Errorf("distribution: %v, %v; want no notification and no error", got, err)
	}
	got, err = ParseHarbor([]byte(`{"type":"PUSH_ARTIFACT","occur_at":1,"event_data":{"resources":[{"digest":"` + testDigest + `","tag":"` + testDigest + `","resource_url":"h.example.com/p/r@` + testDigest + `"}],"repository":{"repo_full_name":"p/r"}}}`))
	if err != nil || len(got) != 1 || got[0].Tag != "" || got[0].Digest != testDigest || got[0].Host != "h.example.com" {
		t.Errorf("harbor untagged push: %+v, %v; want one notification by digest alone", got, err)
	}
	// A CloudEvent of another type (a scan) is no push, and its data is not
	// read as one.
	got, err = ParseHarbor([]byte(`{"specversion":"1.0","id":"x","type":"harbor.scan.completed","time":"2026-12-02T03:00:00Z","data":{"resources":[{"digest":"` + testDigest + `","tag":"v1","resource_url":"h.example.com/p/r:v1"}],"repository":{"repo_full_name":"p/r"}}}`))
	if err != nil || len(got) != 0 {
		t.Errorf("harbor CloudEvents scan: %+v, %v; want no notification", got, err)
	}
}

// FuzzParsers: no body makes a parser panic, and what they return is
// always a usable notification.
func FuzzParsers(f *testing.F) {
	for _, name := range []string{"generic.json", "distribution-push.json", "harbor-push.json", "harbor-cloudevents-push.json", "quay-push.json"} {
		f.Add(readTestdata(f, name))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, parse := range []func([]byte) ([]Notification, error){ParseGeneric, ParseDistribution, ParseHarbor, ParseQuay} {
			notes, err := parse(body)
			if err != nil {
				continue
			}
			if len(notes) > MaxEvents {
				t.Fatalf("%d notifications, more than %d", len(notes), MaxEvents)
			}
			for _, n := range notes {
				if err := n.check(); err != nil {
					t.Fatalf("notification %+v: %v", n, err)
				}
			}
		}
	})
}
