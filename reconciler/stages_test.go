package reconciler

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/build"
	"airlock.dev/airlock/verify"
)

func TestInventoryAfterPrune(t *testing.T) {
	cm := func(name string) v1alpha1.ObjectRef {
		return v1alpha1.ObjectRef{Version: "v1", Kind: "ConfigMap", Namespace: "ns", Name: name}
	}
	a, b, c, d := cm("a"), cm("b"), cm("c"), cm("d")
	failed := errors.New("forbidden")
	for _, tc := range []struct {
		name             string
		old, inv, pruned []v1alpha1.ObjectRef
		err              error
		want             []v1alpha1.ObjectRef
	}{
		{"success is the new inventory", []v1alpha1.ObjectRef{a, b}, []v1alpha1.ObjectRef{a}, []v1alpha1.ObjectRef{b}, nil, []v1alpha1.ObjectRef{a}},
		{"failure keeps what was not pruned", []v1alpha1.ObjectRef{a, b, c}, []v1alpha1.ObjectRef{a}, []v1alpha1.ObjectRef{b}, failed, []v1alpha1.ObjectRef{a, c}},
		{"failure before any prune keeps all old objects", []v1alpha1.ObjectRef{b, c}, []v1alpha1.ObjectRef{d}, nil, failed, []v1alpha1.ObjectRef{d, b, c}},
		{"an object in both is listed once", []v1alpha1.ObjectRef{a, b}, []v1alpha1.ObjectRef{a, b}, nil, failed, []v1alpha1.ObjectRef{a, b}},
		{"empty artifact, prune failed", []v1alpha1.ObjectRef{a}, nil, nil, failed, []v1alpha1.ObjectRef{a}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := inventoryAfterPrune(tc.old, tc.inv, tc.pruned, tc.err)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestPrepare(t *testing.T) {
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	mapper.Add(schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}, meta.RESTScopeRoot)
	mapper.Add(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}, meta.RESTScopeRoot)
	obj := func(apiVersion, kind, ns, name string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": name}}}
		if ns != "" {
			u.SetNamespace(ns)
		}
		return u
	}
	crd := func(scope string) *unstructured.Unstructured {
		u := obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "widgets.example.dev")
		u.Object["spec"] = map[string]any{"group": "example.dev", "scope": scope, "names": map[string]any{"kind": "Widget"}}
		return u
	}
	owner := types.NamespacedName{Namespace: "team", Name: "app"}
	for _, tc := range []struct {
		name    string
		objs    []*unstructured.Unstructured
		target  string
		wantNS  []string
		wantErr string
	}{
		{"default namespace", []*unstructured.Unstructured{obj("v1", "ConfigMap", "", "a")}, "", []string{"team"}, ""},
		{"own namespace kept", []*unstructured.Unstructured{obj("v1", "ConfigMap", "other", "a")}, "", []string{"other"}, ""},
		{"target namespace wins", []*unstructured.Unstructured{obj("v1", "ConfigMap", "other", "a")}, "target", []string{"target"}, ""},
		{"cluster-scoped cleared", []*unstructured.Unstructured{obj("rbac.authorization.k8s.io/v1", "ClusterRole", "x", "r")}, "target", []string{""}, ""},
		{"namespaced CRD in the artifact", []*unstructured.Unstructured{crd("Namespaced"), obj("example.dev/v1", "Widget", "", "w")}, "", []string{"", "team"}, ""},
		{"cluster CRD in the artifact", []*unstructured.Unstructured{crd("Cluster"), obj("example.dev/v1", "Widget", "x", "w")}, "", []string{"", ""}, ""},
		{"unknown kind", []*unstructured.Unstructured{obj("example.dev/v1", "Gadget", "", "g")}, "", nil, "no CRD in the artifact defines it"},
		{"no name", []*unstructured.Unstructured{obj("v1", "ConfigMap", "", "")}, "", nil, "has no apiVersion, kind or name"},
		{"duplicate", []*unstructured.Unstructured{obj("v1", "ConfigMap", "", "a"), obj("v1", "ConfigMap", "team", "a")}, "", nil, "appears twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := build.Prepare(tc.objs, mapper, tc.target, "team", owner)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range tc.objs {
				got = append(got, o.GetNamespace())
				if l := o.GetLabels(); l[v1alpha1.NameLabel] != "app" || l[v1alpha1.NamespaceLabel] != "team" {
					t.Errorf("%s labels = %v, want the Release's", objectName(o), l)
				}
			}
			if diff := cmp.Diff(tc.wantNS, got); diff != "" {
				t.Errorf("namespaces (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	key := types.NamespacedName{Namespace: "ns", Name: "app"}
	regErr := &artifact.RegistryError{Op: "resolve", Ref: "oci://r/x:v1", Kind: artifact.ErrUnreachable, Err: errors.New("dial")}
	for _, tc := range []struct {
		name        string
		err         error
		wantReason  string
		wantStalled bool
	}{
		{"verification required", &VerificationRequiredError{Release: key}, v1alpha1.ReasonVerificationRequired, true},
		{"invalid spec", &SpecError{Field: "spec.dependsOn[0].namespace", Err: errors.New("x")}, v1alpha1.ReasonInvalidSpec, true},
		{"service account required", &ServiceAccountRequiredError{Release: key}, v1alpha1.ReasonServiceAccountRequired, true},
		{"no trust policy", &NoTrustPolicyError{Release: key}, v1alpha1.ReasonNoTrustPolicy, true},
		{"broken trust policy", &TrustPolicyError{Policy: "p", Err: errors.New("bad pattern")}, v1alpha1.ReasonVerificationFailed, true},
		{"downgrade", &DowngradeError{Version: "1.0.0", Applied: "1.1.0"}, v1alpha1.ReasonDowngradeRefused, true},
		{"secret", &SecretError{Secret: key, Err: errors.New("not found")}, v1alpha1.ReasonSecretError, false},
		{"dependency", &DependencyError{Dependency: key}, v1alpha1.ReasonDependencyNotReady, false},
		{"untrusted signer, wrapped by its requirement", fmt.Errorf("ClusterTrustPolicy p: %w", &verify.Error{Op: "verify", Reason: verify.ErrUntrustedSigner}), v1alpha1.ReasonVerificationFailed, true},
		{"threshold not met", &verify.Error{Op: "verify", Reason: verify.ErrThresholdNotMet}, v1alpha1.ReasonVerificationFailed, true},
		{"invalid policy", fmt.Errorf("verify x: %w: threshold 3 is more than the 1 keys", verify.ErrPolicy), v1alpha1.ReasonVerificationFailed, true},
		{"registry down while verifying", fmt.Errorf("spec.verify: %w", &verify.Error{Op: "verify", Reason: verify.ErrRegistry, Err: regErr}), v1alpha1.ReasonRegistryUnavailable, false},
		{"registry down", regErr, v1alpha1.ReasonRegistryUnavailable, false},
		{"not found", &artifact.RegistryError{Kind: artifact.ErrNotFound}, v1alpha1.ReasonArtifactNotFound, false},
		{"unauthorized", &artifact.RegistryError{Kind: artifact.ErrUnauthorized}, v1alpha1.ReasonRegistryAuthFailed, false},
		{"too large", &artifact.RegistryError{Kind: artifact.ErrTooLarge}, v1alpha1.ReasonPullFailed, true},
		{"build", &build.Error{Err: errors.New("x")}, v1alpha1.ReasonBuildFailed, true},
		{"immutable", &ImmutableFieldError{Object: "ConfigMap ns/a", Err: errors.New("x")}, v1alpha1.ReasonImmutableField, true},
		{"empty artifact", &EmptyArtifactError{}, v1alpha1.ReasonEmptyArtifact, true},
		{"images missing", &ImagesMissingError{}, v1alpha1.ReasonImagesMissing, false},
		{"forbidden", apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "a", errors.New("no")), v1alpha1.ReasonForbidden, true},
		{"unknown falls back to the stage", errors.New("something"), v1alpha1.ReasonApplyFailed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, stalled := classify(tc.err, v1alpha1.ReasonApplyFailed)
			if reason != tc.wantReason || stalled != tc.wantStalled {
				t.Errorf("classify(%v) = %s, stalled %v; want %s, stalled %v", tc.err, reason, stalled, tc.wantReason, tc.wantStalled)
			}
		})
	}
}

// TestAppliedVersion: the downgrade guard needs the applied version after
// a rollback too, which re-applies an earlier digest by digest, without a
// tag; the version comes from that digest's history entry.
func TestAppliedVersion(t *testing.T) {
	d1, d2 := "sha256:"+strings.Repeat("1", 64), "sha256:"+strings.Repeat("2", 64)
	history := []v1alpha1.HistoryEntry{{Digest: d2, Version: "2.0.0"}, {Digest: d1, Version: "1.0.0"}}
	repo := artifact.Reference{Registry: "r.example", Repository: "team/app"}
	for _, tc := range []struct {
		name string
		ref  v1alpha1.ArtifactRef
		at   artifact.Reference
		want string
	}{
		{"semver resolution", v1alpha1.ArtifactRef{Semver: ">=1.0.0"}, repo.WithTag("2.0.0").WithDigest(d2), "2.0.0"},
		{"rollback by digest", v1alpha1.ArtifactRef{Semver: ">=1.0.0"}, repo.WithDigest(d1), "1.0.0"},
		{"pinned by a manual rollback", v1alpha1.ArtifactRef{Semver: ">=1.0.0", Digest: d1}, repo.WithDigest(d1), "1.0.0"},
		{"digest without history", v1alpha1.ArtifactRef{Semver: ">=1.0.0"}, repo.WithDigest("sha256:" + strings.Repeat("3", 64)), ""},
		{"a tag reference has no version", v1alpha1.ArtifactRef{Tag: "main"}, repo.WithTag("main").WithDigest(d2), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rel := &v1alpha1.Release{Spec: v1alpha1.ReleaseSpec{Ref: tc.ref}, Status: v1alpha1.ReleaseStatus{History: history}}
			if got := appliedVersion(rel, tc.at); got != tc.want {
				t.Fatalf("appliedVersion = %q, want %q", got, tc.want)
			}
		})
	}
}
