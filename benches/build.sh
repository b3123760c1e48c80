#!/usr/bin/env bash
# Build benchmark (not a timed test), in one run: an app Dockerfile with
# two stages, a context of about 2,000 small files and one 50 MB file,
# built cold (--no-cache), rebuilt with no change, and rebuilt after one
# source file changed, by `strata build`, `podman build` (buildah, runc)
# and `docker build` (Debian's docker.io 20.10, BuildKit, as a private
# dockerd on its own socket and data root). Prints the median of each and
# strata's ratio to BuildKit and podman, and the peak RSS of a cold build.
# Usage: bash benches/build.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
cargo build --release -q -p strata -p strata-runtime
strata_bin=$PWD/target/release/strata
docker_bin=/usr/bin/docker
if [ ! -x /usr/bin/dockerd ]; then
  # Installing docker.io must not start the system's daemon.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
work=$(mktemp -d /tmp/strata-build-bench.XXXXXX)
s() { "$strata_bin" --root "$work/store" "$@"; }
cat > "$work/containers.conf" <<CONF
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF=$work/containers.conf
p() { podman --root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp" \
  --storage-driver overlay --runtime runc "$@"; }
sock=$work/docker.sock
d() { DOCKER_HOST=unix://$sock DOCKER_BUILDKIT=1 "$docker_bin" "$@"; }
cleanup() {
  [ -f "$work/dockerd.pid" ] && kill "$(cat "$work/dockerd.pid")" 2>/dev/null && sleep 2
  p system reset -f >/dev/null 2>&1 || true
  umount -R "$work/podman" "$work/docker" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

dockerd --data-root "$work/docker/data" --exec-root "$work/docker/exec" -H "unix://$sock" \
  --pidfile "$work/dockerd.pid" --bridge=none --iptables=false --storage-driver overlay2 \
  >"$work/dockerd.log" 2>&1 &
for _ in $(seq 100); do d version >/dev/null 2>&1 && break; sleep 0.2; done

# One base for all three.
bash scripts/make-busybox-rootfs.sh "$work/rootfs" >/dev/null
tar -C "$work/rootfs" -cf "$work/busybox.tar" .
s import "$work/busybox.tar" localhost/busybox >/dev/null
s save -o "$work/busybox-docker.tar" localhost/busybox
p load -i "$work/busybox-docker.tar" >/dev/null
loaded=$(d load -i "$work/busybox-docker.tar" | sed -n 's/^Loaded image: //p' | head -1)
# BuildKit asks a registry for any name with a host part (localhost/...):
# give dockerd's copy a plain name it finds in its own image store.
d tag "$loaded" strata-bench-base:latest

ctx=$work/ctx
mkdir -p "$ctx/src"
for i in $(seq 1 40); do
  mkdir -p "$ctx/src/pkg$i"
  for j in $(seq 1 50); do echo "module $i file $j" > "$ctx/src/pkg$i/f$j.txt"; done
done
head -c 50000000 /dev/urandom > "$ctx/big.bin"
cat > "$ctx/Dockerfile" <<'DF'
ARG BASE=localhost/busybox
FROM ${BASE} AS build
WORKDIR /src
COPY src/ ./src/
RUN find src -type f | wc -l > /count && tar -cf /bundle.tar src
FROM ${BASE}
COPY --from=build /bundle.tar /count /app/
COPY big.bin /app/big.bin
RUN ls -l /app > /app/listing
DF

# A failed build stops the benchmark with its log: a failure is no time.
secs() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$work/last.log" 2>&1 || { echo "build failed: $*" >&2; tail -20 "$work/last.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A res
for tool in strata podman docker; do
  case $tool in
    strata) b() { s build --progress plain -t bench "$@" "$ctx"; } ;;
    podman) b() { p build --format docker -t bench "$@" "$ctx"; } ;;
    # dockerd runs with --bridge=none: its RUN steps take no network.
    docker) b() { d build --progress plain --network none --build-arg BASE=strata-bench-base -t bench "$@" "$ctx"; } ;;
  esac
  cold=() noop=() change=()
  for r in $(seq "$rounds"); do
    cold+=("$(secs b --no-cache)")
    noop+=("$(secs b)")
    echo "changed $r $(date +%s%N)" > "$ctx/src/pkg1/f1.txt"
    change+=("$(secs b)")
  done
  res[$tool,cold]=$(printf '%s\n' "${cold[@]}" | median)
  res[$tool,noop]=$(printf '%s\n' "${noop[@]}" | median)
  res[$tool,change]=$(printf '%s\n' "${change[@]}" | median)
done
echo "== build times (median of $rounds rounds, seconds)"
printf '%-8s %8s %8s %8s\n' case strata podman buildkit
for c in cold noop change; do
  printf '%-8s %8.3f %8.3f %8.3f\n' "$c" "${res[strata,$c]}" "${res[podman,$c]}" "${res[docker,$c]}"
done
echo "== strata / BuildKit and strata / podman"
for c in cold noop change; do
  printf '%-8s %6.2fx %6.2fx\n' "$c" \
    "$(echo "${res[strata,$c]} / ${res[docker,$c]}" | bc -l)" \
    "$(echo "${res[strata,$c]} / ${res[podman,$c]}" | bc -l)"
done
echo "== peak RSS of a cold build (KiB): strata CLI / podman CLI"
/usr/bin/time -f '%M' -o "$work/rss-strata" "$strata_bin" --root "$work/store" build -q --no-cache -t bench "$ctx" >/dev/null
/usr/bin/time -f '%M' -o "$work/rss-podman" podman --root "$work/podman/root" --runroot "$work/podman/run" \
  --tmpdir "$work/podman/tmp" --storage-driver overlay --runtime runc build -q --no-cache -t bench "$ctx" >/dev/null
echo "strata $(cat "$work/rss-strata")  podman $(cat "$work/rss-podman")"
