package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registry"
	"airlock.dev/airlock/internal/registrytest"
)

// tarFiles reads an export tarball into its files, in order.
func tarFiles(t *testing.T, b []byte) ([]string, map[string][]byte) {
	t.Helper()
	var names []string
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names, files
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		files[hdr.Name] = body
	}
}

// tamperedExport is a real, signed export and the blobs of an unsigned
// artifact and an image that an attacker adds to it.
type tamperedExport struct {
	upstream string // host:port of the (stopped) upstream registry
	good     []byte // the export as written
	extra    []byte // an export of the unsigned artifact and the planted image
	pub      string // the upstream public key
	unsigned ocispec.Descriptor
	nginx    ocispec.Descriptor
	sig      ocispec.Descriptor // the real signature manifest's entry
	svc      ocispec.Descriptor // the real image's entry (team/svc)
	referrer ocispec.Descriptor // an OCI 1.1 referrer of the unsigned artifact
}

func newTamperedExport(t *testing.T) *tamperedExport {
	t.Helper()
	up := registrytest.New(t)
	keys := t.TempDir()
	t.Setenv("COSIGN_PASSWORD", "pw")
	writeKeyPair(t, keys, "upstream", "pw")
	for _, img := range []string{"/team/svc:1.0", "/library/nginx:1.25"} {
		i, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := name.ParseReference(up.Addr+img, name.Insecure)
		if err := ggcrremote.Write(ref, i); err != nil {
			t.Fatal(err)
		}
	}
	deploy := func(image string) string {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "deploy.yaml"), []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc\nspec:\n  template:\n    spec:\n      containers:\n      - name: svc\n        image: "+image+"\n"), 0o644)
		return dir
	}
	url := "oci://" + up.Addr + "/team/app"
	if _, stderr, code := airlock(t, "push", "artifact", url+":v1", "--path", deploy(up.Addr+"/team/svc:1.0"), "--source", "https://example.com/app.git", "--revision", testRevision,
		"--insecure-registry", "--sign-key", filepath.Join(keys, "upstream.key")); code != 0 {
		t.Fatalf("push: %s", stderr)
	}
	// The attacker's artifact: unsigned, using the planted image.
	if _, stderr, code := airlock(t, "push", "artifact", url+":evil", "--path", deploy(up.Addr+"/library/nginx:1.25"), "--source", "https://example.com/app.git", "--revision", testRevision,
		"--insecure-registry"); code != 0 {
		t.Fatalf("push: %s", stderr)
	}
	// It has an SBOM (an OCI 1.1 referrer) too.
	evil := mustParse(t, url+":evil")
	repo, err := artifact.RemoteOptions{PlainHTTPInsecure: true}.Repository(evil)
	if err != nil {
		t.Fatal(err)
	}
	evilDesc, err := repo.Resolve(context.Background(), "evil")
	if err != nil {
		t.Fatal(err)
	}
	layer, err := oras.PushBytes(context.Background(), repo, "application/vnd.example.sbom+json", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oras.PackManifest(context.Background(), repo, oras.PackManifestVersion1_1, "application/vnd.example.sbom+json", oras.PackManifestOptions{Layers: []ocispec.Descriptor{layer}, Subject: &evilDesc}); err != nil {
		t.Fatal(err)
	}
	export := func(ref string) []byte {
		p := filepath.Join(t.TempDir(), "x.tar")
		if _, stderr, code := airlock(t, "export", ref, "-o", p, "--with-images", "--insecure-registry"); code != 0 {
			t.Fatalf("export %s: %s", ref, stderr)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	te := &tamperedExport{upstream: up.Addr, good: export(url + ":v1"), extra: export(url + ":evil"), pub: filepath.Join(keys, "upstream.pub")}
	up.Close()
	var idx ocispec.Index
	_, files := tarFiles(t, te.extra)
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	for _, m := range idx.Manifests {
		switch m.Annotations[artifact.AnnotationRole] {
		case "artifact":
			te.unsigned = m
		case "image":
			te.nginx = m
		case "referrer":
			te.referrer = m
		}
	}
	_, files = tarFiles(t, te.good)
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	for _, m := range idx.Manifests {
		switch m.Annotations[artifact.AnnotationRole] {
		case "signature":
			te.sig = m
		case "image":
			te.svc = m
		}
	}
	if te.unsigned.Digest == "" || te.nginx.Digest == "" || te.sig.Digest == "" || te.referrer.Digest == "" || te.svc.Digest == "" {
		t.Fatalf("fixture: unsigned %v, nginx %v, signature %v", te.unsigned.Digest, te.nginx.Digest, te.sig.Digest)
	}
	return te
}

// entry is an index.json entry naming desc's manifest as ref with role.
func entry(desc ocispec.Descriptor, ref, role string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size,
		Annotations: map[string]string{ocispec.AnnotationRefName: ref, artifact.AnnotationRole: role}}
}

// write writes the good export with the extra export's blobs, more
// index.json entries, and more images.lock entries.
func (te *tamperedExport) write(t *testing.T, entries []ocispec.Descriptor, lock []artifact.ImageLock) string {
	t.Helper()
	names, files := tarFiles(t, te.good)
	extraNames, extraFiles := tarFiles(t, te.extra)
	for _, n := range extraNames {
		if _, ok := files[n]; !ok && strings.HasPrefix(n, "blobs/") {
			names = append(names, n)
			files[n] = extraFiles[n]
		}
	}
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	idx.Manifests = append(idx.Manifests, entries...)
	files["index.json"], _ = json.Marshal(idx)
	var l artifact.ImagesLock
	if err := json.Unmarshal(files[artifact.ImagesLockFile], &l); err != nil {
		t.Fatal(err)
	}
	l.Images = append(l.Images, lock...)
	files[artifact.ImagesLockFile], _ = json.Marshal(l)
	// Blobs first, index.json and images.lock last, as export writes them.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, pass := range []bool{true, false} {
		for _, n := range names {
			if strings.HasPrefix(n, "blobs/") != pass {
				continue
			}
			tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg})
			tw.Write(files[n])
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tampered.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCLIImportRefusesWhatTheArtifactDoesNotReach: with --verify-key, an
// index.json entry or images.lock entry that the verified artifact does not
// reach refuses the whole import, naming it, before any request to the mirror.
func TestCLIImportRefusesWhatTheArtifactDoesNotReach(t *testing.T) {
	te := newTamperedExport(t)
	up := te.upstream
	unsignedHex := strings.TrimPrefix(te.unsigned.Digest.String(), "sha256:")
	svcTag := func(suffix string) string {
		return up + "/team/svc:sha256-" + strings.TrimPrefix(te.svc.Digest.String(), "sha256:") + suffix
	}
	nginxHex := strings.TrimPrefix(te.nginx.Digest.String(), "sha256:")
	for _, tc := range []struct {
		name    string
		entries []ocispec.Descriptor
		lock    []artifact.ImageLock
		want    []string // in the error
	}{
		{
			name: "tag re-pointed to an unsigned digest, and a planted image",
			entries: []ocispec.Descriptor{
				entry(te.unsigned, up+"/team/app:v1", "image"),
				entry(te.nginx, "registry-1.docker.io/library/nginx:1.25", "image"),
			},
			want: []string{up + "/team/app:v1", te.unsigned.Digest.String()},
		},
		{
			name:    "two artifacts",
			entries: []ocispec.Descriptor{entry(te.unsigned, up+"/team/app:v1", "artifact")},
			want:    []string{"artifact", te.unsigned.Digest.String()},
		},
		{
			name:    "a signature for another digest",
			entries: []ocispec.Descriptor{entry(te.sig, up+"/team/app:sha256-"+unsignedHex+".sig", "signature")},
			want:    []string{up + "/team/app:sha256-" + unsignedHex + ".sig", te.sig.Digest.String()},
		},
		{
			name:    "a signature in another repository",
			entries: []ocispec.Descriptor{entry(te.sig, strings.Replace(te.sig.Annotations[ocispec.AnnotationRefName], "/team/app:", "/team/other:", 1), "signature")},
			want:    []string{up + "/team/other:sha256-", te.sig.Digest.String()},
		},
		{
			name:    "an image not in the lock",
			entries: []ocispec.Descriptor{entry(te.nginx, up+"/library/nginx@"+te.nginx.Digest.String(), "image")},
			want:    []string{up + "/library/nginx@" + te.nginx.Digest.String(), "images.lock"},
		},
		{
			name:    "an image in the lock that the artifact does not use",
			entries: []ocispec.Descriptor{entry(te.nginx, up+"/library/nginx@"+te.nginx.Digest.String(), "image")},
			lock:    []artifact.ImageLock{{Reference: up + "/library/nginx:1.25", Digest: te.nginx.Digest.String()}},
			want:    []string{up + "/library/nginx:1.25", "not referenced"},
		},
		{
			name:    "a referrer of another artifact",
			entries: []ocispec.Descriptor{entry(te.referrer, up+"/team/app@"+te.referrer.Digest.String(), "referrer")},
			want:    []string{up + "/team/app@" + te.referrer.Digest.String(), "subject"},
		},
		{
			name:    "an attached tag whose manifest refers to another artifact",
			entries: []ocispec.Descriptor{entry(te.referrer, strings.Replace(te.sig.Annotations[ocispec.AnnotationRefName], ".sig", ".att", 1), "signature")},
			want:    []string{strings.Replace(te.sig.Annotations[ocispec.AnnotationRefName], ".sig", ".att", 1), te.referrer.Digest.String(), "subject"},
		},
		{
			name:    "an image signature of an image the import does not carry",
			entries: []ocispec.Descriptor{entry(te.sig, up+"/library/nginx:sha256-"+nginxHex+".sig", "image-signature")},
			want:    []string{up + "/library/nginx:sha256-" + nginxHex + ".sig", te.sig.Digest.String(), "not a .sig, .att or .sbom tag of an image this import carries"},
		},
		{
			name:    "an image signature in another repository than its image",
			entries: []ocispec.Descriptor{entry(te.sig, strings.Replace(svcTag(".sig"), "/team/svc:", "/team/other:", 1), "image-signature")},
			want:    []string{up + "/team/other:sha256-", te.sig.Digest.String(), "image-signature"},
		},
		{
			name:    "an image signature named by digest",
			entries: []ocispec.Descriptor{entry(te.sig, up+"/team/svc@"+te.sig.Digest.String(), "image-signature")},
			want:    []string{up + "/team/svc@" + te.sig.Digest.String(), "by the tag of its image's digest"},
		},
		{
			name:    "an image signature tag that holds another image",
			entries: []ocispec.Descriptor{entry(te.nginx, svcTag(".sig"), "image-signature")},
			want:    []string{svcTag(".sig"), te.nginx.Digest.String(), "layer"},
		},
		{
			name:    "an image attestation whose manifest refers to another artifact",
			entries: []ocispec.Descriptor{entry(te.referrer, svcTag(".att"), "image-signature")},
			want:    []string{svcTag(".att"), te.referrer.Digest.String(), "subject"},
		},
		{
			name:    "an image signature entry whose media type is not the manifest's",
			entries: []ocispec.Descriptor{entry(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: te.nginx.Digest, Size: te.nginx.Size}, svcTag(".sbom"), "image-signature")},
			want:    []string{svcTag(".sbom"), te.nginx.Digest.String(), "media type"},
		},
		{
			name:    "an image referrer whose subject is not a carried image",
			entries: []ocispec.Descriptor{entry(te.referrer, up+"/team/svc@"+te.referrer.Digest.String(), "image-referrer")},
			want:    []string{up + "/team/svc@" + te.referrer.Digest.String(), "is not an image this import carries"},
		},
		{
			name:    "an image referrer named by a tag",
			entries: []ocispec.Descriptor{entry(te.referrer, up+"/team/svc:sbom", "image-referrer")},
			want:    []string{up + "/team/svc:sbom", te.referrer.Digest.String(), "by its own digest"},
		},
		{
			name:    "an image referrer without a subject",
			entries: []ocispec.Descriptor{entry(te.sig, up+"/team/svc@"+te.sig.Digest.String(), "image-referrer")},
			want:    []string{up + "/team/svc@" + te.sig.Digest.String(), "without a subject"},
		},
		{
			name:    "an entry with an unknown role",
			entries: []ocispec.Descriptor{entry(te.nginx, up+"/library/nginx:1.25", "")},
			want:    []string{up + "/library/nginx:1.25", te.nginx.Digest.String()},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tarball := te.write(t, tc.entries, tc.lock)
			site := registrytest.New(t)
			_, stderr, code := airlock(t, "import", tarball, "oci://"+site.Addr+"/airgap", "--insecure-registry", "--verify-key", te.pub)
			t.Log(stderr)
			if code == 0 {
				t.Fatalf("import of a tampered tarball passed:\n%s", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("the error does not name %q:\n%s", w, stderr)
				}
			}
			if n := site.Requests(); n != 0 {
				t.Fatalf("a refused import sent %d requests to the mirror", n)
			}
		})
	}

	// The export as written still imports, and says it was verified.
	site := registrytest.New(t)
	tarball := te.write(t, nil, nil)
	out, stderr, code := airlock(t, "import", tarball, "oci://"+site.Addr+"/airgap", "--insecure-registry", "--verify-key", te.pub, "-o", "json")
	var res struct {
		Verified  bool
		Relocated []artifact.Relocated
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || !res.Verified || len(res.Relocated) != 5 {
		t.Fatalf("import of the untouched export exited %d:\n%s\n%s", code, out, stderr)
	}
	if strings.Contains(stderr, "unverified") {
		t.Fatalf("a verified import warns it is unverified: %s", stderr)
	}
}

