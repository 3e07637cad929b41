package build

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"airlock.dev/airlock/internal/testtree"
)

const cmA = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  n: \"1\"\n"
const cmB = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"

func TestBuild(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		path    string
		want    []string // kind/name
		wantErr string   // substring; "" means success
	}{
		{name: "generated over YAML files, recursively", files: map[string]string{"a.yaml": cmA, "sub/b.yml": cmB, "README.md": "# not yaml"}, want: []string{"ConfigMap/a", "ConfigMap/b"}},
		{name: "kustomization in a subdirectory is a base", files: map[string]string{"a.yaml": cmA, "base/kustomization.yaml": "resources: [b.yaml]\n", "base/b.yaml": cmB, "base/ignored.yaml": "kind: ["}, wantErr: "base/ignored.yaml"},
		{name: "existing kustomization wins", files: map[string]string{"kustomization.yaml": "resources: [a.yaml]\n", "a.yaml": cmA, "b.yaml": cmB}, want: []string{"ConfigMap/a"}},
		{name: "path selects a directory", files: map[string]string{"a.yaml": cmA, "prod/b.yaml": cmB}, path: "prod", want: []string{"ConfigMap/b"}},
		{name: "path cannot leave the artifact", files: map[string]string{"a.yaml": cmA}, path: "../..", want: []string{"ConfigMap/a"}},
		{name: "missing path", files: map[string]string{"a.yaml": cmA}, path: "nope", wantErr: `path "nope" is not a directory`},
		{name: "YAML error names the file", files: map[string]string{"good.yaml": cmA, "bad.yaml": "kind: ConfigMap\nmetadata: [\n"}, wantErr: "bad.yaml"},
		{name: "kustomization cannot reach outside the artifact", files: map[string]string{"kustomization.yaml": "resources: [/etc/passwd]\n"}, wantErr: `resources entry "/etc/passwd" is not a file in the artifact`},
		{name: "empty directory builds to nothing", files: map[string]string{"README.md": "x"}, want: nil},
		{name: "overlay over a base, patches, generators and a component", files: map[string]string{
			"base/kustomization.yaml":      "resources: [a.yaml]\n",
			"base/a.yaml":                  cmA,
			"comp/kustomization.yaml":      "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [b.yaml]\n",
			"comp/b.yaml":                  cmB,
			"prod/kustomization.yaml":      "resources: [../base]\ncomponents: [../comp]\npatches:\n- path: p.yaml\n- patch: |\n    apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: b}\n    data: {inline: x}\nconfigMapGenerator:\n- name: gen\n  files: [conf=settings.txt]\n  envs: [env.txt]\n  options: {disableNameSuffixHash: true}\ntransformers: [labels.yaml]\n",
			"prod/p.yaml":                  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {n: \"2\"}\n",
			"prod/settings.txt":            "x=1\n",
			"prod/env.txt":                 "A=1\nB=2\n",
			"prod/labels.yaml":             "apiVersion: builtin\nkind: LabelTransformer\nmetadata: {name: l}\nlabels: {team: a}\nfieldSpecs: [{path: metadata/labels, create: true}]\n",
			"prod/unrelated-big-blob.bin":  strings.Repeat("x", 64<<10),
			"prod/unrelated/notes.txt":     "not named by any kustomization",
			"prod/unrelated/nested/x.json": "{}",
		}, path: "prod", want: []string{"ConfigMap/a", "ConfigMap/gen", "ConfigMap/b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := Build(context.Background(), testtree.Write(t, tc.files), tc.path, "sha256:abc", Options{MaxFileBytes: 32 << 10})
			if tc.wantErr != "" {
				var be *Error
				if err == nil || !errors.As(err, &be) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a build.Error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.GetKind()+"/"+o.GetName())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildLeavesArtifactUntouched(t *testing.T) {
	dir := testtree.Write(t, map[string]string{"a.yaml": cmA})
	if _, err := Build(context.Background(), dir, "", "sha256:abc", Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kustomization.yaml")); !os.IsNotExist(err) {
		t.Errorf("Build wrote a kustomization.yaml into the cached artifact")
	}
}

const crb = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: pwned}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
`

// TestBuildNeverReachesNetworkOrGit builds kustomizations that name URLs and
// git repositories: each is refused, naming the field and the entry, with
// no request made and no git run.
func TestBuildNeverReachesNetworkOrGit(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch {
		case strings.HasSuffix(r.URL.Path, ".json"):
			fmt.Fprint(w, `{"definitions": {}}`)
		case strings.HasSuffix(r.URL.Path, "x"):
			fmt.Fprint(w, "secret-from-metadata-service")
		default:
			fmt.Fprint(w, crb)
		}
	}))
	defer srv.Close()
	u := srv.URL // http://127.0.0.1:PORT

	// A fake git first in PATH: it leaves a marker if anything runs it.
	bin := t.TempDir()
	marker := filepath.Join(bin, "git-ran")
	if err := os.WriteFile(filepath.Join(bin, "git"), []byte("#!/bin/sh\necho \"$@\" >> "+marker+"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	tests := []struct {
		name    string
		files   map[string]string
		wantErr []string
	}{
		{"resource URL", map[string]string{"kustomization.yaml": "resources: [" + u + "/crb.yaml]\n"},
			[]string{"resources entry", u + "/crb.yaml", "is a URL"}},
		{"upper-case scheme", map[string]string{"kustomization.yaml": "resources: [" + strings.Replace(u, "http", "HTTP", 1) + "/crb.yaml]\n"},
			[]string{"is a URL"}},
		{"base URL", map[string]string{"kustomization.yaml": "bases: [" + u + "/crb.yaml]\n"},
			[]string{"bases entry", "is a URL"}},
		{"generator file URL (SSRF)", map[string]string{"kustomization.yaml": "configMapGenerator:\n- name: c\n  files: [creds=" + u + "/x]\n"},
			[]string{"configMapGenerator[0].files entry", "creds=" + u + "/x", "is a URL"}},
		{"generator env URL", map[string]string{"kustomization.yaml": "secretGenerator:\n- name: c\n  envs: [" + u + "/x]\n", "a.yaml": cmA},
			[]string{"secretGenerator[0].envs entry", "is a URL"}},
		{"patch path URL", map[string]string{"kustomization.yaml": "resources: [a.yaml]\npatches:\n- path: " + u + "/p.yaml\n", "a.yaml": cmA},
			[]string{"patches[].path entry", u + "/p.yaml", "is a URL"}},
		{"strategic merge patch URL", map[string]string{"kustomization.yaml": "resources: [a.yaml]\npatchesStrategicMerge: [" + u + "/p.yaml]\n", "a.yaml": cmA},
			[]string{"patchesStrategicMerge entry", "is a URL"}},
		{"JSON 6902 patch URL", map[string]string{"kustomization.yaml": "resources: [a.yaml]\npatchesJson6902:\n- target: {version: v1, kind: ConfigMap, name: a}\n  path: " + u + "/p.yaml\n", "a.yaml": cmA},
			[]string{"patchesJson6902[].path entry", "is a URL"}},
		{"replacements path URL", map[string]string{"kustomization.yaml": "resources: [a.yaml]\nreplacements:\n- path: " + u + "/r.yaml\n", "a.yaml": cmA},
			[]string{"replacements[].path entry", "is a URL"}},
		{"openapi path URL", map[string]string{"kustomization.yaml": "resources: [a.yaml]\nopenapi:\n  path: " + u + "/s.json\n", "a.yaml": cmA},
			[]string{"openapi.path entry", "is a URL"}},
		{"crds URL", map[string]string{"kustomization.yaml": "resources: [a.yaml]\ncrds: [" + u + "/c.json]\n", "a.yaml": cmA},
			[]string{"crds entry", "is a URL"}},
		{"configurations URL", map[string]string{"kustomization.yaml": "resources: [a.yaml]\nconfigurations: [" + u + "/c.yaml]\n", "a.yaml": cmA},
			[]string{"configurations entry", "is a URL"}},
		{"transformer file URL", map[string]string{"kustomization.yaml": "resources: [a.yaml]\ntransformers: [" + u + "/t.yaml]\n", "a.yaml": cmA},
			[]string{"transformers entry", "is a URL"}},
		{"URL inside a transformer config file", map[string]string{"kustomization.yaml": "resources: [a.yaml]\ntransformers: [t.yaml]\n", "a.yaml": cmA,
			"t.yaml": "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: " + u + "/p.yaml\n"},
			[]string{"PatchTransformer p", u + "/p.yaml", "is a URL"}},
		{"URL inside an inline generator", map[string]string{"kustomization.yaml": "resources: [a.yaml]\ngenerators:\n- |\n  apiVersion: builtin\n  kind: ConfigMapGenerator\n  metadata: {name: g}\n  files: [k=" + u + "/x]\n", "a.yaml": cmA},
			[]string{"ConfigMapGenerator g.files entry", "is a URL"}},
		{"component URL", map[string]string{"kustomization.yaml": "resources: [a.yaml]\ncomponents: [" + u + "/comp]\n", "a.yaml": cmA},
			[]string{"components entry", "is a URL"}},
		{"URL in a base's kustomization", map[string]string{"kustomization.yaml": "resources: [base]\n", "base/kustomization.yaml": "resources: [" + u + "/crb.yaml]\n"},
			[]string{"base/kustomization.yaml", "is a URL"}},
		{"git base (github shorthand)", map[string]string{"kustomization.yaml": "resources:\n- github.com/example/repo//base?ref=v1\n"},
			[]string{"resources entry", "github.com/example/repo//base?ref=v1", "is a remote git repository"}},
		{"git base (scp-like)", map[string]string{"kustomization.yaml": "resources: [git@github.com:example/repo.git//base]\n"},
			[]string{"is a remote git repository"}},
		{"git base (https .git)", map[string]string{"kustomization.yaml": "resources:\n- " + u + "/example/repo.git//base?ref=v1\n"},
			[]string{"is a URL"}},
		{"git base (ssh)", map[string]string{"kustomization.yaml": "resources: [ssh://git@example.com/repo//base]\n"},
			[]string{"is a URL"}},
		{"git base (file)", map[string]string{"kustomization.yaml": "resources: [file:///tmp/repo//base]\n"},
			[]string{"is a URL"}},
		{"git base that is also a local directory", map[string]string{"kustomization.yaml": "resources: [github.com/example/repo]\n", "github.com/example/repo/kustomization.yaml": "resources: [a.yaml]\n", "github.com/example/repo/a.yaml": cmA},
			[]string{"is a remote git repository"}},
		{"git component", map[string]string{"kustomization.yaml": "resources: [a.yaml]\ncomponents: [git::https://example.com/repo//comp]\n", "a.yaml": cmA},
			[]string{"components entry", "is a URL"}},
		{"helm chart", map[string]string{"kustomization.yaml": "helmCharts:\n- name: x\n  repo: " + u + "/charts\n"},
			[]string{"helmCharts", "helm template"}},
		{"helm generator plugin", map[string]string{"kustomization.yaml": "generators: [h.yaml]\n", "h.yaml": "apiVersion: builtin\nkind: HelmChartInflationGenerator\nmetadata: {name: h}\nchartName: x\nchartRepoUrl: " + u + "\n"},
			[]string{"HelmChartInflationGenerator", "helm"}},
		{"URL behind a field name in another case", map[string]string{"kustomization.yaml": "resources: [a.yaml]\ntransformers: [t.yaml]\n", "a.yaml": cmA, "p.yaml": cmA,
			"t.yaml": "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: p.yaml\nPath: " + u + "/p.yaml\n"},
			[]string{"PatchTransformer p has field", "twice, in different cases"}},
		{"exec plugin", map[string]string{"kustomization.yaml": "transformers: [t.yaml]\n", "t.yaml": "apiVersion: example.com/v1\nkind: Run\nmetadata: {name: r}\n"},
			[]string{"not a builtin kustomize plugin"}},
		{"plugin directory", map[string]string{"kustomization.yaml": "resources: [a.yaml]\ntransformers: [tdir]\n", "a.yaml": cmA, "tdir/kustomization.yaml": "resources: [t.yaml]\n", "tdir/t.yaml": "apiVersion: builtin\nkind: LabelTransformer\nmetadata: {name: l}\nlabels: {a: b}\n"},
			[]string{"transformers entry", "is a directory"}},
		{"missing file", map[string]string{"kustomization.yaml": "resources: [nope.yaml]\n"},
			[]string{"resources entry", "nope.yaml", "is not a file in the artifact", "vendor the content into the artifact"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := requests.Load()
			objs, err := Build(context.Background(), testtree.Write(t, tc.files), "", "sha256:abc", Options{})
			var be *Error
			if err == nil || !errors.As(err, &be) {
				t.Fatalf("built %d objects, err = %v; want a build.Error", len(objs), err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if n := requests.Load() - before; n != 0 {
				t.Errorf("the build made %d HTTP requests, want 0", n)
			}
			if b, err := os.ReadFile(marker); err == nil {
				t.Errorf("the build ran git: %s", b)
			}
		})
	}
}

// diamond is a kustomization of the given levels where each level includes
// the one below twice (under two name prefixes): 2^levels objects.
func diamond(levels int) map[string]string {
	files := map[string]string{"l0/kustomization.yaml": "resources: [cm.yaml]\n", "l0/cm.yaml": cmA}
	for k := 1; k <= levels; k++ {
		files[fmt.Sprintf("l%d/kustomization.yaml", k)] = "resources: [a, b]\n"
		files[fmt.Sprintf("l%d/a/kustomization.yaml", k)] = fmt.Sprintf("namePrefix: a-\nresources: [../../l%d]\n", k-1)
		files[fmt.Sprintf("l%d/b/kustomization.yaml", k)] = fmt.Sprintf("namePrefix: b-\nresources: [../../l%d]\n", k-1)
	}
	return files
}

// configMaps is one YAML file of n ConfigMaps.
func configMaps(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%d\ndata:\n  k: \"%d\"\n---\n", i, i)
	}
	return b.String()
}

func TestBuildBounds(t *testing.T) {
	chain := map[string]string{"c0/kustomization.yaml": "resources: [cm.yaml]\n", "c0/cm.yaml": configMaps(50)}
	for k := 1; k <= 12; k++ {
		chain[fmt.Sprintf("c%d/kustomization.yaml", k)] = fmt.Sprintf("resources: [../c%d]\n", k-1)
	}
	wide := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: w}\ndata:\n"
	for i := 0; i <= maxMappingKeys; i++ {
		wide += fmt.Sprintf("  k%d: x\n", i)
	}
	tests := []struct {
		name    string
		files   map[string]string
		path    string
		opts    Options
		wantErr []string
	}{
		{"diamond of 12 levels", diamond(12), "l12", Options{},
			[]string{"the kustomizations expand to", "kustomization loads", "over the limit of 2000 (2 × --build-max-objects)"}},
		{"diamond within the limit of objects but not of loads", diamond(9), "l9", Options{MaxObjects: 600},
			[]string{"kustomization loads", "over the limit of 1200 (2 × --build-max-objects)"}},
		{"a chain of bases re-accumulates its objects", chain, "c12", Options{MaxObjects: 60},
			[]string{"kustomize would accumulate", "over the limit of 480 (8 × --build-max-objects)"}},
		{"objects over the limit", map[string]string{"a.yaml": configMaps(11)}, "", Options{MaxObjects: 10},
			[]string{"expand to 11 objects", "over the limit of 10 objects"}},
		{"List items count one each", map[string]string{"l.yaml": "apiVersion: v1\nkind: List\nitems:\n" + strings.Repeat("- {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}\n", 11)}, "", Options{MaxObjects: 10},
			[]string{"expand to 11 objects"}},
		{"YAML file over the limit", map[string]string{"big.yaml": cmA + strings.Repeat("#", 2048)}, "", Options{MaxFileBytes: 1024},
			[]string{"build big.yaml of", "over the limit of 1024 bytes per file (--build-max-file-bytes)"}},
		{"base file over the limit, outside the build root", map[string]string{"base/kustomization.yaml": "resources: [big.yaml]\n", "base/big.yaml": cmA + strings.Repeat("#", 2048), "prod/kustomization.yaml": "resources: [../base]\n"}, "prod", Options{MaxFileBytes: 1024},
			[]string{"base/big.yaml is", "over the limit of 1024 bytes per file"}},
		{"generator file over the limit", map[string]string{"kustomization.yaml": "configMapGenerator:\n- name: c\n  files: [blob.bin]\n", "blob.bin": strings.Repeat("x", 2048)}, "", Options{MaxFileBytes: 1024},
			[]string{"configMapGenerator[0].files entry \"blob.bin\"", "over the limit of 1024 bytes per file"}},
		{"YAML over the total", map[string]string{"a.yaml": cmA + strings.Repeat("#", 600), "b.yaml": cmB + strings.Repeat("#", 600)}, "", Options{MaxTotalBytes: 1024},
			[]string{"more than 1024 bytes (--build-max-total-bytes)"}},
		{"a file loaded along many paths counts each time", diamond(6), "l6", Options{MaxTotalBytes: 4096},
			[]string{"kustomize would read", "over the limit of 4096 bytes"}},
		{"a wide mapping", map[string]string{"w.yaml": wide}, "", Options{},
			[]string{"w.yaml", "1001 keys, over the limit of 1000 keys"}},
		{"a wide generator", map[string]string{"kustomization.yaml": "configMapGenerator:\n- name: c\n  envs: [e.env]\n", "e.env": strings.Repeat("A=1\n", 1200)}, "", Options{},
			[]string{"configMapGenerator[0] makes up to", "over the limit of 1000 keys"}},
		{"a cycle", map[string]string{"a/kustomization.yaml": "resources: [../b]\n", "b/kustomization.yaml": "resources: [../a]\n"}, "a", Options{},
			[]string{"includes itself"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(context.Background(), testtree.Write(t, tc.files), tc.path, "sha256:abc", tc.opts)
			var be *Error
			if err == nil || !errors.As(err, &be) {
				t.Fatalf("err = %v, want a build.Error", err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestBuildCountsObjectsBuilt: the result is bounded even where the count
// before building cannot see it (a generator plugin's objects).
func TestObjectsBuiltAreBounded(t *testing.T) {
	dir := testtree.Write(t, map[string]string{"a.yaml": configMaps(5)})
	objs, err := Build(context.Background(), dir, "", "sha256:abc", Options{MaxObjects: 5})
	if err != nil || len(objs) != 5 {
		t.Fatalf("at the limit: %d objects, %v", len(objs), err)
	}
	art, err := loadArtifact(dir, Options{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := generateKustomization(art.mem, "/"); err != nil {
		t.Fatal(err)
	}
	if _, err := kustomize(art.mem, "/", Options{MaxObjects: 4}.withDefaults()); err == nil || !strings.Contains(err.Error(), "the build made 5 objects, over the limit of 4") {
		t.Fatalf("err = %v, want the limit of objects built", err)
	}
}

func TestBuildStopsWithContext(t *testing.T) {
	dir := testtree.Write(t, map[string]string{"a.yaml": configMaps(10)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Build(ctx, dir, "", "sha256:abc", Options{})
	var be *Error
	if !errors.As(err, &be) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want a build.Error wrapping context.Canceled", err)
	}
}

// TestRunReturnsWhenContextIsDone: kustomize takes no context; run returns
// when ctx is done while kustomize still works (1,000 objects take it
// hundreds of milliseconds).
func TestRunReturnsWhenContextIsDone(t *testing.T) {
	dir := testtree.Write(t, map[string]string{"a.yaml": configMaps(1000)})
	art, err := loadArtifact(dir, Options{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := generateKustomization(art.mem, "/"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fail := func(file string, err error) error { return &Error{Digest: "sha256:abc", Err: err} }
	objs, err := run(ctx, art.mem, "/", Options{}.withDefaults(), fail)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run returned %d objects, err = %v; want context.Canceled", len(objs), err)
	}
}

// TestBuildSlotsBoundConcurrentRuns: the controller shares Slots among its
// workers, so that concurrent builds cannot together exhaust its memory. A
// build waits for a slot (and fails when ctx ends first), and a run keeps
// its slot until kustomize is really done, also after Build returned on ctx.
func TestBuildSlotsBoundConcurrentRuns(t *testing.T) {
	dir := testtree.Write(t, map[string]string{"a.yaml": configMaps(10)})
	slots := make(chan struct{}, 1)
	slots <- struct{}{} // another build runs
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := Build(ctx, dir, "", "sha256:abc", Options{Slots: slots})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "build slots") {
		t.Fatalf("with every slot taken: err = %v, want a timeout naming the build slots", err)
	}
	<-slots
	if _, err := Build(context.Background(), dir, "", "sha256:abc", Options{Slots: slots}); err != nil {
		t.Fatal(err)
	}
	if len(slots) != 0 {
		t.Fatal("a finished build kept its slot")
	}

	// A run stopped by ctx holds its slot until kustomize returns.
	big := testtree.Write(t, map[string]string{"a.yaml": configMaps(1000)})
	art, err := loadArtifact(big, Options{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := generateKustomization(art.mem, "/"); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	go func() {
		for len(slots) == 0 {
			time.Sleep(time.Millisecond)
		}
		stop() // the run has its slot: stop waiting for it
	}()
	fail := func(file string, err error) error { return &Error{Digest: "sha256:abc", Err: err} }
	opts := Options{Slots: slots}.withDefaults()
	if _, err := run(runCtx, art.mem, "/", opts, fail); !errors.Is(err, context.Canceled) {
		t.Fatalf("run: err = %v, want context.Canceled", err)
	}
	if len(slots) != 1 {
		t.Fatal("a run stopped by ctx gave its slot back while kustomize still ran")
	}
	deadline := time.Now().Add(time.Minute)
	for len(slots) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the background run never gave its slot back")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
