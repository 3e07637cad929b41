package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/fluxcd/pkg/envsubst"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"airlock.dev/airlock/api/v1alpha1"
)

// Site is what a site layers on top of an artifact's own kustomization:
// kustomize applies it from an overlay kustomization, in memory, that
// names the artifact's build root as its one resource. The artifact itself
// is not changed. The zero value layers nothing.
type Site struct {
	// Patches are strategic merge or JSON 6902 patches, written inline
	// (Path must be empty: a site's patches are not files of the artifact).
	Patches []types.Patch
	// Images are kustomize image overrides.
	Images []types.Image
	// Components are directories of the artifact holding kustomize
	// components, relative to the build path; they must stay inside the
	// artifact, and are checked like the artifact's own kustomizations.
	Components []string
	// NamePrefix and NameSuffix are added to every object's name.
	NamePrefix, NameSuffix string
	// Labels and Annotations are set on every object's metadata only (not
	// on selectors or pod templates), as Flux's commonMetadata does.
	Labels, Annotations map[string]string
}

// Empty reports whether s layers nothing.
func (s *Site) Empty() bool {
	return s == nil || (len(s.Patches) == 0 && len(s.Images) == 0 && len(s.Components) == 0 &&
		s.NamePrefix == "" && s.NameSuffix == "" && len(s.Labels) == 0 && len(s.Annotations) == 0)
}