// TestCLIImportUnverifiedSaysSo: without --verify-key the import trusts the
// tarball as it is, and says so on stderr and in its JSON output.
func TestCLIImportUnverifiedSaysSo(t *testing.T) {
	te := newTamperedExport(t)
	site := registrytest.New(t)
	out, stderr, code := airlock(t, "import", te.write(t, nil, nil), "oci://"+site.Addr+"/airgap", "--insecure-registry", "-o", "json")
	var res struct {
		Verified  *bool
		Relocated []artifact.Relocated
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Verified == nil || *res.Verified || len(res.Relocated) == 0 {
		t.Fatalf("unverified import exited %d:\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(stderr, "unverified") || !strings.Contains(stderr, "--verify-key") {
		t.Fatalf("an unverified import does not say so on stderr: %q", stderr)
	}
}

// TestCLIWithImagesTagMoves: --with-images resolves the tag once; the images
// it lists and the artifact it copies belong to that one digest, even when the
// tag moves during the copy. The source registry moves team/app:v1 to
// another artifact the second time anyone reads the tag.
func TestCLIWithImagesTagMoves(t *testing.T) {
	ctx := context.Background()
	h, err := registry.NewHandler(ctx, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		reads   atomic.Int32
		move    atomic.Pointer[func()]
		srcAddr string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == "/v2/team/app/manifests/v1" && move.Load() != nil {
			if reads.Add(1) == 2 {
				(*move.Load())()
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	srcAddr = strings.TrimPrefix(srv.URL, "http://")
	digests := map[string]string{}
	for _, v := range []string{"1.0", "2.0"} {
		i, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := name.ParseReference(srcAddr+"/team/svc:"+v, name.Insecure)
		if err := ggcrremote.Write(ref, i); err != nil {
			t.Fatal(err)
		}
		d, _ := i.Digest()
		digests[v] = d.String()
	}
	push := func(tag, image string) string {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "deploy.yaml"), []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc\nspec:\n  template:\n    spec:\n      containers:\n      - name: svc\n        image: "+image+"\n"), 0o644)
		out, stderr, code := airlock(t, "push", "artifact", "oci://"+srcAddr+"/team/app:"+tag, "--path", dir, "--source", "https://example.com/app.git", "--revision", testRevision, "--insecure-registry")
		if code != 0 {
			t.Fatalf("push: %s", stderr)
		}
		return strings.TrimSpace(out[strings.LastIndex(out, "@")+1:])
	}
	first := push("v1", srcAddr+"/team/svc:1.0")
	second := push("v2", srcAddr+"/team/svc:2.0")
	arm := func() {
		reads.Store(0)
		var once sync.Once
		f := func() {
			once.Do(func() {
				if _, err := artifact.Tag(ctx, mustParse(t, "oci://"+srcAddr+"/team/app:v2"), []string{"v1"}, artifact.RemoteOptions{PlainHTTPInsecure: true}); err != nil {
					t.Errorf("move the tag: %v", err)
				}
			})
		}
		move.Store(&f)
	}

	t.Run("copy", func(t *testing.T) {
		arm()
		site := registrytest.New(t)
		out, stderr, code := airlock(t, "copy", "oci://"+srcAddr+"/team/app:v1", "oci://"+site.Addr+"/team/app", "--with-images", "--insecure-registry", "--dest-insecure-registry", "-o", "json")
		if code != 0 {
			t.Fatalf("copy exited %d: %s", code, stderr)
		}
		var rel []artifact.Relocated
		if err := json.Unmarshal([]byte(out), &rel); err != nil {
			t.Fatalf("copy -o json: %v\n%s", err, out)
		}
		for _, r := range rel {
			if r.Role == "artifact" && r.Digest != first {
				t.Fatalf("copied artifact %s (the moved tag's %s), want %s, whose images were listed", r.Digest, second, first)
			}
			if r.Role == "image" && r.Digest != digests["1.0"] {
				t.Fatalf("copied image %s, want team/svc:1.0 %s", r.Target, digests["1.0"])
			}
		}
		got, err := artifact.Resolve(ctx, mustParse(t, "oci://"+site.Addr+"/team/app:v1"), artifact.RemoteOptions{PlainHTTPInsecure: true})
		if err != nil || got.Digest != first {
			t.Fatalf("the site's team/app:v1 is %s (%v), want %s", got.Digest, err, first)
		}
	})
	// Put v1 back for the export.
	move.Store(nil)
	if _, err := artifact.Tag(ctx, mustParse(t, "oci://"+srcAddr+"/team/app@"+first), []string{"v1"}, artifact.RemoteOptions{PlainHTTPInsecure: true}); err != nil {
		t.Fatal(err)
	}
	t.Run("export", func(t *testing.T) {
		arm()
		tarball := filepath.Join(t.TempDir(), "site.tar")
		out, stderr, code := airlock(t, "export", "oci://"+srcAddr+"/team/app:v1", "-o", tarball, "--with-images", "--insecure-registry", "--format", "json")
		if code != 0 {
			t.Fatalf("export exited %d: %s", code, stderr)
		}
		var rel []artifact.Relocated
		if err := json.Unmarshal([]byte(out), &rel); err != nil {
			t.Fatalf("export --format json: %v\n%s", err, out)
		}
		for _, r := range rel {
			if r.Role == "artifact" && r.Digest != first {
				t.Fatalf("exported artifact %s (the moved tag's %s), want %s, whose images were listed", r.Digest, second, first)
			}
			if r.Role == "image" && r.Digest != digests["1.0"] {
				t.Fatalf("exported image %s, want team/svc:1.0 %s", r.Target, digests["1.0"])
			}
		}
	})
}
