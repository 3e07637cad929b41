package build

import (
	"context"
	"errors"
	"reflect"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"airlock.dev/airlock/api/v1alpha1"
)

// ReleaseOptions carries the Release's overlay and merges its values as
// Flux does: substituteFrom in order, then substitute; a missing optional
// source is skipped, a missing required one and an unknown kind are errors
// that name them.
func TestReleaseOptions(t *testing.T) {
	objects := map[string]map[string]string{
		"ConfigMap/apps/base": {"A": "from-cm", "B": "from-cm"},
		"Secret/apps/creds":   {"B": "from-secret", "C": "from-secret"},
	}
	read := func(_ context.Context, kind string, key types.NamespacedName) (map[string]string, error) {
		if d, ok := objects[kind+"/"+key.String()]; ok {
			return d, nil
		}
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: kind}, key.Name)
	}
	rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "apps"}, Spec: v1alpha1.ReleaseSpec{
		NamePrefix: "p-",
		PostBuild: &v1alpha1.PostBuild{Strict: true, Substitute: map[string]string{"C": "inline"}, SubstituteFrom: []v1alpha1.SubstituteReference{
			{Kind: "ConfigMap", Name: "base"}, {Kind: "Secret", Name: "creds"}, {Kind: "ConfigMap", Name: "absent", Optional: true},
		}},
	}}
	opts, err := ReleaseOptions(context.Background(), rel, Options{MaxObjects: 7}, read)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "from-cm", "B": "from-secret", "C": "inline"}
	if opts.MaxObjects != 7 || opts.Site == nil || opts.Site.NamePrefix != "p-" || opts.Substitute == nil || !opts.Substitute.Strict || !reflect.DeepEqual(opts.Substitute.Vars, want) {
		t.Errorf("options = %+v, substitute %+v; want the base kept, prefix p-, strict, vars %v", opts, opts.Substitute, want)
	}

	rel.Spec.PostBuild.SubstituteFrom[2].Optional = false
	_, err = ReleaseOptions(context.Background(), rel, Options{}, read)
	var se *SubstituteFromError
	if !errors.As(err, &se) || se.Kind != "ConfigMap" || se.Object.Name != "absent" {
		t.Errorf("a missing required source: %v, want a SubstituteFromError naming ConfigMap apps/absent", err)
	}

	rel.Spec.PostBuild.SubstituteFrom[2] = v1alpha1.SubstituteReference{Kind: "Pod", Name: "x"}
	_, err = ReleaseOptions(context.Background(), rel, Options{}, read)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "spec.postBuild.substituteFrom" {
		t.Errorf("an unknown kind: %v, want a FieldError on spec.postBuild.substituteFrom", err)
	}

	rel.Spec.PostBuild = nil
	if opts, err := ReleaseOptions(context.Background(), rel, Options{}, nil); err != nil || opts.Substitute != nil {
		t.Errorf("no postBuild: %+v, %v; want no substitution", opts.Substitute, err)
	}
}
