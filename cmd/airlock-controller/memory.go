package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"airlock.dev/airlock/api/v1alpha1"
)

// defaultGCPercent is the controller's GOGC unless $GOGC is set: Go's 100
// lets the heap grow to twice what the last collection kept, and at 1,000
// Releases most of the controller's anonymous memory was that garbage.
const defaultGCPercent = 50

// cgroupMemoryMax is the memory limit of the controller's container, as
// cgroup v2 shows it to the processes inside.
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// goMemoryLimit returns the Go memory limit for a container whose cgroup v2
// memory.max file is file: ratio of the limit, leaving the rest for what the
// Go runtime does not count (the binary's own pages, thread stacks, cgo). It
// returns 0 when there is no limit: the file is missing (no cgroup v2, or
// not in a container) or says "max".
func goMemoryLimit(file string, ratio float64) (int64, error) {
	if ratio <= 0 || ratio > 1 {
		return 0, fmt.Errorf("--memory-limit-ratio %v: want more than 0 and at most 1", ratio)
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the container's memory limit: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	limit, err := strconv.ParseInt(s, 10, 64)
	if err != nil || limit <= 0 {
		return 0, fmt.Errorf("read the container's memory limit: %s holds %q, want a number of bytes or \"max\"", file, s)
	}
	return int64(float64(limit) * ratio), nil
}

// checkLoopback refuses a listen address whose host is not a loopback
// address: the profiles show the controller's memory, and with it the
// content of Secrets it has read.
func checkLoopback(flagName, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w: want HOST:PORT, for example 127.0.0.1:6060", flagName, addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s %q: the host must be a loopback address (127.0.0.1, ::1 or localhost): the profiles expose the controller's memory; reach them with kubectl port-forward", flagName, addr)
}

// lastAppliedAnnotation is kubectl apply's copy of the whole object.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// stripForCache is the transform of every informer cache: it drops what the
// controller never reads from a cached object, the managed fields and
// kubectl's last-applied copy of the object, which together can be larger
// than the object itself.
//
// Of the objects watched by metadata only (Secrets, ConfigMaps: every one
// in the cluster, 11,000 at 1,000 Releases of 10 ConfigMaps), it keeps only
// what identifies the object and its version: the watches map a change to
// the Releases that name the object by namespace and name, and nothing
// reads their labels, annotations or owners from the cache.
func stripForCache(in any) (any, error) {
	if p, ok := in.(*metav1.PartialObjectMetadata); ok {
		return &metav1.PartialObjectMetadata{TypeMeta: p.TypeMeta, ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Generation: p.Generation, DeletionTimestamp: p.DeletionTimestamp,
		}}, nil
	}
	out, err := cache.TransformStripManagedFields()(in)
	if err != nil {
		return out, err
	}
	if o, ok := out.(metav1.Object); ok {
		if a := o.GetAnnotations(); a != nil {
			if _, has := a[lastAppliedAnnotation]; has {
				delete(a, lastAppliedAnnotation)
				if len(a) == 0 {
					a = nil
				}
				o.SetAnnotations(a)
			}
		}
	}
	return out, nil
}

// newCacheTransform returns the transform of every informer cache:
// stripForCache, then, for a Release, one copy of each string that the
// cached Releases share (sharedStrings) and slices no larger than their
// content.
func newCacheTransform() func(any) (any, error) {
	strs := &sharedStrings{max: maxSharedStrings}
	return func(in any) (any, error) {
		out, err := stripForCache(in)
		if rel, ok := out.(*v1alpha1.Release); ok && err == nil {
			strs.release(rel)
		}
		return out, err
	}
}

// maxSharedStrings bounds sharedStrings: when full, it starts over.
const maxSharedStrings = 4096

// sharedStrings makes the cached Releases share one copy of the strings
// they repeat instead of one copy per Release, or per object of a
// Release's inventory: condition types, reasons and messages, digests,
// sources, signers, and the group, version, kind and namespace of each
// inventory entry. A fleet of Releases of one artifact has the same
// digests, signers and messages in every status, and 1,000 Releases of
// 10 objects hold 10,000 inventory entries in a few namespaces and kinds.
// It holds at most max strings, and forgets them all when full, so that
// strings no cached Release holds any more are not kept for long.
type sharedStrings struct {
	mu  sync.Mutex
	m   map[string]string
	max int
}

// release replaces the strings of rel with shared copies, and its lists
// whose capacity is larger than their length (the JSON decoder doubles
// them: 16 for an inventory of 10) with exact copies.
func (t *sharedStrings) release(rel *v1alpha1.Release) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := &rel.Status
	share(t, &rel.Spec.URL)
	st.Conditions = exact(st.Conditions)
	for i := range st.Conditions {
		c := &st.Conditions[i]
		share(t, &c.Type)
		share(t, &c.Status)
		share(t, &c.Reason)
		share(t, &c.Message)
	}
	for _, p := range []*string{&st.LastAttemptedDigest, &st.LastAppliedDigest, &st.ShortDigest, &st.LastAppliedSource,
		&st.LastAppliedRevision, &st.LastAppliedVersion, &st.FailedDigest} {
		share(t, p)
	}
	st.TrustPolicies = exact(st.TrustPolicies)
	for i := range st.TrustPolicies {
		share(t, &st.TrustPolicies[i])
	}
	st.Signers = exact(st.Signers)
	for i := range st.Signers {
		share(t, &st.Signers[i].Name)
		share(t, &st.Signers[i].Fingerprint)
	}
	st.Inventory = exact(st.Inventory)
	for i := range st.Inventory {
		o := &st.Inventory[i]
		share(t, &o.Group)
		share(t, &o.Version)
		share(t, &o.Kind)
		share(t, &o.Namespace)
		share(t, &o.Name)
	}
	st.History = exact(st.History)
	for i := range st.History {
		h := &st.History[i]
		for _, p := range []*string{&h.Digest, &h.Revision, &h.Version, &h.Health, &h.RollbackOf} {
			share(t, p)
		}
		h.Signers = exact(h.Signers)
		for j := range h.Signers {
			share(t, &h.Signers[j])
		}
	}
}

// share replaces *s with the table's copy of it, adding it if missing.
// The caller holds t.mu.
func share[S ~string](t *sharedStrings, s *S) {
	if *s == "" {
		return
	}
	if c, ok := t.m[string(*s)]; ok {
		*s = S(c)
		return
	}
	if t.m == nil || len(t.m) >= t.max {
		t.m = make(map[string]string)
	}
	t.m[string(*s)] = string(*s)
}

// exact returns s, or a copy of it whose capacity is its length.
func exact[S ~[]E, E any](s S) S {
	if cap(s) == len(s) {
		return s
	}
	return append(make(S, 0, len(s)), s...)
}
