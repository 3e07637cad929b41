package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/provider"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

// fileError is a refusal that names the file at fault.
type fileError struct {
	file string
	err  error
}

// scanner checks, before kustomize runs, everything a build would read.
type scanner struct {
	art    *artifact
	opts   Options
	rf     *resource.Factory
	rmf    *resmap.Factory
	ctx    context.Context
	files  map[string]int64 // objects in each YAML file checked
	dirs   map[string]cost  // expansion of each kustomization checked
	active map[string]bool  // kustomizations being checked, to find cycles
	// sops holds the files kustomize reads that may be SOPS-encrypted:
	// resource files and the files of secretGenerators.
	sops map[string]sopsKind
}

// cost is what one load of a kustomization costs kustomize, counting
// everything it includes once for every path that includes it.
type cost struct {
	objects int64 // objects it returns
	loads   int64 // kustomizations loaded
	work    int64 // objects accumulated, summed over every kustomization loaded
	bytes   int64 // bytes of files read
}

// costCap keeps sums far from overflow; any cap is far below it.
const costCap = int64(1) << 50

func sat(a, b int64) int64 {
	if a+b > costCap {
		return costCap
	}
	return a + b
}

func (c *cost) add(o cost) {
	c.objects = sat(c.objects, o.objects)
	c.loads = sat(c.loads, o.loads)
	c.work = sat(c.work, o.work)
	c.bytes = sat(c.bytes, o.bytes)
}

func newScanner(art *artifact, opts Options) *scanner {
	rf := provider.NewDefaultDepProvider().GetResourceFactory()
	return &scanner{
		art: art, opts: opts, rf: rf, rmf: resmap.NewFactory(rf),
		files: map[string]int64{}, dirs: map[string]cost{}, active: map[string]bool{},
		sops: map[string]sopsKind{},
	}
}

func rel(p string) string { return strings.TrimPrefix(p, "/") }

// checkTree parses every YAML file under root, so that a syntax error names
// its file (kustomize's own message often does not), and refuses one over
// the bounds even if no kustomization names it.
func (s *scanner) checkTree(root string) *fileError {
	var over []string
	for p := range s.art.oversize {
		if isYAML(p) && (root == "/" || strings.HasPrefix(p, root+"/")) {
			over = append(over, p)
		}
	}
	if len(over) > 0 {
		sort.Strings(over)
		_, err := s.art.file(over[0])
		return &fileError{rel(over[0]), err}
	}
	var bad *fileError
	_ = s.art.mem.Walk(root, func(p string, info fs.FileInfo, err error) error {
		if err != nil || bad != nil || info.IsDir() || !isYAML(p) {
			return nil
		}
		if _, err := s.yamlFile(p); err != nil {
			bad = err
		}
		return nil
	})
	return bad
}

// checkGraph checks the kustomization at root and everything it reaches,
// and refuses a graph whose expansion is over the bounds.
func (s *scanner) checkGraph(ctx context.Context, root string) *fileError {
	s.ctx = ctx
	c, ferr := s.kustomization(root)
	if ferr != nil {
		return ferr
	}
	return s.checkCost(root, c)
}

func (s *scanner) checkCost(dir string, c cost) *fileError {
	max := int64(s.opts.MaxObjects)
	var err error
	switch {
	case c.objects > max:
		err = fmt.Errorf("the kustomizations expand to %d objects (a file or directory counts once for every path that includes it), over the limit of %d objects (--build-max-objects): include each base once, or split the artifact into several Releases", c.objects, max)
	case c.loads > 2*max:
		err = fmt.Errorf("the kustomizations expand to %d kustomization loads (a directory counts once for every path that includes it), over the limit of %d (2 × --build-max-objects): include each base once", c.loads, 2*max)
	case c.work > 8*max:
		err = fmt.Errorf("kustomize would accumulate %d objects across the kustomizations it loads (each object counted in every kustomization it passes through), over the limit of %d (8 × --build-max-objects): use fewer layers of bases", c.work, 8*max)
	case c.bytes > s.opts.MaxTotalBytes:
		err = fmt.Errorf("kustomize would read %d bytes (a file counts once for every path that loads it), over the limit of %d bytes (--build-max-total-bytes): include each base once", c.bytes, s.opts.MaxTotalBytes)
	default:
		return nil
	}
	return &fileError{rel(kustomizationFile(s.art.mem, dir)), err}
}

