#!/usr/bin/env bash
# The whole airlock story on this machine, on a local cluster that runs
# workloads, with no Docker:
#
#   1. build airlock, airlock-controller and the local cluster: kube-apiserver
#      and etcd (hack/envtest-assets.sh), kube-controller-manager,
#      kube-scheduler and kwok (hack/cluster-assets.sh), built once and cached;
#   2. start the cluster with 2 fake Nodes (kwok plays their kubelets) and
#      airlock's embedded registry on loopback;
#   3. generate a cosign key pair, push and sign examples/app/base as 1.0.0;
#   4. run airlock-controller (signatures required) and create a Release that
#      trusts the public key, waits for health and rolls back on failure;
#      wait for Ready: the Deployment's Pods Running;
#   5. push a signed 2.0.0 (a new image, one object removed, one changed):
#      the Pods are replaced, and the removed object is pruned;
#   6. push a signed 3.0.0 whose Pods crash: it fails health within
#      spec.timeout, and the controller rolls back to 2.0.0 by itself;
#   7. push an unsigned 4.0.0: the controller refuses it and 2.0.0 stays.
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
  if [ "$code" != 0 ]; then
    for log in controlplane registry controller; do
      [ -s "$work/$log.log" ] || continue
      echo "--- last lines of $log.log:" >&2
      tail -n 20 "$work/$log.log" >&2
    done
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

step "build airlock, airlock-controller and the local cluster"
# The tag drops kustomize's import of Go's plugin package (airlock runs
# kustomize with plugins disabled); with cgo it makes the controller 32 MB larger.
go build -tags kustomize_disable_go_plugin_support -o bin/ ./cmd/airlock ./cmd/airlock-controller ./cmd/airlock-chart-render ./hack/controlplane
KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)     # cold: builds kube-apiserver and etcd, about 10 minutes
AIRLOCK_CLUSTER_ASSETS=$(hack/cluster-assets.sh) # cold: kube-controller-manager, kube-scheduler and kwok, about 3 more
export KUBEBUILDER_ASSETS AIRLOCK_CLUSTER_ASSETS
export KUBECONFIG=$work/kubeconfig
airlock=bin/airlock

step "start the local cluster and the embedded registry"
echo "kube-apiserver, etcd, kube-controller-manager, kube-scheduler, and kwok with 2 fake Nodes (no containers: kwok plays the kubelets)"
bin/controlplane up --workloads --kubeconfig "$KUBECONFIG" --crds config/crd/bases 2>"$work/controlplane.log" &
controlplane=$!
pids+=("$controlplane")
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
# derive FROM TO FILE:SED...: TO is a copy of FROM with sed edits; show the diff.
derive() {
  local from=$1 to=$2 edit; shift 2
  mkdir -p "$to"
  cp "$from"/*.yaml "$to/"
  for edit in "$@"; do sed -i "${edit#*:}" "$to/${edit%%:*}"; done
  printf '%s$ diff -ru %s %s%s\n' "$bold" "${from#"$work/"}" "${to#"$work/"}" "$off"
  diff -ru "$from" "$to" | sed -e "s#$work/##g" -e 's/^\(---\|+++\) \([^\t]*\)\t.*/\1 \2/' || true
}

step "push and sign examples/app/base as $url:1.0.0"
printf '%s$ airlock push artifact %s:1.0.0 --path examples/app/base --sign-key cosign.key …%s\n' "$bold" "$url" "$off"
d1=$(push 1.0.0 examples/app/base --sign-key "$work/cosign.key")
echo "$url:1.0.0@$d1 (signed)"

# The cluster writes the kubeconfig once its fake Nodes are Ready.
for _ in $(seq 1200); do
  [ -s "$KUBECONFIG" ] && break
  kill -0 "$controlplane" 2>/dev/null || { cat "$work/controlplane.log" >&2; fail "the local cluster did not start"; }
  sleep 0.1
done
[ -s "$KUBECONFIG" ] || fail "the local cluster: not up after 120s ($(tail -n 3 "$work/controlplane.log"))"
grep -o 'kube-controller-manager, kube-scheduler, kwok and .* Ready in [^ ]*' "$work/controlplane.log" || true

step "run airlock-controller against the local cluster (signatures required: no --allow-unsigned)"
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
  # Ready means every applied object is healthy (spec.wait, on by default):
  # the Deployment rolled out, its Pods ready. A new digest that is not
  # healthy within spec.timeout is rolled back to the last healthy one.
  timeout: 30s
  rollback:
    onFailure: true
EOF
} >"$work/release.yaml"
sed -n '/^kind: Release/,$p' "$work/release.yaml"
bin/controlplane apply --kubeconfig "$KUBECONFIG" -f "$work/release.yaml"

