// Package config holds airlock's install manifests: config/default rendered
// by kustomize into install.yaml (hack/generate.sh writes it, and its test
// fails when it is stale), embedded for `airlock install --export`.
package config

import _ "embed"

// Install is the output of `kubectl kustomize config/default`: the
// airlock-system Namespace, the Release CRD, RBAC and the controller
// Deployment.
//
//go:embed install.yaml
var Install []byte

// DefaultImage is the controller image Install names.
const DefaultImage = "airlock-controller:latest"
