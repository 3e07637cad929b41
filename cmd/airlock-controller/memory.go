package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
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