objects() { bin/controlplane objects --kubeconfig "$KUBECONFIG" -n hello -l delivery.airlock.dev/name=hello | tee "$1"; } # FILE
pods() { bin/controlplane pods --kubeconfig "$KUBECONFIG" -n hello -l app=hello; }
# show_pods FILE: wait (up to 30 s) until no Pod is Terminating or Pending,
# then print the ReplicaSets and the Pods, and keep them in FILE.
show_pods() {
  local _
  for _ in $(seq 150); do
    pods >"$1"
    grep -Eq ' (Terminating|Pending) ' "$1" || break
    sleep 0.2
  done
  echo
  echo "the ReplicaSets and Pods (bin/controlplane pods -n hello -l app=hello: kubectl get replicasets,pods -o wide):"
  cat "$1"
}
# The checks, on the files kept above.
applied_is() { "$airlock" get releases hello -o json | grep -q "\"lastAppliedDigest\": \"$1\""; }
signed_by() { "$airlock" get releases hello | grep -q " $1 "; }
absent() { ! grep -q -- "$1" "$2"; }
condition() { grep -Eq "^  $1 +$2 +$3 " "$4"; }                   # TYPE STATUS REASON FILE (describe)
pod_names() { awk '$1 ~ /^pod\// { print $1 }' "$1" | sort | tr '\n' ' '; } # FILE
rs_of() { awk -v img="$1" '$1 ~ /^replicaset/ && $NF == img { print $1 }' "$2"; } # IMAGE FILE: its ReplicaSet
rs_ready() { awk -v rs="$1" -v n="$2" '$1 == rs && $2 == n && $4 == n { ok = 1 } END { exit !ok }' "$3"; } # RS N FILE: N desired, N ready
running() { # N FILE: exactly N Pods, all Running and ready
  [ "$(grep -c '^pod/' "$2")" = "$1" ] && [ "$(grep -Ec '^pod/[^ ]+ +1/1 +Running ' "$2")" = "$1" ]
}
none_of() { # FILE_A FILE_B: no Pod of A is in B
  local n
  for n in $(pod_names "$1"); do grep -q "^$n " "$2" && return 1; done
  return 0
}
same_pods() { [ -n "$(pod_names "$1")" ] && [ "$(pod_names "$1")" = "$(pod_names "$2")" ]; } # FILE_A FILE_B

step "wait for Ready: applied, and every object healthy"
run "$airlock" reconcile release hello --wait --timeout 90s
ready_at=$(since)
run "$airlock" get releases
"$airlock" describe release hello >"$work/describe-v1"
echo
echo "the applied objects (label delivery.airlock.dev/name=hello):"
objects "$work/objects-v1"
show_pods "$work/pods-v1"
rs1=$(rs_of registry.example.com/hello:1.0.0 "$work/pods-v1")
check "v1 is applied: lastAppliedDigest $d1" applied_is "$d1"
check "v1 is Ready=True ReconciliationSucceeded" condition Ready True ReconciliationSucceeded "$work/describe-v1"
check "v1 is Healthy=True" condition Healthy True Healthy "$work/describe-v1"
check "v1 Service hello/hello exists" grep -q '^Service  *hello/hello ' "$work/objects-v1"
check "v1 ConfigMap has the v1 greeting" grep -q 'GREETING="Hello from airlock"' "$work/objects-v1"
check "v1 is signed by the quickstart key" signed_by quickstart
check "v1 ReplicaSet ${rs1:-(none)} runs registry.example.com/hello:1.0.0, 2 of 2 ready" rs_ready "$rs1" 2 "$work/pods-v1"
check "v1 runs: 2 Pods Running and ready" running 2 "$work/pods-v1"

step "push 2.0.0: a new image, the Service removed, the ConfigMap changed"
derive examples/app/base "$work/v2" \
  'deployment.yaml:s#hello:1.0.0#hello:2.0.0#' \
  'kustomization.yaml:/service.yaml/d' \
  'configmap.yaml:s/GREETING: .*/GREETING: "Hello from airlock, version 2"/'
rm "$work/v2/service.yaml"
echo "(and service.yaml removed)"
d2=$(push 2.0.0 "$work/v2" --sign-key "$work/cosign.key")
echo "$url:2.0.0@$d2 (signed)"
run "$airlock" reconcile release hello --wait --timeout 90s
run "$airlock" get releases
echo
objects "$work/objects-v2"
show_pods "$work/pods-v2"
rs2=$(rs_of registry.example.com/hello:2.0.0 "$work/pods-v2")
check "v2 is applied: lastAppliedDigest $d2" applied_is "$d2"
check "v2 pruned the Service hello/hello" absent '^Service ' "$work/objects-v2"
check "v2 changed the ConfigMap" grep -q 'GREETING="Hello from airlock, version 2"' "$work/objects-v2"
check "v2 rolled out: a new ReplicaSet ${rs2:-(none)} runs registry.example.com/hello:2.0.0, 2 of 2 ready" rs_ready "$rs2" 2 "$work/pods-v2"
check "v2 scaled the v1 ReplicaSet $rs1 down to 0" rs_ready "$rs1" 0 "$work/pods-v2"
check "v2 replaced the Pods: the v1 Pods are gone" none_of "$work/pods-v1" "$work/pods-v2"
check "v2 runs: 2 new Pods Running and ready" running 2 "$work/pods-v2"
run "$airlock" events release hello

