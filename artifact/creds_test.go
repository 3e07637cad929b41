package artifact_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/internal/registrytest"

	"airlock.dev/airlock/internal/testtree"
)

// hostKeychain holds one account per registry host; other hosts are anonymous.
type hostKeychain map[string]authn.Basic

func (k hostKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if b, ok := k[r.RegistryStr()]; ok {
		return &b, nil
	}
	return authn.Anonymous, nil
}

// authLog records the user name of every Authorization header a registry sees.
type authLog struct {
	mu    sync.Mutex
	users []string
}

func (l *authLog) observe(r *http.Request) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return
	}
	user := h
	if b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic ")); err == nil {
		user, _, _ = strings.Cut(string(b), ":")
	}
	l.mu.Lock()
	l.users = append(l.users, user)
	l.mu.Unlock()
}

func (l *authLog) sawUser(user string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, u := range l.users {
		if u == user {
			return true
		}
	}
	return false
}

// TestCredsStayWithTheirHost: credentials given for the artifact's registry
// are never sent to another registry, such as the one an image of the
// artifact lives in. That registry gets its own credentials from the keychain.
func TestCredsStayWithTheirHost(t *testing.T) {
	ctx := context.Background()
	regA := registrytest.NewWithOptions(t, registry.Options{HtpasswdFile: registrytest.Htpasswd(t, "alice", "alice-pw")})
	seenAtB := &authLog{}
	regB := registrytest.NewWithOptions(t, registry.Options{HtpasswdFile: registrytest.Htpasswd(t, "bob", "bob-pw"), Observe: seenAtB.observe})

	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	iref, err := name.ParseReference(regB.Addr+"/team/svc:1.0", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := ggcrremote.Write(iref, img, ggcrremote.WithAuth(&authn.Basic{Username: "bob", Password: "bob-pw"})); err != nil {
		t.Fatal(err)
	}
	seenAtB.users = nil

	src := artifact.RemoteOptions{
		PlainHTTPInsecure: true,
		Creds:             "alice:alice-pw",
		Keychain:          hostKeychain{regB.Addr: {Username: "bob", Password: "bob-pw"}},
	}
	ref := mustRef(t, "oci://"+regA.Addr+"/team/app:v1")
	if _, err := artifact.Push(ctx, ref, testtree.Write(t, appTree), artifact.PushOptions{Remote: src}); err != nil {
		t.Fatalf("push with --creds to their own host: %v", err)
	}
	var tarball bytes.Buffer
	_, _, err = artifact.Export(ctx, ref, &tarball, artifact.RelocateOptions{Src: src, Images: []string{regB.Addr + "/team/svc:1.0"}})
	if seenAtB.sawUser("alice") {
		t.Errorf("registry B (%s) received the credentials given for registry A (%s)", regB.Addr, regA.Addr)
	}
	if err != nil {
		t.Fatalf("export with an image in registry B: %v", err)
	}
	if !seenAtB.sawUser("bob") {
		t.Errorf("registry B never received its own credentials from the keychain")
	}
}

// TestClientReusesConnectionAndManifest: a client's Manifest, then Pull with
// that manifest, makes one connection and reads the manifest once; a
// manifest that does not hash to the digest is refused.
func TestClientReusesConnectionAndManifest(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	manifestGets := 0
	reg := registrytest.NewWithOptions(t, registry.Options{Observe: func(r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") {
			mu.Lock()
			manifestGets++
			mu.Unlock()
		}
	}})
	pushed, err := artifact.Push(ctx, mustRef(t, "oci://"+reg.Addr+"/demo/app:v1"), testtree.Write(t, appTree), artifact.PushOptions{Remote: plainHTTP})
	if err != nil {
		t.Fatal(err)
	}
	c, err := artifact.NewClient(plainHTTP)
	if err != nil {
		t.Fatal(err)
	}
	conns, before := reg.Connections(), manifestGets
	ref, _, body, err := c.Manifest(ctx, pushed.Ref.WithTag("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pull(ctx, ref, filepath.Join(t.TempDir(), "out"), artifact.PullOptions{Manifest: body}); err != nil {
		t.Fatalf("pull with the manifest already read: %v", err)
	}
	if got := reg.Connections() - conns; got != 1 {
		t.Errorf("manifest and pull through one client opened %d connections, want 1", got)
	}
	if got := manifestGets - before; got != 1 {
		t.Errorf("manifest and pull read the manifest %d times, want 1", got)
	}

	tampered := append([]byte(" "), body...) // the same JSON, another digest
	_, err = c.Pull(ctx, ref, filepath.Join(t.TempDir(), "out"), artifact.PullOptions{Manifest: tampered})
	if !errors.Is(err, artifact.ErrDigest) {
		t.Fatalf("pull with a manifest that is not the digest's: got %v, want ErrDigest", err)
	}
	if _, err := c.Pull(ctx, ref.WithTag("v1"), filepath.Join(t.TempDir(), "out"), artifact.PullOptions{Manifest: body}); err == nil {
		t.Fatal("pull of a tag with a manifest given: got nil, want an error asking for a digest")
	}
}
