package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
