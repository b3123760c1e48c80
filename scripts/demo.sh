#!/usr/bin/env bash
# The main job on a fresh machine: install, build, make a busybox bundle from
# Debian's busybox-static, run it with strata-runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release -p strata-runtime
work=$(mktemp -d /tmp/strata-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
bash scripts/make-busybox-rootfs.sh "$work/rootfs"
cd "$work"
rt="$OLDPWD/target/release/strata-runtime"
"$rt" spec
# Not a terminal session: plain stdio, and a command that shows it is contained.
jq '.process.terminal=false | .process.args=["sh","-c","echo hello from $(hostname): pid $$, uid $(id -u); ls /"]' \
  config.json > config.json.new && mv config.json.new config.json
"$rt" --root "$work/state" run demo
