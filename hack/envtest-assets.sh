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

if ! "$ASSETS/kube-apiserver" --version >/dev/null 2>&1; then
  log "building kube-apiserver $K8S_VERSION (cold: about 8 minutes on 2 cores)"
  work=$CACHE/src/kube-apiserver-$K8S_VERSION
  mkdir -p "$work"
  gomod_json=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION")
  upstream_mod=$(printf '%s' "$gomod_json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  {
    echo "module airlock.local/envtest/kubeapiserver"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    # Every staging module kubernetes replaces with ./staging/..., pinned to the release.
    sed -n '/^replace (/,/^)/p' "$upstream_mod" \
      | awk '$2=="=>" && $3 ~ /^\.\/staging/ {print $1}' \
      | grep -v -e '^k8s.io/sample-cli-plugin$' -e '^k8s.io/sample-controller$' \
      | while read -r m; do echo "replace $m => $m $STAGING_VERSION"; done
  } >"$work/go.mod"
  echo "package kubeapiserver" >"$work/doc.go"
  (cd "$work" && go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" >&2)
  (cd "$work" && go build -trimpath -ldflags="-s -w \
    -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
    -X k8s.io/component-base/version.gitMajor=1 \
    -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) \
    -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" \
    -o "$ASSETS/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2)
fi

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
