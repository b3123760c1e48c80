//! Rootless: strata-runtime run by an unprivileged user (uid 4242, no
//! passwd entry needed) on a `spec --rootless` bundle. The container gets
//! a user namespace mapping that user to root, runs without a cgroup of
//! its own (the tree is not the user's), and refuses resource limits it
//! could not enforce, as runc does.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::{Value, json};

const UID: u32 = 4242;

/// A bundle owned by the user, its config from `spec --rootless` run as
/// that user, the process set to `args`.
fn rootless_bundle(args: Value) -> Bundle {
    let b = Bundle::new("true");
    std::fs::remove_file(b.path().join("config.json")).unwrap();
    chown_to_user(b.path());
    let out = as_user(
        Command::new(BIN)
            .args(["spec", "--rootless"])
            .current_dir(b.path()),
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "spec --rootless: {}", stderr(&out));
    let mut b = b;
    b.config =
        serde_json::from_slice(&std::fs::read(b.path().join("config.json")).unwrap()).unwrap();
    b.config["process"]["terminal"] = json!(false);
    b.config["process"]["args"] = args;
    b.save();
    chown_to_user(b.path());
    b
}

fn chown_to_user(p: &std::path::Path) {
    let st = Command::new("chown")
        .args(["-R", &format!("{UID}:{UID}")])
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

fn as_user(c: &mut Command) -> &mut Command {
    // (std drops root's supplementary groups when it sets the uid.)
    c.uid(UID)
        .gid(UID)
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null())
}

/// `strata-runtime --root <bundle>/state ARGS` as the user.
fn rt_cmd(b: &Bundle, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--root")
        .arg(b.path().join("state"))
        .args(args)
        .current_dir(b.path());
    as_user(&mut c);
    c
}

fn rt(b: &Bundle, args: &[&str]) -> Output {
    rt_cmd(b, args).output().unwrap()
}

#[test]
fn rootless_run_maps_the_user_to_root_without_a_cgroup() {
    let mut b = rootless_bundle(json!([
        "sh",
        "-c",
        "id -u; tr -s ' ' < /proc/self/uid_map; grep -c . /proc/self/gid_map; hostname; exit 3"
    ]));
    let ns = &b.config["linux"]["namespaces"];
    assert!(
        ns.as_array().unwrap().iter().any(|n| n["type"] == "user"),
        "{ns}"
    );
    let out = rt(&b, &["run", "rl-run"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("0\n 0 {UID} 1\n1\nstrata\n"));
    // run deleted it; it never had a cgroup.
    assert!(!std::path::Path::new("/sys/fs/cgroup/pids/strata-runtime/rl-run").exists());

    // The lifecycle, detached: create, start, state, list, kill, delete.
    b.config["process"]["args"] = json!(["sleep", "1000"]);
    b.save();
    // The init keeps create's stdio: not our pipes.
    let created = rt_cmd(&b, &["create", "rl-bg"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(created.success(), "rootless create");
    assert!(rt(&b, &["start", "rl-bg"]).status.success());
    let st: Value = serde_json::from_slice(&rt(&b, &["state", "rl-bg"]).stdout).unwrap();
    assert_eq!(st["status"], "running", "{st}");
    let pid = st["pid"].as_i64().unwrap();
    // The init is the user's on the host.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.contains(&UID.to_string()), "{uid_line}");
    let list = stdout(&rt(&b, &["list"]));
    assert!(list.contains(&format!("#{UID}")), "OWNER: {list}");
    assert!(rt(&b, &["kill", "rl-bg", "KILL"]).status.success());
    for _ in 0..100 {
        let st: Value = serde_json::from_slice(&rt(&b, &["state", "rl-bg"]).stdout).unwrap();
        if st["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = rt(&b, &["delete", "rl-bg"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&rt(&b, &["list", "-q"])).is_empty());
}

#[test]
fn rootless_limits_are_refused_cleanly() {
    let mut b = rootless_bundle(json!(["true"]));
    b.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    b.save();
    chown_to_user(b.path());
    let out = rt(&b, &["run", "rl-limits"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("rootless container cannot set resource limits"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(stdout(&rt(&b, &["list", "-q"])).is_empty(), "state left");
}
