#!/usr/bin/env bash
# fetch-test-kernel.sh [DIR]: Debian's current kernel image plus the
# modules the VM tests load, extracted from the package without installing
# it (nothing is written to /boot). The VM tests boot it under qemu:
# runtime/tests/cgroup_v2_vm.rs (configfs, null_blk), because this host's
# cgroup controllers are all bound to v1, and runtime/tests/checkpoint.rs
# (nf_tables for CRIU's network lock, conntrack's netlink and the
# sock_diag modules it dumps a network namespace with), because Debian 12's CRIU cannot run on
# this host's newer kernel, and cli/tests/rootless_cgroup_vm.rs (overlay), for
# a rootless engine's limits under a delegated cgroup v2 subtree. Idempotent.
set -euo pipefail
dir=${1:-/var/cache/strata-test/kernel}
# In the order a guest loads them (dependencies first).
modules=(
  fs/configfs/configfs.ko drivers/block/null_blk/null_blk.ko
  crypto/crc32c_generic.ko lib/libcrc32c.ko net/netfilter/nfnetlink.ko net/netfilter/nf_tables.ko
  net/unix/unix_diag.ko net/ipv4/inet_diag.ko net/ipv4/tcp_diag.ko net/ipv4/udp_diag.ko
  net/netlink/netlink_diag.ko net/packet/af_packet_diag.ko drivers/net/tun.ko drivers/net/veth.ko
  net/ipv4/netfilter/nf_defrag_ipv4.ko net/ipv6/netfilter/nf_defrag_ipv6.ko net/netfilter/nf_conntrack.ko
  net/netfilter/nf_conntrack_netlink.ko fs/overlayfs/overlay.ko
)
have=1
[ -s "$dir/vmlinuz" ] || have=0
for m in "${modules[@]}"; do [ -s "$dir/$(basename "$m")" ] || have=0; done
[ "$have" = 1 ] && exit 0
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
for m in "${modules[@]}"; do
  cp "$work"/x/lib/modules/*/kernel/"$m" "$dir.new/"
done
printf '%s\n' "${modules[@]##*/}" > "$dir.new/MODULES"
echo "$pkg" > "$dir.new/PACKAGE"
rm -rf "$dir"
mv "$dir.new" "$dir"
echo "test kernel: $pkg in $dir"
