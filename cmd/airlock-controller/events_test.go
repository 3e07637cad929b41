package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
	"airlock.dev/airlock/config"
	"airlock.dev/airlock/internal/envtestenv"
	"airlock.dev/airlock/reconciler"
)

// TestMain stops the shared envtest API server (TestEventRecorderBounded,
// TestControllerRendersChartsInItsOwnProcess) once the tests are done.
func TestMain(m *testing.M) {
	code := m.Run()
	envtestenv.Stop()
	os.Exit(code)
}

// TestEventRecorderBounded records events on the envtest API server through
// reconciler.NewEventRecorder with room for 4 events: a repeat is counted on the
// Event already written while it is among the last 4 seen, and written as a
// new Event once 4 others have pushed it out, so the recorder keeps no more
// than its bound (tools/events would count all three on one Event, having
// kept the first for 6 minutes). Events keep their content: the action, the
// note, the reporting controller; similar events are not combined and none
// is dropped as spam.
func TestEventRecorderBounded(t *testing.T) {
	env := envtestenv.Start(t)
	ns := env.Namespace(t)
	rec, stop, err := reconciler.NewEventRecorder(env.Config, env.Scheme, "airlock-controller", 4, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	release := func(i int) *v1alpha1.Release {
		return &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("app-%d", i), UID: types.UID(fmt.Sprintf("uid-%d", i))}}
	}
	rec.Eventf(release(0), nil, "Normal", "Applied", "Apply", "applied %s: %d objects", "oci://r/app@sha256:ab", 10)
	rec.Eventf(release(0), nil, "Normal", "Applied", "Apply", "applied %s: %d objects", "oci://r/app@sha256:ab", 10)
	for i := 1; i <= 4; i++ {
		rec.Eventf(release(i), nil, "Normal", "Applied", "Apply", "applied %s: %d objects", "oci://r/app@sha256:ab", 10)
	}
	rec.Eventf(release(0), nil, "Normal", "Applied", "Apply", "applied %s: %d objects", "oci://r/app@sha256:ab", 10)
	// 30 events about one object, of one reason, with different notes.
	for i := range 30 {
		rec.Eventf(release(5), nil, "Warning", "VerifyFailed", "Verify", "verify attempt %d: no signature by a trusted key", i)
	}

	var seen []eventsv1.Event
	err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var list eventsv1.EventList
		if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		seen = list.Items
		return len(seen) >= 2+4+30 && count(seen, "app-0") == 3, nil
	})
	if err != nil {
		t.Fatalf("events in %s: %v; seen %d: %s", ns, err, len(seen), describe(seen))
	}

	var app0 []int32
	for _, e := range seen {
		if e.Regarding.Name == "app-0" {
			app0 = append(app0, e.DeprecatedCount)
		}
		if e.Action == "" || e.ReportingController != "airlock-controller" || !strings.HasPrefix(e.ReportingInstance, "airlock-controller-") {
			t.Errorf("event %s: action %q, reporting controller %q, instance %q: want the action and airlock-controller", e.Name, e.Action, e.ReportingController, e.ReportingInstance)
		}
		if _, ok := e.Annotations["airlock.dev/event-action"]; ok {
			t.Errorf("event %s keeps the annotation airlock.dev/event-action, which carries the action to the Event", e.Name)
		}
	}
	sort.Slice(app0, func(i, j int) bool { return app0[i] > app0[j] })
	if len(app0) != 2 || app0[0] != 2 || app0[1] != 1 {
		t.Errorf("counts of app-0's Events = %v, want [2 1]: the repeat counted while among the last 4 events, a new Event once pushed out; seen %s", app0, describe(seen))
	}
	notes := map[string]bool{}
	for _, e := range seen {
		if e.Regarding.Name == "app-5" {
			if e.Action != "Verify" || e.Type != "Warning" || e.Reason != "VerifyFailed" {
				t.Errorf("event %s: %s %s %s, want Warning VerifyFailed Verify", e.Name, e.Type, e.Reason, e.Action)
			}
			notes[e.Note] = true
		}
	}
	for i := range 30 {
		if n := fmt.Sprintf("verify attempt %d: no signature by a trusted key", i); !notes[n] {
			t.Errorf("no event %q: combined or dropped; seen %s", n, describe(seen))
		}
	}
}

// count is the sum of the counts of the Events about the Release name.
func count(evs []eventsv1.Event, name string) int32 {
	var n int32
	for _, e := range evs {
		if e.Regarding.Name == name {
			n += max(e.DeprecatedCount, 1)
		}
	}
	return n
}

func describe(evs []eventsv1.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %s %s %s %s count %d: %s", e.Regarding.Name, e.Type, e.Reason, e.Action, e.DeprecatedCount, e.Note)
	}
	return b.String()
}

// TestEventRecorderAllowedByClusterRole records an event as a user bound
// to nothing but the controller's ClusterRole from install.yaml: the
// recorder writes through the core events API, which the role must let it
// create and patch.
func TestEventRecorderAllowedByClusterRole(t *testing.T) {
	env := envtestenv.Start(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	var role *rbacv1.ClusterRole
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(config.Install), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if u.GetKind() == "ClusterRole" && u.GetName() == "airlock-controller" {
			role = &rbacv1.ClusterRole{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, role); err != nil {
				t.Fatal(err)
			}
		}
	}
	if role == nil {
		t.Fatal("install.yaml has no ClusterRole airlock-controller")
	}
	name := "airlock-controller-" + ns
	role = &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: role.Rules}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}}}
	for _, o := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
	}
	rec, stop, err := reconciler.NewEventRecorder(env.AddUser(t, name), env.Scheme, "airlock-controller", 4, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	rel := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app", UID: "uid-app"}}
	rec.Eventf(rel, nil, "Normal", "Applied", "Apply", "applied once")
	rec.Eventf(rel, nil, "Normal", "Applied", "Apply", "applied once")
	var seen []eventsv1.Event
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var list eventsv1.EventList
		if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		seen = list.Items
		return count(seen, "app") == 2, nil
	})
	if err != nil {
		t.Fatalf("events of Release %s/app recorded with the controller's ClusterRole: %v; seen %d: %s (is creating or patching core events forbidden to it?)", ns, err, len(seen), describe(seen))
	}
}
