package reconciler

import (
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"airlock.dev/airlock/api/v1alpha1"
)

// TestDesiredStateHoldsNoObjects: what the controller keeps for a Release
// between reconciles does not grow with its objects (1 MiB of ConfigMaps
// here): a hash and the manifest, not the objects.
func TestDesiredStateHoldsNoObjects(t *testing.T) {
	var objs []*unstructured.Unstructured
	for i := range 10 {
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": fmt.Sprintf("cm-%d", i), "namespace": "apps"},
			"data":     map[string]any{"big": strings.Repeat("x", 100<<10)},
		}})
	}
	rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "apps", Generation: 3}}
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	d, err := newDesiredState(rel, "sha256:"+strings.Repeat("a", 64), "trust", "", nil, manifest, objs, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := retained(reflect.ValueOf(d)); got > 4<<10 {
		t.Errorf("the desired state of a Release with 1 MiB of objects holds %d bytes, want at most 4 KiB", got)
	}
	again, err := objectsHash(objs)
	if err != nil || again != d.hash {
		t.Errorf("objectsHash is not stable: %s, then %s (%v)", d.hash, again, err)
	}
	objs[3].Object["data"].(map[string]any)["big"] = "changed"
	if changed, _ := objectsHash(objs); changed == d.hash {
		t.Errorf("objectsHash did not change with an object")
	}
}

// TestDesiredStateSharesManifests: the Releases of one digest keep one copy
// of its manifest between reconciles, not one each (each Release read its
// own copy from the registry).
func TestDesiredStateSharesManifests(t *testing.T) {
	const n = 1000
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[` + strings.Repeat(`{"digest":"sha256:`+strings.Repeat("b", 64)+`"},`, 20) + `{}]}`
	rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "apps", Generation: 1}}
	digest := "sha256:" + strings.Repeat("a", 64)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	copies := make([][]byte, n)
	for i := range copies {
		copies[i] = []byte(manifest) // as each Release's registry read served it
	}
	states := make([]*desiredState, n)
	for i := range states {
		d, err := newDesiredState(rel, digest, "trust", "", nil, copies[i], nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		states[i] = d
	}
	copies = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	perRelease := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	if perRelease > int64(len(manifest))/2 {
		t.Errorf("the desired states take %d bytes per Release with a %d-byte manifest: want the manifest kept once", perRelease, len(manifest))
	}
	if got := states[n-1].manifest.Value(); got != manifest {
		t.Errorf("manifest kept: %q, want %q", got, manifest)
	}
	runtime.KeepAlive(states)
}

// retained approximates the bytes reachable from v: strings, slices, maps
// and pointers, each counted once.
func retained(v reflect.Value) int {
	seen := map[uintptr]bool{}
	var walk func(v reflect.Value) int
	walk = func(v reflect.Value) int {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if v.IsNil() {
				return 0
			}
			if v.Kind() == reflect.Pointer {
				if seen[v.Pointer()] {
					return 0
				}
				seen[v.Pointer()] = true
				return int(v.Elem().Type().Size()) + walk(v.Elem())
			}
			return walk(v.Elem())
		case reflect.String:
			return v.Len()
		case reflect.Slice:
			n := v.Cap() * int(v.Type().Elem().Size())
			for i := range v.Len() {
				n += walk(v.Index(i))
			}
			return n
		case reflect.Map:
			n := 0
			for it := v.MapRange(); it.Next(); {
				n += walk(it.Key()) + walk(it.Value()) + int(it.Key().Type().Size()+it.Value().Type().Size())
			}
			return n
		case reflect.Struct:
			n := 0
			for i := range v.NumField() {
				n += walk(v.Field(i))
			}
			return n
		}
		return 0
	}
	return walk(v)
}
