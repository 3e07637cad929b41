package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func TestHelpListsFlags(t *testing.T) {
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &bytes.Buffer{}, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"-metrics-addr", "-leader-elect", "-concurrent", "-watch-label-selector", "-allow-unsigned", "-kubeconfig", "-zap-encoder",
		"-default-service-account", "-controller-namespace", "-allow-controller-identity-namespaces", "-allow-controller-identity-namespace-selector", "-no-cross-namespace-refs", "-finalizer-timeout",
		"-build-max-objects", "-concurrent-builds", "-build-max-file-bytes", "-build-max-total-bytes", "-build-timeout", "-chart-renderer",
		"-receiver-addr", "-receiver-tls-cert", "-receiver-max-body-bytes", "-receiver-replay-window",
		"-leader-election-id", "-max-remote-clients", "-gc-percent", "-memory-limit-ratio"} {
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("help does not list %s", f)
		}
	}
}

// TestShardsElectTheirOwnLeaders: two shards in one namespace use two
// Leases; a replica of the same shard uses the same one.
func TestShardsElectTheirOwnLeaders(t *testing.T) {
	s0, s1 := leaderElectionID("", "sharding.airlock.dev/shard=s0"), leaderElectionID("", "sharding.airlock.dev/shard=s1")
	if s0 == s1 || s0 == leaderElectionID("", "") {
		t.Fatalf("shards share a Lease: %q, %q, unsharded %q", s0, s1, leaderElectionID("", ""))
	}
	if s0 != leaderElectionID("", "sharding.airlock.dev/shard=s0") || len(s0) > 63 {
		t.Fatalf("Lease name %q is not stable or too long", s0)
	}
	if got := leaderElectionID("mine", "sharding.airlock.dev/shard=s0"); got != "mine" {
		t.Fatalf("--leader-election-id mine gave %q", got)
	}
}

func TestBadSelectorFails(t *testing.T) {
	err := run(context.Background(), []string{"--watch-label-selector", "a in (", "--kubeconfig", "/nonexistent"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil {
		t.Fatal("want an error")
	}
}

func TestBadIdentitySelectorFails(t *testing.T) {
	err := run(context.Background(), []string{"--allow-controller-identity-namespace-selector", "a in (", "--kubeconfig", "/nonexistent"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--allow-controller-identity-namespace-selector") {
		t.Fatalf("err = %v, want one naming --allow-controller-identity-namespace-selector", err)
	}
}

func TestBadGCPercentFails(t *testing.T) {
	err := run(context.Background(), []string{"--gc-percent", "0", "--kubeconfig", "/nonexistent"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--gc-percent 0") {
		t.Errorf("err = %v, want one naming --gc-percent 0", err)
	}
}

func TestReceiverTLSFlagsGoTogether(t *testing.T) {
	err := run(context.Background(), []string{"--receiver-addr", "127.0.0.1:0", "--receiver-tls-cert", "cert.pem", "--kubeconfig", "/nonexistent"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--receiver-tls-key") {
		t.Fatalf("err = %v, want one naming --receiver-tls-key", err)
	}
}

// TestConfigDefaultBuilds builds config/default, the install manifests.
func TestConfigDefaultBuilds(t *testing.T) {
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "../../config/default")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, r := range res.Resources() {
		kinds[r.GetKind()] = true
		if r.GetKind() != "Namespace" && r.GetKind() != "CustomResourceDefinition" && !strings.HasPrefix(r.GetKind(), "Cluster") && r.GetNamespace() != "airlock-system" {
			t.Errorf("%s %s is in namespace %q, want airlock-system", r.GetKind(), r.GetName(), r.GetNamespace())
		}
	}
	for _, k := range []string{"CustomResourceDefinition", "Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Namespace"} {
		if !kinds[k] {
			t.Errorf("config/default has no %s", k)
		}
	}
}
