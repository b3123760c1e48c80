#!/usr/bin/env bash
# Side-by-side: pull + unpack of the two-layer Debian image (see
# imagestore.sh) from a local docker-registry into an empty store, for
# strata, containerd 1.6 (`ctr images pull`, which unpacks) and podman.
# Prints ratios. Needs root. Not a test: numbers are printed only.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CACHE:-/var/tmp/strata-bench-debian}
RUNS=${RUNS:-5}
[ -f "$CACHE/layout/index.json" ] || bash benches/imagestore.sh >/dev/null
cargo build --release -q -p strata
strata=$PWD/target/release/strata
work=$(mktemp -d /tmp/strata-bench-reg.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; umount -R "$work" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 & pids+=($!)
cat > "$work/containerd.toml" <<TOML
version = 2
root = "$work/ctd-root"
state = "$work/ctd-state"
[grpc]
  address = "$work/ctd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  disable = true
TOML
containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do [ -S "$work/ctd.sock" ] && curl -s "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
ref=127.0.0.1:$port/bench/debian:latest
skopeo copy -q --dest-tls-verify=false "oci:$CACHE/layout:debian" "docker://$ref"

ctr="ctr --address $work/ctd.sock --namespace bench"
printf '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' > "$work/containers.conf"
podman="env CONTAINERS_CONF=$work/containers.conf podman --root $work/podman --runroot $work/podman-run --storage-driver overlay"
hyperfine --runs "$RUNS" --export-json "$work/h.json" \
  --prepare "rm -rf $work/store" "$strata --root $work/store pull -q $ref" \
  --prepare "$ctr images rm --sync $ref >/dev/null 2>&1 || true" "$ctr images pull --plain-http $ref" \
  --prepare "$podman rmi -af >/dev/null 2>&1 || true" "$podman pull -q --tls-verify=false $ref"
jq -r '.results | "strata pull: \(.[0].mean*1000|floor) ms, containerd: \(.[1].mean*1000|floor) ms, podman: \(.[2].mean*1000|floor) ms; strata/containerd: \((.[0].mean/.[1].mean)*100|floor/100), strata/podman: \((.[0].mean/.[2].mean)*100|floor/100)"' "$work/h.json"

# Push: strata vs skopeo copy of the same image to a fresh repository.
"$strata" --root "$work/store" pull -q "$ref" >/dev/null
hyperfine --runs 3 --export-json "$work/p.json" \
  --prepare "rm -rf $work/registry/docker/registry/v2/repositories/push-s $work/registry/docker/registry/v2/blobs" \
  "$strata --root $work/store push $ref 127.0.0.1:$port/push-s/debian:1" \
  --prepare "rm -rf $work/registry/docker/registry/v2/repositories/push-k $work/registry/docker/registry/v2/blobs" \
  "skopeo copy -q --dest-tls-verify=false oci:$CACHE/layout:debian docker://127.0.0.1:$port/push-k/debian:1"
jq -r '.results | "strata push: \(.[0].mean*1000|floor) ms, skopeo copy: \(.[1].mean*1000|floor) ms; strata/skopeo: \((.[0].mean/.[1].mean)*100|floor/100)"' "$work/p.json"
