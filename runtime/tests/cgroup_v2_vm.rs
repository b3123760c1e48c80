//! cgroup v2 resource controllers, in a VM of their own.
//!
//! On this host every resource controller is bound to a v1 hierarchy (see
//! /proc/cgroups), and a controller can only move to v2 once its v1
//! hierarchy is gone, which would take it from the host, podman and
//! containerd. So the test boots Debian's kernel (fetched by
//! scripts/fetch-test-kernel.sh) under qemu with an initramfs holding
//! this strata-runtime, busybox and two bundles, mounts a pure cgroup2
//! tree there with cpu, cpuset, memory, pids and io enabled, and runs the
//! containers in it. What the guest sees comes back on the serial console
//! as `@@key=value` lines, asserted here.

mod common;
#[path = "common/vm.rs"]
mod vm;

use std::path::Path;

use common::*;
use serde_json::json;

// The guest's nullb0 has a major number chosen at boot; the configs carry
// this stand-in, replaced in the guest.
const NULLB_MAJOR: u32 = 4242;

/// The first bundle: every controller limited, and probed from inside.
fn limits_bundle() -> Bundle {
    let mut b = Bundle::new(
        r#"
cg=/sys/fs/cgroup
for f in memory.max memory.low memory.high memory.swap.max cpu.max cpu.weight \
         cpuset.cpus cpuset.mems pids.max io.max io.weight; do
  echo "@@$f=$(cat $cg/$f 2>&1 | tr '\n' ' ')"
done
echo "@@cpus_allowed=$(grep Cpus_allowed_list /proc/self/status | cut -f2)"
# pids: 64 forks under a limit of 32.
# (a failed fork ends a non-interactive sh: the loop runs in a subshell)
(for i in $(seq 64); do sleep 100 & done) 2>/dev/null
echo "@@pids.current=$(cat $cg/pids.current)"
echo "@@pids.events=$(tr '\n' ' ' < $cg/pids.events)"
killall sleep; wait
# memory: sort holds its 100 MB line in memory; the limit is 64 MiB.
head -c 100000000 /dev/zero | sort > /dev/null
echo "@@hog_status=$?"
echo "@@memory.events=$(tr '\n' ' ' < $cg/memory.events)"
# cpu: two seconds of spinning under a 50% quota.
timeout 2 sh -c 'while :; do :; done'
echo "@@cpu.stat=$(tr '\n' ' ' < $cg/cpu.stat)"
# io: 2 MiB from nullb0 under a 1 MiB/s read limit.
t0=$(cut -d' ' -f1 /proc/uptime)
dd if=/dev/nullb0 of=/dev/null bs=64k count=32 iflag=direct 2>/dev/null
echo "@@dd_status=$?"
echo "@@io_seconds=$t0 $(cut -d' ' -f1 /proc/uptime)"
# devices: nullb0 may be read, not written.
(dd if=/dev/zero of=/dev/nullb0 bs=4k count=1 2>&1) | head -1 | sed 's/^/@@nullb_write=/'
"#,
    );
    b.config["linux"]["cgroupsPath"] = json!("/strata-vm/limits");
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/nullb0", "type": "b", "major": NULLB_MAJOR, "minor": 0, "fileMode": 0o660}
    ]);
    b.config["linux"]["resources"] = json!({
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": 67108864},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "1", "mems": "0"},
        "pids": {"limit": 32},
        "blockIO": {
            "weight": 500,
            "throttleReadBpsDevice": [{"major": NULLB_MAJOR, "minor": 0, "rate": 1048576}]
        },
        "unified": {"memory.high": "60000000"},
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "b", "major": NULLB_MAJOR, "minor": 0, "access": "r"}
        ]
    });
    b.save();
    b
}

