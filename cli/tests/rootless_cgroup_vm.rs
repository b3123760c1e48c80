//! A rootless engine's limits under a delegated cgroup v2 subtree, in a
//! VM of their own.
//!
//! This host keeps memory, cpu and pids on cgroup v1, which cannot be
//! delegated to a user; its v2 mount holds only hugetlb (what the host
//! can show is in rootless.rs: placement in a delegated subtree, and the
//! error for a controller it lacks). So Debian's kernel boots under qemu
//! (runtime/tests/common/vm.rs) with a pure cgroup2 tree. As an admin
//! (or systemd's Delegate=yes) does, the guest's root makes a subtree
//! with memory, cpu and pids enabled and hands it to uid 1000. That user
//! (no subordinate ids: a single-id namespace), started inside it, runs
//! `strata run --cgroup-parent` with limits; the guest reports what the
//! container's cgroup holds and whether the limits bite.

mod common;
#[path = "../../runtime/tests/common/vm.rs"]
mod vm;

use std::path::Path;
use std::process::Command;

use common::BIN;

const GUEST_TEST: &str = r#"#!/bin/sh
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp /run /home; mount -t tmpfs tmpfs /tmp; mount -t tmpfs tmpfs /run
mount -t tmpfs -o mode=755 tmpfs /home
mount -t cgroup2 cgroup2 /sys/fs/cgroup
insmod /modules/overlay.ko
# The admin's part: a subtree with controllers, delegated to uid 1000.
echo "+cpu +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
d=/sys/fs/cgroup/user-1000
mkdir $d
echo "+cpu +memory +pids" > $d/cgroup.subtree_control
chown 1000:1000 $d $d/cgroup.procs $d/cgroup.subtree_control $d/cgroup.threads
mkdir $d/session
chown 1000:1000 $d/session $d/session/cgroup.procs $d/session/cgroup.threads
mkdir -p /home/u/data /home/u/run
chown -R 1000:1000 /home/u; chmod 700 /home/u/data /home/u/run
chmod 644 /bundles/image.tar
# The user's part, from inside the delegation.
echo $$ > $d/session/cgroup.procs
s="/usr/bin/setpriv --reuid 1000 --regid 1000 --clear-groups env HOME=/home/u XDG_DATA_HOME=/home/u/data XDG_RUNTIME_DIR=/home/u/run strata"
$s import /bundles/image.tar app > /dev/null 2>/tmp/import.err
echo "@@import=$? $(grep -v WARN /tmp/import.err | tail -1)"
echo "@@info=$($s info 2>&1 | grep -E 'Rootless:|Error' | tr '\n' ' ')"
$s run --rm --network none --cgroup-parent /user-1000 --memory 64m \
    --pids-limit 32 --cpus 0.5 app sh -c '
cg=/sys/fs/cgroup
echo "@@uid_map=$(cat /proc/self/uid_map | tr -s " " | tr "\n" " ")"
echo "@@memory.max=$(cat $cg/memory.max)"
echo "@@pids.max=$(cat $cg/pids.max)"
echo "@@cpu.max=$(cat $cg/cpu.max)"
(for i in $(seq 64); do sleep 100 & done) 2>/dev/null
echo "@@pids.current=$(cat $cg/pids.current)"
killall sleep; wait
head -c 100000000 /dev/zero | sort > /dev/null
echo "@@hog_status=$?"
echo "@@oom_kill=$(grep oom_kill $cg/memory.events | cut -d" " -f2)"
timeout 2 sh -c "while :; do :; done"
echo "@@nr_throttled=$(grep nr_throttled $cg/cpu.stat | cut -d" " -f2)"
' 2>/tmp/run.err
echo "@@run=$? $(grep -v WARN /tmp/run.err | tail -1)"
echo "@@left=$(cd $d && ls -d */ | tr '\n' ' ')"
# Without the controller in the delegation (the admin takes it from the
# subtree and from its parent, so the user cannot enable it again): the
# clear refusal.
echo "-memory" > $d/cgroup.subtree_control
echo "-memory" > /sys/fs/cgroup/cgroup.subtree_control
echo "@@delegated=$(cat $d/cgroup.controllers)"
$s run --rm --network none --cgroup-parent /user-1000 --memory 64m app true 2>/tmp/refused.err
echo "@@refused=$? $(grep -v WARN /tmp/refused.err | tail -1)"
echo "@@end=1"
poweroff -f
"#;

#[test]
fn rootless_limits_apply_in_a_delegated_cgroup_v2_subtree() {
    let guest = vm::Guest::new(&["overlay.ko"]);
    guest.add_binary(Path::new(BIN), "/bin/strata");
    guest.add_binary(
        &Path::new(BIN).with_file_name("strata-monitor"),
        "/bin/strata-monitor",
    );
    guest.add_binary(Path::new("/usr/bin/setpriv"), "/usr/bin/setpriv");
    let work = tempfile::tempdir().unwrap();
    let rootfs = common::busybox_rootfs(work.path());
    std::fs::create_dir_all(guest.root.join("bundles")).unwrap();
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["--numeric-owner", "--owner=0", "--group=0", "-cf"])
        .arg(guest.root.join("bundles/image.tar"))
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let console = guest.boot(GUEST_TEST, 1024);
    let get = |k: &str| console.get(k);
    let text = &console.text;
    assert_eq!(get("end"), "1", "{text}");
    assert!(get("import").starts_with('0'), "{}", get("import"));
    assert!(
        get("info").contains("Rootless: true"),
        "strata ran as a rootless engine: {}",
        get("info")
    );
    assert!(get("run").starts_with('0'), "{}\n{text}", get("run"));
    // Root inside is uid 1000 outside: a user namespace, no privilege.
    assert_eq!(get("uid_map"), "0 1000 1", "{text}");
    assert_eq!(get("memory.max"), "67108864");
    assert_eq!(get("pids.max"), "32");
    assert_eq!(get("cpu.max"), "50000 100000");
    // The limits bite: 64 forks stop at 32 tasks, the hog is killed by
    // the OOM killer, the spinning loop is throttled.
    let current: u32 = get("pids.current").parse().unwrap();
    assert!(current <= 32 && current > 16, "pids.current {current}");
    assert_eq!(get("hog_status"), "137", "sort killed by SIGKILL");
    assert!(get("oom_kill").parse::<u32>().unwrap() >= 1);
    assert!(get("nr_throttled").parse::<u32>().unwrap() > 0);
    // --rm took the container's cgroup; the user's session stays.
    assert_eq!(get("left"), "session/");
    assert_eq!(get("delegated"), "cpu pids");
    let refused = get("refused");
    assert!(
        refused.starts_with("125 ") && refused.contains("memory controller is not enabled"),
        "{refused}"
    );
}
