#!/usr/bin/env bash
# Generates the Release API's deepcopy functions and its CRD with
# controller-gen, from the markers in api/, and the web view's pages
# (ui/*_templ.go) with templ, from ui/*.templ.
#
#   hack/generate.sh          regenerate api/v1alpha1/zz_generated.deepcopy.go,
#                             config/crd/bases/, config/install.yaml and
#                             the *_templ.go beside each .templ file
#   hack/generate.sh --check  fail when the committed output is stale (CI)
set -euo pipefail

CONTROLLER_GEN=${CONTROLLER_GEN:-sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0}
# The same version as github.com/a-h/templ in go.mod: the generated code
# calls that runtime.
TEMPL=${TEMPL:-github.com/a-h/templ/cmd/templ@v0.3.1100}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

generate() { # $1: output root
  local out=$1
  mkdir -p "$out/api/v1alpha1" "$out/config/crd/bases"
  go run "$CONTROLLER_GEN" \
    object:headerFile=hack/boilerplate.go.txt \
    crd:maxDescLen=400 \
    paths=./api/... \
    output:object:dir="$out/api/v1alpha1" \
    output:crd:dir="$out/config/crd/bases"
  # The install manifests `airlock install --export` embeds: config/default
  # rendered (with the CRD just generated when $out is the tree itself).
  go run ./hack/installyaml -o "$out/config/install.yaml"
  # The web view's pages: each .templ file's Go code, beside it (templ
  # writes it there, and names the file relative to the directory it runs in).
  local f
  while IFS= read -r f; do
    if [ "$out" != "$root" ]; then
      mkdir -p "$out/$(dirname "$f")"
      cp "$f" "$out/$f"
    fi
    (cd "$out" && go run "$TEMPL" generate -log-level error -f "$f")
  done < <(templ_files)
}

templ_files() { git ls-files --cached --others --exclude-standard '*.templ'; }

case "${1:-}" in
--check)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  generate "$tmp"
  stale=0
  diff -u api/v1alpha1/zz_generated.deepcopy.go "$tmp/api/v1alpha1/zz_generated.deepcopy.go" || stale=1
  diff -ru config/crd/bases "$tmp/config/crd/bases" || stale=1
  diff -u config/install.yaml "$tmp/config/install.yaml" || stale=1
  while IFS= read -r f; do
    diff -u "${f%.templ}_templ.go" "$tmp/${f%.templ}_templ.go" || stale=1
  done < <(templ_files)
  if [ "$stale" = 1 ]; then
    echo "generate: the committed deepcopy, CRD, install.yaml or *_templ.go is stale: run hack/generate.sh and commit the result" >&2
    exit 1
  fi
  ;;
"")
  generate "$root"
  ;;
*)
  echo "usage: $0 [--check]" >&2
  exit 2
  ;;
esac
