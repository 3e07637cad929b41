package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"airlock.dev/airlock/api/v1alpha1"
)

func TestGoMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	file := func(content string) string {
		f, err := os.CreateTemp(dir, "memory.max")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(content); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return f.Name()
	}
	for _, tc := range []struct {
		name    string
		file    string
		ratio   float64
		want    int64
		wantErr string
	}{
		{name: "256 MiB limit", file: file("268435456\n"), ratio: 0.9, want: 241591910},
		{name: "whole limit", file: file("67108864\n"), ratio: 1, want: 67108864},
		{name: "no limit", file: file("max\n"), ratio: 0.9, want: 0},
		{name: "no cgroup v2", file: filepath.Join(dir, "missing"), ratio: 0.9, want: 0},
		{name: "garbage", file: file("lots\n"), ratio: 0.9, wantErr: `holds "lots"`},
		{name: "ratio over 1", file: file("67108864\n"), ratio: 1.5, wantErr: "--memory-limit-ratio"},
		{name: "ratio 0", file: file("67108864\n"), ratio: 0, wantErr: "--memory-limit-ratio"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := goMemoryLimit(tc.file, tc.ratio)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("limit = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestPprofAddrMustBeLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "10.1.2.3:6060", "example.com:6060", "6060"} {
		err := run(context.Background(), []string{"--pprof-addr", addr, "--kubeconfig", "/nonexistent"}, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "--pprof-addr") {
			t.Errorf("--pprof-addr %s: err = %v, want one naming --pprof-addr", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:6060", "[::1]:6060", "localhost:0"} {
		if err := checkLoopback("--pprof-addr", addr); err != nil {
			t.Errorf("--pprof-addr %s: %v", addr, err)
		}
	}
}

// TestCacheTransformStrips checks that the informer caches keep neither the
// managed fields nor kubectl's last-applied copy of an object.
func TestCacheTransformStrips(t *testing.T) {
	rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{
		Name: "app", Namespace: "apps",
		Annotations: map[string]string{
			lastAppliedAnnotation:               `{"apiVersion":"delivery.airlock.dev/v1alpha1","kind":"Release"}`,
			v1alpha1.ReconcileRequestAnnotation: "now",
		},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}},
	}}
	out, err := stripForCache(rel)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*v1alpha1.Release)
	if len(got.ManagedFields) != 0 {
		t.Errorf("managed fields kept: %v", got.ManagedFields)
	}
	if _, ok := got.Annotations[lastAppliedAnnotation]; ok {
		t.Errorf("%s kept", lastAppliedAnnotation)
	}
	if got.Annotations[v1alpha1.ReconcileRequestAnnotation] != "now" {
		t.Errorf("annotations = %v, want %s kept", got.Annotations, v1alpha1.ReconcileRequestAnnotation)
	}
	meta := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "keys", Namespace: "apps", UID: "u1", ResourceVersion: "7",
		Labels: map[string]string{"app": "web"}, Annotations: map[string]string{lastAppliedAnnotation: "{}", "note": "kept nowhere"},
		OwnerReferences: []metav1.OwnerReference{{Name: "owner"}}, Finalizers: []string{"example.com/f"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	out, err = stripForCache(meta)
	if err != nil {
		t.Fatal(err)
	}
	want := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "keys", Namespace: "apps", UID: "u1", ResourceVersion: "7"}}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("Secret metadata kept in the cache (-want +got):\n%s", diff)
	}
}

// TestCacheTransformSharesStrings decodes two Releases of one artifact, as
// the informer does, each with its own copy of every string, and checks
// that after the cache transform they share one copy of the digests,
// conditions, signers and inventory entries, with the same content as
// before and lists no larger than their content.
func TestCacheTransformSharesStrings(t *testing.T) {
	digest := "sha256:3f9a2b7c1e0d3f9a2b7c1e0d3f9a2b7c1e0d3f9a2b7c1e0d3f9a2b7c1e0d3f9a"
	var inventory []v1alpha1.ObjectRef
	for i := range 10 {
		inventory = append(inventory, v1alpha1.ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "team-a", Name: fmt.Sprintf("web-%d", i)})
	}
	rel := func(name string) []byte {
		r := v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team-a"},
			Spec: v1alpha1.ReleaseSpec{URL: "oci://registry.example.com/team/app"},
			Status: v1alpha1.ReleaseStatus{
				Conditions:          []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Succeeded", Message: "applied oci://registry.example.com/team/app@" + digest + ": 10 objects"}},
				LastAttemptedDigest: digest, LastAppliedDigest: digest, ShortDigest: digest[7:19],
				LastAppliedSource: "oci://registry.example.com/team/app@" + digest,
				Signers:           []v1alpha1.Signer{{Name: "release.pub", Fingerprint: digest[7:]}},
				Inventory:         inventory,
				History:           []v1alpha1.HistoryEntry{{Digest: digest, Signers: []string{digest[7:]}, Health: "Healthy"}},
			}}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	transform := newCacheTransform()
	var got []*v1alpha1.Release
	for _, name := range []string{"a", "b"} {
		var r v1alpha1.Release
		if err := json.Unmarshal(rel(name), &r); err != nil {
			t.Fatal(err)
		}
		before := r.DeepCopy()
		out, err := transform(&r)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before, out); diff != "" {
			t.Fatalf("Release %s changed by the cache transform (-before +after):\n%s", name, diff)
		}
		got = append(got, out.(*v1alpha1.Release))
	}
	a, b := got[0], got[1]
	same := func(what string, x, y string) {
		t.Helper()
		if unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s: two copies of %q", what, x)
		}
	}
	same("lastAppliedDigest of two Releases", a.Status.LastAppliedDigest, b.Status.LastAppliedDigest)
	same("lastAttemptedDigest and lastAppliedDigest", a.Status.LastAttemptedDigest, a.Status.LastAppliedDigest)
	same("history digest", a.Status.History[0].Digest, b.Status.LastAppliedDigest)
	same("lastAppliedSource", a.Status.LastAppliedSource, b.Status.LastAppliedSource)
	same("spec.url", a.Spec.URL, b.Spec.URL)
	same("condition message", a.Status.Conditions[0].Message, b.Status.Conditions[0].Message)
	same("condition reason", a.Status.Conditions[0].Reason, b.Status.Conditions[0].Reason)
	same("signer fingerprint", a.Status.Signers[0].Fingerprint, b.Status.History[0].Signers[0])
	for i := range a.Status.Inventory {
		same("inventory kind", a.Status.Inventory[i].Kind, b.Status.Inventory[0].Kind)
		same("inventory namespace", a.Status.Inventory[i].Namespace, b.Status.Inventory[0].Namespace)
		same("inventory name", a.Status.Inventory[i].Name, b.Status.Inventory[i].Name)
	}
	if n := len(a.Status.Inventory); cap(a.Status.Inventory) != n {
		t.Errorf("inventory of %d entries has capacity %d, want %d", n, cap(a.Status.Inventory), n)
	}
}

// TestSharedStringsBounded checks that the table of shared strings starts
// over when full instead of growing with every string it has seen.
func TestSharedStringsBounded(t *testing.T) {
	tbl := &sharedStrings{max: 4}
	for i := range 10 {
		s := fmt.Sprintf("sha256:%064d", i)
		share(tbl, &s)
		if len(tbl.m) > tbl.max {
			t.Fatalf("after %d strings the table holds %d, want at most %d", i+1, len(tbl.m), tbl.max)
		}
	}
}
