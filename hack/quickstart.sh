#!/usr/bin/env bash
# The whole airlock story on this machine, with no cluster and no Docker:
#
#   1. build airlock, airlock-controller and a local control plane (kube-apiserver
#      and etcd from hack/envtest-assets.sh, built once and cached);
#   2. start the control plane and airlock's embedded registry on loopback;
#   3. generate a cosign key pair, push and sign examples/app as 1.0.0;
#   4. run airlock-controller (signatures required) and create a Release that
#      trusts the public key; wait for Ready and show what was applied;
#   5. push 2.0.0 with one object removed and one changed: update and prune;
#   6. push an unsigned 3.0.0: the controller refuses it and 2.0.0 stays.
#
# Every process it starts is stopped on exit or Ctrl-C.
#
#   hack/quickstart.sh            show it (make quickstart)
#   hack/quickstart.sh --assert   also check each step, exit 1 on the first failure (CI; or QUICKSTART_ASSERT=1)
set -euo pipefail
cd "$(dirname "$0")/.."

assert=${QUICKSTART_ASSERT:-0}
[ "${1:-}" = --assert ] && assert=1
start=$(date +%s.%N)
since() { awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1fs", n - s }'; }

bold=$'\033[1m' red=$'\033[31m' green=$'\033[32m' off=$'\033[0m'
if [ ! -t 1 ]; then bold='' red='' green='' off=''; fi
step() { printf '\n%s==> %s%s  (%s)\n' "$bold" "$*" "$off" "$(since)"; }
run() { printf '%s$ %s%s\n' "$bold" "$*" "$off"; "$@"; }
ok() { [ "$assert" = 1 ] && printf '%sok%s   %s\n' "$green" "$off" "$*"; return 0; }
fail() { printf '%sFAIL%s %s\n' "$red" "$off" "$*" >&2; exit 1; }
# check DESCRIPTION COMMAND...: in assert mode, fail unless COMMAND succeeds.
check() {
  local what=$1; shift
  [ "$assert" = 1 ] || return 0
  if "$@"; then ok "$what"; else fail "$what"; fi
}

work=$(mktemp -d "${TMPDIR:-/tmp}/airlock-quickstart.XXXXXX")
pids=()
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$code" != 0 ] && [ -f "$work/controller.log" ]; then
    echo "--- last lines of the controller's log:" >&2
    tail -n 20 "$work/controller.log" >&2
  fi
  rm -rf "$work"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 141' PIPE # piped into head: still stop everything

free_port() { # a free TCP port on 127.0.0.1
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  fail "no free port"
}
wait_for() { # DESCRIPTION SECONDS COMMAND...
  local what=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 10))); do
    "$@" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "$what: not ready after ${secs}s"
}

step "build airlock, airlock-controller and the local control plane"
go build -o bin/ ./cmd/airlock ./cmd/airlock-controller ./hack/controlplane
KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) # cold: builds them, about 10 minutes
export KUBEBUILDER_ASSETS
export KUBECONFIG=$work/kubeconfig
airlock=bin/airlock

step "start kube-apiserver and etcd on loopback, and the embedded registry"
bin/controlplane up --kubeconfig "$KUBECONFIG" --crds config/crd/bases 2>"$work/controlplane.log" &
pids+=($!)
port=$(free_port)
registry=127.0.0.1:$port
"$airlock" registry serve --addr "$registry" --storage "$work/registry" 2>"$work/registry.log" &
pids+=($!)

step "generate a cosign key pair"
export COSIGN_PASSWORD=quickstart
run "$airlock" keygen --output-key-prefix "$work/cosign"

wait_for "the registry on $registry" 60 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
url=oci://$registry/quickstart/hello
revision() { echo "main@sha1:$(printf 'quickstart %s' "$1" | sha1sum | cut -d' ' -f1)"; }
push() { # VERSION DIR [--sign-key FILE]: prints the digest
  local version=$1 dir=$2; shift 2
  "$airlock" push artifact "$url:$version" --path "$dir" --source https://example.com/hello.git \
    --revision "$(revision "$version")" --insecure-registry "$@" -o json >"$work/push-$version.json"
  sed -n 's/^  "digest": "\(.*\)",$/\1/p' "$work/push-$version.json"
}

step "push and sign examples/app/base as $url:1.0.0"
printf '%s$ airlock push artifact %s:1.0.0 --path examples/app/base --sign-key cosign.key …%s\n' "$bold" "$url" "$off"
d1=$(push 1.0.0 examples/app/base --sign-key "$work/cosign.key")
echo "$url:1.0.0@$d1 (signed)"

wait_for "the control plane" 60 test -s "$KUBECONFIG"
step "run airlock-controller against the local apiserver (signatures required: no --allow-unsigned)"
# The quickstart's Release, in namespace default, names no ServiceAccount:
# --controller-namespace default lets it apply as the controller there.
bin/airlock-controller --kubeconfig "$KUBECONFIG" --metrics-addr 0 --health-addr 0 \
  --cache-dir "$work/cache" --backoff-base 200ms --controller-namespace default >"$work/controller.log" 2>&1 &
