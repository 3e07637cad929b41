// Package receiver holds the wire formats of push notifications: the
// payloads of the distribution registry, Harbor and Quay, and airlock's own
// generic JSON body with its HMAC-SHA256 signature, which `airlock push
// artifact --notify` sends. It reads no Kubernetes object: the controller's
// endpoint (reconciler) authenticates a request with it, parses the body
// into Notifications, and matches them with Releases.
package receiver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"airlock.dev/airlock/artifact"
)

// Events a Notification can name (the values of Receiver spec.events).
const (
	EventPush   = "push"
	EventDelete = "delete"
)

// MaxEvents is the most notifications one request may carry; a body with
// more is refused whole.
const MaxEvents = 100

// Notification is one thing that happened to a repository.
type Notification struct {
	// Event is EventPush or EventDelete.
	Event string
	// Host is the registry's HOST[:PORT] as the sender names it. "" when
	// the payload names none.
	Host string
	// Repository is the path inside the registry, without host.
	Repository string
	// Tag and Digest: one of them, or both, is set.
	Tag, Digest string
	// ID identifies the event at the sender, for replay protection. "" when
	// the payload has none.
	ID string
	// Time is when it happened, as the sender says. Zero when the payload
	// has no time.
	Time time.Time
}

// Name is HOST/REPOSITORY, or REPOSITORY without a host.
func (n Notification) Name() string {
	if n.Host == "" {
		return n.Repository
	}
	return n.Host + "/" + n.Repository
}

// String names the notification for logs and events: push of HOST/REPO:TAG@DIGEST.
func (n Notification) String() string {
	s := n.Event + " of " + n.Name()
	if n.Tag != "" {
		s += ":" + n.Tag
	}
	if n.Digest != "" {
		s += "@" + n.Digest
	}
	return s
}

// Generic is airlock's own notification body, for CI jobs.
type Generic struct {
	// Event is "push" or "delete". Empty means push.
	Event string `json:"event,omitempty"`
	// Repository is HOST/REPO, with or without oci://.
	Repository string `json:"repository"`
	// Tag and Digest: at least one.
	Tag    string `json:"tag,omitempty"`
	Digest string `json:"digest,omitempty"`
}

// ParseGeneric parses a generic body: one JSON object, with unknown fields
// refused.
func ParseGeneric(body []byte) ([]Notification, error) {
	var g Generic
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("generic notification: %w: want {\"repository\": \"HOST/REPO\", \"tag\": …, \"digest\": …}", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("generic notification: more than one JSON value")
	}
	if g.Event == "" {
		g.Event = EventPush
	}
	n := Notification{Event: g.Event, Tag: g.Tag, Digest: g.Digest}
	repo, err := artifact.ParseRepository(artifact.Scheme + strings.TrimPrefix(g.Repository, artifact.Scheme))
	if err != nil {
		return nil, fmt.Errorf("generic notification: repository: %w", err)
	}
	n.Host, n.Repository = repo.Registry, repo.Repository
	if err := n.check(); err != nil {
		return nil, fmt.Errorf("generic notification: %w", err)
	}
	return []Notification{n}, nil
}

// Distribution's envelope (application/vnd.docker.distribution.events.v2+json),
// the fields airlock reads.
type distributionEnvelope struct {
	Events []struct {
		ID        string    `json:"id"`
		Timestamp time.Time `json:"timestamp"`
		Action    string    `json:"action"`
		Target    struct {
			MediaType  string `json:"mediaType"`
			Digest     string `json:"digest"`
			Repository string `json:"repository"`
			URL        string `json:"url"`
			Tag        string `json:"tag"`
		} `json:"target"`
		Request struct {
			Host string `json:"host"`
		} `json:"request"`
	} `json:"events"`
}

// manifestMediaTypes are the targets of a distribution push event that
// change what a tag or digest resolves to. A blob push does not.
var manifestMediaTypes = map[string]bool{
	"application/vnd.oci.image.manifest.v1+json":                true,
	"application/vnd.oci.image.index.v1+json":                   true,
	"application/vnd.docker.distribution.manifest.v2+json":      true,
	"application/vnd.docker.distribution.manifest.list.v2+json": true,
}

