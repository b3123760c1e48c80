//! Attacks a hostile image or config can try against the runtime.

mod common;

use std::os::unix::fs::symlink;

use common::*;
use serde_json::json;

/// A rootfs symlink pointing at a host directory must not redirect a mount
/// target out of the rootfs (the CVE-2021-30465 class).
#[test]
fn mount_target_symlink_cannot_escape_rootfs() {
    let mut b = Bundle::new("ls /escape/ | head -5; echo done");
    let host = tempfile::tempdir().unwrap();
    // /escape -> <host dir>: absolute, and a ../ chain for good measure.
    symlink(host.path(), b.rootfs().join("escape")).unwrap();
    symlink("../../../../../../../../../tmp", b.rootfs().join("up")).unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload"), "x").unwrap();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/escape/sub", "type": "bind", "source": src.path(), "options": ["bind"]}));
    mounts.push(
        json!({"destination": "/up/strata-escape-probe", "type": "tmpfs", "source": "tmpfs"}),
    );
    b.save();
    run_ok(&b, "sec-symlink");
    assert!(
        !host.path().join("sub").exists(),
        "mount target created outside the rootfs"
    );
    assert!(
        !std::path::Path::new("/tmp/strata-escape-probe").exists(),
        "../ symlink chain escaped"
    );
    // It landed inside the rootfs instead.
    assert!(
        b.rootfs()
            .join(host.path().strip_prefix("/").unwrap())
            .join("sub")
            .is_dir()
    );
    assert!(b.rootfs().join("tmp/strata-escape-probe").is_dir());
}

/// proc over a symlink could hide masked paths: refused.
#[test]
fn proc_mount_on_symlink_is_refused() {
    let b = Bundle::new("true");
    std::fs::remove_dir(b.rootfs().join("proc")).unwrap();
    std::fs::create_dir(b.rootfs().join("elsewhere")).unwrap();
    symlink("/elsewhere", b.rootfs().join("proc")).unwrap();
    let out = b.run("sec-proc");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("proc must be mounted on ordinary directory"),
        "{}",
        stderr(&out)
    );
    assert_no_cgroup("sec-proc");
    // A dangling symlink too (its target must not be created either).
    let b = Bundle::new("true");
    std::fs::remove_dir(b.rootfs().join("proc")).unwrap();
    symlink("/symlink", b.rootfs().join("proc")).unwrap();
    let out = b.run("sec-proc2");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("proc must be mounted on ordinary directory"),
        "{}",
        stderr(&out)
    );
    assert!(!b.rootfs().join("symlink").exists());
}

/// While a container waits for `start`, and while an exec sets up, nothing
/// inside can open the runtime binary through /proc/<pid>/exe
/// (CVE-2019-5736): the runtime's processes are non-dumpable.
#[test]
fn runtime_binary_is_not_reachable_from_the_container() {
    let b = Bundle::new("sleep 1000");
    b.create("sec-exe");
    let init = b.state("sec-exe")["pid"].as_i64().unwrap();
    // The created (not yet started) init is still the runtime binary.
    let exe = std::fs::read_link(format!("/proc/{init}/exe")).unwrap();
    assert!(exe.to_string_lossy().contains("strata-runtime"), "{exe:?}");
    let out = b.rt(&[
        "exec",
        "sec-exe",
        "sh",
        "-c",
        "readlink /proc/1/exe; cat /proc/1/exe > /dev/null && echo OPENED-RUNTIME; ls /proc/1/fd 2>&1 | head -3; echo end",
    ]);
    let text = stdout(&out);
    assert!(text.ends_with("end\n"), "{text} {}", stderr(&out));
    assert!(
        !text.contains("OPENED-RUNTIME"),
        "container opened the runtime binary: {text}"
    );
    assert!(
        !text.contains("strata-runtime"),
        "container can see the runtime binary path: {text}"
    );
}

