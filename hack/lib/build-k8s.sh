# shellcheck shell=bash
# Sourced by hack/envtest-assets.sh and hack/cluster-assets.sh: the one way
# airlock builds Kubernetes components from the Go module proxy.

# build_k8s NAME ABOUT: builds k8s.io/kubernetes/cmd/NAME into $ASSETS (once;
# a working binary there is kept) in a throwaway wrapper module that pins
# every staging module to the release, with kubernetes' version ldflags.
# ABOUT says how long a cold build takes. The caller sets CACHE, ASSETS,
# K8S_VERSION, STAGING_VERSION, CGO_ENABLED=0, GOFLAGS=-mod=mod and log().
build_k8s() {
  local name=$1 about=$2 work gomod_json upstream_mod start
  if "$ASSETS/$name" --version >/dev/null 2>&1; then
    return
  fi
  start=$SECONDS
  log "building $name $K8S_VERSION ($about)"
  work=$CACHE/src/$name-$K8S_VERSION
  mkdir -p "$work"
  gomod_json=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION")
  upstream_mod=$(printf '%s' "$gomod_json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  {
    echo "module airlock.local/envtest/${name//-/}"
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
  echo "package ${name//-/}" >"$work/doc.go"
  (cd "$work" && go get "k8s.io/kubernetes/cmd/$name@$K8S_VERSION" >&2)
  (cd "$work" && go build -trimpath -ldflags="-s -w \
    -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
    -X k8s.io/component-base/version.gitMajor=1 \
    -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) \
    -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" \
    -o "$ASSETS/$name.tmp" "k8s.io/kubernetes/cmd/$name" >&2)
  mv "$ASSETS/$name.tmp" "$ASSETS/$name"
  log "built $name in $((SECONDS - start)) s"
}
