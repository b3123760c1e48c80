#!/usr/bin/env bash
# Engine benchmark (not a timed test), in one run:
#   1. `strata run --rm busybox true` against
#      `podman run --rm --network none --runtime runc` on the same image,
#      and `strata run --rm --network none` for a like-for-like network;
#   2. memory (RSS, PSS and private dirty) of an idle detached
#      container's monitor against podman's conmon;
#   3. `strata ps -a` with 100 containers (and podman ps -a with 100),
#      and `ps --format` / `inspect --format` over them;
#   4. a user network: `network create` + `network rm`, a container run
#      on it, and (strata only: podman's CNI here has no DNS plugin) a
#      container resolving another by name;
#   5. `stats --no-stream` with 20 running containers.
# Prints the ratios. Usage: bash benches/engine.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
cargo build --release -q -p strata -p strata-runtime
strata_bin=$PWD/target/release/strata
# podman runs its containers with Debian's runc: crun 1.8 refuses this
# host's hybrid cgroup layout (hugetlb on the v2 tree).
work=$(mktemp -d /tmp/strata-engine-bench.XXXXXX)
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
  --storage-driver overlay "$@"; }
cleanup() {
  s ps -aq 2>/dev/null | xargs -r "$strata_bin" --root "$work/store" rm -f >/dev/null 2>&1 || true
  # The user network's bridge and NAT rule are host-wide: remove them
  # before the store goes.
  s network prune -f >/dev/null 2>&1 || true
  p network rm -f benchnet >/dev/null 2>&1 || true
  p rm -af >/dev/null 2>&1 || true
  p system reset -f >/dev/null 2>&1 || true
  umount -R "$work/podman" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
bash scripts/make-busybox-rootfs.sh "$work/rootfs" >/dev/null
tar -C "$work/rootfs" -cf "$work/busybox.tar" .
s import "$work/busybox.tar" busybox >/dev/null
p import "$work/busybox.tar" localhost/busybox >/dev/null

echo "== run --rm busybox true (hyperfine, $runs runs)"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/run.json" \
  -n strata "$strata_bin --root $work/store run --rm busybox true" \
  -n strata-none "$strata_bin --root $work/store run --rm --network none busybox true" \
  -n podman-runc "podman --root $work/podman/root --runroot $work/podman/run --tmpdir $work/podman/tmp --storage-driver overlay run --rm --network none --runtime runc localhost/busybox true" \
  >/dev/null
jq -r '.results[] | "\(.command)\t\(.mean*1000|floor) ms ± \(.stddev*1000|floor)"' "$work/run.json"
jq -r '(.results|map({(.command): .mean})|add) as $m |
  "strata/podman: \($m.strata/$m["podman-runc"]*100|floor/100)x   strata --network none/podman: \($m["strata-none"]/$m["podman-runc"]*100|floor/100)x (target <= 0.3)"' "$work/run.json"

echo "== idle detached container: monitor RSS vs conmon"
s run -d --name idle --network none busybox sleep 600 >/dev/null
p run -d --name idle --network none --runtime runc localhost/busybox sleep 600 >/dev/null
# A binary built moments ago still has dirty page-cache pages, which
# smaps counts as the process's own dirty memory: write them back first.
sync
sleep 1
mon=$(jq -r .monitor_pid "$work/store/containers/$(s inspect idle | jq -r '.[0].Id')/state.json")
conmon=$(pgrep -n conmon)
# RSS counts the binary's clean file pages (shared with every other
# process of that binary, reclaimable); Private_Dirty is the memory the
# process alone costs (heap, stacks, written data).
field() { awk -v f="$2:" '$1==f{print $2}' "/proc/$1/smaps_rollup"; }
ratio() { echo "scale=2; $1/$2" | bc; }
for f in Rss Pss Private_Dirty; do
  echo "$f: strata monitor $(field "$mon" $f) kB   conmon $(field "$conmon" $f) kB   ratio $(ratio "$(field "$mon" $f)" "$(field "$conmon" $f)")"
done
s rm -f idle >/dev/null; p rm -f idle >/dev/null

echo "== ps -a with 100 containers"
for i in $(seq 100); do
  s create --network none busybox true >/dev/null
  p create --network none --runtime runc localhost/busybox true >/dev/null
done
hyperfine -N --warmup 2 --runs 10 --export-json "$work/ps.json" \
  -n strata-ps "$strata_bin --root $work/store ps -a" \
  -n podman-ps "podman --root $work/podman/root --runroot $work/podman/run --tmpdir $work/podman/tmp --storage-driver overlay ps -a" >/dev/null
jq -r '.results[] | "\(.command)\t\(.mean*1000|floor) ms"' "$work/ps.json"
jq -r '(.results|map({(.command): .mean})|add) as $m | "strata ps/podman ps: \($m["strata-ps"]/$m["podman-ps"]*100|floor/100)x"' "$work/ps.json"

echo "== ps -a --format and inspect --format over the same 100 containers"
pcmd="podman --root $work/podman/root --runroot $work/podman/run --tmpdir $work/podman/tmp --storage-driver overlay"
s_ids=$(s ps -aq --no-trunc | tr '\n' ' ')
p_ids=$(p ps -aq --no-trunc | tr '\n' ' ')
hyperfine -N --warmup 2 --runs 10 --export-json "$work/fmt.json" \
  -n strata-ps-format "$strata_bin --root $work/store ps -a --format {{.Names}}:{{.Status}}" \
  -n podman-ps-format "$pcmd ps -a --format {{.Names}}:{{.Status}}" \
  -n strata-inspect-format "$strata_bin --root $work/store inspect --format {{.State.Status}} $s_ids" \
  -n podman-inspect-format "$pcmd inspect --format {{.State.Status}} $p_ids" >/dev/null
jq -r '.results[] | "\(.command)\t\(.mean*1000|floor) ms"' "$work/fmt.json"
jq -r '(.results|map({(.command): .mean})|add) as $m |
  "strata/podman: ps --format \($m["strata-ps-format"]/$m["podman-ps-format"]*100|floor/100)x, inspect --format \($m["strata-inspect-format"]/$m["podman-inspect-format"]*100|floor/100)x (target <= 0.3)"' "$work/fmt.json"

echo "== user network: create+rm, run on it, name resolution"
s network create benchnet >/dev/null
p network create benchnet >/dev/null
s run -d --name srv --network benchnet busybox sleep 600 >/dev/null
hyperfine -N --warmup 2 --runs 10 --export-json "$work/net.json" \
  -n strata-net-create-rm "bash -c '$strata_bin --root $work/store network create bn-x >/dev/null && $strata_bin --root $work/store network rm bn-x >/dev/null'" \
  -n podman-net-create-rm "bash -c '$pcmd network create bn-x >/dev/null && $pcmd network rm bn-x >/dev/null'" \
  -n strata-run-on-net "$strata_bin --root $work/store run --rm --network benchnet busybox true" \
  -n podman-run-on-net "$pcmd run --rm --network benchnet --runtime runc localhost/busybox true" \
  -n strata-resolve "$strata_bin --root $work/store run --rm --network benchnet busybox nslookup srv" >/dev/null
jq -r '.results[] | "\(.command)\t\(.mean*1000|floor) ms"' "$work/net.json"
jq -r '(.results|map({(.command): .mean})|add) as $m |
  "strata/podman: network create+rm \($m["strata-net-create-rm"]/$m["podman-net-create-rm"]*100|floor/100)x, run on a user network \($m["strata-run-on-net"]/$m["podman-run-on-net"]*100|floor/100)x (target <= 0.3)"' "$work/net.json"
s rm -f srv >/dev/null

echo "== stats --no-stream with 20 running containers"
s ps -aq | xargs -r "$strata_bin" --root "$work/store" rm -f >/dev/null
p rm -af >/dev/null 2>&1
for i in $(seq 20); do
  s run -d --network none busybox sleep 600 >/dev/null
  p run -d --network none --runtime runc localhost/busybox sleep 600 >/dev/null
done
hyperfine -N --warmup 1 --runs 5 --export-json "$work/stats.json" \
  -n strata-stats "$strata_bin --root $work/store stats --no-stream" \
  -n podman-stats "$pcmd stats --no-stream" >/dev/null
jq -r '.results[] | "\(.command)\t\(.mean*1000|floor) ms"' "$work/stats.json"
jq -r '(.results|map({(.command): .mean})|add) as $m | "strata/podman stats --no-stream: \($m["strata-stats"]/$m["podman-stats"]*100|floor/100)x (target <= 0.3)"' "$work/stats.json"