func kustomizationFile(fsys interface{ Exists(string) bool }, dir string) string {
	for _, n := range konfig.RecognizedKustomizationFileNames() {
		if p := path.Join(dir, n); fsys.Exists(p) {
			return p
		}
	}
	return path.Join(dir, "kustomization.yaml")
}

// refusal says why entry, a value of field in the kustomization kfile, is refused.
func refusal(kfile, field, entry, why string) *fileError {
	return &fileError{rel(kfile), fmt.Errorf("%s entry %q %s: a build reads only the artifact's own files, never the network or git; vendor the content into the artifact and name it by its path", field, entry, why)}
}

var (
	// gitUser is how kustomize recognizes an scp-like git URL (user@host:path).
	gitUser = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9-]*)@`)
	// remoteHost is a first path element that names a host (example.com/org/repo).
	remoteHost = regexp.MustCompile(`^[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)+(:[0-9]+)?/`)
)

// remote says why entry names something outside the artifact, or "". It is
// a superset of what kustomize fetches (http(s) URLs) and clones (what its
// git.NewRepoSpecFromURL accepts: a scheme, user@, github.com/), so that
// nothing reaches kustomize's loader that it would fetch or clone.
func remote(entry string) string {
	e := strings.TrimSpace(entry)
	if strings.Contains(e, "://") {
		return "is a URL"
	}
	if u, err := url.Parse(e); err == nil && u.Scheme != "" {
		return "is a URL"
	}
	lower := strings.ToLower(e)
	git := strings.TrimPrefix(lower, "git::")
	switch {
	case git != lower, gitUser.MatchString(e),
		strings.HasPrefix(git, "github.com/"), strings.HasPrefix(git, "github.com:"),
		strings.HasPrefix(git, "gitlab.com/"), strings.HasPrefix(git, "bitbucket.org/"),
		strings.Contains(lower, "?ref="), strings.Contains(lower, "?version="),
		strings.Contains(e, "//") && remoteHost.MatchString(e):
		return "is a remote git repository"
	}
	return ""
}

// resolve is entry's in-memory path, relative to the kustomization's directory.
func resolve(dir, entry string) string {
	if path.IsAbs(entry) {
		return path.Clean(entry)
	}
	return path.Join(dir, entry)
}

// localFile checks that entry names a regular file inside the artifact and
// brings it into memory; it returns its path.
func (s *scanner) localFile(kfile, dir, field, entry string) (string, *fileError) {
	if why := remote(entry); why != "" {
		return "", refusal(kfile, field, entry, why)
	}
	p := resolve(dir, entry)
	ok, err := s.art.file(p)
	if err != nil {
		return "", &fileError{rel(kfile), fmt.Errorf("%s entry %q: %w", field, entry, err)}
	}
	if !ok {
		return "", refusal(kfile, field, entry, "is not a file in the artifact")
	}
	return p, nil
}

// kustomization checks the kustomization in dir and everything it names,
// and returns what one load of it costs.
func (s *scanner) kustomization(dir string) (cost, *fileError) {
	if c, ok := s.dirs[dir]; ok {
		return c, nil
	}
	if s.ctx != nil && s.ctx.Err() != nil {
		return cost{}, &fileError{"", fmt.Errorf("build stopped: %w", s.ctx.Err())}
	}
	if s.active[dir] {
		return cost{}, &fileError{rel(dir), fmt.Errorf("%s includes itself", rel(dir))}
	}
	s.active[dir] = true
	defer delete(s.active, dir)

	var kfile string
	for _, n := range konfig.RecognizedKustomizationFileNames() {
		p := path.Join(dir, n)
		if _, err := s.art.file(p); err != nil {
			return cost{}, &fileError{rel(p), err}
		}
		if s.art.mem.Exists(p) {
			if kfile != "" {
				return cost{}, &fileError{rel(dir), fmt.Errorf("%s has both %s and %s: keep one", rel(dir), path.Base(kfile), n)}
			}
			kfile = p
		}
	}
	if kfile == "" {
		return cost{}, &fileError{rel(dir), fmt.Errorf("directory %s has no kustomization.yaml", rel(dir))}
	}
	content, err := s.art.mem.ReadFile(kfile)
	if err != nil {
		return cost{}, &fileError{rel(kfile), err}
	}
	if _, ferr := s.yamlFile(kfile); ferr != nil {
		return cost{}, ferr
	}
	// The same decoding as kustomize's (case-insensitive field names).
	var k types.Kustomization
	if err := k.Unmarshal(content); err != nil {
		return cost{}, &fileError{rel(kfile), err}
	}
	c := cost{loads: 1, bytes: int64(len(content))}

	if len(k.HelmCharts) > 0 || len(k.HelmChartInflationGenerator) > 0 || k.HelmGlobals != nil {
		return cost{}, &fileError{rel(kfile), fmt.Errorf("helmCharts, helmChartInflationGenerator and helmGlobals run helm, which a build never runs: render the chart (helm template) and put its output in the artifact")}
	}
	// Bases and components are directories (or, for resources, files).
	for _, list := range []struct {
		field   string
		entries []string
	}{{"resources", k.Resources}, {"bases", k.Bases}, {"components", k.Components}} {
		for _, e := range list.entries {
			if why := remote(e); why != "" {
				return cost{}, refusal(kfile, list.field, e, why)
			}
			p := resolve(dir, e)
			if s.art.mem.IsDir(p) {
				sub, ferr := s.kustomization(p)
				if ferr != nil {
					return cost{}, ferr
				}
				c.add(sub)
				continue
			}
			if list.field == "components" {
				return cost{}, refusal(kfile, list.field, e, "is not a directory in the artifact")
			}
			p, ferr := s.localFile(kfile, dir, list.field, e)
			if ferr != nil {
				return cost{}, ferr
			}
			n, ferr := s.yamlFile(p)
			if ferr != nil {
				return cost{}, ferr
			}
			s.sops[p] = sopsResource
			c.add(cost{objects: n, bytes: s.size(p)})
		}
	}
	// Files kustomize parses as YAML.
	type fieldEntries struct {
		field   string
		entries []string
	}
	patchPaths, inline := patchFiles(k.Patches, nil)
	jsonPaths, inline := patchFiles(k.PatchesJson6902, inline)
	var psm []string
	for _, p := range k.PatchesStrategicMerge {
		if s.isInlinePatch(string(p)) {
			inline = append(inline, string(p))
		} else {
			psm = append(psm, string(p))
		}
	}
	var repl []string
	for _, r := range k.Replacements {
		if r.Path != "" {
			repl = append(repl, r.Path)
		}
	}
	yamlPaths := []fieldEntries{
		{"crds", k.Crds}, {"configurations", k.Configurations},
		{"patches[].path", patchPaths}, {"patchesJson6902[].path", jsonPaths},
		{"patchesStrategicMerge", psm}, {"replacements[].path", repl},
	}
	if p, ok := k.OpenAPI["path"]; ok {
		yamlPaths = append(yamlPaths, fieldEntries{"openapi.path", []string{p}})
	}
	for _, list := range yamlPaths {
		for _, e := range list.entries {
			p, ferr := s.localFile(kfile, dir, list.field, e)
			if ferr != nil {
				return cost{}, ferr
			}
			if _, ferr := s.yamlFile(p); ferr != nil {
				return cost{}, ferr
			}
			c.bytes = sat(c.bytes, s.size(p))
		}
	}
	for _, text := range inline {
		if _, err := checkYAMLBytes([]byte(text)); err != nil {
			return cost{}, &fileError{rel(kfile), fmt.Errorf("inline patch: %w", err)}
		}
	}
	// Generators read files as data.
	for i, g := range k.ConfigMapGenerator {
		gc, ferr := s.generator(kfile, dir, fmt.Sprintf("configMapGenerator[%d]", i), g.GeneratorArgs, false)
		if ferr != nil {
			return cost{}, ferr
		}
		c.add(gc)
	}
	for i, g := range k.SecretGenerator {
		gc, ferr := s.generator(kfile, dir, fmt.Sprintf("secretGenerator[%d]", i), g.GeneratorArgs, true)
		if ferr != nil {
			return cost{}, ferr
		}
		c.add(gc)
	}
	// Plugin configurations: inline YAML or files, never directories (a
	// kustomization would compute them, and a computed path could not be
	// checked here).
	for _, list := range []struct {
		field   string
		entries []string
	}{{"generators", k.Generators}, {"transformers", k.Transformers}, {"validators", k.Validators}} {
		for _, e := range list.entries {
			pc, ferr := s.plugins(kfile, dir, list.field, e)
			if ferr != nil {
				return cost{}, ferr
			}
			if list.field != "generators" {
				pc.objects = 0
			}
			c.add(pc)
		}
	}
	c.work = sat(c.work, c.objects)
	if ferr := s.checkCost(dir, c); ferr != nil {
		return cost{}, ferr // stop early, before a huge graph is walked further
	}
	s.dirs[dir] = c
	return c, nil
}

func (s *scanner) size(p string) int64 {
	b, err := s.art.mem.ReadFile(p)
	if err != nil {
		return 0
	}
	return int64(len(b))
}

// isInlinePatch is kustomize's own test for a patchesStrategicMerge entry:
// one that parses as objects is a patch, anything else a path.
func (s *scanner) isInlinePatch(e string) bool {
	if _, err := checkYAMLBytes([]byte(e)); err != nil {
		return false
	}
	_, err := s.rf.SliceFromBytes([]byte(e))
	return err == nil
}

// generator checks a ConfigMap or Secret generator's files and the keys it
// makes; a Secret generator's files may be SOPS-encrypted.
func (s *scanner) generator(kfile, dir, field string, g types.GeneratorArgs, secret bool) (cost, *fileError) {
	c := cost{objects: 1}
	keys := len(g.LiteralSources) + len(g.FileSources)
	for _, src := range g.FileSources {
		// [key=]path, as kustomize's ParseFileSource reads it.
		p := src
		if _, after, ok := strings.Cut(src, "="); ok {
			p = after
		}
		if why := remote(src); why != "" {
			return cost{}, refusal(kfile, field+".files", src, why)
		}
		fp, ferr := s.localFile(kfile, dir, field+".files", p)
		if ferr != nil {
			return cost{}, ferr
		}
		c.bytes = sat(c.bytes, s.size(fp))
		if secret {
			s.sops[fp] = sopsFile
		}
	}
	envs := g.EnvSources
	if g.EnvSource != "" {
		envs = append(envs, g.EnvSource)
	}
	for _, e := range envs {
		fp, ferr := s.localFile(kfile, dir, field+".envs", e)
		if ferr != nil {
			return cost{}, ferr
		}
		b, _ := s.art.mem.ReadFile(fp)
		if secret {
			s.sops[fp] = sopsEnv
		}
		keys += bytes.Count(b, []byte("\n")) + 1
		c.bytes = sat(c.bytes, int64(len(b)))
	}
	if keys > maxMappingKeys {
		return cost{}, &fileError{rel(kfile), fmt.Errorf("%s makes up to %d keys, over the limit of %d keys in one ConfigMap or Secret: split it", field, keys, maxMappingKeys)}
	}
	return c, nil
}

// pluginConfig holds the fields of kustomize's builtin plugins that name files.
type pluginConfig struct {
	Path           string   `json:"path"`
	Paths          []string `json:"paths"`
	Patch          string   `json:"patch"`
	Patches        string   `json:"patches"`
	TargetFilePath string   `json:"targetFilePath"`
	Replacements   []struct {
		Path string `json:"path"`
	} `json:"replacements"`
	types.GeneratorArgs `json:",inline"`
}

// plugins checks one entry of generators, transformers or validators:
// inline YAML or a file of builtin plugin configurations.
func (s *scanner) plugins(kfile, dir, field, entry string) (cost, *fileError) {
	var c cost
	var content []byte
	where := kfile
	// The same test as kustomize's: an entry that parses as objects is
	// inline. Our parser goes first, for its bounds.
	inline := false
	if n, err := checkYAMLBytes([]byte(entry)); err == nil && n <= int64(s.opts.MaxObjects) {
		_, err := s.rmf.NewResMapFromBytes([]byte(entry))
		inline = err == nil
	}
	if inline {
		content = []byte(entry)
	} else {
		if why := remote(entry); why != "" {
			return cost{}, refusal(kfile, field, entry, why)
		}
		if s.art.mem.IsDir(resolve(dir, entry)) {
			return cost{}, refusal(kfile, field, entry, "is a directory: list the plugin configuration files themselves")
		}
		p, ferr := s.localFile(kfile, dir, field, entry)
		if ferr != nil {
			return cost{}, ferr
		}
		if _, ferr := s.yamlFile(p); ferr != nil {
			return cost{}, ferr
		}
		content, _ = s.art.mem.ReadFile(p)
		where = p
		c.bytes = int64(len(content))
	}
	resources, err := s.rf.SliceFromBytes(content)
	if err != nil {
		return cost{}, &fileError{rel(where), fmt.Errorf("%s: %w", field, err)}
	}
	for _, r := range resources {
		gvk := r.GetGvk()
		name := gvk.Kind + " " + r.GetName()
		if gvk.Group != "" || gvk.Version != konfig.BuiltinPluginApiVersion {
			return cost{}, &fileError{rel(where), fmt.Errorf("%s: %s (%s) is not a builtin kustomize plugin: a build runs no plugins (exec, Go or container functions)", field, name, gvk.ApiVersion())}
		}
		b, err := r.MarshalJSON()
		if err != nil {
			return cost{}, &fileError{rel(where), fmt.Errorf("%s: %s: %w", field, name, err)}
		}
		// Field names match case-insensitively; two that differ only in
		// case could be read one way here and another by the plugin.
		var raw any
		if err := json.Unmarshal(b, &raw); err != nil {
			return cost{}, &fileError{rel(where), fmt.Errorf("%s: %s: %w", field, name, err)}
		}
		if k := caseCollision(raw); k != "" {
			return cost{}, &fileError{rel(where), fmt.Errorf("%s: %s has field %q twice, in different cases: keep one", field, name, k)}
		}
		var pc pluginConfig
		if err := json.Unmarshal(b, &pc); err != nil {
			return cost{}, &fileError{rel(where), fmt.Errorf("%s: %s: %w", field, name, err)}
		}
		sub := field + " " + name
		switch gvk.Kind {
		case "HelmChartInflationGenerator":
			return cost{}, &fileError{rel(where), fmt.Errorf("%s runs helm, which a build never runs: render the chart (helm template) and put its output in the artifact", sub)}
		case "ConfigMapGenerator", "SecretGenerator":
			gc, ferr := s.generator(kfile, dir, sub, pc.GeneratorArgs, gvk.Kind == "SecretGenerator")
			if ferr != nil {
				return cost{}, ferr
			}
			c.add(gc)
			continue
		}
		var paths []string
		if pc.Path != "" {
			paths = append(paths, pc.Path)
		}
		if pc.TargetFilePath != "" {
			paths = append(paths, pc.TargetFilePath)
		}
		for _, r := range pc.Replacements {
			if r.Path != "" {
				paths = append(paths, r.Path)
			}
		}
		for _, p := range pc.Paths {
			if s.isInlinePatch(p) {
				pc.Patches += "\n---\n" + p
			} else {
				paths = append(paths, p)
			}
		}
		for _, e := range paths {
			p, ferr := s.localFile(kfile, dir, sub, e)
			if ferr != nil {
				return cost{}, ferr
			}
			if _, ferr := s.yamlFile(p); ferr != nil {
				return cost{}, ferr
			}
			c.bytes = sat(c.bytes, s.size(p))
		}
		for _, text := range []string{pc.Patch, pc.Patches} {
			if _, err := checkYAMLBytes([]byte(text)); err != nil {
				return cost{}, &fileError{rel(where), fmt.Errorf("%s: inline patch: %w", sub, err)}
			}
		}
		c.objects = sat(c.objects, 1)
	}
	return c, nil
}

// caseCollision returns a key of v, at any depth, that another key of the
// same mapping equals but for case, or "".
func caseCollision(v any) string {
	switch x := v.(type) {
	case map[string]any:
		seen := map[string]bool{}
		for k, e := range x {
			if seen[strings.ToLower(k)] {
				return k
			}
			seen[strings.ToLower(k)] = true
			if c := caseCollision(e); c != "" {
				return c
			}
		}
	case []any:
		for _, e := range x {
			if c := caseCollision(e); c != "" {
				return c
			}
		}
	}
	return ""
}

// yamlFile parses the YAML file at p, within the bounds, and returns the
// objects it holds.
func (s *scanner) yamlFile(p string) (int64, *fileError) {
	if n, ok := s.files[p]; ok {
		return n, nil
	}
	b, err := s.art.mem.ReadFile(p)
	if err != nil {
		return 0, &fileError{rel(p), err}
	}
	n, err := checkYAMLBytes(b)
	if err != nil {
		return 0, &fileError{rel(p), err}
	}
	s.files[p] = n
	return n, nil
}

// checkYAMLBytes parses b's documents, refuses a mapping wider than
// maxMappingKeys, and counts the objects (the items of a List count one
// each). The parser refuses excessive aliasing.
func checkYAMLBytes(b []byte) (int64, error) {
	var n int64
	for i, doc := range splitDocuments(b) {
		var v any
		if err := yaml.Unmarshal(doc, &v); err != nil {
			return 0, fmt.Errorf("document %d: %w", i+1, err)
		}
		if err := checkWidth(v); err != nil {
			return 0, fmt.Errorf("document %d: %w", i+1, err)
		}
		switch m := v.(type) {
		case nil:
		case map[string]any:
			kind, _ := m["kind"].(string)
			if items, ok := m["items"].([]any); ok && strings.HasSuffix(kind, "List") {
				n += int64(len(items))
			} else {
				n++
			}
		default:
			n++
		}
	}
	return n, nil
}

func checkWidth(v any) error {
	switch x := v.(type) {
	case map[string]any:
		if len(x) > maxMappingKeys {
			return fmt.Errorf("a mapping has %d keys, over the limit of %d keys in one mapping", len(x), maxMappingKeys)
		}
		for _, e := range x {
			if err := checkWidth(e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := checkWidth(e); err != nil {
				return err
			}
		}
	}
	return nil
}

func splitDocuments(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if bytes.Equal(bytes.TrimRight(line, " \t\r\n"), []byte("---")) {
			docs = append(docs, bytes.Clone(cur.Bytes()))
			cur.Reset()
			continue
		}
		cur.Write(line)
	}
	return append(docs, cur.Bytes())
}

// patchFiles splits patches into the files they name and, appended to
// inline, the patches written in the kustomization itself.
func patchFiles(patches []types.Patch, inline []string) (paths, inlineOut []string) {
	for _, p := range patches {
		if p.Path != "" {
			paths = append(paths, p.Path)
		}
		inline = append(inline, p.Patch)
	}
	return paths, inline
}
