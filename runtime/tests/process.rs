//! `process` settings, checked from inside the container.

mod common;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;

use common::*;
use serde_json::json;

#[test]
fn args_env_cwd_user_groups_umask() {
    let mut b = Bundle::new("");
    b.config["process"]["args"] = json!([
        "sh",
        "-c",
        "echo $FOO; echo $HOME; pwd; id -u; id -g; id -G; umask"
    ]);
    b.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
    b.config["process"]["cwd"] = json!("/work/dir");
    b.config["process"]["user"] =
        json!({"uid": 1000, "gid": 1001, "additionalGids": [2000, 2001], "umask": 63});
    b.save();
    let out = run_ok(&b, "pr-basic");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "bar baz",
            "/",
            "/work/dir",
            "1000",
            "1001",
            "1001 2000 2001",
            "0077"
        ],
        "{out}"
    );
}

#[test]
fn rlimits_applied() {
    let mut b = Bundle::new("ulimit -n; ulimit -Hn; ulimit -c");
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}, {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]);
    b.save();
    assert_eq!(run_ok(&b, "pr-rlimit"), "321\n654\n0\n");
}

#[test]
fn oom_score_adj_applied() {
    let mut b = Bundle::new("cat /proc/self/oom_score_adj");
    b.config["process"]["oomScoreAdj"] = json!(523);
    b.save();
    assert_eq!(run_ok(&b, "pr-oom"), "523\n");
}

