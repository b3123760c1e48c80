//! Lifecycle, state, list, and bad input, driven through the binary.

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

#[test]
fn run_relays_stdio_and_exit_code() {
    let b = Bundle::new("echo out; echo err >&2; exit 3");
    let out = b.run("lc-exit");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
    // run deletes the container afterwards.
    assert!(!b.root.join("lc-exit").exists());
    assert_no_cgroup("lc-exit");
}

#[test]
fn create_start_kill_delete() {
    let b = Bundle::new("echo started > /tmp/marker; sleep 1000");
    b.create("lc-cycle");
    let st = b.state("lc-cycle");
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists());
    // Nothing of the user's program ran yet.
    assert!(!b.rootfs().join("tmp/marker").exists());
    b.ok(&["start", "lc-cycle"]);
    b.wait_status("lc-cycle", "running");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !b.rootfs().join("tmp/marker").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "process did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let again = b.rt(&["start", "lc-cycle"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already running"),
        "{}",
        stderr(&again)
    );
    let del = b.rt(&["delete", "lc-cycle"]);
    assert!(
        !del.status.success(),
        "delete of a running container must fail"
    );
    assert!(stderr(&del).contains("not stopped"), "{}", stderr(&del));
    b.ok(&["kill", "lc-cycle", "KILL"]);
    b.wait_status("lc-cycle", "stopped");
    assert_eq!(b.state("lc-cycle")["pid"], 0);
    let k = b.rt(&["kill", "lc-cycle", "KILL"]);
    assert!(!k.status.success());
    assert!(
        stderr(&k).contains("container not running"),
        "{}",
        stderr(&k)
    );
    // --all on a stopped container is no error (containerd's shim sends
    // it on every exit), as with runc.
    let all = b.rt(&["kill", "--all", "lc-cycle", "KILL"]);
    assert!(all.status.success(), "{}", stderr(&all));
    b.ok(&["delete", "lc-cycle"]);
    let gone = b.rt(&["state", "lc-cycle"]);
    assert!(!gone.status.success());
    assert!(
        stderr(&gone).contains("does not exist"),
        "{}",
        stderr(&gone)
    );
    assert_no_cgroup("lc-cycle");
    // delete --force of a missing container succeeds, as with runc.
    b.ok(&["delete", "--force", "lc-cycle"]);
}

#[test]
fn delete_of_created_container_kills_its_init() {
    let b = Bundle::new("true");
    b.create("lc-created");
    let pid = b.state("lc-created")["pid"].as_i64().unwrap();
    b.ok(&["delete", "lc-created"]);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "init {pid} still alive: {stat}"
    );
    assert_no_cgroup("lc-created");
}

#[test]
fn killed_container_exits_128_plus_signal() {
    let b = Bundle::new("sleep 1000");
    let child = b.cmd(&["run", "lc-sig"]).spawn().unwrap();
    b.wait_status("lc-sig", "running");
    b.ok(&["kill", "lc-sig", "9"]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(137));
}

#[test]
fn run_forwards_signals() {
    // A shell as PID 1 that traps TERM exits with its own code.
    let b = Bundle::new("trap 'exit 42' TERM; while true; do sleep 0.05; done");
    let child = b.cmd(&["run", "lc-fwd"]).spawn().unwrap();
    b.wait_status("lc-fwd", "running");
    std::thread::sleep(std::time::Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(42));
}

#[test]
fn state_has_runcs_fields() {
    let mut b = Bundle::new("sleep 1000");
    b.config["annotations"] = json!({"org.example/a": "b"});
    b.save();
    b.create("lc-state");
    let ours = b.state("lc-state");
    let keys: Vec<&str> = ours
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "owner",
        "annotations",
    ] {
        assert!(keys.contains(&k), "state lacks {k}: {ours}");
    }
    assert_eq!(ours["bundle"], b.path().to_str().unwrap());
    assert_eq!(ours["rootfs"], b.rootfs().to_str().unwrap());
    assert_eq!(ours["annotations"]["org.example/a"], "b");
    chrono_like(ours["created"].as_str().unwrap());

    // The same fields as runc prints for the same bundle.
    let runc_root = b.path().join("runc-state");
    let st = Command::new("runc")
        .args([
            "--root",
            runc_root.to_str().unwrap(),
            "create",
            "--bundle",
            b.path().to_str().unwrap(),
            "lc-state-runc",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "runc create failed");
    let out = Command::new("runc")
        .args([
            "--root",
            runc_root.to_str().unwrap(),
            "state",
            "lc-state-runc",
        ])
        .output()
        .unwrap();
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let _ = Command::new("runc")
        .args([
            "--root",
            runc_root.to_str().unwrap(),
            "delete",
            "--force",
            "lc-state-runc",
        ])
        .output();
    let mut a: Vec<&String> = ours.as_object().unwrap().keys().collect();
    let mut t: Vec<&String> = theirs.as_object().unwrap().keys().collect();
    a.sort();
    t.sort();
    assert_eq!(a, t, "state fields differ from runc's");
    assert_eq!(theirs["status"], ours["status"]);
}

