#!/usr/bin/env bash
# fetch-test-kernel.sh [DIR]: Debian's current kernel image plus the two
# modules the cgroup v2 VM test loads (configfs, null_blk), extracted from
# the package without installing it (nothing is written to /boot). The VM
# test (runtime/tests/cgroup_v2_vm.rs) boots it under qemu: this host's
# cgroup controllers are all bound to v1, so v2 resource controllers can
# only be exercised in a kernel of their own. Idempotent.
set -euo pipefail
dir=${1:-/var/cache/strata-test/kernel}
[ -s "$dir/vmlinuz" ] && [ -s "$dir/null_blk.ko" ] && [ -s "$dir/configfs.ko" ] && exit 0
pick() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'; }
pkg=$(pick)
[ -n "$pkg" ] || { apt-get update -qq; pkg=$(pick); }
[ -n "$pkg" ] || { echo "fetch-test-kernel: no linux-image package found (apt-get update?)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq "$pkg" 2>/dev/null)
dpkg-deb -x "$work"/"$pkg"_*.deb "$work/x"
mkdir -p "$dir.new"
cp "$work"/x/boot/vmlinuz-* "$dir.new/vmlinuz"
for m in fs/configfs/configfs.ko drivers/block/null_blk/null_blk.ko; do
  cp "$work"/x/lib/modules/*/kernel/"$m" "$dir.new/"
done
echo "$pkg" > "$dir.new/PACKAGE"
rm -rf "$dir"
mv "$dir.new" "$dir"
echo "test kernel: $pkg in $dir"
