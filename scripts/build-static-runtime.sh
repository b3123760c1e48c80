#!/usr/bin/env bash
# Build strata-runtime for deployment (e.g. installed in runc's place) as
# one static, non-PIE executable: glibc and libseccomp linked in, fat LTO,
# size-optimised, linked by lld with the functions a container's life runs
# laid out side by side. The result: target/static-runtime/strata-runtime.
#
# Why: most of a run's peak RSS is mapped code, and the kernel maps text
# 64 KB around every fault (fault-around). Static linking drops the shared
# libraries' pages and the startup relocations; the symbol order keeps the
# executed functions (about 1 MB of 3.2 MB) together. benches/runtime.sh
# measures it (STRATA_RUNTIME=target/static-runtime/strata-runtime).
#
# How the order is found: the build is traced (scripts/trace-text.c,
# one-shot breakpoints on every function entry) through run, create,
# start, exec, state, kill and delete of a busybox container, and relinked
# in that order when it differs from the order it was linked with. Without
# root (no container to trace) the build links in the last order found, or
# in the compiler's.
#
#   build-static-runtime.sh [-q]
set -euo pipefail
cd "$(dirname "$0")/.."
quiet=()
[ "${1:-}" = "-q" ] && quiet=(-q)
host=$(rustc -vV | sed -n 's/^host: //p')
sysroot=$(rustc --print sysroot)
out=target/static-runtime
mkdir -p "$out"
order=$PWD/$out/symbol-order.txt

build() {
  # --target keeps RUSTFLAGS off build scripts and proc macros, which must
  # stay dynamic. rust-lld comes with the toolchain (gcc-ld/ld.lld).
  LIBSECCOMP_LINK_TYPE=static \
  LIBSECCOMP_LIB_PATH=${LIBSECCOMP_LIB_PATH:-/usr/lib/$(gcc -print-multiarch)} \
  RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static -C link-arg=-fuse-ld=lld -C link-arg=-B$sysroot/lib/rustlib/$host/bin/gcc-ld" \
    cargo build "${quiet[@]}" --profile static -p strata-runtime --target "$host"
}

# Link with the order found last time, if any: tracing an ordered build
# finds the same order, so a rebuild of unchanged code relinks nothing.
if [ -s "$order" ]; then
  STRATA_SYMBOL_ORDER=$order build
else
  STRATA_SYMBOL_ORDER= build
fi
bin=target/$host/static/strata-runtime

trace() {
  local work tracer entries
  work=$(mktemp -d /tmp/strata-trace.XXXXXX)
  trap 'rm -rf "$work"' RETURN
  tracer=$work/trace-text
  gcc -O2 -o "$tracer" scripts/trace-text.c
  entries=$work/entries
  nm --defined-only "$bin" | awk '$2 ~ /^[tTwW]$/ { print $1 }' > "$entries"
  bash scripts/make-busybox-rootfs.sh "$work/bundle/rootfs" >/dev/null
  local absbin=$PWD/$bin
  (cd "$work/bundle" && "$absbin" spec)
  jq '.process.terminal=false | .process.args=["/bin/true"]' "$work/bundle/config.json" > "$work/c.json"
  mv "$work/c.json" "$work/bundle/config.json"
  local rt=("$absbin" --root "$work/state")
  local n=0
  t() { n=$((n + 1)); (cd "$work/bundle" && "$tracer" "$entries" "$work/hit.$n" -- "${rt[@]}" "$@" >/dev/null); }
  # The common case first: a run whose seccomp filter is cached.
  "${rt[@]}" run --bundle "$work/bundle" warm >/dev/null
  t run hot
  # containerd's sequence, with an exec, then a cold run.
  jq '.process.args=["sleep","30"]' "$work/bundle/config.json" > "$work/c.json"
  cp "$work/bundle/config.json" "$work/true.json"
  mv "$work/c.json" "$work/bundle/config.json"
  t create box </dev/null
  t start box
  t state box
  t list
  t exec box /bin/true
  t kill box KILL
  sleep 0.2
  t delete -f box
  cp "$work/true.json" "$work/bundle/config.json"
  rm -rf "$work/state"
  t run cold
  # The functions hit, with those of the last order (a few are hit only
  # sometimes, e.g. a futex wait), in address order: the compiler's order,
  # or the order this binary was linked in, so that tracing an ordered
  # build gives back the same file. Symbol names, aliases too.
  cat $(for i in $(seq "$n"); do echo "$work/hit.$i"; done) | sort -u > "$work/hits"
  nm --defined-only "$bin" | awk '$2 ~ /^[tTwW]$/' > "$work/syms"
  { [ -s "$order" ] && cat "$order"; true; } > "$work/last"
  awk 'FILENAME == ARGV[1] { hit[$1] = 1; next }
       FILENAME == ARGV[2] { last[$1] = 1; next }
       hit[$1] || last[$3] { print $1, $3 }' "$work/hits" "$work/last" "$work/syms" |
    sort -k1,1 -s | awk '!seen[$2]++ { print $2 }' > "$work/order"
  [ -s "$work/order" ] || { echo "build-static-runtime: the trace found no functions" >&2; return 1; }
  # Rewrite only on change: the runtime relinks when the file changes.
  if cmp -s "$work/order" "$order"; then
    changed=0
  else
    cp "$work/order" "$order"
    changed=1
  fi
}

changed=0
if [ "$(id -u)" = 0 ] && trace; then
  [ "$changed" = 0 ] || STRATA_SYMBOL_ORDER=$order build
else
  echo "build-static-runtime: no trace (needs root and gcc): functions in the compiler's order" >&2
fi
cp "$bin" "$out/strata-runtime.tmp"
mv "$out/strata-runtime.tmp" "$out/strata-runtime"
echo "$out/strata-runtime"
