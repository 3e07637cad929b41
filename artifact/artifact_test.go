package artifact_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/internal/registrytest"

	"airlock.dev/airlock/internal/testtree"
)

var update = flag.Bool("update", false, "rewrite golden files")

var plainHTTP = artifact.RemoteOptions{PlainHTTPInsecure: true}

const revision = "main@sha1:0123456789abcdef0123456789abcdef01234567"

func mustRef(t testing.TB, s string) artifact.Reference {
	t.Helper()
	r, err := artifact.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// readTree returns every regular file under dir as path → content.
func readTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var appTree = map[string]string{
	"kustomization.yaml": "resources:\n- cm.yaml\n",
	"cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\n",
	"sub/deep/x.yaml":    "x: 1\n",
}

func TestPushPullRoundTrip(t *testing.T) {
	reg := registrytest.New(t)
	ctx := context.Background()
	src := testtree.Write(t, appTree)
	ref := mustRef(t, "oci://"+reg.Addr+"/demo/app:v1")

	pushed, err := artifact.Push(ctx, ref, src, artifact.PushOptions{
		Remote: plainHTTP, Source: "https://example.com/app.git", Revision: revision,
		Annotations: map[string]string{"team": "payments"},
	})
	if err != nil {
		t.Fatal(err)
	}
	again, err := artifact.Push(ctx, ref, src, artifact.PushOptions{
		Remote: plainHTTP, Source: "https://example.com/app.git", Revision: revision,
		Annotations: map[string]string{"team": "payments"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if pushed.Digest != again.Digest {
		t.Fatalf("pushing the same tree twice gave %s then %s", pushed.Digest, again.Digest)
	}

	out := filepath.Join(t.TempDir(), "out")
	pulled, err := artifact.Pull(ctx, ref, out, artifact.PullOptions{Remote: plainHTTP})
	if err != nil {
		t.Fatal(err)
	}
	if pulled.Digest != pushed.Digest {
		t.Errorf("pulled %s, pushed %s", pulled.Digest, pushed.Digest)
	}
	if pulled.Source != "https://example.com/app.git" || pulled.Revision != revision || pulled.Annotations["team"] != "payments" {
		t.Errorf("annotations lost: %+v", pulled)
	}
	if diff := cmp.Diff(appTree, readTree(t, out)); diff != "" {
		t.Errorf("pulled tree differs (-pushed +pulled):\n%s", diff)
	}

	// The manifest is Flux-typed.
	_, m, err := artifact.Manifest(ctx, pushed.Ref, plainHTTP)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != artifact.ConfigMediaType || len(m.Layers) != 1 || m.Layers[0].MediaType != artifact.ContentMediaType {
		t.Errorf("manifest is not Flux-compatible: config %s, layers %+v", m.Config.MediaType, m.Layers)
	}
	if m.Annotations[artifact.AnnotationCreated] != "1970-01-01T00:00:00Z" {
		t.Errorf("created = %q, want the fixed epoch", m.Annotations[artifact.AnnotationCreated])
	}

	// Pull by digest gives the same.
	out2 := filepath.Join(t.TempDir(), "out")
	byDigest := mustRef(t, "oci://"+reg.Addr+"/demo/app@"+pushed.Digest)
	if _, err := artifact.Pull(ctx, byDigest, out2, artifact.PullOptions{Remote: plainHTTP}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(appTree, readTree(t, out2)); diff != "" {
		t.Errorf("pull by digest differs:\n%s", diff)
	}
}

// TestReproducibleDigest pins the manifest digest of testdata/app: the same
// tree must give the same digest on any machine, at any time.
func TestReproducibleDigest(t *testing.T) {
	reg := registrytest.New(t)
	src := filepath.Join("testdata", "app")
	// File times and modes on disk must not matter.
	now := time.Now()
	filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		return os.Chtimes(p, now, now)
	})
	res, err := artifact.Push(context.Background(), mustRef(t, "oci://"+reg.Addr+"/golden/app:v1"), src, artifact.PushOptions{
		Remote: plainHTTP, Source: "https://example.com/app.git", Revision: revision,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := "manifest " + res.Digest + "\nlayer " + res.LayerDigest + "\n"
	golden := filepath.Join("testdata", "TestReproducibleDigest", "app.golden")
	if *update {
		os.MkdirAll(filepath.Dir(golden), 0o755)
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if got != string(want) {
		t.Errorf("digests changed: the pack is no longer reproducible\ngot:\n%swant:\n%s", got, want)
	}

	// Another created time moves the manifest's digest, not the layer's.
	res2, err := artifact.Push(context.Background(), mustRef(t, "oci://"+reg.Addr+"/golden/app:v2"), src, artifact.PushOptions{Remote: plainHTTP, Source: "https://example.com/app.git", Revision: revision, Created: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Annotations[artifact.AnnotationCreated] != "2023-11-14T22:13:20Z" || res2.Digest == res.Digest || res2.LayerDigest != res.LayerDigest {
		t.Errorf("Created: created %s digest %s layer %s", res2.Annotations[artifact.AnnotationCreated], res2.Digest, res2.LayerDigest)
	}
}

func TestBuildMatchesPushedLayer(t *testing.T) {
	reg := registrytest.New(t)
	src := testtree.Write(t, appTree)
	var buf bytes.Buffer
	packed, err := artifact.Pack(context.Background(), src, &buf, artifact.PackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := artifact.Push(context.Background(), mustRef(t, "oci://"+reg.Addr+"/demo/app:v1"), src, artifact.PushOptions{Remote: plainHTTP})
	if err != nil {
		t.Fatal(err)
	}
	if packed.Digest.String() != pushed.LayerDigest || digest.FromBytes(buf.Bytes()) != packed.Digest {
		t.Fatalf("built layer %s, pushed layer %s", packed.Digest, pushed.LayerDigest)
	}
}

func TestPackIgnores(t *testing.T) {
	src := testtree.Write(t, map[string]string{
		"app.yaml":         "a: 1\n",
		".git/config":      "[core]\n",
		".sourceignore":    "secrets/\n*.md\n",
		"secrets/key.yaml": "k: v\n",
		"README.md":        "# hi\n",
		"tmp/scratch.yaml": "s: 1\n",
	})
	reg := registrytest.New(t)
	ref := mustRef(t, "oci://"+reg.Addr+"/demo/ignore:v1")
	if _, err := artifact.Push(context.Background(), ref, src, artifact.PushOptions{Remote: plainHTTP, Pack: artifact.PackOptions{IgnorePaths: []string{"tmp/"}}}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := artifact.Pull(context.Background(), ref, out, artifact.PullOptions{Remote: plainHTTP}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"app.yaml": "a: 1\n", ".sourceignore": "secrets/\n*.md\n"}
	if diff := cmp.Diff(want, readTree(t, out)); diff != "" {
		t.Errorf("ignore rules not applied (-want +got):\n%s", diff)
	}
}

func TestPushBadInput(t *testing.T) {
	reg := registrytest.New(t)
	ctx := context.Background()
	empty := t.TempDir()
	onlyIgnored := testtree.Write(t, map[string]string{".git/HEAD": "ref\n"})
	good := testtree.Write(t, appTree)
	cases := []struct {
		name, ref, path string
		want            string
		is              error
	}{
		{"missing path", "oci://" + reg.Addr + "/a/b:v1", filepath.Join(empty, "nope"), "does not exist", nil},
		{"empty directory", "oci://" + reg.Addr + "/a/b:v1", empty, "holds no files", artifact.ErrEmpty},
		{"only ignored files", "oci://" + reg.Addr + "/a/b:v1", onlyIgnored, "holds no files", artifact.ErrEmpty},
		{"unreachable registry", "oci://127.0.0.1:1/a/b:v1", good, "connection refused", artifact.ErrUnreachable},
		{"unresolvable host", "oci://no-such-host.invalid/a/b:v1", good, "cannot resolve host", artifact.ErrUnreachable},
		{"digest instead of tag", "oci://" + reg.Addr + "/a/b@sha256:" + strings.Repeat("a", 64), good, "push takes a tag", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := artifact.Push(ctx, mustRef(t, tc.ref), tc.path, artifact.PushOptions{Remote: plainHTTP})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want errors.Is %v", err, tc.is)
			}
		})
	}
}

func TestParseReference(t *testing.T) {
	cases := []struct {
		in      string
		want    artifact.Reference
		wantErr string
	}{
		{in: "oci://reg.example.com/team/app:v1", want: artifact.Reference{Registry: "reg.example.com", Repository: "team/app", Tag: "v1"}},
		{in: "oci://127.0.0.1:5000/app:1.0.0", want: artifact.Reference{Registry: "127.0.0.1:5000", Repository: "app", Tag: "1.0.0"}},
		{in: "oci://127.0.0.1:5000/app@sha256:" + strings.Repeat("0", 64), want: artifact.Reference{Registry: "127.0.0.1:5000", Repository: "app", Digest: "sha256:" + strings.Repeat("0", 64)}},
		{in: "oci://r/app:v1@sha256:" + strings.Repeat("0", 64), want: artifact.Reference{Registry: "r", Repository: "app", Tag: "v1", Digest: "sha256:" + strings.Repeat("0", 64)}},
		{in: "reg.example.com/app:v1", wantErr: "must start with oci://"},
		{in: "oci://reg.example.com/app:-bad", wantErr: "invalid tag"},
		{in: "oci://reg.example.com/app:v1!", wantErr: "invalid tag"},
		{in: "oci://reg.example.com/app", wantErr: "missing tag or digest"},
		{in: "oci://reg.example.com", wantErr: "missing repository"},
		{in: "oci://reg.example.com/App:v1", wantErr: "invalid"},
		{in: "oci://reg.example.com/app@sha256:abc", wantErr: "invalid digest"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := artifact.ParseReference(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if got.String() != tc.in {
				t.Fatalf("String() = %s", got.String())
			}
		})
	}
}

// pushRaw pushes an arbitrary single-layer manifest, as another tool (or an
// attacker) could, and returns its reference by digest.
func pushRaw(t testing.TB, addr, repoTag string, layer []byte, layerType string, annotations map[string]string) artifact.Reference {
	t.Helper()
	ctx := context.Background()
	ref := mustRef(t, "oci://"+addr+"/"+repoTag)
	repo, err := plainHTTP.Repository(ref)
	if err != nil {
		t.Fatal(err)
	}
	repo.MaxMetadataBytes = 64 << 20 // an attacker's client has no bound
	cfg := []byte("{}")
	cfgDesc := ocispec.Descriptor{MediaType: artifact.ConfigMediaType, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	layerDesc := ocispec.Descriptor{MediaType: layerType, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	for _, b := range []struct {
		d ocispec.Descriptor
		c []byte
	}{{cfgDesc, cfg}, {layerDesc, layer}} {
		if ok, _ := repo.Exists(ctx, b.d); !ok {
			if err := repo.Push(ctx, b.d, bytes.NewReader(b.c)); err != nil {
				t.Fatal(err)
			}
		}
	}
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfgDesc, Layers: []ocispec.Descriptor{layerDesc}, Annotations: annotations})
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))}
	if err := repo.PushReference(ctx, md, bytes.NewReader(m), ref.Tag); err != nil {
		t.Fatal(err)
	}
	return ref.WithDigest(md.Digest.String())
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestPullRefusesMaliciousArchives(t *testing.T) {
	reg := registrytest.New(t)
	files, err := filepath.Glob(filepath.Join("..", "internal", "safetar", "testdata", "malicious", "*.tar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no malicious corpus: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".tar")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ref := pushRaw(t, reg.Addr, "evil/"+name+":v1", gz(t, b), artifact.ContentMediaType, nil)
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			_, err = artifact.Pull(context.Background(), ref, out, artifact.PullOptions{Remote: plainHTTP})
			if err == nil || !strings.Contains(err.Error(), "archive entry") {
				t.Fatalf("got %v, want a refusal naming the archive entry", err)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Fatalf("a refused pull left %v behind", entries)
			}
		})
	}
}

// TestPullZipBomb: a layer that inflates far past --max-size stops at the limit.
func TestPullZipBomb(t *testing.T) {
	reg := registrytest.New(t)
	// One entry of 64 MiB of zeros compresses to about 64 KiB.
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Mode: 0o644, Size: 64 << 20, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(tw, zeroReader{}, 64<<20); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	zw.Close()
	ref := pushRaw(t, reg.Addr, "evil/bomb:v1", buf.Bytes(), artifact.ContentMediaType, nil)
	out := filepath.Join(t.TempDir(), "out")
	_, err := artifact.Pull(context.Background(), ref, out, artifact.PullOptions{Remote: plainHTTP, MaxSize: 1 << 20})
	if err == nil || !strings.Contains(err.Error(), `"zeros"`) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("got %v, want a size-limit error naming the entry", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("refused pull created the output directory")
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestPullBadInput(t *testing.T) {
	reg := registrytest.New(t)
	ctx := context.Background()
	good := pushRaw(t, reg.Addr, "demo/app:v1", gz(t, []byte{}), artifact.ContentMediaType, nil)
	_ = good
	cases := []struct {
		name string
		ref  string
		opts artifact.PullOptions
		is   error
		want string
	}{
		{"missing tag", "oci://" + reg.Addr + "/demo/app:nope", artifact.PullOptions{Remote: plainHTTP}, artifact.ErrNoTag, "no such tag"},
		{"missing repository", "oci://" + reg.Addr + "/demo/none:v1", artifact.PullOptions{Remote: plainHTTP}, nil, "airlock list artifacts"},
		{"missing digest", "oci://" + reg.Addr + "/demo/app@sha256:" + strings.Repeat("1", 64), artifact.PullOptions{Remote: plainHTTP}, artifact.ErrNotFound, "not found"},
		{"unreachable", "oci://127.0.0.1:1/demo/app:v1", artifact.PullOptions{Remote: plainHTTP}, artifact.ErrUnreachable, "connection refused"},
		{"wrong layer type", "oci://" + reg.Addr + "/demo/app:v1", artifact.PullOptions{Remote: plainHTTP, LayerMediaType: "application/x-other"}, nil, "--layer-media-type"},
		{"TLS to a plain HTTP registry", "oci://" + reg.Addr + "/demo/app:v1", artifact.PullOptions{}, artifact.ErrTLS, "--insecure-registry"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := artifact.Pull(ctx, mustRef(t, tc.ref), filepath.Join(t.TempDir(), "o"), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error with %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want errors.Is %v", err, tc.is)
			}
		})
	}
	// A non-empty output directory is refused before any request.
	full := testtree.Write(t, map[string]string{"keep.txt": "mine"})
	if _, err := artifact.Pull(ctx, good, full, artifact.PullOptions{Remote: plainHTTP}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("got %v, want refusal of a non-empty directory", err)
	}
	if readTree(t, full)["keep.txt"] != "mine" {
		t.Fatal("existing files were touched")
	}
}

// TestPullDigestMismatch corrupts a stored blob on the registry's disk: the
// pull must fail on the digest and leave nothing behind.
func TestPullDigestMismatch(t *testing.T) {
	storage := t.TempDir()
	reg := registrytest.NewWithOptions(t, registry.Options{StorageDir: storage})
	src := testtree.Write(t, appTree)
	ref := mustRef(t, "oci://"+reg.Addr+"/demo/app:v1")
	res, err := artifact.Push(context.Background(), ref, src, artifact.PushOptions{Remote: plainHTTP})
	if err != nil {
		t.Fatal(err)
	}
	hex := strings.TrimPrefix(res.LayerDigest, "sha256:")
	blob := filepath.Join(storage, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
	orig, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	// Same size, other content: flip bytes inside the gzip stream.
	evil := append([]byte{}, orig...)
	for i := len(evil) / 2; i < len(evil)/2+8; i++ {
		evil[i] ^= 0xff
	}
	if err := os.WriteFile(blob, evil, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	_, err = artifact.Pull(context.Background(), ref, out, artifact.PullOptions{Remote: plainHTTP})
	if err == nil {
		t.Fatal("pulled a corrupted layer")
	}
	if !errors.Is(err, artifact.ErrDigest) && !strings.Contains(err.Error(), "gzip") && !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("got %v, want a digest or integrity error", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("a failed pull left the output directory")
	}
}

// TestManifestSizeBound: distribution itself refuses manifests over 4 MiB,
// so the hostile registry here is go-containerregistry's, which has no bound.
func TestManifestSizeBound(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	big := map[string]string{"padding": strings.Repeat("x", artifact.MaxManifestSize)}
	ref := pushRaw(t, addr, "demo/big:v1", gz(t, nil), artifact.ContentMediaType, big)
	_, err := artifact.Pull(context.Background(), ref.WithTag("v1"), filepath.Join(t.TempDir(), "o"), artifact.PullOptions{Remote: plainHTTP})
	if !errors.Is(err, artifact.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge for a manifest over 4 MiB", err)
	}
}

func TestAuth(t *testing.T) {
	reg := registrytest.NewWithOptions(t, registry.Options{HtpasswdFile: registrytest.Htpasswd(t, "ci", "s3cret")})
	src := testtree.Write(t, appTree)
	ref := mustRef(t, "oci://"+reg.Addr+"/demo/app:v1")
	ctx := context.Background()
	t.Setenv("DOCKER_CONFIG", t.TempDir())

	_, err := artifact.Push(ctx, ref, src, artifact.PushOptions{Remote: artifact.RemoteOptions{PlainHTTPInsecure: true, Creds: "ci:wrong"}})
	if !errors.Is(err, artifact.ErrUnauthorized) {
		t.Fatalf("wrong password: got %v, want ErrUnauthorized", err)
	}
	if _, err := artifact.Push(ctx, ref, src, artifact.PushOptions{Remote: artifact.RemoteOptions{PlainHTTPInsecure: true, Creds: "ci:s3cret"}}); err != nil {
		t.Fatalf("--creds: %v", err)
	}
	// The library reads no environment: only the CLI turns
	// AIRLOCK_REGISTRY_CREDS into Creds.
	t.Setenv("AIRLOCK_REGISTRY_CREDS", "ci:s3cret")
	if _, err := artifact.Resolve(ctx, ref, plainHTTP); !errors.Is(err, artifact.ErrUnauthorized) {
		t.Fatalf("AIRLOCK_REGISTRY_CREDS in the environment of a library call: got %v, want ErrUnauthorized", err)
	}
	t.Setenv("AIRLOCK_REGISTRY_CREDS", "")
	// Creds for another host are not sent.
	other := artifact.RemoteOptions{PlainHTTPInsecure: true, Creds: "ci:s3cret", CredsHost: "registry.example.com"}
	if _, err := artifact.Resolve(ctx, ref, other); !errors.Is(err, artifact.ErrUnauthorized) {
		t.Fatalf("creds bound to another host: got %v, want ErrUnauthorized", err)
	}
	if _, err := artifact.NewClient(artifact.RemoteOptions{Creds: "ci:s3cret"}); !errors.Is(err, artifact.ErrCredsWithoutHost) {
		t.Fatalf("a client with creds for no host: got %v, want ErrCredsWithoutHost", err)
	}
	// docker's config.json, as written by `docker login`.
	cfg := `{"auths":{"` + reg.Addr + `":{"auth":"Y2k6czNjcmV0"}}}`
	if err := os.WriteFile(filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := artifact.Resolve(ctx, ref, plainHTTP); err != nil {
		t.Fatalf("docker config: %v", err)
	}
}
