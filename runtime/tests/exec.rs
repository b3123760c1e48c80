//! `exec` into running containers.

mod common;

use common::*;
use serde_json::json;

fn running(script: &str, id: &str) -> Bundle {
    let b = Bundle::new(script);
    b.create(id);
    b.ok(&["start", id]);
    b.wait_status(id, "running");
    b
}

#[test]
fn exec_joins_namespaces_and_relays_exit_code() {
    let b = running("sleep 1000", "ex-basic");
    let init_pid = b.state("ex-basic")["pid"].as_i64().unwrap();
    let out = b.rt(&[
        "exec",
        "ex-basic",
        "sh",
        "-c",
        "hostname; readlink /proc/self/ns/net; echo $$; exit 9",
    ]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "strata");
    let netns = std::fs::read_link(format!("/proc/{init_pid}/ns/net")).unwrap();
    assert_eq!(lines[1], netns.to_str().unwrap());
    assert_ne!(lines[2], "1", "exec'd process is not the init");
    // It is in the container's cgroup too (no cgroup namespace on this
    // v1 host, as with runc: the host's view of the path).
    let out = b.ok(&[
        "exec",
        "ex-basic",
        "sh",
        "-c",
        "grep :memory: /proc/self/cgroup",
    ]);
    assert!(
        out.trim().ends_with(":memory:/strata-runtime/ex-basic"),
        "{out}"
    );
}

#[test]
fn exec_flags_env_cwd_user() {
    let b = running("sleep 1000", "ex-flags");
    let out = b.ok(&[
        "exec",
        "--env",
        "A=1",
        "--cwd",
        "/tmp",
        "--user",
        "65534:65534",
        "ex-flags",
        "sh",
        "-c",
        "echo $A; pwd; id -u; id -g",
    ]);
    assert_eq!(out, "1\n/tmp\n65534\n65534\n");
}

#[test]
fn exec_process_json_and_detach_pid_file() {
    let b = running("sleep 1000", "ex-pjson");
    let pj = b.path().join("process.json");
    std::fs::write(
        &pj,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", "echo from-json > /tmp/pj; sleep 1000"],
            "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}
        }))
        .unwrap(),
    )
    .unwrap();
    let pidf = b.path().join("exec.pid");
    let out = b
        .cmd(&[
            "exec",
            "--detach",
            "--pid-file",
            pidf.to_str().unwrap(),
            "-p",
            pj.to_str().unwrap(),
            "ex-pjson",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    let pid: i32 = std::fs::read_to_string(&pidf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    b.wait_file("rootfs/tmp/pj", "from-json");
    let ps: Vec<i32> = serde_json::from_str(&b.ok(&["ps", "-f", "json", "ex-pjson"])).unwrap();
    assert!(ps.contains(&pid), "{ps:?} lacks {pid}");
    // kill --all reaches the exec'd process as well.
    b.ok(&["kill", "--all", "ex-pjson", "KILL"]);
    b.wait_status("ex-pjson", "stopped");
}

#[test]
fn exec_missing_binary_fails_with_runc_wording() {
    let b = running("sleep 1000", "ex-missing");
    let out = b.rt(&["exec", "ex-missing", "no-such-thing"]);
    // runc's code for an exec that never ran: 255, apart from the
    // process's own codes.
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("executable file not found in $PATH"),
        "{}",
        stderr(&out)
    );
    let out = b.rt(&["exec", "ex-missing", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn exec_into_a_paused_container_needs_ignore_paused() {
    let b = running("sleep 1000", "ex-paused");
    b.ok(&["pause", "ex-paused"]);
    let out = b.rt(&["exec", "ex-paused", "true"]);
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(stderr(&out).contains("--ignore-paused"), "{}", stderr(&out));
    // With --ignore-paused the process starts, frozen until resume.
    let detached = b.rt(&[
        "exec",
        "-d",
        "--ignore-paused",
        "ex-paused",
        "sh",
        "-c",
        "echo hi > /tmp/hi",
    ]);
    assert!(detached.status.success(), "{}", stderr(&detached));
    b.ok(&["resume", "ex-paused"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !b.rootfs().join("tmp/hi").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the exec'd process never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    b.ok(&["delete", "-f", "ex-paused"]);
}

#[test]
fn exec_into_stopped_container_fails() {
    let b = Bundle::new("true");
    b.create("ex-stopped");
    b.ok(&["start", "ex-stopped"]);
    b.wait_status("ex-stopped", "stopped");
    let out = b.rt(&["exec", "ex-stopped", "true"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr(&out).contains("stopped"), "{}", stderr(&out));
}

#[test]
fn exec_uses_the_containers_seccomp_profile() {
    let mut b = Bundle::new("sleep 1000");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    b.save();
    b.create("ex-seccomp");
    b.ok(&["start", "ex-seccomp"]);
    let out = b.rt(&[
        "exec",
        "ex-seccomp",
        "sh",
        "-c",
        "mkdir /tmp/d 2>&1; echo rc=$?",
    ]);
    assert!(
        stdout(&out).contains("Operation not permitted") && stdout(&out).contains("rc=1"),
        "{}",
        stdout(&out)
    );
}

/// `exec --cgroup` puts the process in a sub-cgroup of the container's,
/// per controller or for all (cgroup v1 here), and refuses what is not a
/// sub-cgroup, a missing one, or an unknown controller, with runc's words.
#[test]
fn exec_into_sub_cgroups() {
    assert!(
        !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
        "this test needs the v1 controllers of the test hosts"
    );
    let b = running("sleep 1000", "ex-subcg");
    let base = "/sys/fs/cgroup/memory/strata-runtime/ex-subcg";
    std::fs::create_dir(format!("{base}/submem")).unwrap();
    std::fs::create_dir("/sys/fs/cgroup/pids/strata-runtime/ex-subcg/subpids").unwrap();
    let out = b.ok(&[
        "exec",
        "--cgroup",
        "memory:submem",
        "--cgroup",
        "pids:subpids",
        "ex-subcg",
        "cat",
        "/proc/self/cgroup",
    ]);
    assert!(
        out.contains(":memory:/strata-runtime/ex-subcg/submem\n"),
        "{out}"
    );
    assert!(
        out.contains(":pids:/strata-runtime/ex-subcg/subpids\n"),
        "{out}"
    );
    assert!(out.contains(":cpu:/strata-runtime/ex-subcg\n"), "{out}");
    for (arg, want) in [
        ("..", ".. is not a sub cgroup path"),
        ("nonexistent", "/nonexistent/cgroup.procs: no such file"),
        ("whaaat:/", "unknown controller"),
    ] {
        let o = b.rt(&["exec", "--cgroup", arg, "ex-subcg", "true"]);
        assert_eq!(o.status.code(), Some(255), "{arg}");
        assert!(stderr(&o).contains(want), "{arg}: {}", stderr(&o));
    }
    b.ok(&["delete", "-f", "ex-subcg"]);
    assert!(!std::path::Path::new(base).exists());
}
