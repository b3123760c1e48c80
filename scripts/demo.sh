#!/usr/bin/env bash
# The main job on a fresh machine: install, build, make a busybox image from
# Debian's busybox-static with `strata import`, and run it with `strata run`:
# once in the foreground, and once detached as a web server published on
# 127.0.0.1 through the strata bridge.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release -q -p strata -p strata-runtime
strata="$PWD/target/release/strata"
work=$(mktemp -d /tmp/strata-demo.XXXXXX)
s() { "$strata" --root "$work/store" "$@"; }
cleanup() {
  s rm -f demo-web >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

bash scripts/make-busybox-rootfs.sh "$work/rootfs"
tar -C "$work/rootfs" -czf "$work/busybox.tar.gz" .
echo "== strata import"
s import "$work/busybox.tar.gz" busybox
s images
echo "== strata run --rm busybox ..."
s run --rm busybox sh -c 'echo hello from $(hostname): pid $$, uid $(id -u), ip $(ip -o -4 addr show eth0 | awk "{print \$4}")'
echo "== strata run -d -p 127.0.0.1:8088:80 busybox httpd"
mkdir -p "$work/www" && echo "hello from a strata container" > "$work/www/index.html"
s run -d --name demo-web -p 127.0.0.1:8088:80 -v "$work/www:/www:ro" busybox httpd -f -p 80 -h /www
s ps
for _ in $(seq 50); do curl -fsS http://127.0.0.1:8088/ 2>/dev/null && break; sleep 0.1; done
s stop -t 1 demo-web >/dev/null
s logs demo-web || true
s ps -a
