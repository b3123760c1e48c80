//! strata-runtime under containerd 1.6 (Debian), through `ctr`.

use std::process::Command;

use strata_conformance_tests::{Containerd, busybox_rootfs, runtime_bin, text};

fn rootfs(ctd: &Containerd) -> String {
    let r = ctd.dir.path().join("rootfs");
    busybox_rootfs(&r);
    r.to_str().unwrap().to_string()
}

#[test]
fn ctr_run_foreground() {
    let ctd = Containerd::start("strata-ct-fg");
    let rt = runtime_bin();
    let rootfs = rootfs(&ctd);
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        rt.to_str().unwrap(),
        "--rootfs",
        &rootfs,
        "fg1",
        "sh",
        "-c",
        "echo hello from ctr; grep -c . /proc/self/mountinfo >/dev/null; exit 4",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "ctr run: {} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "hello from ctr\n");
    // --rm removed the task and container; our state went with them.
    assert!(
        text(&ctd.ctr(&["container", "ls", "-q"]).stdout)
            .trim()
            .is_empty()
    );
    assert!(!std::path::Path::new("/run/containerd/runc/strata-ct-fg/fg1").exists());
}

#[test]
fn ctr_detached_exec_kill_rm() {
    let ctd = Containerd::start("strata-ct-bg");
    let rt = runtime_bin();
    let rootfs = rootfs(&ctd);
    let out = ctd.ctr(&[
        "run",
        "-d",
        "--runc-binary",
        rt.to_str().unwrap(),
        "--rootfs",
        &rootfs,
        "bg1",
        "sleep",
        "1000",
    ]);
    assert!(out.status.success(), "ctr run -d: {}", text(&out.stderr));
    ctd.wait_task("bg1", "RUNNING");

    let out = ctd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "bg1",
        "sh",
        "-c",
        "echo exec-ok; ps -o pid,args; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "exec: {}", text(&out.stderr));
    let o = text(&out.stdout);
    assert!(
        o.starts_with("exec-ok\n") && o.contains("sleep 1000"),
        "{o}"
    );

    // exec with a terminal: ctr needs one itself, so run it under script(1).
    let cmd = format!(
        "ctr --address {} --namespace strata-ct-bg task exec -t --exec-id e2 bg1 sh -c 'tty; echo tty-exec-ok'",
        ctd.socket.display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let o = text(&out.stdout);
    assert!(
        o.contains("/dev/pts/") && o.contains("tty-exec-ok"),
        "exec -t: {o} {}",
        text(&out.stderr)
    );

    // ps lists the container's processes (through `strata-runtime ps`).
    let ps = text(&ctd.ctr(&["task", "ps", "bg1"]).stdout);
    assert!(ps.lines().count() >= 2, "{ps}");

    let out = ctd.ctr(&["task", "kill", "-s", "SIGKILL", "bg1"]);
    assert!(out.status.success(), "kill: {}", text(&out.stderr));
    ctd.wait_task("bg1", "STOPPED");
    let out = ctd.ctr(&["task", "rm", "bg1"]);
    assert!(out.status.success(), "task rm: {}", text(&out.stderr));
    assert!(ctd.task_status("bg1").is_none());
    let out = ctd.ctr(&["container", "rm", "bg1"]);
    assert!(out.status.success(), "container rm: {}", text(&out.stderr));
    assert!(!std::path::Path::new("/run/containerd/runc/strata-ct-bg/bg1").exists());
}

#[test]
fn ctr_kill_all_and_signal_to_trapping_init() {
    let ctd = Containerd::start("strata-ct-sig");
    let rt = runtime_bin();
    let rootfs = rootfs(&ctd);
    let out = ctd.ctr(&[
        "run",
        "-d",
        "--runc-binary",
        rt.to_str().unwrap(),
        "--rootfs",
        &rootfs,
        "sig1",
        "sh",
        "-c",
        "trap 'exit 3' TERM; while :; do sleep 0.1; done",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    ctd.wait_task("sig1", "RUNNING");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(ctd.ctr(&["task", "kill", "sig1"]).status.success());
    ctd.wait_task("sig1", "STOPPED");
    let out = ctd.ctr(&["task", "rm", "sig1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn ctr_shows_runtime_errors() {
    let ctd = Containerd::start("strata-ct-err");
    let rt = runtime_bin();
    let rootfs = rootfs(&ctd);
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        rt.to_str().unwrap(),
        "--rootfs",
        &rootfs,
        "err1",
        "no-such-binary",
    ]);
    assert!(!out.status.success());
    // containerd relays the msg of our last JSON error log line.
    assert!(
        text(&out.stderr).contains("executable file not found in $PATH"),
        "ctr error: {}",
        text(&out.stderr)
    );
    assert!(!std::path::Path::new("/run/containerd/runc/strata-ct-err/err1").exists());
}

/// examples/containerd/config.toml: containerd 1.6 takes it, and its CRI
/// plugin loads with the strata runtime handler. (The handler's options
/// are runc.v2's BinaryName/Root, the ones `--runc-binary` sets above.)
#[test]
fn containerd_loads_the_example_cri_config() {
    let example = strata_conformance_tests::workspace_dir().join("examples/containerd/config.toml");
    let conf = std::fs::read_to_string(&example).unwrap();
    let ctd = Containerd::start_with("strata-ct-cri", &conf);
    let plugins = text(&ctd.ctr(&["plugins", "ls"]).stdout);
    let cri = plugins
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("cri"))
        .unwrap_or_else(|| panic!("no cri plugin: {plugins}"));
    assert_eq!(
        cri.split_whitespace().last(),
        Some("ok"),
        "{cri}\n{}",
        ctd.log()
    );
    assert!(
        !ctd.log()
            .contains("failed to load plugin io.containerd.grpc.v1.cri"),
        "{}",
        ctd.log()
    );
}
