#!/usr/bin/env bash
# Debian packages the build, the tests and the benchmarks use. Idempotent.
set -euo pipefail
pkgs=(
  runc crun containerd podman skopeo umoci docker-registry busybox-static
  containernetworking-plugins slirp4netns passt uidmap fuse-overlayfs libseccomp-dev
  hyperfine bats pkg-config iptables jq time procps apache2-utils debootstrap openssl curl
  tini iproute2 util-linux qemu-system-x86 python3 python3-grpcio attr libcap2-bin bzip2 xz-utils
  criu tar gzip gcc libc6-dev systemd
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The kernel the cgroup v2 VM test boots.
bash "$(dirname "$0")/fetch-test-kernel.sh"
