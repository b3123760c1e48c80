#!/usr/bin/env bash
# The main job on a fresh machine: install, build, make a busybox base image
# from Debian's busybox-static with `strata import`, build the example app
# on it from its Dockerfile (examples/app: two build stages and a final
# image) with `strata build`, and run it with `strata run`: once in the
# foreground, and once detached as a web server published on 127.0.0.1
# through the strata bridge.
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
echo "== strata build -t app examples/app"
s build --progress plain --build-arg VERSION=demo -t app examples/app
s images
s history app
echo "== strata run --rm app (its hello, then a shell command)"
s run --rm --entrypoint /app/hello app
s run --rm --entrypoint sh app -c 'echo hello from $(hostname): pid $$, uid $(id -u), ip $(ip -o -4 addr show eth0 | awk "{print \$4}")'
echo "== strata run -d -p 127.0.0.1:8088:8080 app (the app's web server)"
s run -d --name demo-web -p 127.0.0.1:8088:8080 app
s ps
for _ in $(seq 50); do curl -fsS http://127.0.0.1:8088/ 2>/dev/null && break; sleep 0.1; done
s stop -t 1 demo-web >/dev/null
s logs demo-web || true
s ps -a
