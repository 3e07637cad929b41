package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"airlock.dev/airlock/artifact"
)

// releaseDiff is `airlock diff release -o json`: what applying a digest to
// a Release changes, for a change board's tooling.
type releaseDiff struct {
	Release string        `json:"release"`
	Digest  string        `json:"digest"`
	Signers []foundSigner `json:"signers"`
	Added   []string      `json:"added"`
	Changed []objectDiff  `json:"changed"`
	Pruned  []string      `json:"pruned"`
	// LeftInPlace are the objects a Release with spec.prune false no
	// longer applies, and does not delete.
	LeftInPlace []string `json:"leftInPlace,omitempty"`
	Unchanged   int      `json:"unchanged"`
}

// objectDiff is a changed object and a unified diff, from the live object
// to what a server-side apply of the candidate makes of it, of its YAML
// (without managedFields, resourceVersion, generation, timestamps, uid and
// status; a Secret's values masked).
type objectDiff struct {
	Object string `json:"object"`
	Diff   string `json:"diff"`
}

func (d *releaseDiff) changes() bool {
	return len(d.Added)+len(d.Changed)+len(d.Pruned) > 0
}

func newDiffReleaseCmd() *cobra.Command {
	var (
		kube   kubeFlags
		remote remoteFlags
		output outputFlag
		ref    string
		ctrlNS string
	)
	cmd := &cobra.Command{
		Use:   "release NAME --ref TAG|@DIGEST",
		Short: "Show what a digest would change in a Release's objects: exit 0 when nothing, 1 when something, 2 on an error",
		Long: `Verify a candidate digest of the Release's repository under the Release's
own trust, as the controller does (the keys Secret of spec.verify and every
ClusterTrustPolicy covering spec.url, whose keys are in
--controller-namespace), and refuse one that does not verify. Then build it
with the Release's own settings (path, targetNamespace, patches, images,
components, name prefix and suffix, common metadata, and postBuild
substitution, its ConfigMaps and Secrets read with your credentials),
server-side dry-run apply each object against the live cluster, and print
the objects to be added, changed (a unified diff of the YAML, a Secret's
values masked) and pruned (in status.inventory but not in the candidate),
with the signers found. Nothing is written.`,
		Example: `  airlock diff release app -n apps --ref v1.3.0
  airlock diff release app -n apps --ref @sha256:3f9a… -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.validate(); err != nil {
				return err
			}
			d, err := diffRelease(cmd, &kube, remote.options(), args[0], ref, ctrlNS)
			if err != nil {
				// 2 keeps "could not compare" apart from 1, "changes".
				return &exitError{code: 2, err: err}
			}
			if ok, err := output.print(cmd.OutOrStdout(), d); ok {
				if err != nil {
					return err
				}
			} else {
				printReleaseDiff(cmd.OutOrStdout(), d)
			}
			if d.changes() {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&ref, "ref", "", "the candidate: a tag of the Release's repository, or @sha256:… (required)")
	fs.StringVar(&ctrlNS, "controller-namespace", defaultControllerNamespace, "the namespace the controller runs in, where the ClusterTrustPolicies' keys Secrets are")
	kube.register(fs)
	remote.register(fs)
	output.register(fs, "json", "yaml")
	return cmd
}

func diffRelease(cmd *cobra.Command, kube *kubeFlags, remote artifact.RemoteOptions, name, ref, ctrlNS string) (*releaseDiff, error) {
	var tag, digest string
	switch {
	case ref == "":
		return nil, errors.New("--ref is required: a tag of the Release's repository, or @sha256:…")
	case strings.HasPrefix(ref, "@"):
		digest = ref[1:]
		if !strings.HasPrefix(digest, "sha256:") || len(digest) != len("sha256:")+64 {
			return nil, fmt.Errorf("--ref %s: want @sha256: and 64 hex digits", ref)
		}
	case !artifact.ValidTag(ref):
		return nil, fmt.Errorf("--ref %q is neither a tag nor @sha256:…", ref)
	default:
		tag = ref
	}
	c, err := kube.client()
	if err != nil {
		return nil, err
	}
	ctx := cmd.Context()
	r, err := c.getRelease(ctx, name)
	if err != nil {
		return nil, err
	}
	p, err := previewDigest(ctx, c, r, tag, digest, remote, ctrlNS, "diff Release "+r.Namespace+"/"+r.Name+" against")
	if err != nil {
		return nil, err
	}
	d := &releaseDiff{Release: r.Namespace + "/" + r.Name, Digest: p.Digest, Signers: p.Signers,
		Added: p.Added, Changed: []objectDiff{}, Unchanged: len(p.Unchanged)}
	if p.PruneDisabled {
		d.LeftInPlace = p.Removed
	} else {
		d.Pruned = p.Removed
	}
	for _, ch := range p.Changed {
		text, err := objectYAMLDiff(ch, "live", shortHex(p.Digest))
		if err != nil {
			return nil, fmt.Errorf("diff %s: %w", ch.Name, err)
		}
		d.Changed = append(d.Changed, objectDiff{Object: ch.Name, Diff: text})
	}
	for _, l := range []*[]string{&d.Added, &d.Pruned} {
		if *l == nil {
			*l = []string{}
		}
	}
	if d.Signers == nil {
		d.Signers = []foundSigner{}
	}
	return d, nil
}

// objectYAMLDiff is a unified diff from the live object's YAML to the
// dry-run's, without the fields every write changes and with a Secret's
// values masked.
func objectYAMLDiff(ch changedObject, from, to string) (string, error) {
	live, dry := comparableFields(ch.Live), comparableFields(ch.Dry)
	for _, o := range []map[string]any{live, dry} {
		unstructured.RemoveNestedField(o, "metadata", "uid")
	}
	if ch.Live.GetKind() == "Secret" && ch.Live.GroupVersionKind().Group == "" {
		maskSecret(live, dry)
	}
	a, err := yaml.Marshal(live)
	if err != nil {
		return "", err
	}
	b, err := yaml.Marshal(dry)
	if err != nil {
		return "", err
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(a)), B: difflib.SplitLines(string(b)),
		FromFile: from, ToFile: to, Context: 3,
	})
}

// maskSecret replaces the values of a Secret's data and stringData, and
// of an annotation kubectl copies them into, in both versions: a value
// the same in both is "*** (unchanged)", one that differs "*** (old
// value)" and "*** (new value)", one in a single version "***". No value,
// and no hash of one (a short value's hash can be guessed), is shown.
func maskSecret(live, dry map[string]any) {
	for _, field := range []string{"data", "stringData"} {
		a, _, _ := unstructured.NestedMap(live, field)
		b, _, _ := unstructured.NestedMap(dry, field)
		keys := map[string]bool{}
		for k := range a {
			keys[k] = true
		}
		for k := range b {
			keys[k] = true
		}
		for k := range keys {
			va, inA := a[k]
			vb, inB := b[k]
			switch {
			case inA && inB && fmt.Sprint(va) == fmt.Sprint(vb):
				a[k], b[k] = "*** (unchanged)", "*** (unchanged)"
			case inA && inB:
				a[k], b[k] = "*** (old value)", "*** (new value)"
			case inA:
				a[k] = "***"
			default:
				b[k] = "***"
			}
		}
		if a != nil {
			_ = unstructured.SetNestedMap(live, a, field)
		}
		if b != nil {
			_ = unstructured.SetNestedMap(dry, b, field)
		}
	}
	const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"
	for _, o := range []map[string]any{live, dry} {
		if _, ok, _ := unstructured.NestedString(o, "metadata", "annotations", lastApplied); ok {
			_ = unstructured.SetNestedField(o, "***", "metadata", "annotations", lastApplied)
		}
	}
}

func printReleaseDiff(w io.Writer, d *releaseDiff) {
	fmt.Fprintf(w, "Diff of Release %s against %s\n", d.Release, d.Digest)
	printVerified(w, d.Digest, d.Signers)
	list := func(title string, names []string) { printObjects(w, title, names) }
	list("Added", d.Added)
	fmt.Fprintf(w, "Changed (%d):\n", len(d.Changed))
	for _, c := range d.Changed {
		fmt.Fprintf(w, "  %s\n", c.Object)
		for _, line := range strings.SplitAfter(strings.TrimSuffix(c.Diff, "\n"), "\n") {
			fmt.Fprintf(w, "    %s", line)
		}
		fmt.Fprintln(w)
	}
	list("Pruned", d.Pruned)
	if d.LeftInPlace != nil {
		list("Left in place (spec.prune is false)", d.LeftInPlace)
	}
	fmt.Fprintf(w, "Unchanged: %d objects\n", d.Unchanged)
}

// printVerified says who signed digest, or that nobody had to.
func printVerified(w io.Writer, digest string, signers []foundSigner) {
	if len(signers) > 0 {
		fmt.Fprintf(w, "Verified: %s signed by %s\n", digest, signersText(signers))
	} else {
		fmt.Fprintln(w, "Verified: no: the Release has no spec.verify and no ClusterTrustPolicy covers it; the controller applies it only if it runs with --allow-unsigned")
	}
}

// printObjects is a titled, counted list of objects.
func printObjects(w io.Writer, title string, names []string) {
	fmt.Fprintf(w, "%s (%d):\n", title, len(names))
	for _, n := range names {
		fmt.Fprintf(w, "  %s\n", n)
	}
}