/// The guest's script: a cgroup2-only host, then the two containers.
const GUEST_TEST: &str = r#"#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp /run; mount -t tmpfs tmpfs /tmp; mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "@@fstype=$(stat -f -c %t /sys/fs/cgroup)"
echo "+cpu +cpuset +memory +pids +io" > /sys/fs/cgroup/cgroup.subtree_control
echo "@@controllers=$(cat /sys/fs/cgroup/cgroup.subtree_control)"
insmod /modules/configfs.ko; insmod /modules/null_blk.ko nr_devices=1
major=$(cut -d: -f1 /sys/block/nullb0/dev)
sed -i "s/4242/$major/g" /bundles/*/config.json
# The same read outside any limit, for comparison.
t0=$(cut -d' ' -f1 /proc/uptime)
dd if=/dev/nullb0 of=/dev/null bs=64k count=32 iflag=direct 2>/dev/null
echo "@@io_seconds_unlimited=$t0 $(cut -d' ' -f1 /proc/uptime)"

rt="strata-runtime --root /run/strata"
$rt run --bundle /bundles/limits limits < /dev/null
echo "@@run_status=$?"
echo "@@limits_gone=$([ -e /sys/fs/cgroup/strata-vm/limits ] && echo no || echo yes)"

$rt create --bundle /bundles/upd upd < /dev/null > /dev/null 2>/tmp/upd.err
echo "@@upd_create=$? $(cat /tmp/upd.err)"
$rt start upd
u=/sys/fs/cgroup/strata-vm/upd
echo "@@upd_before=$(cat $u/memory.max) $(cat $u/pids.max)"
$rt update -r /bundles/upd/res.json upd
echo "@@upd_status=$?"
echo "@@upd_after=$(cat $u/memory.max) $(cat $u/pids.max)"
echo '{"memory": {"limit": 1000000}' | $rt update -r - upd 2>/tmp/bad.err
echo "@@upd_bad=$? $(cat $u/memory.max) $(cat /tmp/bad.err)"
$rt kill upd KILL
for i in $(seq 100); do $rt state upd | grep -q stopped && break; sleep 0.1; done
$rt delete upd
echo "@@upd_gone=$([ -e $u ] && echo no || echo yes)"
echo "@@end=1"
poweroff -f
"#;

fn seconds(span: &str) -> f64 {
    let v: Vec<f64> = span
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    v[1] - v[0]
}

/// The number after `key` in a flat-keyed cgroup file ("key value ..."
/// on one line), 0 when absent.
fn key_count(flat: &str, key: &str) -> u64 {
    flat.split_whitespace()
        .skip_while(|w| *w != key)
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn v2_resource_controllers_in_a_cgroup2_only_vm() {
    let guest = vm::Guest::new(&["configfs.ko", "null_blk.ko"]);
    guest.add_binary(Path::new(BIN), "/bin/strata-runtime");
    let limits = limits_bundle();
    guest.add_bundle("limits", limits.path());
    let mut upd = Bundle::new("sleep 1000");
    upd.config["linux"]["cgroupsPath"] = json!("/strata-vm/upd");
    upd.config["linux"]["resources"] =
        json!({"memory": {"limit": 33554432}, "pids": {"limit": 10}});
    upd.save();
    guest.add_bundle("upd", upd.path());
    std::fs::write(
        guest.root.join("bundles/upd/res.json"),
        json!({"memory": {"limit": 134217728}, "pids": {"limit": 50}}).to_string(),
    )
    .unwrap();
    let console = guest.boot(GUEST_TEST, 768);
    let get = |k: &str| console.get(k);
    let console = &console.text;
    assert_eq!(get("end"), "1", "{console}");
    // A cgroup2-only host, with the controllers enabled.
    assert_eq!(get("fstype"), "63677270", "CGROUP2_SUPER_MAGIC");
    assert_eq!(get("controllers"), "cpuset cpu io memory pids");
    assert_eq!(get("run_status"), "0", "{console}");

    // memory: limit, reservation (memory.low), swap (limit+swap = 64 MiB
    // means no swap), unified memory.high; the hog is OOM-killed.
    assert_eq!(get("memory.max"), "67108864");
    assert_eq!(get("memory.low"), "33554432");
    assert_eq!(get("memory.swap.max"), "0");
    assert_eq!(
        get("memory.high"),
        (60000000 / 4096 * 4096).to_string(),
        "in pages"
    );
    assert_eq!(get("hog_status"), "137", "sort killed by SIGKILL");
    let events = get("memory.events");
    assert!(
        key_count(events, "oom_kill") >= 1,
        "memory.events: {events}"
    );

    // cpu: quota/period and shares (512 is weight 59 by the mapping crun
    // and runc 1.3 use, where 1024 is 100);
    // the spinning loop was throttled.
    assert_eq!(get("cpu.max"), "50000 100000");
    assert_eq!(get("cpu.weight"), "59");
    let stat = get("cpu.stat");
    assert!(key_count(stat, "nr_throttled") > 0, "cpu.stat: {stat}");

    // cpuset: the process may run on CPU 1 only.
    assert_eq!(get("cpuset.cpus"), "1");
    assert_eq!(get("cpuset.mems"), "0");
    assert_eq!(get("cpus_allowed"), "1");

    // pids: 64 forks, at most 32 tasks, and the refusals counted.
    assert_eq!(get("pids.max"), "32");
    let current: u32 = get("pids.current").parse().unwrap();
    assert!(current <= 32 && current > 16, "pids.current {current}");
    assert!(
        get("pids.events").starts_with("max ") && get("pids.events") != "max 0",
        "pids.events: {}",
        get("pids.events")
    );

    // io: the weight (500 is BFQ's 4950 when BFQ is absent, as runc
    // converts) and the read limit; 2 MiB at 1 MiB/s takes over a second,
    // and about nothing without the limit.
    assert_eq!(get("io.weight"), "default 4950");
    assert!(
        get("io.max").contains(":0 rbps=1048576 wbps=max riops=max wiops=max"),
        "io.max: {}",
        get("io.max")
    );
    assert_eq!(get("dd_status"), "0");
    let limited = seconds(get("io_seconds"));
    let unlimited = seconds(get("io_seconds_unlimited"));
    assert!(limited >= 1.0, "2 MiB at 1 MiB/s took {limited} s");
    assert!(unlimited < limited / 2.0, "{unlimited} s without the limit");

    // devices: nullb0 is readable (the dd above) and not writable.
    assert!(
        get("nullb_write").contains("Operation not permitted"),
        "{}",
        get("nullb_write")
    );
    // run removed its cgroup.
    assert_eq!(get("limits_gone"), "yes");

    // update on v2: new limits on a running container, a malformed one
    // refused with the limits unchanged, and delete removes the cgroup.
    assert!(get("upd_create").starts_with('0'), "{}", get("upd_create"));
    assert_eq!(get("upd_before"), "33554432 10");
    assert_eq!(get("upd_status"), "0");
    assert_eq!(get("upd_after"), "134217728 50");
    let bad = get("upd_bad");
    assert!(bad.starts_with("1 134217728 "), "{bad}");
    assert_eq!(get("upd_gone"), "yes");
}
