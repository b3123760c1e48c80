#!/usr/bin/env bash
# Rootless benchmark (not a timed test): strata and podman 4.3 (runc:
# crun 1.8 refuses this host's hybrid cgroup layout), both run by the
# same unprivileged user with subordinate ids, in one run:
#   1. `run --rm --network none busybox true`;
#   2. pull + unpack of a two-layer image from a docker-registry on
#      127.0.0.1 into an emptied store (rmi before each pull);
#   3. `run --rm --network NET busybox true` on a user network (strata:
#      a bridge in the user's network namespace with pasta as uplink;
#      podman 4.3: CNI's bridge in its rootless-netns with slirp4netns).
# Prints the ratios. Usage (as root): bash benches/rootless.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
cargo build --release -q -p strata
user=strata-bench
id -u "$user" >/dev/null 2>&1 || useradd -m -s /bin/sh "$user"
grep -q "^$user:" /etc/subuid || usermod --add-subuids 500000-565535 --add-subgids 500000-565535 "$user"
work=$(mktemp -d /tmp/strata-rootless-bench.XXXXXX)
chmod 755 "$work"
install -d -o "$user" -m 700 "$work/data" "$work/run"
install -m 755 target/release/strata target/release/strata-monitor "$work/"
cat > "$work/containers.conf" <<CONF
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
chmod 644 "$work/containers.conf"
as_user="runuser -u $user -- env XDG_DATA_HOME=$work/data XDG_RUNTIME_DIR=$work/run CONTAINERS_CONF=$work/containers.conf"
s="$as_user $work/strata"
p="$as_user podman --root $work/data/podman-root --runroot $work/data/podman-run --storage-driver overlay"
reg_pid=
cleanup() {
  $s network rm bnet >/dev/null 2>&1 || true
  $p system reset -f >/dev/null 2>&1 || true
  for f in "$work"/run/strata/pasta/*.pid; do
    [ -f "$f" ] && kill -9 "$(cut -d' ' -f1 "$f")" 2>/dev/null || true
  done
  for f in "$work/run/strata/pause.pid" "$work/run/libpod/tmp/pause.pid"; do
    [ -f "$f" ] && kill -9 "$(cut -d' ' -f1 "$f")" 2>/dev/null || true
  done
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The image: busybox, and a second layer of 2000 small files.
bash scripts/make-busybox-rootfs.sh "$work/rootfs" >/dev/null
tar -C "$work/rootfs" -cf "$work/busybox.tar" .
chmod 644 "$work/busybox.tar"
$s import "$work/busybox.tar" busybox >/dev/null
$p import "$work/busybox.tar" localhost/busybox >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
reg_pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
mkdir -p "$work/ctx"
printf 'FROM busybox\nRUN mkdir /files && cd /files && for i in $(seq 2000); do echo "file $i" > f$i; done\n' > "$work/ctx/Dockerfile"
chmod -R a+rX "$work/ctx"
$s build -q -t "127.0.0.1:$port/bench/two:1" --network none "$work/ctx" >/dev/null
$s push "127.0.0.1:$port/bench/two:1" >/dev/null
image="127.0.0.1:$port/bench/two:1"

echo "== rootless run --rm --network none busybox true (hyperfine, $runs runs)"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/run.json" \
  -n strata "$s run --rm --network none busybox true" \
  -n podman-runc "$p run --rm --network none --runtime runc localhost/busybox true" >/dev/null
jq -r '.results[] | "\(.command)\t\(.mean*1000|floor) ms ± \(.stddev*1000|floor)"' "$work/run.json"
jq -r '(.results|map({(.command): .mean})|add) as $m | "strata/podman: \($m.strata/$m["podman-runc"]*100|floor/100)x (target <= 0.3)"' "$work/run.json"

echo "== rootless pull + unpack of a two-layer image (2000 files) from 127.0.0.1"
# Each pull starts from a store without either layer.
hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/pull.json" \
  --prepare "sh -c '$s rmi -f $image busybox >/dev/null 2>&1; true'" -n strata "$s pull -q $image" \
  --prepare "sh -c '$p rmi -f $image localhost/busybox >/dev/null 2>&1; true'" -n podman "$p pull -q --tls-verify=false $image" >/dev/null
jq -r '.results[] | "\(.command)\t\(.mean*1000|floor) ms ± \(.stddev*1000|floor)"' "$work/pull.json"
jq -r '(.results|map({(.command): .mean})|add) as $m | "strata/podman: \($m.strata/$m.podman*100|floor/100)x (target <= 0.3)"' "$work/pull.json"

echo "== rootless run --rm on a user network (hyperfine, $runs runs)"
# The pulls above removed busybox from both stores.
$s import "$work/busybox.tar" busybox >/dev/null
$p import "$work/busybox.tar" localhost/busybox >/dev/null 2>&1
$s network create bnet >/dev/null
$p network rm -f bnet >/dev/null 2>&1 || true
$p network create bnet >/dev/null
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/net.json" \
  -n strata "$s run --rm --network bnet busybox true" \
  -n podman-runc "$p run --rm --network bnet --runtime runc localhost/busybox true" >/dev/null
jq -r '.results[] | "\(.command)\t\(.mean*1000|floor) ms ± \(.stddev*1000|floor)"' "$work/net.json"
jq -r '(.results|map({(.command): .mean})|add) as $m | "strata/podman: \($m.strata/$m["podman-runc"]*100|floor/100)x (target <= 0.3)"' "$work/net.json"
