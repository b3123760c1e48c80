#!/usr/bin/env bash
# Side-by-side: load + unpack of a two-layer Debian image (debootstrap
# minbase, then python3 on top; gzip layers made by umoci) into an empty
# strata store, against `umoci unpack` of the same OCI layout. Prints the
# ratio. Needs root and the Debian mirror (apt's) for the one-time build;
# the layout is cached in $CACHE. Not a test: numbers are printed only.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CACHE:-/var/tmp/strata-bench-debian}
RUNS=${RUNS:-5}
command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
cargo build --release -q -p strata
strata=$PWD/target/release/strata

if [ ! -f "$CACHE/layout/index.json" ]; then
  rm -rf "$CACHE" && mkdir -p "$CACHE"
  debootstrap --variant=minbase bookworm "$CACHE/base" http://deb.debian.org/debian >"$CACHE/debootstrap.log"
  umoci init --layout "$CACHE/layout.tmp"
  umoci new --image "$CACHE/layout.tmp:debian"
  umoci unpack --image "$CACHE/layout.tmp:debian" "$CACHE/bundle" >/dev/null
  cp -a "$CACHE/base/." "$CACHE/bundle/rootfs/"
  # --refresh-bundle: the next repack diffs against this layer, not the empty image.
  umoci repack --refresh-bundle --image "$CACHE/layout.tmp:debian" "$CACHE/bundle"
  mount --rbind /dev "$CACHE/bundle/rootfs/dev"
  mount -t proc proc "$CACHE/bundle/rootfs/proc"
  chroot "$CACHE/bundle/rootfs" sh -c 'apt-get install -y -qq python3 >/dev/null' || { umount -R "$CACHE/bundle/rootfs/dev"; umount "$CACHE/bundle/rootfs/proc"; exit 1; }
  umount -R "$CACHE/bundle/rootfs/dev"
  umount "$CACHE/bundle/rootfs/proc"
  umoci repack --image "$CACHE/layout.tmp:debian" "$CACHE/bundle"
  rm -rf "$CACHE/bundle" "$CACHE/base"
  mv "$CACHE/layout.tmp" "$CACHE/layout"
fi
m=$(jq -r '.manifests[0].digest' "$CACHE/layout/index.json" | cut -d: -f2)
echo "layers (compressed bytes): $(jq -c '[.layers[].size]' "$CACHE/layout/blobs/sha256/$m")"

work=$(mktemp -d /tmp/strata-bench-img.XXXXXX)
trap 'rm -rf "$work"' EXIT
hyperfine --runs "$RUNS" --export-json "$work/h.json" \
  --prepare "rm -rf $work/store" "$strata --root $work/store load -q -i $CACHE/layout" \
  --prepare "rm -rf $work/umoci" "umoci unpack --image $CACHE/layout:debian $work/umoci"
jq -r '.results | "strata load+unpack: \(.[0].mean*1000|floor) ms, umoci unpack: \(.[1].mean*1000|floor) ms, ratio strata/umoci: \((.[0].mean/.[1].mean)*100|floor/100)"' "$work/h.json"