step "push 3.0.0, signed, whose Pods crash: it fails health and is rolled back to 2.0.0"
derive "$work/v2" "$work/v3" \
  'deployment.yaml:s#hello:2.0.0#hello:crash#' \
  'configmap.yaml:s/GREETING: .*/GREETING: "Hello from airlock, version 3"/'
echo "(kwok, which plays the kubelet here, keeps a container whose image tag is crash in CrashLoopBackOff)"
d3=$(push 3.0.0 "$work/v3" --sign-key "$work/cosign.key")
echo "$url:3.0.0@$d3 (signed)"
pushed3=$(date +%s.%N)
run "$airlock" reconcile release hello
crashing() { pods >"$work/pods-v3-crash" && grep -q ' CrashLoopBackOff ' "$work/pods-v3-crash"; }
wait_for "a 3.0.0 Pod in CrashLoopBackOff" 60 crashing
echo
echo "3.0.0 is applied and its new Pod crashes; the rollout waits for it to be ready, so the 2.0.0 Pods keep serving:"
cat "$work/pods-v3-crash"
run "$airlock" get releases
echo
echo "the controller waits for health up to spec.timeout (30s), then rolls back by itself:"
set +e
run "$airlock" reconcile release hello --wait --timeout 3m
code=$?
set -e
rolled_back_in=$(awk -v s="$pushed3" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1fs", n - s }')
run "$airlock" events release hello
run "$airlock" describe release hello | tee "$work/describe-v3"
run "$airlock" history release hello
echo
objects "$work/objects-v3"
show_pods "$work/pods-v3"
rs3=$(rs_of registry.example.com/hello:crash "$work/pods-v3")
check "reconcile --wait exits 1 for the crashing 3.0.0" test "$code" = 1
check "v3 rolled back: Ready=False RolledBack" condition Ready False RolledBack "$work/describe-v3"
check "v3 is held as rolled back from: $d3" grep -q "Rolled back from: *$d3" "$work/describe-v3"
check "v2 is applied again: lastAppliedDigest $d2" applied_is "$d2"
check "the ConfigMap has the v2 greeting again" grep -q 'GREETING="Hello from airlock, version 2"' "$work/objects-v3"
check "the v2 ReplicaSet $rs2 is the active one, 2 of 2 ready" rs_ready "$rs2" 2 "$work/pods-v3"
check "the crashing ReplicaSet ${rs3:-(none)} is scaled down to 0" rs_ready "$rs3" 0 "$work/pods-v3"
check "the crashing Pods are gone" absent ' CrashLoopBackOff ' "$work/pods-v3"
check "2 Pods Running and ready: the v2 Pods, which served throughout" same_pods "$work/pods-v2" "$work/pods-v3"
check "the v2 Pods are Running and ready" running 2 "$work/pods-v3"

step "push 4.0.0 unsigned: the controller refuses it"
derive "$work/v2" "$work/v4" \
  'deployment.yaml:s#hello:2.0.0#hello:4.0.0#' \
  'configmap.yaml:s/GREETING: .*/GREETING: "Hello from someone without the key"/'
d4=$(push 4.0.0 "$work/v4")
echo "$url:4.0.0@$d4 (not signed)"
set +e
run "$airlock" reconcile release hello --wait --timeout 60s
code=$?
set -e
run "$airlock" describe release hello | tee "$work/describe-v4"
objects "$work/objects-v4"
show_pods "$work/pods-v4"
check "reconcile --wait exits 1 for the unsigned 4.0.0" test "$code" = 1
check "v4 refused: Ready=False VerificationFailed" condition Ready False VerificationFailed "$work/describe-v4"
check "v4 was attempted: $d4" grep -q "Last attempted: *$d4" "$work/describe-v4"
check "v2 stays applied: $d2" applied_is "$d2"
check "the ConfigMap keeps the v2 greeting" grep -q 'GREETING="Hello from airlock, version 2"' "$work/objects-v4"
check "the v2 ReplicaSet $rs2 still runs, 2 of 2 ready" rs_ready "$rs2" 2 "$work/pods-v4"
check "the same v2 Pods still run" same_pods "$work/pods-v2" "$work/pods-v4"

step "done"
echo "v1 was Ready $ready_at after the start; the crashing 3.0.0 was rolled back, and 2.0.0 healthy again, $rolled_back_in after its reconcile began; the whole story took $(since)."
echo "Next: the 'Adopt it in a real cluster' section of README.md."