// Hash is "sha256:<hex>" over s's canonical JSON, or "" when s is empty.
func (s *Site) Hash() string {
	if s.Empty() {
		return ""
	}
	b, _ := json.Marshal(s) // maps marshal sorted
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Summary says in a few words what s layers on top, such as
// "2 patches, 1 image, namePrefix prod-"; "" when s is empty.
func (s *Site) Summary() string {
	if s.Empty() {
		return ""
	}
	var parts []string
	count := func(n int, one, many string) {
		switch {
		case n == 1:
			parts = append(parts, "1 "+one)
		case n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", n, many))
		}
	}
	count(len(s.Patches), "patch", "patches")
	count(len(s.Images), "image", "images")
	if len(s.Components) > 0 {
		parts = append(parts, "components "+strings.Join(s.Components, ","))
	}
	if s.NamePrefix != "" {
		parts = append(parts, "namePrefix "+s.NamePrefix)
	}
	if s.NameSuffix != "" {
		parts = append(parts, "nameSuffix "+s.NameSuffix)
	}
	count(len(s.Labels), "label", "labels")
	count(len(s.Annotations), "annotation", "annotations")
	out := strings.Join(parts, ", ")
	if len(out) > 200 {
		out = out[:197] + "..."
	}
	return out
}

// Substitution replaces ${var}, ${var:=default} and ${var:-default} in the
// built objects, as Flux's postBuild does, with Flux's envsubst. An object
// whose annotation or label v1alpha1.SubstituteAnnotation is "disabled" is
// left as it is.
type Substitution struct {
	// Vars are the variables and their values. Names must match
	// ^[_[:alpha:]][_[:alpha:][:digit:]]*$.
	Vars map[string]string
	// Strict makes a variable that is neither defined nor given a default
	// an error naming the object and the variable. false replaces it with
	// the empty string.
	Strict bool
}

// varName is Flux's rule for variable names.
var varName = regexp.MustCompile(`^[_[:alpha:]][_[:alpha:][:digit:]]*$`)

// ValuesHash is "sha256:<hex>" over vars sorted by name, each written as
// name=value and a NUL byte, or "" when there are none. It shows that
// values changed without showing them.
func ValuesHash(vars map[string]string) string {
	if len(vars) == 0 {
		return ""
	}
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, k := range names {
		h.Write([]byte(k + "=" + vars[k] + "\x00"))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// CheckVarNames refuses a variable name that envsubst cannot reference.
// The error names the variable, never its value.
func CheckVarNames(vars map[string]string) error {
	var errs []error
	for k := range vars {
		if !varName.MatchString(k) {
			errs = append(errs, fmt.Errorf("variable name %q is invalid: it must match %s", k, varName))
		}
	}
	return errors.Join(errs...)
}

// siteDir and artifactDir are where an overlay build puts the overlay
// kustomization and the artifact, in a file system of its own.
const (
	siteDir     = "/site"
	artifactDir = "/artifact"
)

// checkSite checks what the site names inside the artifact before
// kustomize runs, as the artifact's own kustomizations are checked, and
// returns the cost of its components.
func (s *scanner) checkSite(site *Site, buildRoot string) (cost, *fileError) {
	var c cost
	for i, comp := range site.Components {
		field := fmt.Sprintf("spec.components[%d]", i)
		if why := remote(comp); why != "" {
			return cost{}, &fileError{field, fmt.Errorf("component %q %s: a component must be a directory inside the artifact", comp, why)}
		}
		p := resolve(buildRoot, comp)
		if !s.art.mem.IsDir(p) {
			return cost{}, &fileError{field, fmt.Errorf("component %q is not a directory in the artifact (paths are relative to spec.path)", comp)}
		}
		sub, ferr := s.kustomization(p)
		if ferr != nil {
			return cost{}, ferr
		}
		c.add(sub)
	}
	for i, p := range site.Patches {
		if p.Path != "" {
			return cost{}, &fileError{fmt.Sprintf("spec.patches[%d]", i), fmt.Errorf("a site's patch is written inline, never a path")}
		}
		if _, err := checkYAMLBytes([]byte(p.Patch)); err != nil {
			return cost{}, &fileError{fmt.Sprintf("spec.patches[%d]", i), err}
		}
		c.bytes = sat(c.bytes, int64(len(p.Patch)))
	}
	return c, nil
}

// overlay copies the artifact into a new in-memory file system under
// artifactDir and writes, at siteDir, a kustomization that names the build
// root as its resource and layers site on top. It returns the new file
// system and the overlay's directory to build.
func overlay(mem filesys.FileSystem, buildRoot string, site *Site) (filesys.FileSystem, string, error) {
	out := filesys.MakeFsInMemory()
	err := mem.Walk("/", func(p string, info fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		target := path.Join(artifactDir, p)
		if info.IsDir() {
			return out.MkdirAll(target)
		}
		b, err := mem.ReadFile(p)
		if err != nil {
			return err
		}
		return out.WriteFile(target, b)
	})
	if err != nil {
		return nil, "", fmt.Errorf("copy the artifact for the overlay: %w", err)
	}
	rel := func(p string) string { return ".." + path.Join(artifactDir, p) }
	k := types.Kustomization{
		TypeMeta:   types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind},
		Resources:  []string{rel(buildRoot)},
		Patches:    site.Patches,
		Images:     site.Images,
		NamePrefix: site.NamePrefix,
		NameSuffix: site.NameSuffix,
	}
	for _, c := range site.Components {
		k.Components = append(k.Components, rel(resolve(buildRoot, c)))
	}
	if len(site.Labels) > 0 {
		k.Labels = []types.Label{{Pairs: site.Labels}} // metadata only: no selectors, no templates
	}
	if len(site.Annotations) > 0 {
		// kustomize's commonAnnotations also annotates pod templates; the
		// builtin transformer with one field spec annotates metadata only.
		t := map[string]any{
			"apiVersion":  "builtin",
			"kind":        "AnnotationsTransformer",
			"metadata":    map[string]any{"name": "common-metadata"},
			"annotations": site.Annotations,
			"fieldSpecs":  []map[string]any{{"path": "metadata/annotations", "create": true}},
		}
		b, err := yaml.Marshal(t)
		if err != nil {
			return nil, "", err
		}
		k.Transformers = []string{string(b)}
	}
	b, err := yaml.Marshal(k)
	if err != nil {
		return nil, "", err
	}
	if err := out.MkdirAll(siteDir); err != nil {
		return nil, "", err
	}
	if err := out.WriteFile(path.Join(siteDir, "kustomization.yaml"), b); err != nil {
		return nil, "", err
	}
	return out, siteDir, nil
}

// substitute runs envsubst over one built object's YAML, as Flux does, and
// returns the YAML as JSON. It reports false for an object that opts out.
// Errors name the object and at most the variable: never a value.
func substitute(res *resource.Resource, sub *Substitution, maxBytes int64) ([]byte, bool, error) {
	if res.GetAnnotations()[v1alpha1.SubstituteAnnotation] == v1alpha1.SubstituteDisabled ||
		res.GetLabels()[v1alpha1.SubstituteAnnotation] == v1alpha1.SubstituteDisabled {
		return nil, false, nil
	}
	in, err := res.AsYAML()
	if err != nil {
		return nil, false, err
	}
	out, err := envsubst.Eval(string(in), func(name string) (string, bool) {
		v, ok := sub.Vars[name]
		if !sub.Strict {
			return v, true
		}
		return v, ok
	})
	if err != nil {
		return nil, false, fmt.Errorf("substitute variables: %w", err)
	}
	if int64(len(out)) > maxBytes {
		return nil, false, fmt.Errorf("after substitution the object is %d bytes, over the limit of %d bytes (--build-max-file-bytes): use shorter values", len(out), maxBytes)
	}
	j, err := yaml.YAMLToJSON([]byte(out))
	if err != nil {
		// The parser's message may quote the substituted text: leave it out.
		return nil, false, fmt.Errorf("after substitution the object is not valid YAML: a value must fit where its variable stands; quote the variable (\"${VAR}\") in the artifact, or opt the object out with the annotation %s: %s", v1alpha1.SubstituteAnnotation, v1alpha1.SubstituteDisabled)
	}
	return j, true, nil
}

// objectName names a built object for messages: Kind namespace/name.
func objectName(res *resource.Resource) string {
	n := res.GetName()
	if ns := res.GetNamespace(); ns != "" {
		n = ns + "/" + n
	}
	return res.GetKind() + " " + n
}
