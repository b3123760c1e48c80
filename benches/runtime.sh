#!/usr/bin/env bash
# Side-by-side benchmark of strata-runtime, runc and crun (Debian packages):
#  - 100 containers back to back: `run` of busybox /bin/true (in 5 rounds,
#    the runtimes taking turns in a rotating order)
#  - the same split into create / start / delete
#  - peak RSS of one `run`
# Prints per-runtime figures and the ratios strata/crun and strata/runc.
# Needs root. Not a test: numbers are printed, never asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100}
# What is measured is the deployable build (scripts/build-static-runtime.sh:
# static, symbol-ordered); STRATA_RUNTIME=path measures another build of
# ours instead (e.g. target/release/strata-runtime, the dynamic dev build).
if [ -n "${STRATA_RUNTIME:-}" ]; then
  strata=$(readlink -f "$STRATA_RUNTIME")
else
  bash scripts/build-static-runtime.sh -q >/dev/null
  strata=$PWD/target/static-runtime/strata-runtime
fi
echo "strata-runtime: $strata" >&2

# crun refuses this hybrid host while hugetlb sits on the v2 tree: give it
# a v1 mount (idempotent; a no-op on pure v1 or v2 hosts). The kernel
# refuses the move once the v2 tree has cgroups (the tests make some):
# then every runtime runs in a private mount namespace without
# /sys/fs/cgroup/unified, where the host looks like a v1 host to all three.
if [ -d /sys/fs/cgroup/unified ] && mountpoint -q /sys/fs/cgroup/unified && ! mountpoint -q /sys/fs/cgroup/hugetlb; then
  mkdir -p /sys/fs/cgroup/hugetlb
  if ! mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb 2>/dev/null; then
    rmdir /sys/fs/cgroup/hugetlb 2>/dev/null || true
    echo "note: hugetlb stays on v2; all runtimes run without /sys/fs/cgroup/unified (private mount namespace)" >&2
    exec unshare -m --propagation private bash -c 'umount /sys/fs/cgroup/unified && exec bash "$0" "$@"' "$0" "$@"
  fi
fi

work=$(mktemp -d /tmp/strata-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
bash scripts/make-busybox-rootfs.sh "$work/bundle/rootfs"
(cd "$work/bundle" && "$strata" spec)
jq '.process.terminal=false | .process.args=["/bin/true"]' "$work/bundle/config.json" > "$work/c.json"
mv "$work/c.json" "$work/bundle/config.json"

now() { date +%s%N; }
ms() { awk -v ns="$1" -v n="$N" 'BEGIN { printf "%.2f", ns / n / 1e6 }'; }
declare -A RUN CREATE START DELETE RSS
bin_of() { if [ "$1" = strata ]; then echo "$strata"; else echo "$1"; fi; }
# `run`: in ROUNDS rounds of N/ROUNDS each, the three runtimes taking
# turns and the order rotating, so that drift of the machine (frequency,
# page cache, other load) falls on all three alike.
ROUNDS=${ROUNDS:-5}
per=$(( N / ROUNDS ))
order=(strata runc crun)
for rt in strata runc crun; do
  RUN[$rt]=0
  "$(bin_of $rt)" --root "$work/state-$rt" run --bundle "$work/bundle" warm-$rt >/dev/null
done
for r in $(seq "$ROUNDS"); do
  for rt in "${order[@]}"; do
    bin=$(bin_of "$rt")
    for i in $(seq "$per"); do
      t0=$(now)
      "$bin" --root "$work/state-$rt" run --bundle "$work/bundle" "r$r-$i" >/dev/null
      t1=$(now)
      RUN[$rt]=$(( RUN[$rt] + t1 - t0 ))
      echo $(( t1 - t0 )) >> "$work/run-$rt.ns"
    done
  done
  order=("${order[@]:1}" "${order[0]}")
done
N_RUN=$(( per * ROUNDS ))
for rt in strata runc crun; do
  bin=$(bin_of "$rt")
  root="$work/state-$rt"
  c=0; s=0; d=0
  for i in $(seq "$N"); do
    t0=$(now); "$bin" --root "$root" create --bundle "$work/bundle" "s$i" </dev/null >/dev/null
    t1=$(now); "$bin" --root "$root" start "s$i"
    t2=$(now)
    # wait for /bin/true to exit so delete measures deletion, not a kill
    while "$bin" --root "$root" state "s$i" | grep -q '"running"'; do :; done
    t3=$(now); "$bin" --root "$root" delete "s$i"
    t4=$(now)
    c=$((c + t1 - t0)); s=$((s + t2 - t1)); d=$((d + t4 - t3))
  done
  CREATE[$rt]=$c; START[$rt]=$s; DELETE[$rt]=$d
  RSS[$rt]=$( { /usr/bin/time -f '%M' "$bin" --root "$root" run --bundle "$work/bundle" rss >/dev/null; } 2>&1 | tail -1)
done

printf '\n%-8s %12s %12s %12s %12s %12s\n' runtime "run ms" "create ms" "start ms" "delete ms" "peak RSS KB"
for rt in strata runc crun; do
  printf '%-8s %12s %12s %12s %12s %12s\n' "$rt" "$(ms "${RUN[$rt]}")" "$(ms "${CREATE[$rt]}")" \
    "$(ms "${START[$rt]}")" "$(ms "${DELETE[$rt]}")" "${RSS[$rt]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
# Each run's own time too: the median and the 90th percentile say more than
# the mean on a machine whose hiccups land on one runtime's round.
pct() { sort -n "$work/run-$1.ns" | awk -v q="$2" '{ a[NR] = $1 } END { i = int(NR * q); if (i < 1) i = 1; printf "%.2f", a[i] / 1e6 }'; }
echo
printf '%-8s %12s %12s\n' runtime "run p50 ms" "run p90 ms"
for rt in strata runc crun; do
  printf '%-8s %12s %12s\n' "$rt" "$(pct "$rt" 0.5)" "$(pct "$rt" 0.9)"
done
echo
for peer in crun runc; do
  echo "strata/$peer: run p50 $(ratio "$(pct strata 0.5)" "$(pct "$peer" 0.5)")x, p90 $(ratio "$(pct strata 0.9)" "$(pct "$peer" 0.9)")x"
done
echo
for peer in crun runc; do
  echo "strata/$peer: run $(ratio "${RUN[strata]}" "${RUN[$peer]}")x," \
    "create $(ratio "${CREATE[strata]}" "${CREATE[$peer]}")x," \
    "start $(ratio "${START[strata]}" "${START[$peer]}")x," \
    "delete $(ratio "${DELETE[strata]}" "${DELETE[$peer]}")x," \
    "peak RSS $(ratio "${RSS[strata]}" "${RSS[$peer]}")x"
done
