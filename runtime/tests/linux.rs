//! `linux` config: namespaces, mounts, devices, sysctl, seccomp, cgroups,
//! masked and read-only paths. Checked from inside the container.

mod common;

use common::*;
use serde_json::json;
use std::process::Stdio;

fn host_ns(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn new_namespaces_and_hostname() {
    let mut b = Bundle::new(
        "hostname; for n in net ipc uts mnt pid cgroup; do readlink /proc/self/ns/$n; done; echo $$",
    );
    b.config["hostname"] = json!("boxy");
    b.config["domainname"] = json!("example.org");
    b.with_cgroupns();
    b.save();
    let out = run_ok(&b, "ln-ns");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "boxy");
    for (i, n) in ["net", "ipc", "uts", "mnt", "pid", "cgroup"]
        .iter()
        .enumerate()
    {
        assert_ne!(lines[i + 1], host_ns(n), "{n} namespace is the host's");
    }
    assert_eq!(lines[7], "1", "the process is PID 1 of its PID namespace");
}

#[test]
fn namespace_joined_by_path() {
    let a = Bundle::new("sleep 1000");
    a.create("ln-join-a");
    let pid = a.state("ln-join-a")["pid"].as_i64().unwrap();
    let mut b = Bundle::new("readlink /proc/self/ns/net; readlink /proc/self/ns/uts");
    let nss = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    for ns in nss.iter_mut() {
        if ns["type"] == "network" {
            ns["path"] = json!(format!("/proc/{pid}/ns/net"));
        }
    }
    b.save();
    let out = run_ok(&b, "ln-join-b");
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        theirs.to_str().unwrap(),
        "did not join the other container's netns"
    );
    assert_ne!(
        lines[1],
        std::fs::read_link(format!("/proc/{pid}/ns/uts"))
            .unwrap()
            .to_str()
            .unwrap()
    );
}

/// A new user namespace mapping 0..65536 to host 100000.., with the
/// rootfs owned by the mapped root so that it is usable.
fn with_user_namespace(b: &mut Bundle) {
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let st = std::process::Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    assert!(st.success());
}

