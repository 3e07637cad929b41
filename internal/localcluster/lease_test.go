package localcluster_test

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/internal/localcluster"
)

// kwok renews a Lease for each fake Node, as a kubelet does. Without them
// kube-controller-manager's node lifecycle controller finds no heartbeat
// after its grace period (50 s), marks the Nodes NotReady and every Pod on
// them not Ready, and kwok never makes a running Pod Ready again: a
// Deployment that rolled out would lose its availability a minute later.
func TestFakeNodesRenewLeases(t *testing.T) {
	cl := localcluster.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	renewed := map[string]time.Time{}
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		n := 0
		for _, node := range cl.Nodes {
			l := &coordinationv1.Lease{}
			if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: corev1.NamespaceNodeLease, Name: node}, l); err != nil || l.Spec.RenewTime == nil {
				continue
			}
			// Renewed at least once after it was first seen.
			if first, ok := renewed[node]; !ok {
				renewed[node] = l.Spec.RenewTime.Time
			} else if l.Spec.RenewTime.After(first) {
				n++
			}
		}
		return n == len(cl.Nodes), nil
	})
	if err != nil {
		t.Fatalf("the fake Nodes %v have no Lease in %s that kwok renews (first renewals seen: %v): kube-controller-manager will mark them NotReady", cl.Nodes, corev1.NamespaceNodeLease, renewed)
	}
}
