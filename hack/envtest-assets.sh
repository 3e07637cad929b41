#!/usr/bin/env bash
# Builds kube-apiserver and etcd for controller-runtime's envtest from the Go
# module proxy (no prebuilt binaries can be downloaded here), and caches them.
# Prints the assets directory; export it as KUBEBUILDER_ASSETS.
#
#   export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
STAGING_VERSION=${STAGING_VERSION:-v0.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.0}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/airlock/envtest
ASSETS=$CACHE/$K8S_VERSION
# A warm rebuild is fast only when CGO_ENABLED never changes.
export CGO_ENABLED=0
export GOFLAGS=-mod=mod
unset GOOS GOARCH

log() { echo "envtest-assets: $*" >&2; }

mkdir -p "$ASSETS"

# One build at a time: a second caller waits for the first and reuses its result.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.lock"
  flock 9
fi

# shellcheck source=hack/lib/build-k8s.sh
. "$(cd "$(dirname "$0")" && pwd)/lib/build-k8s.sh"
build_k8s kube-apiserver "cold: about 8 minutes on 2 cores"

if ! "$ASSETS/etcd" --version >/dev/null 2>&1; then
  log "building etcd $ETCD_VERSION"
  work=$CACHE/src/etcd-$ETCD_VERSION
  mkdir -p "$work"
  cat >"$work/go.mod" <<MOD
module airlock.local/envtest/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
MOD
  echo "package etcd" >"$work/doc.go"
  (cd "$work" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2)
  (cd "$work" && go build -trimpath -ldflags="-s -w" -o "$ASSETS/etcd" go.etcd.io/etcd/server/v3 >&2)
fi

"$ASSETS/kube-apiserver" --version >&2
# sed reads to the end: head would exit first and, under pipefail, the
# SIGPIPE etcd sometimes gets would fail this script (exit 141).
"$ASSETS/etcd" --version | sed -n 1p >&2
echo "$ASSETS"