/// With a new user namespace, bind sources its root cannot reach by path
/// (a 0700 directory of the host's root) still mount, and exec into the
/// container sees them: the runtime opens them before the init enters
/// the namespace, as runc does.
#[test]
fn user_namespace_binds_sources_its_root_cannot_reach() {
    let mut b = Bundle::new("stat -c %n /tmp/mount-1/foo.txt /tmp/mount-2/foo.txt; sleep 100");
    with_user_namespace(&mut b);
    for i in [1, 2] {
        let dir = b.path().join(format!("source-inaccessible-{i}/dir"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("foo.txt"), "x").unwrap();
        std::fs::set_permissions(
            b.path().join(format!("source-inaccessible-{i}")),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        std::fs::create_dir_all(b.rootfs().join(format!("tmp/mount-{i}"))).unwrap();
        b.config["mounts"].as_array_mut().unwrap().push(json!({
            "source": format!("source-inaccessible-{i}/dir"),
            "destination": format!("/tmp/mount-{i}"),
            "options": ["bind"]
        }));
    }
    b.save();
    b.create("ln-userns-binds");
    b.ok(&["start", "ln-userns-binds"]);
    let out = b.wait_file("ln-userns-binds.out", "mount-2");
    assert_eq!(out, "/tmp/mount-1/foo.txt\n/tmp/mount-2/foo.txt\n");
    let e = b.ok(&[
        "exec",
        "ln-userns-binds",
        "stat",
        "-c",
        "%n",
        "/tmp/mount-1/foo.txt",
    ]);
    assert_eq!(e, "/tmp/mount-1/foo.txt\n");
    b.ok(&["delete", "-f", "ln-userns-binds"]);
}

#[test]
fn user_namespace_with_id_maps() {
    let mut b = Bundle::new("cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /tmp/owned");
    with_user_namespace(&mut b);
    b.save();
    let out = run_ok(&b, "ln-userns");
    let nums: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(nums[0], ["0", "100000", "65536"]);
    assert_eq!(nums[1], ["0", "100000", "65536"]);
    assert_eq!(nums[2], ["0"]);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(b.rootfs().join("tmp/owned"))
            .unwrap()
            .uid(),
        100000
    );
}

#[test]
fn bind_mounts_options_and_tmpfs() {
    let mut b = Bundle::new(
        "cat /data/hello; echo x > /data/new 2>/dev/null && echo WROTE || echo ro-ok; \
         echo y > /rw/new && echo rw-ok; grep -E ' /(data|rw|scratch) ' /proc/self/mountinfo; \
         cat /single-file",
    );
    let ro = tempfile::tempdir().unwrap();
    let rw = tempfile::tempdir().unwrap();
    std::fs::write(ro.path().join("hello"), "hi\n").unwrap();
    let single = b.path().join("single.txt");
    std::fs::write(&single, "file-bind\n").unwrap();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/data", "type": "bind", "source": ro.path(), "options": ["rbind", "ro", "nosuid"]}));
    mounts.push(json!({"destination": "/rw", "type": "none", "source": rw.path(), "options": ["bind", "rprivate"]}));
    mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nodev", "size=1m", "mode=700"]}));
    mounts.push(json!({"destination": "/single-file", "type": "bind", "source": "single.txt", "options": ["bind", "ro"]}));
    b.save();
    let out = run_ok(&b, "ln-mounts");
    assert!(out.starts_with("hi\nro-ok\nrw-ok\n"), "{out}");
    assert!(
        out.contains("file-bind"),
        "relative bind source resolves in the bundle: {out}"
    );
    let data = out.lines().find(|l| l.contains(" /data ")).unwrap();
    assert!(data.contains(" ro,nosuid"), "{data}");
    let scratch = out.lines().find(|l| l.contains(" /scratch ")).unwrap();
    assert!(
        scratch.contains("nodev") && scratch.contains("size=1024k") && scratch.contains("mode=700"),
        "{scratch}"
    );
    assert_eq!(
        std::fs::read_to_string(rw.path().join("new")).unwrap(),
        "y\n"
    );
    assert!(!ro.path().join("new").exists());
}

#[test]
fn mount_propagation_shared_reaches_host() {
    // A shared bind mount: a mount made inside shows on the host side.
    let src = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "mount --bind {0} {0} && mount --make-shared {0}",
            src.path().display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let mut b =
        Bundle::new("mkdir -p /shared/sub && mount -t tmpfs none /shared/sub && echo mounted");
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/shared", "type": "bind", "source": src.path(), "options": ["rbind", "rshared"]}));
    b.config["linux"]["rootfsPropagation"] = json!("shared");
    b.config["process"]["capabilities"]["bounding"] = json!(["CAP_SYS_ADMIN"]);
    b.config["process"]["capabilities"]["effective"] = json!(["CAP_SYS_ADMIN"]);
    b.config["process"]["capabilities"]["permitted"] = json!(["CAP_SYS_ADMIN"]);
    b.save();
    let out = run_ok(&b, "ln-prop");
    assert_eq!(out, "mounted\n");
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let sub = format!("{}/sub ", src.path().display());
    let seen = mi.contains(&sub);
    let _ = std::process::Command::new("umount")
        .arg("-R")
        .arg(src.path())
        .status();
    assert!(
        seen,
        "mount made in an rshared mount did not propagate to the host"
    );
}

#[test]
fn readonly_root_and_masked_and_readonly_paths() {
    let mut b = Bundle::new(
        "touch /x 2>/dev/null && echo ROOT-RW || echo root-ro; \
         wc -c < /proc/timer_list; grep ' /sys/firmware ' /proc/self/mountinfo | grep -c ' ro,'; \
         echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo SYS-RW || echo sys-ro; \
         touch /tmp/t 2>/dev/null && echo tmp-rw",
    );
    b.config["root"]["readonly"] = json!(true);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    b.save();
    let out = run_ok(&b, "ln-ro");
    assert_eq!(out, "root-ro\n0\n1\nsys-ro\ntmp-rw\n", "{out}");
}

#[test]
fn devices_default_and_from_spec() {
    let mut b = Bundle::new(
        "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/fuse; readlink /dev/ptmx; readlink /dev/fd; head -c 4 /dev/zero | wc -c",
    );
    b.config["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 432, "uid": 0, "gid": 0}]);
    b.config["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
    b.save();
    let out = run_ok(&b, "ln-dev");
    assert!(
        out.contains("crw-rw-rw-") && out.contains("1,   3 "),
        "{out}"
    );
    let fuse = out.lines().find(|l| l.ends_with("/dev/fuse")).unwrap();
    assert!(
        fuse.starts_with("crw-rw----") && fuse.contains("10, 229"),
        "{fuse}"
    );
    assert!(out.contains("pts/ptmx\n/proc/self/fd\n4\n"), "{out}");
}

#[test]
fn devices_cgroup_denies_unlisted_devices() {
    // Deny-all in the cgroup leaves only the standard nodes (null, zero,
    // tty, ...; as runc and libcgroups allow them): a listed device node
    // exists but cannot be opened unless the cgroup allows it.
    let mut b = Bundle::new("head -c 1 /dev/zero | wc -c; cat /dev/fuse 2>&1; echo fuse=$?");
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}]);
    b.config["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}]);
    b.save();
    let out = run_ok(&b, "ln-devcg");
    assert!(out.starts_with("1\n"), "{out}");
    assert!(
        out.contains("Operation not permitted") && out.ends_with("fuse=1\n"),
        "{out}"
    );
}

#[test]
fn sysctl_in_new_netns() {
    let mut b = Bundle::new("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni");
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
    b.save();
    assert_eq!(run_ok(&b, "ln-sysctl"), "1\n1234\n");
}

#[test]
fn seccomp_profile_is_enforced() {
    let mut b = Bundle::new(
        "grep Seccomp: /proc/self/status; mkdir /tmp/nope 2>&1; echo mkdir=$?; uname -s",
    );
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
        ]
    });
    b.save();
    let out = run_ok(&b, "ln-seccomp");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(
        out.contains("Permission denied") && out.contains("mkdir=1"),
        "{out}"
    );
    assert!(out.ends_with("Linux\n"));
}