/// runtime-spec 1.1's `scheduler` and `ioPriority`, found missing by our
/// spec-conformance suite: applied to the init and to an exec'd process
/// (whose process.json uses the spec's flag name, which oci-spec 0.10
/// spells otherwise).
#[test]
fn scheduler_and_io_priority_are_applied() {
    // /proc/PID/stat: field 19 is nice, 41 the policy (3 = SCHED_BATCH).
    let probe = "awk '{print $19\" \"$41}' /proc/$$/stat; ionice -p $$";
    let mut b = Bundle::new(&format!(
        "{probe}; cat /proc/self/stat | awk '{{print $19}}'"
    ));
    b.config["process"]["scheduler"] =
        json!({"policy": "SCHED_BATCH", "nice": -3, "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    b.save();
    // cat is a child of the shell: reset-on-fork puts it back at nice 0.
    assert_eq!(run_ok(&b, "pr-sched"), "-3 3\nbest-effort: prio 6\n0\n");

    b.config["process"]["args"] = json!(["sleep", "1000"]);
    b.config["process"]
        .as_object_mut()
        .unwrap()
        .remove("scheduler");
    b.config["process"]
        .as_object_mut()
        .unwrap()
        .remove("ioPriority");
    b.save();
    b.create("pr-sched-exec");
    b.ok(&["start", "pr-sched-exec"]);
    let pj = b.path().join("process.json");
    std::fs::write(
        &pj,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", probe], "cwd": "/", "env": ["PATH=/bin"],
            "scheduler": {"policy": "SCHED_IDLE", "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
            "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
        }))
        .unwrap(),
    )
    .unwrap();
    let out = b.ok(&["exec", "-p", pj.to_str().unwrap(), "pr-sched-exec"]);
    // 5 = SCHED_IDLE.
    assert_eq!(out, "0 5\nidle\n");
    b.ok(&["kill", "pr-sched-exec", "KILL"]);

    // Out of range: refused before anything runs.
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": 40});
    b.save();
    let out = b.run("pr-sched-bad");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid scheduler.nice: 40"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn no_new_privileges_and_capabilities() {
    let mut b =
        Bundle::new("grep -E '^(NoNewPrivs|CapEff|CapBnd|CapPrm|CapInh|CapAmb)' /proc/self/status");
    let caps = json!(["CAP_CHOWN", "CAP_NET_RAW"]);
    b.config["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps, "ambient": ["CAP_NET_RAW"]});
    b.config["process"]["noNewPrivileges"] = json!(true);
    b.save();
    let out = run_ok(&b, "pr-caps");
    // CAP_CHOWN = bit 0, CAP_NET_RAW = bit 13.
    let want = format!("{:016x}", (1u64 << 0) | (1u64 << 13));
    for set in ["CapEff", "CapBnd", "CapPrm", "CapInh"] {
        assert!(out.contains(&format!("{set}:\t{want}")), "{set}: {out}");
    }
    assert!(
        out.contains(&format!("CapAmb:\t{:016x}", 1u64 << 13)),
        "{out}"
    );
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
}

#[test]
fn non_root_user_keeps_only_spec_caps() {
    let mut b = Bundle::new("grep -E '^(CapEff|CapPrm)' /proc/self/status; id -u");
    b.config["process"]["user"] = json!({"uid": 65534, "gid": 65534});
    b.config["process"]["capabilities"] =
        json!({"bounding": ["CAP_KILL"], "effective": [], "permitted": []});
    b.save();
    let out = run_ok(&b, "pr-nonroot");
    assert!(
        out.contains("CapEff:\t0000000000000000") && out.contains("CapPrm:\t0000000000000000"),
        "{out}"
    );
    assert!(out.ends_with("65534\n"));
}

fn recv_fd(sock: RawFd) -> OwnedFd {
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        sock,
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    for c in msg.cmsgs().unwrap() {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received");
}

/// Create `id` with a console socket, start it, and read its terminal
/// until `marker` appears (or the pty closes).
fn console_output(b: &Bundle, id: &str, marker: &str) -> String {
    let sock_path = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let st = b.create_status(id, &["--console-socket", sock_path.to_str().unwrap()]);
    assert!(st.success(), "{}", b.file(&format!("{id}.err")));
    let (conn, _) = listener.accept().unwrap();
    let master = recv_fd(conn.as_raw_fd());
    b.ok(&["start", id]);
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&out).contains(marker) {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A non-root user's pty is theirs, in devpts' group (the mount's gid=,
/// 5 in the default config), not the user's own group: as with runc.
#[test]
fn terminal_of_a_non_root_user_keeps_the_devpts_group() {
    let mut b = Bundle::new("stat -c %u:%g $(tty); echo done; sleep 0.2");
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 100});
    b.save();
    let out = console_output(&b, "pr-tty-owner", "done");
    assert!(out.contains("1000:5"), "{out}");
}

#[test]
fn terminal_master_is_sent_over_console_socket() {
    let mut b = Bundle::new("tty; echo isatty-ok; sleep 0.2");
    b.config["process"]["terminal"] = json!(true);
    b.save();
    let out = console_output(&b, "pr-tty", "isatty-ok");
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("isatty-ok"), "{out}");
}

#[test]
fn terminal_without_console_socket_is_refused_for_create() {
    let mut b = Bundle::new("true");
    b.config["process"]["terminal"] = json!(true);
    b.save();
    let st = b.create_status("pr-tty-nosock", &[]);
    assert!(!st.success());
    assert!(
        b.file("pr-tty-nosock.err").contains("console socket"),
        "{}",
        b.file("pr-tty-nosock.err")
    );
    assert!(!b.root.join("pr-tty-nosock").exists());
}

/// fds of the caller other than stdio never reach the container
/// (the CVE-2024-21626 class), unless preserved on purpose.
#[test]
fn only_preserved_fds_reach_the_container() {
    let b = Bundle::new("ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; cat <&3");
    let f = std::fs::File::open(b.path().join("config.json")).unwrap();
    let extra = std::fs::File::open("/etc/hostname").unwrap();
    let fd3 = f.as_raw_fd();
    let leak = extra.as_raw_fd();
    let run = |preserve: bool, id: &str| {
        let mut cmd = if preserve {
            b.cmd(&["run", "--preserve-fds", "1", id])
        } else {
            b.cmd(&["run", id])
        };
        unsafe {
            cmd.pre_exec(move || {
                // fd 3 is the config, fd `leak` stays open without CLOEXEC.
                set_fd3(fd3)?;
                let flags = libc::fcntl(leak, libc::F_GETFD);
                libc::fcntl(leak, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                Ok(())
            });
        }
        cmd.output().unwrap()
    };
    let with = run(true, "pr-fds-keep");
    let text = stdout(&with);
    let first = text.lines().next().unwrap_or_default().to_string();
    assert_eq!(
        first.trim(),
        "0 1 2 3 4",
        "fds with --preserve-fds 1: {text} {}",
        stderr(&with)
    );
    assert!(text.contains("ociVersion"), "fd 3 content: {text}");
    let without = run(false, "pr-fds-none");
    let first = stdout(&without)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    // ls itself holds one fd for the directory it lists.
    assert_eq!(
        first.trim(),
        "0 1 2 3",
        "without --preserve-fds: {}",
        stdout(&without)
    );
    assert!(!stdout(&without).contains("ociVersion"));
    drop(extra);
}

/// Make `fd` the inheritable fd 3 (dup2 onto itself would keep CLOEXEC).
fn set_fd3(fd: RawFd) -> std::io::Result<()> {
    unsafe {
        if fd != 3 && libc::dup2(fd, 3) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let flags = libc::fcntl(3, libc::F_GETFD);
        if libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[test]
fn listen_fds_are_passed_through() {
    let b = Bundle::new("echo $LISTEN_FDS $LISTEN_PID; cat <&3");
    let f = std::fs::File::open(b.path().join("config.json")).unwrap();
    let fd = f.as_raw_fd();
    let mut cmd = b.cmd(&["run", "pr-listen"]);
    cmd.env("LISTEN_FDS", "1");
    unsafe {
        cmd.pre_exec(move || set_fd3(fd));
    }
    let out = cmd.output().unwrap();
    let text = stdout(&out);
    assert!(text.starts_with("1 1\n"), "{text} {}", stderr(&out));
    assert!(text.contains("ociVersion"), "{text}");
}

#[test]
fn hooks_run_at_their_points_with_state() {
    let mut b = Bundle::new("echo ran > /tmp/ran");
    let log = b.path().join("hooks.log");
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read s; echo {name} \"$s\" >> {}", log.display())]});
    b.config["hooks"] = json!({
        "prestart": [hook("prestart")],
        "createRuntime": [hook("createRuntime")],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")]
    });
    b.save();
    run_ok(&b, "pr-hooks");
    let text = std::fs::read_to_string(&log).unwrap();
    let order: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        order,
        ["prestart", "createRuntime", "poststart", "poststop"],
        "{text}"
    );
    assert!(text.contains("\"id\":\"pr-hooks\""), "{text}");
    // Create-time hooks see `created` (as crun and the validation suite),
    // poststart `running`, poststop `stopped`.
    let status = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        let v: serde_json::Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
        v["status"].as_str().unwrap().to_string()
    };
    assert_eq!(status("prestart"), "created", "{text}");
    assert_eq!(status("createRuntime"), "created", "{text}");
    assert_eq!(status("poststart"), "running", "{text}");
    assert_eq!(status("poststop"), "stopped", "{text}");
}

