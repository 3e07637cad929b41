// Package faults proves airlock's trust boundary under failure. Its tests run
// airlock-controller as a real process against a real kube-apiserver (envtest)
// and the in-process registry, each behind a fault-injecting proxy on
// 127.0.0.1, and check after and during every fault that nothing unverified
// is applied, nothing is pruned after a failed pull, verify or apply, the
// Release converges once the fault ends, and no two controllers apply at once.
//
//	KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go test ./faults -iterations=20 -timeout 30m -v
//
// Each case runs -iterations times (2 by default, in make test), each time in
// a fresh namespace with its own controller processes and proxies; the
// cases run side by side (go test -parallel). The test prints one summary
// line: cases, iterations, runs, violations (must be 0) and duration.
//
// The proxies are this package's API: HTTPProxy (5xx, delays, connection
// resets mid-body, truncated and corrupted bodies, request hooks) and
// TCPProxy (refused and reset connections, a restart that drops every
// connection).
package faults
