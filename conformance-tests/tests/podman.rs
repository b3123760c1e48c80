//! strata-runtime under podman 4 (Debian) as `--runtime`.

use strata_conformance_tests::{Podman, text};

#[test]
fn podman_run_rm_with_default_seccomp() {
    let pm = Podman::new();
    let img = pm.import_busybox();
    let out = pm.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        img,
        "sh",
        "-c",
        "echo hi from podman; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; exit 6",
    ]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "{} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let o = text(&out.stdout);
    assert!(o.starts_with("hi from podman\n"), "{o}");
    // podman's default seccomp profile is loaded and enforced.
    assert!(o.contains("Seccomp:\t2"), "{o}");
    // swapon is refused by the profile even with CAP_SYS_ADMIN; without
    // the filter the kernel gets the call and says EISDIR.
    let probe = "swapon /tmp 2>&1; echo rc=$?";
    let blocked = pm.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--cap-add",
        "SYS_ADMIN",
        img,
        "sh",
        "-c",
        probe,
    ]);
    let b = text(&blocked.stdout);
    assert!(
        b.contains("Operation not permitted"),
        "swapon must be blocked by seccomp: {b}"
    );
    let open = pm.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        "seccomp=unconfined",
        img,
        "sh",
        "-c",
        probe,
    ]);
    let o = text(&open.stdout);
    assert!(
        o.contains("Is a directory"),
        "unconfined swapon reaches the kernel: {o}"
    );
    assert!(text(&pm.run(&["ps", "-aq"]).stdout).trim().is_empty());
}

/// examples/podman/containers.conf makes strata-runtime podman's runtime
/// with no `--runtime` flag.
#[test]
fn podman_takes_strata_from_the_example_containers_conf() {
    let pm = Podman::new();
    let out = pm.run(&[
        "info",
        "--format",
        "{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Path}}",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("strata {}", pm.runtime.display())
    );
    let img = pm.import_busybox();
    let out = pm.run(&["create", "--network", "none", img, "true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    let rt = pm.run(&["inspect", "-f", "{{.OCIRuntime}}", &id]);
    assert_eq!(text(&rt.stdout).trim(), "strata");
    let out = pm.run(&["start", "-a", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn podman_exit_codes_126_127() {
    let pm = Podman::new();
    let img = pm.import_busybox();
    let out = pm.run(&["run", "--rm", "--network", "none", img, "no-such-cmd"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("executable file not found"),
        "{}",
        text(&out.stderr)
    );
    let out = pm.run(&["run", "--rm", "--network", "none", img, "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));
}

#[test]
fn podman_detached_exec_stop_rm() {
    let pm = Podman::new();
    let img = pm.import_busybox();
    let out = pm.run(&[
        "run",
        "-d",
        "--name",
        "d1",
        "--network",
        "none",
        img,
        "sleep",
        "1000",
    ]);
    assert!(out.status.success(), "run -d: {}", text(&out.stderr));
    let state = text(&pm.run(&["inspect", "-f", "{{.State.Status}}", "d1"]).stdout);
    assert_eq!(state.trim(), "running");
    let out = pm.run(&["exec", "d1", "sh", "-c", "echo exec-ok; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "exec-ok\n");
    let out = pm.run(&["exec", "-d", "d1", "sleep", "500"]);
    assert!(out.status.success(), "exec -d: {}", text(&out.stderr));
    let top = text(&pm.run(&["top", "d1"]).stdout);
    assert!(top.contains("sleep 500"), "{top}");
    // sleep as PID 1 ignores SIGTERM: stop falls back to SIGKILL after -t.
    let out = pm.run(&["stop", "-t", "1", "d1"]);
    assert!(out.status.success(), "stop: {}", text(&out.stderr));
    let state = text(&pm.run(&["inspect", "-f", "{{.State.Status}}", "d1"]).stdout);
    assert_eq!(state.trim(), "exited");
    let out = pm.run(&["rm", "d1"]);
    assert!(out.status.success(), "rm: {}", text(&out.stderr));
    assert!(text(&pm.run(&["ps", "-aq"]).stdout).trim().is_empty());
}

#[test]
fn podman_tty_run() {
    let pm = Podman::new();
    let img = pm.import_busybox();
    // podman -t needs a terminal of its own: run it under script(1).
    let argv = pm.argv(&[
        "run",
        "--rm",
        "-t",
        "--network",
        "none",
        img,
        "sh",
        "-c",
        "tty; echo tty-ok",
    ]);
    let shell = argv
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-qec", &shell, "/dev/null"])
        .env("CONTAINERS_CONF", pm.dir.path().join("containers.conf"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let o = text(&out.stdout);
    assert!(
        o.contains("/dev/pts/0") && o.contains("tty-ok"),
        "{o} {}",
        text(&out.stderr)
    );
}
