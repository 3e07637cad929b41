#!/usr/bin/env bash
# The main job on the embedded default: start airlock's own registry, push the
# example app as a signed-ready OCI artifact, push it again (same digest), pull
# it back, compare, tag and list. Stops everything it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${AIRLOCK_BIN:-bin/airlock}
go build -o "$bin" ./cmd/airlock

work=$(mktemp -d)
port=${AIRLOCK_DEMO_PORT:-$((20000 + RANDOM % 20000))}
addr=127.0.0.1:$port
cleanup() {
  [ -n "${reg_pid:-}" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "start the embedded registry on $addr"
"$bin" registry serve --addr "$addr" --storage "$work/registry" &
reg_pid=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

url=oci://$addr/demo/app
revision="main@sha1:$(printf 'airlock-demo' | sha1sum | cut -d' ' -f1)"

step "push examples/app"
"$bin" push artifact "$url:v1" --path examples/app --source https://example.com/app.git \
  --revision "$revision" --insecure-registry -o json | tee "$work/push.json"
digest=$(sed -n 's/^  "digest": "\(.*\)",$/\1/p' "$work/push.json")

step "push again: the same content gives the same digest"
again=$("$bin" push artifact "$url:v1" --path examples/app --source https://example.com/app.git \
  --revision "$revision" --insecure-registry)
echo "$again"
[ "$again" = "$url:v1@$digest" ] || { echo "digest changed: $again" >&2; exit 1; }

step "pull it back by digest and compare with the source"
"$bin" pull artifact "$url:v1" -o "$work/pulled" --insecure-registry
diff -r examples/app "$work/pulled"
"$bin" diff artifact "$url@$digest" --path examples/app --insecure-registry

step "tag and list"
"$bin" tag artifact "$url:v1" --tag 1.0.0 --tag stable --insecure-registry
"$bin" list artifacts "$url" --insecure-registry

step "done: $url@$digest"