pids+=($!)
echo "airlock-controller running (log: $work/controller.log)"

step "create the keys Secret and the Release"
{
  cat <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: cosign-keys
  namespace: default
stringData:
  quickstart.pub: |
EOF
  sed 's/^/    /' "$work/cosign.pub"
  cat <<EOF
---
apiVersion: delivery.airlock.dev/v1alpha1
kind: Release
metadata:
  name: hello
  namespace: default
spec:
  url: $url
  ref:
    semver: ">=1.0.0"   # the highest version pushed
  insecure: true        # the local registry speaks plain HTTP
  interval: 10m
  verify:
    keysSecretRef:
      name: cosign-keys # every *.pub key in it is trusted
  # This control plane has no kubelet and no controller-manager, so no Pod
  # ever runs: Ready means applied, not healthy. Leave wait on in a cluster.
  wait: false
EOF
} >"$work/release.yaml"
sed -n '/^kind: Release/,$p' "$work/release.yaml"
bin/controlplane apply --kubeconfig "$KUBECONFIG" -f "$work/release.yaml"

step "wait for Ready"
run "$airlock" reconcile release hello --wait --timeout 60s
ready_at=$(since)
run "$airlock" get releases
echo
echo "the applied objects (label delivery.airlock.dev/name=hello):"
bin/controlplane objects --kubeconfig "$KUBECONFIG" -n hello -l delivery.airlock.dev/name=hello | tee "$work/objects-v1"
applied_is() { "$airlock" get releases hello -o json | grep -q "\"lastAppliedDigest\": \"$1\""; }
signed_by() { "$airlock" get releases hello | grep -q " $1 "; }
absent() { ! grep -q "$1" "$2"; }
check "v1 is applied: lastAppliedDigest $d1" applied_is "$d1"
check "v1 Service hello/hello exists" grep -q '^Service  *hello/hello ' "$work/objects-v1"
check "v1 ConfigMap has the v1 greeting" grep -q 'GREETING="Hello from airlock"' "$work/objects-v1"
check "v1 is signed by the quickstart key" signed_by quickstart

step "push 2.0.0: the Service removed, the ConfigMap changed"
mkdir -p "$work/v2"
cp examples/app/base/*.yaml "$work/v2/"
rm "$work/v2/service.yaml"
sed -i '/service.yaml/d' "$work/v2/kustomization.yaml"
sed -i 's/GREETING: .*/GREETING: "Hello from airlock, version 2"/' "$work/v2/configmap.yaml"
printf '%s$ diff -ru examples/app/base v2%s\n' "$bold" "$off"
diff -ru examples/app/base "$work/v2" | sed -e "s#$work/##" -e 's/^\(---\|+++\) \([^\t]*\)\t.*/\1 \2/' || true
d2=$(push 2.0.0 "$work/v2" --sign-key "$work/cosign.key")
echo "$url:2.0.0@$d2 (signed)"
run "$airlock" reconcile release hello --wait --timeout 60s
run "$airlock" get releases
echo
bin/controlplane objects --kubeconfig "$KUBECONFIG" -n hello -l delivery.airlock.dev/name=hello | tee "$work/objects-v2"
check "v2 is applied: lastAppliedDigest $d2" applied_is "$d2"
check "v2 pruned the Service hello/hello" absent '^Service ' "$work/objects-v2"
check "v2 changed the ConfigMap" grep -q 'GREETING="Hello from airlock, version 2"' "$work/objects-v2"
run "$airlock" events release hello

step "push 3.0.0 unsigned: the controller refuses it"
mkdir -p "$work/v3"
cp "$work/v2/"*.yaml "$work/v3/"
sed -i 's/GREETING: .*/GREETING: "Hello from someone without the key"/' "$work/v3/configmap.yaml"
d3=$(push 3.0.0 "$work/v3")
echo "$url:3.0.0@$d3 (not signed)"
set +e
run "$airlock" reconcile release hello --wait --timeout 60s
code=$?
set -e
check "reconcile --wait exits 1 for the unsigned 3.0.0" test "$code" = 1
run "$airlock" describe release hello | tee "$work/describe-v3"
bin/controlplane objects --kubeconfig "$KUBECONFIG" -n hello -l delivery.airlock.dev/name=hello | tee "$work/objects-v3"
check "v3 refused: Ready=False VerificationFailed" grep -Eq '^  Ready +False +VerificationFailed ' "$work/describe-v3"
check "v3 was attempted: $d3" grep -q "Last attempted: *$d3" "$work/describe-v3"
check "v2 stays applied: $d2" applied_is "$d2"
check "the ConfigMap keeps the v2 greeting" grep -q 'GREETING="Hello from airlock, version 2"' "$work/objects-v3"

step "done"
echo "v1 was Ready $ready_at after the start; the whole story took $(since)."
echo "Next: the 'Adopt it in a real cluster' section of README.md."