/// poststart runs after the user's process is executed (runtime-spec),
/// so after every startContainer hook: a slow startContainer hook is
/// done before poststart looks. (It ran beside it before: `start` went on
/// as soon as the init had read the exec fifo.)
#[test]
fn poststart_waits_for_the_start_container_hooks_and_the_exec() {
    let mut b = Bundle::new("cat /tmp/started > /tmp/process-saw");
    let rootfs = b.rootfs();
    let verdict = b.path().join("poststart.txt");
    b.config["hooks"] = json!({
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "sleep 1; echo hook > /tmp/started"]}],
        "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", format!(
            "if [ -e {0}/tmp/started ]; then echo after > {1}; else echo before > {1}; fi",
            rootfs.display(), verdict.display())]}]
    });
    b.save();
    run_ok(&b, "pr-poststart-order");
    assert_eq!(std::fs::read_to_string(&verdict).unwrap(), "after\n");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("tmp/process-saw")).unwrap(),
        "hook\n"
    );
}

/// A failing poststart or poststop hook is a warning: the hooks after it
/// run, and the container runs and is deleted as usual.
#[test]
fn failing_poststart_and_poststop_hooks_warn_and_the_rest_run() {
    let mut b = Bundle::new("echo ran");
    let log = b.path().join("hooks.log");
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} >> {}", log.display())]});
    b.config["hooks"] = json!({
        "poststart": [{"path": "/bin/false"}, hook("poststart-2")],
        "poststop": [{"path": "/bin/false"}, hook("poststop-2")]
    });
    b.save();
    let out = b.run("pr-hookwarn");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ran\n");
    assert!(
        stderr(&out).contains("poststart hook /bin/false"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("poststop hook /bin/false"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "poststart-2\npoststop-2\n"
    );
    assert!(!b.root.join("pr-hookwarn").exists());
}

#[test]
fn failing_prestart_hook_aborts_create() {
    let mut b = Bundle::new("true");
    b.config["hooks"] = json!({"prestart": [{"path": "/bin/false"}]});
    b.save();
    let st = b.create_status("pr-hookfail", &[]);
    assert!(!st.success());
    assert!(
        b.file("pr-hookfail.err").contains("prestart hook"),
        "{}",
        b.file("pr-hookfail.err")
    );
    assert!(!b.root.join("pr-hookfail").exists());
    assert_no_cgroup("pr-hookfail");
}

/// Quote for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Foreground `run` and `exec -t` without a console socket proxy the pty
/// themselves (the caller's terminal comes from script(1)).
#[test]
fn foreground_terminal_is_proxied() {
    let mut b = Bundle::new("tty; echo run-tty-ok; sleep 1000");
    b.config["process"]["terminal"] = json!(true);
    b.save();
    let run_line = format!(
        "{} --root {} run --bundle {} pr-fgtty",
        sh_quote(BIN),
        sh_quote(b.root.to_str().unwrap()),
        sh_quote(b.path().to_str().unwrap())
    );
    let child = std::process::Command::new("script")
        .args(["-qefc", &run_line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    b.wait_status("pr-fgtty", "running");
    let exec_line = format!(
        "{} --root {} exec -t pr-fgtty sh -c 'tty; echo exec-tty-ok'",
        sh_quote(BIN),
        sh_quote(b.root.to_str().unwrap())
    );
    let out = std::process::Command::new("script")
        .args(["-qefc", &exec_line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let o = stdout(&out);
    assert!(
        o.contains("/dev/pts/1") && o.contains("exec-tty-ok"),
        "exec -t: {o}"
    );
    b.ok(&["kill", "pr-fgtty", "KILL"]);
    let out = child.wait_with_output().unwrap();
    let o = stdout(&out);
    assert!(
        o.contains("/dev/pts/0") && o.contains("run-tty-ok"),
        "run: {o}"
    );
}

/// A foreground `run` with a terminal, its output read through a pipe (as
/// runc's own tests read it): "\n" arrives as written (ONLCR cleared, as
/// runc does on a console it proxies); and an exec process.json without a
/// user runs as root, with its consoleSize applied.
#[test]
fn foreground_terminal_output_and_exec_console_size() {
    let mut b = Bundle::new("printf 'a\\nb\\n'");
    b.config["process"]["terminal"] = json!(true);
    b.save();
    let out = b.run("pr-onlcr");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "a\nb\n");
    let b = Bundle::new("sleep 100");
    b.create("pr-consize");
    b.ok(&["start", "pr-consize"]);
    let pj = b.path().join("p.json");
    std::fs::write(
        &pj,
        r#"{"terminal": true, "consoleSize": {"height": 10, "width": 110},
            "args": ["/bin/sh", "-c", "stty size; id -u"], "cwd": "/"}"#,
    )
    .unwrap();
    let o = b.rt(&["exec", "-t", "-p", pj.to_str().unwrap(), "pr-consize"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "10 110\n0\n");
    b.ok(&["delete", "-f", "pr-consize"]);
}