/// Host fds the caller leaks to the runtime without CLOEXEC do not reach
/// the container (the CVE-2024-21626 class); cwd is inside the rootfs.
#[test]
fn no_host_fds_and_cwd_inside() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let b = Bundle::new(
        "for f in /proc/self/fd/*; do readlink $f; done; echo cwd=$(readlink /proc/self/cwd)",
    );
    let dir = std::fs::File::open("/sys/fs/cgroup").unwrap();
    let fd = dir.as_raw_fd();
    let mut cmd = b.cmd(&["run", "sec-fds"]);
    unsafe {
        cmd.pre_exec(move || {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let text = stdout(&out);
    // Only stdin, stdout and stderr (the glob's own fd is gone by then).
    assert_eq!(
        text.lines().count(),
        4,
        "unexpected fds in the container: {text}"
    );
    assert!(!text.contains("cgroup"), "host directory fd leaked: {text}");
    assert!(text.ends_with("cwd=/\n"), "{text}");
}

/// A security setting the host cannot apply is refused with an error that
/// names it, and nothing is left: AppArmor and SELinux are not enabled on
/// the test hosts (the test checks that first and says so).
#[test]
fn lsm_settings_the_host_cannot_apply_are_refused() {
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y");
    let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
    assert!(
        !apparmor && !selinux,
        "this test needs a host without AppArmor and SELinux"
    );
    let cases = [
        (
            "/process/apparmorProfile",
            "\"docker-default\"",
            "AppArmor is not enabled",
        ),
        (
            "/process/selinuxLabel",
            "\"system_u:system_r:container_t:s0\"",
            "SELinux is not enabled",
        ),
        (
            "/linux/mountLabel",
            "\"system_u:object_r:container_file_t:s0\"",
            "SELinux is not enabled",
        ),
    ];
    for (i, (ptr, value, want)) in cases.iter().enumerate() {
        let mut b = Bundle::new("true");
        let (parent, key) = ptr.rsplit_once('/').unwrap();
        b.config.pointer_mut(parent).unwrap()[key] = serde_json::from_str(value).unwrap();
        b.save();
        let id = format!("sec-lsm-{i}");
        let st = b.create_status(&id, &[]);
        assert!(!st.success(), "{ptr} accepted");
        let err = b.file(&format!("{id}.err"));
        assert!(err.contains(want), "{ptr}: {err}");
        assert!(!b.root.join(&id).exists());
        assert_no_cgroup(&id);
    }
    // exec --apparmor into a running container: refused the same way.
    let b = Bundle::new("sleep 100");
    b.create("sec-lsm-exec");
    b.ok(&["start", "sec-lsm-exec"]);
    let o = b.rt(&[
        "exec",
        "--apparmor",
        "docker-default",
        "sec-lsm-exec",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("AppArmor is not enabled"),
        "{}",
        stderr(&o)
    );
    b.ok(&["delete", "-f", "sec-lsm-exec"]);
}

/// An agent for SCMP_ACT_NOTIFY: takes the notify fd (and the process
/// state) from the runtime over `path`, answers every notified syscall
/// with ENOSPC, and hands back each state document it received.
fn seccomp_agent(
    path: &std::path::Path,
    connections: usize,
) -> std::thread::JoinHandle<Vec<serde_json::Value>> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let mut docs = Vec::new();
        let mut fds = Vec::new();
        for _ in 0..connections {
            let (sock, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 64 << 10];
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
            let msg = nix::sys::socket::recvmsg::<()>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                nix::sys::socket::MsgFlags::empty(),
            )
            .unwrap();
            let n = msg.bytes;
            for c in msg.cmsgs().unwrap() {
                if let nix::sys::socket::ControlMessageOwned::ScmRights(f) = c {
                    // SAFETY: the kernel installed this fd for us.
                    fds.push(unsafe { OwnedFd::from_raw_fd(f[0]) });
                }
            }
            docs.push(serde_json::from_slice(&buf[..n]).unwrap());
            // Serve this filter's notifications until its processes exit.
            let fd = fds.last().unwrap().as_raw_fd();
            std::thread::spawn(move || {
                while let Ok(req) = libseccomp::ScmpNotifReq::receive(fd) {
                    let resp = libseccomp::ScmpNotifResp::new_error(
                        req.id,
                        -libc::ENOSPC,
                        libseccomp::ScmpNotifRespFlags::empty(),
                    );
                    let _ = resp.respond(fd);
                }
            });
        }
        std::mem::forget(fds);
        docs
    })
}

/// SCMP_ACT_NOTIFY with a listenerPath: the notify fd of the container's
/// filter (and of an exec's) reaches the agent with the process state the
/// runtime-spec defines, and the agent decides the notified syscalls.
#[test]
fn seccomp_notify_reaches_the_agent_at_listener_path() {
    let mut b = Bundle::new("mkdir /tmp/x 2>&1; echo rc=$?; sleep 100");
    let sock = b.path().join("agent.sock");
    let agent = seccomp_agent(&sock, 2);
    b.config["process"]["noNewPrivileges"] = json!(true);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "from-the-test",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    b.save();
    b.create("sec-notify");
    b.ok(&["start", "sec-notify"]);
    let out = b.wait_file("sec-notify.out", "rc=");
    assert!(
        out.contains("No space left on device") && out.contains("rc=1"),
        "{out}"
    );
    let e = b.rt(&[
        "exec",
        "sec-notify",
        "sh",
        "-c",
        "mkdir /tmp/y 2>&1; echo rc=$?",
    ]);
    assert!(
        stdout(&e).contains("No space left on device"),
        "{} {}",
        stdout(&e),
        stderr(&e)
    );
    let docs = agent.join().unwrap();
    for d in &docs {
        assert_eq!(d["fds"], json!(["seccompFd"]), "{d}");
        assert_eq!(d["metadata"], "from-the-test", "{d}");
        assert_eq!(d["state"]["id"], "sec-notify", "{d}");
        assert!(d["pid"].as_i64().unwrap() > 0, "{d}");
    }
    assert_eq!(docs[0]["state"]["status"], "creating");
    assert_eq!(docs[1]["state"]["status"], "running");
    b.ok(&["delete", "-f", "sec-notify"]);
    // Without a listenerPath, NOTIFY is refused by name.
    let mut c = Bundle::new("true");
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    });
    c.save();
    let o = c.rt(&["run", "sec-notify2"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("listenerPath"), "{}", stderr(&o));
}