/// Without noNewPrivileges the filter is loaded before our last steps;
/// a profile that denies close_range (Docker's and Kubernetes' defaults
/// before Linux 5.9) must still run the process, and exec into it, with
/// no fd of ours left open in either.
#[test]
fn seccomp_profile_without_close_range_runs_and_execs() {
    let mut b = Bundle::new("grep Seccomp: /proc/self/status; ls /proc/self/fd; sleep 100");
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        // Nor socket sends: the init's last word to the runtime (Ready)
        // goes out after the filter, so it is a plain write.
        "syscalls": [{"names": ["close_range", "sendto", "sendmsg"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    b.save();
    b.create("ln-no-close-range");
    b.ok(&["start", "ln-no-close-range"]);
    let run = b.wait_file("ln-no-close-range.out", "Seccomp:\t2\n");
    let e = b.rt(&[
        "exec",
        "ln-no-close-range",
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; ls /proc/self/fd",
    ]);
    assert!(e.status.success(), "exec: {}", stderr(&e));
    let got = stdout(&e);
    assert!(got.starts_with("Seccomp:\t2\n"), "{got}");
    // stdio and ls's own dir fd: nothing else.
    for (what, text) in [("run", run.as_str()), ("exec", got.as_str())] {
        let fds: Vec<&str> = text
            .lines()
            .skip(1)
            .take_while(|l| l.parse::<u32>().is_ok())
            .collect();
        assert!(fds.len() <= 4, "{what}: fds left open: {fds:?}");
    }
    b.ok(&["delete", "-f", "ln-no-close-range"]);
}

#[test]
fn seccomp_with_no_new_privs_is_loaded_last() {
    // With noNewPrivileges the filter goes on right before exec, so a
    // profile that forbids setuid/capset does not break our own setup.
    let mut b = Bundle::new("id -u; grep -E 'Seccomp:|NoNewPrivs' /proc/self/status");
    b.config["process"]["noNewPrivileges"] = json!(true);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["setuid", "setresuid", "capset", "setgroups"], "action": "SCMP_ACT_ERRNO"}]
    });
    b.save();
    let out = run_ok(&b, "ln-seccomp-nnp");
    assert!(
        out.starts_with("1000\n") && out.contains("Seccomp:\t2") && out.contains("NoNewPrivs:\t1"),
        "{out}"
    );
}

#[test]
fn cgroup_resources_applied() {
    let mut b = Bundle::new("");
    let v1 = !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let script = if v1 {
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
         /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpuset/cpuset.cpus \
         /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device"
    } else {
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.weight /sys/fs/cgroup/cpuset.cpus"
    };
    b.config["process"]["args"] = json!(["sh", "-c", script]);
    // The disk under / (a whole disk on these machines) for blkio throttling.
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata("/").unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    b.config["linux"]["resources"] = json!({
        "devices": [{"allow": true, "access": "rwm"}],
        "memory": {"limit": 67108864},
        "pids": {"limit": 77},
        "cpu": {"quota": 50000, "period": 100000, "shares": 512, "cpus": "0"},
        "blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]}
    });
    b.save();
    let out = run_ok(&b, "ln-cgroup");
    let lines: Vec<&str> = out.lines().collect();
    if v1 {
        assert_eq!(lines[..5], ["67108864", "77", "50000", "512", "0"], "{out}");
        assert_eq!(
            lines.get(5).copied(),
            Some(format!("{major}:{minor} 1048576").as_str()),
            "{out}"
        );
    } else {
        assert_eq!(lines[0], "67108864");
        assert_eq!(lines[1], "77");
        assert_eq!(lines[2], "50000 100000");
    }
    assert_no_cgroup("ln-cgroup");
}

