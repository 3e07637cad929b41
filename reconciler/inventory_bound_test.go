package reconciler_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/build"
	"airlock.dev/airlock/reconciler"
)

// TestInventoryOfMaxObjectsFitsEtcd: a build returns at most
// build.DefaultMaxObjects objects, so status.inventory stays far below
// etcd's 1.5 MiB object limit even when every group, kind, namespace and
// name is 253 characters long, leaving room for the rest of the Release.
func TestInventoryOfMaxObjectsFitsEtcd(t *testing.T) {
	const etcdLimit = 1536 << 10
	const rest = 256 << 10 // spec, conditions (32,000 characters each at most), history
	long := func(c string, i int) string {
		s := fmt.Sprintf("%s%d", c, i)
		return s + strings.Repeat(c, 253-len(s))
	}
	objs := make([]*unstructured.Unstructured, build.DefaultMaxObjects)
	for i := range objs {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(long("g", i) + "/" + strings.Repeat("v", 63)) // versions are DNS labels
		u.SetKind(long("K", i))
		u.SetNamespace(long("n", i))
		u.SetName(long("x", i))
		objs[i] = u
	}
	st := v1alpha1.ReleaseStatus{Inventory: reconciler.Inventory(objs)}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Inventory) != build.DefaultMaxObjects || len(st.Inventory[0].Name) != 253 || len(st.Inventory[0].Group) != 253 {
		t.Fatalf("inventory of %d refs, first %+v: not the worst case", len(st.Inventory), st.Inventory[0])
	}
	t.Logf("worst-case inventory of %d objects: %d bytes (%.2f MiB)", len(st.Inventory), len(b), float64(len(b))/(1<<20))
	if len(b) > etcdLimit-rest {
		t.Errorf("worst-case status.inventory of build.DefaultMaxObjects (%d) objects is %d bytes, over %d (etcd's %d less %d for the rest of the Release): lower build.DefaultMaxObjects", build.DefaultMaxObjects, len(b), etcdLimit-rest, etcdLimit, rest)
	}
}