// ParseDistribution parses the distribution registry's notification
// envelope. Pushes of manifests become push notifications, and deletes of
// manifests and tags delete notifications; blob events, pulls and mounts are
// left out. The host is the one in the target's URL, else the request's.
func ParseDistribution(body []byte) ([]Notification, error) {
	var env distributionEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("distribution envelope: %w", err)
	}
	if len(env.Events) > MaxEvents {
		return nil, fmt.Errorf("distribution envelope: %d events, more than %d", len(env.Events), MaxEvents)
	}
	var out []Notification
	for i, e := range env.Events {
		n := Notification{ID: e.ID, Time: e.Timestamp, Repository: e.Target.Repository, Tag: e.Target.Tag, Digest: e.Target.Digest, Host: e.Request.Host}
		switch e.Action {
		case "push":
			if !manifestMediaTypes[e.Target.MediaType] {
				continue
			}
			n.Event = EventPush
		case "delete":
			// A tag or manifest delete; distribution tells a blob delete
			// from a manifest delete by nothing, and a repository delete
			// names neither tag nor digest (check leaves it out).
			n.Event = EventDelete
		default:
			continue
		}
		if e.Target.URL != "" {
			u, err := url.Parse(e.Target.URL)
			if err != nil {
				return nil, fmt.Errorf("distribution envelope: event %d (%s): target url: %w", i, e.ID, err)
			}
			if u.Host != "" {
				n.Host = u.Host
			}
		}
		if n.check() != nil {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

// Harbor's webhook payload, the fields airlock reads: in the Default
// format (type, occur_at, event_data), or in the CloudEvents format of
// Harbor 2.8 and later (specversion, id, type harbor.artifact.pushed, time,
// data holding what event_data holds).
type harborPayload struct {
	Type      string          `json:"type"`
	OccurAt   int64           `json:"occur_at"`
	EventData harborEventData `json:"event_data"`

	SpecVersion string          `json:"specversion"`
	ID          string          `json:"id"`
	Time        string          `json:"time"`
	Data        harborEventData `json:"data"`
}

type harborEventData struct {
	Resources []struct {
		Digest      string `json:"digest"`
		Tag         string `json:"tag"`
		ResourceURL string `json:"resource_url"`
	} `json:"resources"`
	Repository struct {
		RepoFullName string `json:"repo_full_name"`
	} `json:"repository"`
}

// ParseHarbor parses a Harbor webhook payload, in the Default or the
// CloudEvents format. PUSH_ARTIFACT (harbor.artifact.pushed) becomes push
// notifications and DELETE_ARTIFACT (harbor.artifact.deleted) delete
// notifications, one per resource; other event types (pulls, scans, quotas,
// replication) are left out. The host comes from each resource's URL
// (HOST/PROJECT/REPO:TAG).
func ParseHarbor(body []byte) ([]Notification, error) {
	var p harborPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("harbor payload: %w", err)
	}
	data, at := p.EventData, time.Time{}
	if p.OccurAt > 0 {
		at = time.Unix(p.OccurAt, 0)
	}
	if p.SpecVersion != "" {
		data = p.Data
		if p.Time != "" {
			t, err := time.Parse(time.RFC3339Nano, p.Time)
			if err != nil {
				return nil, fmt.Errorf("harbor CloudEvent %s: time %q: want RFC 3339", p.ID, p.Time)
			}
			at = t
		}
	}
	var event string
	switch p.Type {
	case "PUSH_ARTIFACT", "pushImage", "harbor.artifact.pushed":
		event = EventPush
	case "DELETE_ARTIFACT", "deleteImage", "harbor.artifact.deleted":
		event = EventDelete
	default:
		return nil, nil
	}
	if len(data.Resources) > MaxEvents {
		return nil, fmt.Errorf("harbor payload: %d resources, more than %d", len(data.Resources), MaxEvents)
	}
	repo := data.Repository.RepoFullName
	var out []Notification
	for _, r := range data.Resources {
		n := Notification{Event: event, Repository: repo, Tag: r.Tag, Digest: r.Digest, ID: p.ID, Time: at}
		if strings.HasPrefix(n.Tag, "sha256:") { // an untagged artifact: Harbor puts its digest there
			n.Tag = ""
		}
		// resource_url is HOST/PROJECT/REPO:TAG or HOST/PROJECT/REPO@DIGEST.
		if host, rest, ok := strings.Cut(r.ResourceURL, "/"); ok && repo != "" && strings.HasPrefix(rest, repo) {
			n.Host = host
		}
		if n.check() != nil {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

// Quay's repository push notification, the fields airlock reads.
type quayPayload struct {
	Repository  string   `json:"repository"`
	DockerURL   string   `json:"docker_url"`
	UpdatedTags []string `json:"updated_tags"`
}

// ParseQuay parses Quay's repo_push notification: one push notification per
// updated tag. The host comes from docker_url (HOST/NAMESPACE/REPO). Quay
// names no digest, no time and no event ID.
func ParseQuay(body []byte) ([]Notification, error) {
	var p quayPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("quay payload: %w", err)
	}
	if len(p.UpdatedTags) > MaxEvents {
		return nil, fmt.Errorf("quay payload: %d updated tags, more than %d", len(p.UpdatedTags), MaxEvents)
	}
	host := ""
	if h, rest, ok := strings.Cut(p.DockerURL, "/"); ok && rest == p.Repository {
		host = h
	}
	var out []Notification
	for _, tag := range p.UpdatedTags {
		n := Notification{Event: EventPush, Host: host, Repository: p.Repository, Tag: tag}
		if n.check() != nil {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

// check refuses a notification that names no repository, neither tag nor
// digest, or an event airlock does not know. The registries' parsers leave
// such events out rather than refuse the body: a registry sends a refused
// body again and again, and the rest of its events are good.
func (n Notification) check() error {
	if n.Event != EventPush && n.Event != EventDelete {
		return fmt.Errorf("event %q: want %s or %s", n.Event, EventPush, EventDelete)
	}
	if n.Repository == "" {
		return fmt.Errorf("no repository")
	}
	if n.Tag == "" && n.Digest == "" {
		return fmt.Errorf("repository %s: neither tag nor digest", n.Name())
	}
	if n.Tag != "" && !artifact.ValidTag(n.Tag) {
		return fmt.Errorf("repository %s: invalid tag %q", n.Name(), n.Tag)
	}
	return nil
}