#[test]
fn cgroups_path_is_honoured() {
    // Every controller hierarchy and systemd's named one (as runc; not
    // the v2 mount of a hybrid host): the init moved itself into each.
    let mut b = Bundle::new("grep -vE '^0::' /proc/self/cgroup");
    b.config["linux"]["cgroupsPath"] = json!("/strata-test/ln-cgpath");
    b.config["linux"]["namespaces"] =
        json!([{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}]);
    b.save();
    let out = run_ok(&b, "ln-cgpath");
    // The host's controller hierarchies, as this test process sees them.
    let host = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let hierarchies: Vec<&str> = host
        .lines()
        .filter_map(|l| l.rsplit_once(':').map(|(h, _)| h))
        .filter(|h| (!h.contains("name=") || h.ends_with(":name=systemd")) && !h.ends_with(':'))
        .collect();
    assert!(!hierarchies.is_empty(), "{host}");
    for h in hierarchies {
        assert!(
            out.lines()
                .any(|l| l == format!("{h}:/strata-test/ln-cgpath")),
            "{h}: {out}"
        );
    }
    assert!(
        out.lines().all(|l| l.ends_with(":/strata-test/ln-cgpath")),
        "{out}"
    );
    for ctrl in ["memory", "systemd"] {
        let dir = std::path::Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join("strata-test/ln-cgpath");
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[test]
fn no_pivot_works() {
    let b = Bundle::new("ls / | wc -l; cat /proc/self/mountinfo | wc -l");
    let out = b.rt(&["run", "--no-pivot", "ln-nopivot"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// With --no-pivot the old root stays in the container's mount namespace;
/// its full /proc must not be there, or a process in a new user and PID
/// namespace could mount a fresh proc and reach /proc/sysrq-trigger.
#[test]
fn no_pivot_does_not_expose_a_bare_proc() {
    let mut b = Bundle::new("");
    b.config["process"]["args"] = json!([
        "unshare",
        "-mrpf",
        "sh",
        "-c",
        "mount -t proc none /proc 2>&1 && echo MOUNTED"
    ]);
    for set in ["bounding", "permitted", "effective"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SETFCAP"));
    }
    b.save();
    let out = b.rt(&["run", "--no-pivot", "ln-nopivot-proc"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!text.contains("MOUNTED"), "{text}");
    assert!(
        text.contains("Operation not permitted") || text.contains("ermission denied"),
        "{text}"
    );
    // The host's /proc is untouched.
    assert!(std::path::Path::new("/proc/self/status").exists());
}

#[test]
fn mqueue_and_devpts_and_shm_mounted() {
    let b = Bundle::new(
        "grep -E ' /dev/(pts|shm|mqueue) ' /proc/self/mountinfo | wc -l; ls -ld /dev/shm",
    );
    let out = run_ok(&b, "ln-devmounts");
    assert!(
        out.starts_with("3\n") && out.contains("drwxrwxrwt"),
        "{out}"
    );
}

#[test]
fn time_namespace_offsets_and_personality() {
    let mut b = Bundle::new("cut -d' ' -f1 /proc/uptime; uname -m; readlink /proc/self/ns/time");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    // A year ahead on both clocks; /proc/uptime reads boottime.
    b.config["linux"]["timeOffsets"] = json!({
        "boottime": {"secs": 31_536_000, "nanosecs": 0},
        "monotonic": {"secs": 31_536_000, "nanosecs": 500}
    });
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    b.save();
    let out = run_ok(&b, "ln-timens");
    let lines: Vec<&str> = out.lines().collect();
    let uptime: f64 = lines[0].parse().unwrap();
    let host: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        uptime >= 31_536_000.0 + host - 5.0,
        "{uptime} vs host {host}"
    );
    assert!(
        uptime < 31_536_000.0 + host + 60.0,
        "{uptime} vs host {host}"
    );
    assert_eq!(lines[1], "i686", "PER_LINUX32");
    assert_ne!(lines[2], host_ns("time"));

    // Unknown clocks and personality flags are refused, not ignored.
    b.config["linux"]["timeOffsets"] = json!({"realtime": {"secs": 1}});
    b.save();
    let o = b.run("ln-timens-bad");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("realtime"), "{}", stderr(&o));
    b.config["linux"]["timeOffsets"] = json!({});
    b.config["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]});
    b.save();
    let o = b.run("ln-timens-bad2");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("personality flags"), "{}", stderr(&o));
    assert_no_cgroup("ln-timens-bad");
    assert_no_cgroup("ln-timens-bad2");
}

#[test]
fn a_namespace_path_that_does_not_exist_is_named() {
    let mut b = Bundle::new("true");
    for ns in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = json!("/proc/999999999/ns/net");
        }
    }
    b.save();
    let o = b.run("ln-nspath");
    assert!(!o.status.success());
    // Stage 1's own error, not the broken pipe the parent then meets.
    assert!(
        stderr(&o).contains("/proc/999999999/ns/net"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("EPIPE"), "{}", stderr(&o));
    assert_no_cgroup("ln-nspath");
}

/// Resources are set once the init has built its rootfs, as runc does:
/// a device cgroup closed while the init makes its default device nodes
/// made about one `run` in ten fail with "mknod /dev/null: EPERM".
#[test]
fn devices_cgroup_closes_after_the_default_nodes_are_made() {
    let mut b = Bundle::new("test -c /dev/null && test -c /dev/zero");
    b.config["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}]);
    b.save();
    for i in 0..40 {
        let o = b.run(&format!("ln-devrace-{i}"));
        assert!(o.status.success(), "run {i}: {}", stderr(&o));
    }
}

#[test]
fn update_changes_a_running_containers_resources() {
    let mut b = Bundle::new("sleep 1000");
    b.config["linux"]["cgroupsPath"] = json!("/strata-test/update");
    b.config["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    b.save();
    b.create("ln-update");
    b.ok(&["start", "ln-update"]);
    let mem = "/sys/fs/cgroup/memory/strata-test/update/memory.limit_in_bytes";
    let pids = "/sys/fs/cgroup/pids/strata-test/update/pids.max";
    assert_eq!(std::fs::read_to_string(mem).unwrap().trim(), "67108864");
    let file = b.path().join("res.json");
    std::fs::write(
        &file,
        r#"{"memory": {"limit": 33554432}, "pids": {"limit": 20}}"#,
    )
    .unwrap();
    b.ok(&["update", "-r", file.to_str().unwrap(), "ln-update"]);
    assert_eq!(std::fs::read_to_string(mem).unwrap().trim(), "33554432");
    assert_eq!(std::fs::read_to_string(pids).unwrap().trim(), "20");
    // Malformed resources: a clear error, limits unchanged.
    std::fs::write(&file, r#"{"memory": {"limit": "lots"}}"#).unwrap();
    let o = b.rt(&["update", "-r", file.to_str().unwrap(), "ln-update"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("resources"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(mem).unwrap().trim(), "33554432");
    // runc's flags, with units; on a paused container too.
    b.ok(&["pause", "ln-update"]);
    b.ok(&[
        "update",
        "--memory",
        "48m",
        "--memory-reservation",
        "16M",
        "--pids-limit",
        "30",
        "--cpu-share",
        "512",
        "--cpu-period",
        "100000",
        "--cpu-quota",
        "50000",
        "--cpuset-cpus",
        "0",
        "--kernel-memory",
        "10m",
        "ln-update",
    ]);
    let cg = |c: &str, f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{c}/strata-test/update/{f}"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(
        cg("memory", "memory.limit_in_bytes"),
        (48u64 << 20).to_string()
    );
    assert_eq!(
        cg("memory", "memory.soft_limit_in_bytes"),
        (16u64 << 20).to_string()
    );
    assert_eq!(cg("pids", "pids.max"), "30");
    assert_eq!(cg("cpu", "cpu.shares"), "512");
    assert_eq!(cg("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cg("cpuset", "cpuset.cpus"), "0");
    b.ok(&["resume", "ln-update"]);
    assert_eq!(b.status("ln-update"), "running");
    // The stored config has the merged resources.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.root.join("ln-update/state.json")).unwrap())
            .unwrap();
    let r = &state["spec"]["linux"]["resources"];
    assert_eq!(r["memory"]["limit"], 48 << 20, "{r}");
    assert_eq!(r["memory"]["reservation"], 16 << 20, "{r}");
    assert_eq!(r["pids"]["limit"], 30, "{r}");
    // --pids-limit 0 is no limit, as runc; RDT flags are refused here.
    b.ok(&["update", "--pids-limit", "0", "ln-update"]);
    assert_eq!(cg("pids", "pids.max"), "max");
    let o = b.rt(&["update", "--l3-cache-schema", "L3:0=f", "ln-update"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Intel RDT"), "{}", stderr(&o));
    let o = b.rt(&["update", "--memory", "lots", "ln-update"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid size \"lots\""),
        "{}",
        stderr(&o)
    );
    b.ok(&["delete", "-f", "ln-update"]);
    assert!(!std::path::Path::new("/sys/fs/cgroup/memory/strata-test/update").exists());
}

/// A config without a mount namespace runs in the runtime's own (the
/// runtime-spec's inheritance rule): the spec's mounts are made under the
/// rootfs, the process is chrooted into it, and delete takes the mounts
/// away again. What would change the caller's own mounts is refused.
#[test]
fn no_mount_namespace_inherits_the_callers() {
    let mut b = Bundle::new("ls /; cat /proc/self/mountinfo | wc -l; readlink /proc/1/ns/mnt");
    let ns = b.config["linux"]["namespaces"].as_array().unwrap().clone();
    b.config["linux"]["namespaces"] = json!(
        ns.into_iter()
            .filter(|n| n["type"] != "mount")
            .collect::<Vec<_>>()
    );
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    b.save();
    let out = run_ok(&b, "ln-no-mntns");
    assert!(out.contains("bin\n") && out.contains("proc\n"), "{out}");
    let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    assert!(
        out.trim_end().ends_with(ours.to_str().unwrap()),
        "{out} vs {ours:?}"
    );
    let rootfs = std::fs::canonicalize(b.rootfs()).unwrap();
    let left: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(rootfs.to_str().unwrap()))
        .map(String::from)
        .collect();
    assert!(left.is_empty(), "mounts left: {left:?}");
    // Masked paths would mask the caller's /proc: refused, by name.
    b.config["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
    b.save();
    let o = b.rt(&["run", "ln-no-mntns2"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("maskedPaths and readonlyPaths need a mount namespace"),
        "{}",
        stderr(&o)
    );
    assert!(!b.root.join("ln-no-mntns2").exists());
}

/// Before a create uses a cgroup, as runc: a frozen one is refused (and
/// left as it was: it is not ours), one with processes in it is warned
/// about, and `resources.unified` is refused where the controllers are on
/// v1 (this host's).
#[test]
fn cgroup_prechecks_as_runc() {
    let v1 = !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    // unified on v1.
    if v1 {
        let mut b = Bundle::new("true");
        b.config["linux"]["resources"]["unified"] = json!({"memory.min": "131072"});
        b.save();
        let o = b.rt(&["run", "ln-unified"]);
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains("invalid configuration"),
            "{}",
            stderr(&o)
        );
        assert!(!b.root.join("ln-unified").exists());
    }
    // A pre-existing frozen cgroup.
    let (dir, file, frozen) = if v1 {
        (
            "/sys/fs/cgroup/freezer/strata-test/frozen",
            "freezer.state",
            "FROZEN",
        )
    } else {
        ("/sys/fs/cgroup/strata-test/frozen", "cgroup.freeze", "1")
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/{file}"), frozen).unwrap();
    let mut b = Bundle::new("true");
    b.config["linux"]["cgroupsPath"] = json!("/strata-test/frozen");
    b.save();
    let st = b.create_status("ln-frozen", &[]);
    let err = b.file("ln-frozen.err");
    let thaw = if v1 { "THAWED" } else { "0" };
    std::fs::write(format!("{dir}/{file}"), thaw).unwrap();
    assert!(!st.success());
    assert!(
        err.contains("container's cgroup unexpectedly frozen"),
        "{err}"
    );
    assert!(
        std::path::Path::new(dir).exists(),
        "a cgroup not ours was removed"
    );
    std::fs::remove_dir(dir).unwrap();
    // A cgroup another container's processes are in: a warning, and on.
    let mut a = Bundle::new("sleep 100");
    a.config["linux"]["cgroupsPath"] = json!("/strata-test/shared");
    a.save();
    a.create("ln-shared-1");
    a.ok(&["start", "ln-shared-1"]);
    let mut c = Bundle::new("sleep 100");
    c.config["linux"]["cgroupsPath"] = json!("/strata-test/shared");
    c.save();
    c.create("ln-shared-2");
    assert!(
        c.file("ln-shared-2.err")
            .contains("container's cgroup is not empty"),
        "{}",
        c.file("ln-shared-2.err")
    );
    c.ok(&["delete", "-f", "ln-shared-2"]);
    a.ok(&["delete", "-f", "ln-shared-1"]);
}

/// Mount options runc's suite checks: `tmpcopyup` (a tmpfs starts with
/// what the directory held), a read-only /dev that still gets its devpts
/// and device nodes, and `rro` (read-only all the way down).
#[test]
fn tmpcopyup_readonly_dev_and_rro() {
    let mut b = Bundle::new(
        "cat /etc/copied/dir2/file; stat -c %a /etc/copied/dir2; \
         grep ' /etc/copied ' /proc/self/mountinfo | grep -c tmpfs; \
         ls /dev/pts/ptmx /dev/null; touch /dev/x 2>&1; \
         touch /mnt/top 2>&1; touch /mnt/sub/y 2>&1; echo end",
    );
    std::fs::create_dir_all(b.rootfs().join("etc/copied/dir2")).unwrap();
    std::fs::write(b.rootfs().join("etc/copied/dir2/file"), "from-the-image\n").unwrap();
    std::fs::set_permissions(
        b.rootfs().join("etc/copied/dir2"),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    // A host tree with a mount inside it, bound rbind,rro.
    let host = b.path().join("hosttree");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    assert!(
        std::process::Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(host.join("sub"))
            .status()
            .unwrap()
            .success()
    );
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    for m in mounts.iter_mut() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    mounts.push(json!({"destination": "/etc/copied", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}));
    mounts.push(
        json!({"destination": "/mnt", "type": "bind", "source": host, "options": ["rbind", "rro"]}),
    );
    b.save();
    let out = b.run("ln-mountopts");
    let _ = std::process::Command::new("umount")
        .arg(host.join("sub"))
        .status();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "from-the-image", "{text}");
    assert_eq!(lines[1], "711", "{text}");
    assert_eq!(lines[2], "1", "{text}");
    assert!(
        text.contains("/dev/pts/ptmx") && text.contains("/dev/null"),
        "{text}"
    );
    assert!(
        text.contains("touch: /dev/x: Read-only file system"),
        "{text}"
    );
    assert!(
        text.contains("touch: /mnt/top: Read-only file system"),
        "{text}"
    );
    assert!(
        text.contains("touch: /mnt/sub/y: Read-only file system"),
        "{text}"
    );
}

/// On a hybrid host (v1 controllers, a v2 tree at /sys/fs/cgroup/unified)
/// the container gets the same path in the v2 tree too, as with runc:
/// tools read a process's cgroup off its `0::` line. Delete removes it.
#[test]
fn hybrid_hosts_place_the_container_in_the_v2_tree_too() {
    let unified = std::path::Path::new("/sys/fs/cgroup/unified");
    let hybrid = unified.join("cgroup.procs").exists()
        && !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    assert!(
        hybrid,
        "this test needs the hybrid layout of the test hosts"
    );
    let b = Bundle::new("sleep 100");
    b.create("ln-hybrid");
    let pid = b.state("ln-hybrid")["pid"].as_i64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v2 = cg.lines().find(|l| l.starts_with("0::")).unwrap();
    assert_eq!(v2, "0::/strata-runtime/ln-hybrid", "{cg}");
    b.ok(&["delete", "-f", "ln-hybrid"]);
    assert!(!unified.join("strata-runtime/ln-hybrid").exists());
}

/// A tmpfs over an image directory keeps that directory's mode (setuid,
/// setgid and sticky bits too) unless `mode=` is given: runc's issue 3952.
#[test]
fn tmpfs_keeps_the_mode_of_the_directory_it_covers() {
    let mut b = Bundle::new("stat -c %a /tmp /given /fresh");
    std::fs::set_permissions(
        b.rootfs().join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o7777),
    )
    .unwrap();
    std::fs::create_dir(b.rootfs().join("given")).unwrap();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}));
    mounts.push(json!({"destination": "/given", "type": "tmpfs", "source": "tmpfs", "options": ["mode=0444"]}));
    mounts.push(json!({"destination": "/fresh", "type": "tmpfs", "source": "tmpfs"}));
    b.save();
    // Twice: the second run finds /fresh made by the first.
    assert_eq!(run_ok(&b, "ln-tmpfs-mode"), "7777\n444\n1777\n");
    assert_eq!(run_ok(&b, "ln-tmpfs-mode2"), "7777\n444\n755\n");
}

/// The filter is in place before the init waits for `start`, as with
/// runc, so startContainer hooks (run in the container after start) are
/// under it, with and without noNewPrivileges; a hook killed by it says
/// so ("bad system call").
#[test]
fn start_container_hooks_run_under_the_seccomp_filter() {
    for nnp in [true, false] {
        let mut b = Bundle::new("true");
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]
        });
        b.config["hooks"] = json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /tmp/foo"]}]});
        b.save();
        let o = b.run("ln-hook-seccomp");
        assert!(!o.status.success(), "nnp={nnp}");
        let e = stderr(&o);
        assert!(
            e.contains("error running hook: startContainer hook") && e.contains("bad system call"),
            "nnp={nnp}: {e}"
        );
        assert!(!b.rootfs().join("tmp/foo").exists());
    }
}

/// runc's `seccomp -ENOSYS handling`: a syscall newer than the profile
/// (above the highest it names, or clone3 when unnamed) answers ENOSYS,
/// so a C library falls back to the old call; a known syscall the profile
/// leaves out keeps the profile's default (EPERM). The probe is a static
/// C program built here with gcc.
#[test]
fn seccomp_answers_enosys_for_syscalls_newer_than_the_profile() {
    let mut b = Bundle::new("");
    let src = b.path().join("probe.c");
    std::fs::write(
        &src,
        r#"#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
static int err(long r) { return r < 0 ? errno : 0; }
int main(void) {
    int beyond = err(syscall(1000));
    int clone3 = err(syscall(435, 0, 0));
    int madvise2 = err(syscall(440, -1, 0, 0, 0, 0));
    int mkdir = err(syscall(SYS_mkdir, "/probe-dir", 0755));
    printf("%d %d %d %d\n", beyond, clone3, madvise2, mkdir);
    return 0;
}
"#,
    )
    .unwrap();
    let out = std::process::Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(b.rootfs().join("probe"))
        .arg(&src)
        .output()
        .expect("gcc (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.config["process"]["args"] = json!(["/probe"]);
    // What the runtime's last steps and a static glibc program need, and
    // epoll_pwait2 (441) as the profile's highest syscall: clone3 (435)
    // and process_madvise (440) lie below it, unnamed.
    let allowed = [
        "execve",
        "brk",
        "arch_prctl",
        "set_tid_address",
        "set_robust_list",
        "rseq",
        "prlimit64",
        "mprotect",
        "readlink",
        "readlinkat",
        "uname",
        "getrandom",
        "newfstatat",
        "fstat",
        "write",
        "exit_group",
        "exit",
        "ioctl",
        "epoll_pwait2",
        "close",
        "rt_sigprocmask",
        "rt_sigaction",
        "sigaltstack",
        "openat",
        "open",
        "read",
        "fcntl",
        "futex",
        "getpid",
        "gettid",
        "mmap",
        "munmap",
        "madvise",
        "poll",
        "capget",
        "capset",
        "prctl",
        "close_range",
        "sched_getaffinity",
        "sched_yield",
        "getppid",
        "tgkill",
    ]
    .to_vec();
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]
    });
    b.save();
    // ENOSYS is 38, EPERM 1.
    assert_eq!(run_ok(&b, "ln-enosys"), "38 38 1 1\n");
    // clone3 named (as Docker's profile does, with ENOSYS of its own
    // choice here EPERM): the profile decides.
    b.config["linux"]["seccomp"]["syscalls"] = json!([
        {"names": allowed, "action": "SCMP_ACT_ALLOW"},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    ]);
    b.save();
    assert_eq!(run_ok(&b, "ln-enosys-named"), "38 1 1 1\n");
}

/// runc's `update cpu period in a pod cgroup with pod limit set`: the
/// parent allows 50%; 3000/10000 (30%) is within it, but the new period
/// written before the new quota would pair with the old 50000 (500%), which
/// the kernel refuses, so the quota goes first.
#[test]
fn update_of_the_cpu_period_under_a_parent_limit() {
    /// Removes the pod's cgroups, also when the test fails (after the
    /// bundle, declared later, has deleted the container).
    struct Pod(String);
    impl Drop for Pod {
        fn drop(&mut self) {
            for ctrl in std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
            {
                let _ = std::fs::remove_dir(ctrl.path().join(&self.0).join("c"));
                let _ = std::fs::remove_dir(ctrl.path().join(&self.0));
            }
        }
    }
    let pod = Pod(format!("strata-test-pod-{}", std::process::id()));
    let parent = std::path::Path::new("/sys/fs/cgroup/cpu").join(&pod.0);
    std::fs::create_dir(&parent).unwrap();
    std::fs::write(parent.join("cpu.cfs_quota_us"), "50000").unwrap();
    let mut b = Bundle::new("sleep 1000");
    b.config["linux"]["cgroupsPath"] = json!(format!("/{}/c", pod.0));
    b.config["linux"]["resources"] = json!({"cpu": {"quota": 20000, "period": 100000}});
    b.save();
    b.create("ln-pod-cpu");
    b.ok(&["start", "ln-pod-cpu"]);
    let dir = parent.join("c");
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    // Above the parent's 50%: refused, nothing changed.
    let o = b.rt(&["update", "--cpu-quota", "60000", "ln-pod-cpu"]);
    assert!(!o.status.success(), "60% under a 50% parent was accepted");
    assert_eq!(
        (read("cpu.cfs_quota_us"), read("cpu.cfs_period_us")),
        ("20000".into(), "100000".into())
    );
    // 30% with a shorter period, from 50000/100000.
    b.ok(&["update", "--cpu-quota", "50000", "ln-pod-cpu"]);
    b.ok(&[
        "update",
        "--cpu-period",
        "10000",
        "--cpu-quota",
        "3000",
        "ln-pod-cpu",
    ]);
    assert_eq!(
        (read("cpu.cfs_quota_us"), read("cpu.cfs_period_us")),
        ("3000".into(), "10000".into())
    );
    // And back to a longer period with a larger quota.
    b.ok(&[
        "update",
        "--cpu-period",
        "100000",
        "--cpu-quota",
        "40000",
        "ln-pod-cpu",
    ]);
    assert_eq!(
        (read("cpu.cfs_quota_us"), read("cpu.cfs_period_us")),
        ("40000".into(), "100000".into())
    );
    b.ok(&["delete", "-f", "ln-pod-cpu"]);
}

/// runc's `update devices [minimal transition rules]`: an access string
/// with a letter the kernel does not take ("rwa") is read as runc reads it,
/// and updates that do not touch the device rules never deny, even for an
/// instant, a device the container uses (/dev/null).
#[test]
fn device_rules_survive_updates_without_a_gap() {
    let mut b = Bundle::new("while true; do head -c 100 /dev/kmsg 2> /dev/null; done");
    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa"}
    ]);
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SYSLOG"));
    }
    b.save();
    let out = b.path().join("out");
    let status = b
        .cmd(&[
            "run",
            "-d",
            "--bundle",
            b.path().to_str().unwrap(),
            "ln-devgap",
        ])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(b.path().join("err")).unwrap())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(b.path().join("err")).unwrap()
    );
    for _ in 0..30 {
        b.ok(&["update", "--pids-limit", "30", "ln-devgap"]);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(b.status("ln-devgap"), "running");
    // Nothing read from /dev/kmsg, and no failed write to /dev/null.
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    assert_eq!(std::fs::read_to_string(b.path().join("err")).unwrap(), "");
    b.ok(&["delete", "-f", "ln-devgap"]);
}

