//! cgroup v2 through libcgroups' v2 manager, on this hybrid host's
//! unified mount (/sys/fs/cgroup/unified): `STRATA_CGROUP2_ROOT` at
//! create puts the container there, and its state keeps the root for
//! every later command (which run without the variable). This tree has
//! no controllers enabled here, so what v2 gives without them is checked:
//! placement, the cgroup namespace and cgroup2 mount, freeze, pid
//! listing, kill --all and removal, the device rules (an eBPF program,
//! which needs no controller); a resource the tree cannot apply is a clean
//! error.

mod common;

use std::path::Path;

use common::*;
use serde_json::json;

const UNIFIED: &str = "/sys/fs/cgroup/unified";

fn create_v2(b: &Bundle, id: &str) -> std::process::ExitStatus {
    let out = std::fs::File::create(b.path().join(format!("{id}.out"))).unwrap();
    let err = std::fs::File::create(b.path().join(format!("{id}.err"))).unwrap();
    b.cmd(&["create", "--bundle", b.path().to_str().unwrap(), id])
        .env("STRATA_CGROUP2_ROOT", UNIFIED)
        .stdout(out)
        .stderr(err)
        .status()
        .unwrap()
}

#[test]
fn a_container_in_the_v2_tree_placed_frozen_listed_and_removed() {
    let mut b = Bundle::new(
        "cat /proc/self/cgroup > /out/cgroup; stat -f -c %t /sys/fs/cgroup > /out/fstype; \
         ls /sys/fs/cgroup > /out/files; sleep 1000",
    );
    let out = b.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]
    }));
    b.config["linux"]["cgroupsPath"] = json!("/strata-v2-test/c1");
    b.with_cgroupns();
    b.save();
    let st = create_v2(&b, "v2-c1");
    assert!(st.success(), "{}", b.file("v2-c1.err"));
    let dir = Path::new(UNIFIED).join("strata-v2-test/c1");
    let pid = b.state("v2-c1")["pid"].as_i64().unwrap();
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "init {pid} in {}: {procs}",
        dir.display()
    );
    b.ok(&["start", "v2-c1"]);
    let seen = b.wait_file("out/files", "cgroup.procs");
    assert!(seen.contains("cgroup.freeze"), "{seen}");
    // Its own cgroup namespace, rooted at its cgroup, on a cgroup2 mount.
    // (The v1 hierarchies are listed too on a hybrid host: the v2 layout
    // places the container in the unified tree only.)
    let cg = b.file("out/cgroup");
    assert!(cg.lines().any(|l| l == "0::/"), "{cg}");
    assert_eq!(
        b.file("out/fstype").trim(),
        "63677270",
        "CGROUP2_SUPER_MAGIC"
    );
    // The host sees it at the v2 path.
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(host_view.contains("0::/strata-v2-test/c1"), "{host_view}");

    // pause/resume through cgroup.freeze (no variable from here on).
    b.ok(&["pause", "v2-c1"]);
    assert_eq!(b.status("v2-c1"), "paused");
    assert_eq!(
        std::fs::read_to_string(dir.join("cgroup.freeze"))
            .unwrap()
            .trim(),
        "1"
    );
    b.ok(&["resume", "v2-c1"]);
    assert_eq!(b.status("v2-c1"), "running");
    assert_eq!(
        std::fs::read_to_string(dir.join("cgroup.freeze"))
            .unwrap()
            .trim(),
        "0"
    );
    // ps lists the cgroup's pids.
    let pids: Vec<i64> = serde_json::from_str(&b.ok(&["ps", "-f", "json", "v2-c1"])).unwrap();
    assert!(pids.contains(&pid), "{pids:?}");
    // kill --all, delete: the cgroup goes.
    b.ok(&["kill", "--all", "v2-c1", "KILL"]);
    b.wait_status("v2-c1", "stopped");
    b.ok(&["delete", "v2-c1"]);
    assert!(!dir.exists(), "{} left", dir.display());
    let _ = std::fs::remove_dir(Path::new(UNIFIED).join("strata-v2-test"));
}

#[test]
fn v2_resources_the_tree_cannot_apply_fail_cleanly() {
    let mut b = Bundle::new("true");
    b.config["linux"]["cgroupsPath"] = json!("/strata-v2-test2/c2");
    b.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    b.save();
    let st = create_v2(&b, "v2-c2");
    assert!(!st.success());
    let err = b.file("v2-c2.err");
    assert!(err.contains("strata-v2-test2/c2"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!Path::new(UNIFIED).join("strata-v2-test2/c2").exists());
    assert!(!b.rt(&["state", "v2-c2"]).status.success(), "no state left");
    let _ = std::fs::remove_dir(Path::new(UNIFIED).join("strata-v2-test2"));

    // A variable that names no cgroup2 mount is refused up front.
    let out = b
        .cmd(&["create", "--bundle", b.path().to_str().unwrap(), "v2-c3"])
        .env("STRATA_CGROUP2_ROOT", "/tmp")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a cgroup2 mount"),
        "{}",
        stderr(&out)
    );
}

/// v2 has no devices controller: the runtime attaches an eBPF program to
/// the container's cgroup. Here the container is in the unified tree only
/// (its v1 devices cgroup is the host's root, which allows everything), so
/// what it may open is that program's doing alone.
#[test]
fn v2_device_rules_are_enforced_by_an_ebpf_filter() {
    // /dev/loop0 and /dev/loop-control: nodes the host's root may open,
    // and not among a container's defaults.
    let mut b = Bundle::new(
        "mknod /tmp/disk b 7 0; mknod /tmp/kmsg c 1 11; mknod /tmp/loopctl c 10 237; \
         (head -c 512 /tmp/disk > /dev/null) 2> /out/disk; echo $? >> /out/disk; \
         (echo strata-v2-device-test > /tmp/kmsg) 2> /out/kmsg; echo $? >> /out/kmsg; \
         (cat /tmp/kmsg > /dev/null) 2> /out/kmsg_read; echo $? >> /out/kmsg_read; \
         (cat /tmp/loopctl > /dev/null) 2> /out/loopctl; echo $? >> /out/loopctl; \
         (echo x > /dev/null && head -c 4 /dev/zero | wc -c) > /out/defaults 2>&1; \
         echo done > /out/end",
    );
    let out = b.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]
    }));
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    b.config["linux"]["cgroupsPath"] = json!("/strata-v2-test3/c4");
    b.config["linux"]["resources"] = json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rw"},
        {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "r"},
    ]});
    b.save();
    let st = create_v2(&b, "v2-c4");
    assert!(st.success(), "{}", b.file("v2-c4.err"));
    b.ok(&["start", "v2-c4"]);
    b.wait_file("out/end", "done");
    let denied = |f: &str| {
        let s = b.file(&format!("out/{f}"));
        assert!(
            s.contains("Operation not permitted") && s.trim().lines().last() != Some("0"),
            "{f}: {s}"
        );
    };
    // Not in the rules: a loop disk, /dev/loop-control.
    denied("disk");
    denied("loopctl");
    // /dev/kmsg allowed rw, then its reads denied by a later rule.
    assert_eq!(b.file("out/kmsg").trim(), "0", "kmsg write");
    denied("kmsg_read");
    // The default devices work.
    assert_eq!(b.file("out/defaults").trim(), "4");
    b.wait_status("v2-c4", "stopped");
    b.ok(&["delete", "v2-c4"]);
    let _ = std::fs::remove_dir(Path::new(UNIFIED).join("strata-v2-test3"));
}
