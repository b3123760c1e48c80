#!/usr/bin/env bash
# The main job on a fresh machine: install, build, make a busybox image from
# Debian's busybox-static with `strata import`, mount it read-only from the
# image store and run it with strata-runtime. (`strata run` is issue 5.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release -q -p strata -p strata-runtime
strata="$PWD/target/release/strata"
rt="$PWD/target/release/strata-runtime"
work=$(mktemp -d /tmp/strata-demo.XXXXXX)
cleanup() {
  "$strata" --root "$work/store" image unmount busybox >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

bash scripts/make-busybox-rootfs.sh "$work/rootfs"
tar -C "$work/rootfs" -czf "$work/busybox.tar.gz" .
echo "== strata import"
"$strata" --root "$work/store" import "$work/busybox.tar.gz" busybox
"$strata" --root "$work/store" images
mnt=$("$strata" --root "$work/store" image mount busybox)
echo "== image mounted read-only at $mnt; running it"
mkdir "$work/bundle" && cd "$work/bundle"
"$rt" spec
jq --arg root "$mnt" '.root.path=$root | .root.readonly=true | .process.terminal=false
  | .process.args=["sh","-c","echo hello from $(hostname): pid $$, uid $(id -u); ls /"]' \
  config.json > config.json.new && mv config.json.new config.json
"$rt" --root "$work/state" run demo