/// The host's /dev/null, handed to the runtime as stdio, keeps its owner
/// when the container has a user namespace: run, run -d and exec (also
/// `--user`) never chown the runtime's own stdio to the container's root.
/// (crun 1.8.1 does, for a user-namespace container: the host's /dev/null
/// ends up owned by the mapped root; runc's tests check exec for this.)
#[test]
fn host_dev_null_keeps_its_owner_with_a_user_namespace() {
    use std::os::unix::fs::MetadataExt;
    let owner = || {
        let m = std::fs::metadata("/dev/null").unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(
        owner(),
        (0, 0),
        "the host's /dev/null is not root's before the test"
    );
    let mut b = Bundle::new("sleep 100");
    with_user_namespace(&mut b);
    b.save();
    // The runtime run with the host's /dev/null as stdin, stdout, stderr.
    let on_dev_null = |mut cmd: std::process::Command| {
        let open = || {
            let f = std::fs::File::options()
                .read(true)
                .write(true)
                .open("/dev/null");
            Stdio::from(f.unwrap())
        };
        cmd.stdin(open())
            .stdout(open())
            .stderr(open())
            .status()
            .unwrap()
    };
    let st = on_dev_null(b.cmd(&["run", "-d", "ln-devnull"]));
    assert!(st.success());
    assert_eq!(owner(), (0, 0), "run -d");
    for user in [None, Some("1000:1000")] {
        let mut args = vec!["exec"];
        if let Some(u) = user {
            args.extend(["--user", u]);
        }
        args.extend(["ln-devnull", "id"]);
        let st = on_dev_null(b.cmd(&args));
        assert!(st.success(), "{args:?}");
        assert_eq!(owner(), (0, 0), "{args:?}");
    }
    b.ok(&["delete", "-f", "ln-devnull"]);
    let mut fg = Bundle::new("true");
    with_user_namespace(&mut fg);
    fg.save();
    let st = on_dev_null(fg.cmd(&["run", "ln-devnull-fg"]));
    assert!(st.success());
    assert_eq!(owner(), (0, 0), "run");
}