fn chrono_like(s: &str) {
    assert!(
        s.len() > 20 && s.ends_with('Z') && s.contains('T'),
        "created {s:?} is not RFC 3339 UTC"
    );
}

#[test]
fn list_formats() {
    let b = Bundle::new("sleep 1000");
    b.create("lc-list-a");
    let q = b.ok(&["list", "-q"]);
    assert_eq!(q, "lc-list-a\n");
    let j: serde_json::Value = serde_json::from_str(&b.ok(&["list", "-f", "json"])).unwrap();
    assert_eq!(j[0]["id"], "lc-list-a");
    assert_eq!(j[0]["status"], "created");
    let t = b.ok(&["list"]);
    assert!(t.starts_with("ID"), "{t}");
    assert!(t.contains("lc-list-a") && t.contains("created"), "{t}");
}

#[test]
fn duplicate_id_is_refused_and_first_survives() {
    let b = Bundle::new("sleep 1000");
    b.create("lc-dup");
    let pid = b.state("lc-dup")["pid"].clone();
    let out = b.rt(&["create", "--bundle", b.path().to_str().unwrap(), "lc-dup"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("container with id exists: lc-dup"),
        "{}",
        stderr(&out)
    );
    assert_eq!(b.state("lc-dup")["pid"], pid);
    assert_eq!(b.status("lc-dup"), "created");
}

#[test]
fn invalid_ids_are_refused() {
    let b = Bundle::new("true");
    for id in ["../x", "a/b", ".."] {
        let out = b.rt(&["create", "--bundle", b.path().to_str().unwrap(), id]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("invalid container id"),
            "{id}: {}",
            stderr(&out)
        );
    }
}

/// Bad input: one clear error, exit 1, and nothing left behind.
fn assert_clean_failure(b: &Bundle, id: &str, expect: &str) {
    let out = b.rt(&[
        "--log",
        b.path().join("log.json").to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        id,
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout {} stderr {}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(err.contains(expect), "stderr {err:?} lacks {expect:?}");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one error line wanted: {err:?}"
    );
    assert!(!b.root.join(id).exists(), "state dir left behind");
    assert_no_cgroup(id);
    // containerd's shim reads the msg of the last JSON error line.
    let log = std::fs::read_to_string(b.path().join("log.json")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"].as_str().unwrap().contains(expect), "{last}");
    assert!(last["time"].is_string());
    // No process of ours is left holding the bundle.
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&ps.stdout)
            .contains(&format!("create --bundle {}", b.path().display()))
    );
}

#[test]
fn malformed_config_is_refused_cleanly() {
    let b = Bundle::new("true");
    std::fs::write(
        b.path().join("config.json"),
        b"{\"ociVersion\": \"1.0.2\", \"process\": ",
    )
    .unwrap();
    assert_clean_failure(&b, "lc-bad-json", "malformed config.json");
}

#[test]
fn invalid_config_is_refused_cleanly() {
    let mut b = Bundle::new("true");
    b.config["process"]["args"] = json!([]);
    b.save();
    assert_clean_failure(&b, "lc-bad-args", "args must not be empty");
}

#[test]
fn missing_rootfs_is_refused_cleanly() {
    let mut b = Bundle::new("true");
    b.config["root"]["path"] = json!("no-such-rootfs");
    b.save();
    assert_clean_failure(&b, "lc-no-rootfs", "does not exist");
}

#[test]
fn missing_binary_is_refused_cleanly() {
    let mut b = Bundle::new("true");
    b.config["process"]["args"] = json!(["no-such-program"]);
    b.save();
    assert_clean_failure(&b, "lc-no-bin", "executable file not found in $PATH");
}

#[test]
fn rlimit_above_hard_limit_is_refused_cleanly() {
    let mut b = Bundle::new("true");
    // Without CAP_SYS_RESOURCE the hard limit cannot be raised.
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .1;
    b.config["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard + 1000}]);
    b.save();
    let has_sys_resource = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .map(|l| {
            u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap() & (1 << 24) != 0
        })
        .unwrap();
    if has_sys_resource {
        // On a host that has the capability the limit is simply applied.
        run_ok(&b, "lc-rlimit-hi");
    } else {
        assert_clean_failure(&b, "lc-rlimit-hi", "error setting rlimit RLIMIT_NOFILE");
    }
}

#[test]
fn concurrent_starts_are_serialised() {
    let b = Bundle::new("sleep 1000");
    b.create("lc-race");
    let a = b
        .cmd(&["start", "lc-race"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let c = b
        .cmd(&["start", "lc-race"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ra = a.wait_with_output().unwrap();
    let rc = c.wait_with_output().unwrap();
    let oks = [ra.status.success(), rc.status.success()]
        .iter()
        .filter(|x| **x)
        .count();
    assert_eq!(
        oks,
        1,
        "exactly one start wins: {} / {}",
        stderr(&ra),
        stderr(&rc)
    );
    assert_eq!(b.status("lc-race"), "running");
}

#[test]
fn pause_and_resume() {
    let b = Bundle::new("sleep 1000");
    b.create("lc-pause");
    b.ok(&["start", "lc-pause"]);
    b.ok(&["pause", "lc-pause"]);
    assert_eq!(b.status("lc-pause"), "paused");
    b.ok(&["resume", "lc-pause"]);
    assert_eq!(b.status("lc-pause"), "running");
}

#[test]
fn spec_and_features() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["spec", "--bundle", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["root"]["path"], "rootfs");
    let again = Command::new(BIN)
        .args(["spec", "--bundle", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "spec must not overwrite config.json"
    );
    let rl = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "spec",
            "--rootless",
            "--bundle",
            rl.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let rspec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rl.path().join("config.json")).unwrap()).unwrap();
    assert!(rspec["linux"]["uidMappings"].is_array());

    let f = Command::new(BIN).arg("features").output().unwrap();
    let f: serde_json::Value = serde_json::from_slice(&f.stdout).unwrap();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert!(
        f["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!("user"))
    );
    assert!(
        f["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("CAP_SYS_ADMIN"))
    );
    assert_eq!(f["linux"]["cgroup"]["v1"], true);
}

/// `-v`/`--version` in runc's shape, and `--debug`: `level=debug` lines on
/// stderr, or in `--log` as text or JSON.
#[test]
fn version_and_debug_logging_as_runc() {
    for flag in ["-v", "--version"] {
        let o = std::process::Command::new(BIN).arg(flag).output().unwrap();
        assert!(o.status.success());
        let text = stdout(&o);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("strata-runtime version 0."), "{text}");
        // What scripts matching runc's first line look for.
        assert!(lines[0].contains("runc version 1.1."), "{text}");
        assert!(lines[1].starts_with("commit: "), "{text}");
        assert_eq!(lines[2], "spec: 1.2.0", "{text}");
        assert!(lines[3].starts_with("libseccomp: 2."), "{text}");
    }
    let b = Bundle::new("true");
    let o = b.rt(&["--debug", "list"]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("level=debug msg="), "{}", stderr(&o));
    let quiet = b.rt(&["list"]);
    assert!(
        !stderr(&quiet).contains("level=debug"),
        "{}",
        stderr(&quiet)
    );
    let text_log = b.path().join("debug.log");
    let o = b.rt(&[
        "--debug",
        "--log",
        text_log.to_str().unwrap(),
        "run",
        "lc-debug",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("level=debug"), "{}", stderr(&o));
    let log = std::fs::read_to_string(&text_log).unwrap();
    assert!(log.contains("level=debug msg=\"strata-runtime "), "{log}");
    // The stages, worded as runc's lines that tools look for.
    for phrase in [
        "nsexec container setup",
        "child process in init()",
        "init: closing the pipe to signal completion",
    ] {
        assert!(log.contains(phrase), "{phrase}: {log}");
    }
    let json_log = b.path().join("debug.json");
    b.ok(&[
        "--debug",
        "--log",
        json_log.to_str().unwrap(),
        "--log-format",
        "json",
        "list",
    ]);
    let first = std::fs::read_to_string(&json_log).unwrap();
    let v: Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(v["level"], "debug", "{first}");
}

/// Help in runc's layout, named for the program as invoked: installed as
/// `runc` (a symlink in runc's place), `-h` says `runc - Open Container
/// Initiative runtime` and `runc list -h` says `runc list - ...`, the lines
/// scripts and runc's own help tests read; `runc foo -h` is runc's
/// "No help topic" with exit 3.
#[test]
fn help_in_runc_layout_under_the_invoked_name() {
    // The help's second line (blank lines aside), after `NAME:`.
    fn title(prog: &std::path::Path, args: &[&str]) -> String {
        let o = std::process::Command::new(prog)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let text = stdout(&o);
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines[0], "NAME:", "{text}");
        lines[1].to_string()
    }
    let dir = tempfile::tempdir().unwrap();
    let as_runc = dir.path().join("runc");
    std::os::unix::fs::symlink(BIN, &as_runc).unwrap();
    for (prog, name) in [
        (as_runc.as_path(), "runc"),
        (std::path::Path::new(BIN), "strata-runtime"),
    ] {
        for flag in ["-h", "--help"] {
            let t = title(prog, &[flag]);
            assert!(
                t.starts_with(&format!("   {name} - Open Container Initiative runtime")),
                "{t}"
            );
        }
        for sub in [
            "checkpoint",
            "delete",
            "exec",
            "list",
            "restore",
            "spec",
            "update",
        ] {
            let t = title(prog, &[sub, "-h"]);
            assert!(t.starts_with(&format!("   {name} {sub} - ")), "{t}");
        }
    }
    let o = std::process::Command::new(&as_runc)
        .args(["foo", "-h"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("No help topic for 'foo'"),
        "{}",
        stderr(&o)
    );
    // Without -h an unknown command stays a usage error.
    let o = std::process::Command::new(&as_runc)
        .arg("foo")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
