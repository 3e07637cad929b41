// Package releasetest holds the test of `make release` (hack/release.sh):
// it builds a release for this machine's platform and verifies it the way
// the CI examples (examples/ci) verify a downloaded one.
package releasetest
