// Package faults proves airlock's trust boundary under failure. Its tests run
// airlock-controller as a real process against a real kube-apiserver (envtest)
// and the in-process registry, each behind a fault-injecting proxy on
// 127.0.0.1, and check after and during every fault that nothing unverified
// is applied, nothing is pruned after a failed pull, verify or apply, the
// Release converges once the fault ends, and no two controllers apply at once.
//
//	KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go test ./faults -iterations=20 -v
//
// The proxies are this package's API: HTTPProxy (5xx, delays, connection
// resets mid-body, truncated and corrupted bodies, request hooks) and
// TCPProxy (refused and reset connections, a restart that drops every
// connection).
package faults
