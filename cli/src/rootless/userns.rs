//! The user's long-lived user namespace, and the pause process that
//! holds it open between commands.
//!
//! The first command makes it: a child unshares a user and a mount
//! namespace, its parent maps the ids (`newuidmap`/`newgidmap` with the
//! user's ranges, or the user's own id alone when there are none), and
//! the child stays as the pause process. Every command then joins its
//! namespaces with setns(2). A pause process that was killed is made
//! again by the next command: the store keeps working, since the ids map
//! the same way.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::sched::CloneFlags;

use super::Rootless;

/// One subordinate id range (`/etc/subuid` line `user:start:count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u32,
    pub count: u32,
}

/// The user's ranges in a subuid/subgid file's text: lines naming the
/// user by name or by number.
pub fn ranges(text: &str, name: &str, id: u32) -> Vec<Range> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if who != name && who.parse::<u32>().ok() != Some(id) {
                return None;
            }
            let (start, count) = (start.parse().ok()?, count.parse().ok()?);
            (count > 0).then_some(Range { start, count })
        })
        .collect()
}

/// `newuidmap PID 0 ID 1 1 START COUNT ...`'s arguments after the pid:
/// root in the namespace is the user, 1.. the ranges in order.
pub fn map_args(id: u32, ranges: &[Range]) -> Vec<String> {
    let mut args = vec!["0".to_string(), id.to_string(), "1".to_string()];
    let mut next = 1u64;
    for r in ranges {
        args.extend([next.to_string(), r.start.to_string(), r.count.to_string()]);
        next += u64::from(r.count);
    }
    args
}

/// How ids are mapped: the user's ranges, or only the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub uids: Vec<Range>,
    pub gids: Vec<Range>,
}

impl Mapping {
    pub fn of(rl: &Rootless) -> Mapping {
        let name = nix::unistd::User::from_uid(rl.uid.into())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        Mapping {
            uids: ranges(&read("/etc/subuid"), &name, rl.uid),
            gids: ranges(&read("/etc/subgid"), &name, rl.gid),
        }
    }
}

/// Join the user's namespace, making it (and its pause process) first
/// when there is none. The working directory stays where it was.
pub fn join(rl: &Rootless) -> Result<()> {
    make_run_dir(&rl.run_dir)?;
    let lock_path = rl.run_dir.join("pause.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("create {}", lock_path.display()))?;
    // Two first commands at once make one namespace, not two.
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .context("lock the rootless namespace")?;
    if let Some(pid) = running_pause(&rl.run_dir) {
        return enter(pid);
    }
    // The pause process died while containers run: their monitors still
    // hold the namespace (and the containers live in it). Join it, as
    // podman joins a conmon's, and leave a new pause process there.
    if let Some(monitor) = live_monitor(rl) {
        enter(monitor)?;
        return respawn_pause(rl);
    }
    let pid = make(rl)?;
    enter(pid)
}

/// Join the user and mount namespaces of `pid`; the cwd stays.
fn enter(pid: i32) -> Result<()> {
    let cwd = std::env::current_dir().ok();
    let ns = |kind: &str| -> Result<OwnedFd> {
        let p = format!("/proc/{pid}/ns/{kind}");
        Ok(OwnedFd::from(
            std::fs::File::open(&p).with_context(|| format!("open {p}"))?,
        ))
    };
    let (user, mnt) = (ns("user")?, ns("mnt")?);
    nix::sched::setns(user.as_fd(), CloneFlags::CLONE_NEWUSER)
        .context("join the rootless user namespace")?;
    nix::sched::setns(mnt.as_fd(), CloneFlags::CLONE_NEWNS)
        .context("join the rootless mount namespace")?;
    // setns into a mount namespace moves us to its root directory.
    if let Some(d) = cwd {
        let _ = std::env::set_current_dir(d);
    }
    Ok(())
}

/// A running monitor (or DNS server, or port proxy: the lean binary in
/// any mode) of this rootless engine, whatever store it serves: it lives
/// in the namespace the dead pause process held. Ours are the user's
/// `strata-monitor` processes in another user namespace whose
/// environment names the same run dir (tests and users may keep more
/// than one engine apart by `XDG_RUNTIME_DIR`).
fn live_monitor(rl: &Rootless) -> Option<i32> {
    use std::os::unix::fs::MetadataExt;
    let ours = std::fs::read_link("/proc/self/ns/user").ok()?;
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty());
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid > 1)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == rl.uid)
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim_end() == crate::containers::MONITOR_BIN)
                && std::fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|ns| ns != ours)
        })
        .find(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let mut vars = env.split(|b| *b == 0);
            let rootless = vars.clone().any(|v| v.starts_with(super::ENV.as_bytes()));
            let theirs = vars
                .find_map(|v| v.strip_prefix(b"XDG_RUNTIME_DIR="))
                .filter(|v| !v.is_empty());
            rootless
                && theirs.map(|t| t.to_vec())
                    == runtime_dir.as_ref().map(|d| d.as_encoded_bytes().to_vec())
        })
}

/// A new pause process in the namespace we have joined.
fn respawn_pause(rl: &Rootless) -> Result<()> {
    let lean = lean_pause_program();
    // SAFETY: called from main while the process has a single thread.
    match unsafe { nix::unistd::fork() }.context("fork the pause process")? {
        nix::unistd::ForkResult::Child => become_pause(lean),
        nix::unistd::ForkResult::Parent { child } => {
            crate::containers::record::write_pid_file(&rl.run_dir.join("pause.pid"), child.as_raw())
        }
    }
}

/// The lean monitor binary beside us, to exec as `--pause`.
fn lean_pause_program() -> Option<std::ffi::CString> {
    std::env::current_exe()
        .ok()
        .map(|e| e.with_file_name(crate::containers::MONITOR_BIN))
        .filter(|p| p.is_file())
        .and_then(|p| std::ffi::CString::new(p.into_os_string().into_encoded_bytes()).ok())
}

/// `$XDG_RUNTIME_DIR/strata` (or the /tmp fallback): ours alone, 0700.
fn make_run_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => bail!("create {}: {e}", dir.display()),
    }
    let md = std::fs::symlink_metadata(dir).with_context(|| format!("stat {}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if !md.is_dir() || md.uid() != me {
        bail!(
            "{} is not a directory of uid {me}: refusing to keep rootless state there (set XDG_RUNTIME_DIR)",
            dir.display()
        );
    }
    Ok(())
}

/// The pause process of `run_dir`'s pid file, if it still runs.
fn running_pause(run_dir: &Path) -> Option<i32> {
    crate::containers::record::live_pid_file(&run_dir.join("pause.pid"))
}

fn make(rl: &Rootless) -> Result<i32> {
    let mapping = Mapping::of(rl);
    let single = mapping.uids.is_empty() || mapping.gids.is_empty();
    if !single {
        for tool in ["newuidmap", "newgidmap"] {
            if which(tool).is_none() {
                bail!(
                    "{tool} not found: install the uidmap package, which maps your subordinate ids from /etc/subuid and /etc/subgid"
                );
            }
        }
    }
    // The pause process becomes the lean monitor binary's `--pause`
    // (about a megabyte), not a copy of this command.
    let lean = lean_pause_program();
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
    let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
    // SAFETY: called from main while the process has a single thread.
    match unsafe { nix::unistd::fork() }.context("fork the pause process")? {
        nix::unistd::ForkResult::Child => {
            drop((ready_r, go_w));
            pause_child(ready_w, go_r, lean)
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop((ready_w, go_r));
            let pid = child.as_raw();
            let res = (|| -> Result<()> {
                let mut b = [0u8; 1];
                let mut r = std::fs::File::from(ready_r);
                if r.read(&mut b).ok() != Some(1) || b[0] != 0 {
                    bail!(
                        "could not make a user namespace (unshare refused: is user.max_user_namespaces 0?)"
                    );
                }
                if single {
                    map_single(pid, rl)?;
                    eprintln!(
                        "WARN: no subordinate ids for uid {} in /etc/subuid and /etc/subgid: only your own id is mapped (root in containers). Images with files of other owners will not unpack, and containers cannot switch users. Add ranges with: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 <user>",
                        rl.uid
                    );
                } else {
                    run_map("newuidmap", pid, &map_args(rl.uid, &mapping.uids))?;
                    run_map("newgidmap", pid, &map_args(rl.gid, &mapping.gids))?;
                }
                let mut w = std::fs::File::from(go_w.try_clone().context("dup")?);
                w.write_all(b"k").context("start the pause process")?;
                crate::containers::record::write_pid_file(&rl.run_dir.join("pause.pid"), pid)
            })();
            if let Err(e) = res {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(child, None);
                return Err(e);
            }
            Ok(pid)
        }
    }
}

/// The pause process: unshare, tell the parent, wait for the ids to be
/// mapped, then hold the namespaces until killed.
fn pause_child(ready: OwnedFd, go: OwnedFd, lean: Option<std::ffi::CString>) -> ! {
    let ok = nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).is_ok();
    let mut w = std::fs::File::from(ready);
    let _ = w.write_all(&[if ok { 0 } else { 1 }]);
    let mut b = [0u8; 1];
    let mapped = std::fs::File::from(go).read(&mut b).ok() == Some(1) && b[0] == b'k';
    if !ok || !mapped {
        // SAFETY: _exit ends this forked child without running the
        // parent's exit handlers.
        unsafe { libc::_exit(1) }
    }
    become_pause(lean)
}

/// This forked child becomes the pause process: its own session, no
/// descriptor of the command that forked it, then the lean binary's
/// `--pause` (or a wait here when that binary is not beside us).
fn become_pause(lean: Option<std::ffi::CString>) -> ! {
    let _ = nix::unistd::setsid();
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            let _ = nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd);
        }
    }
    // Nothing of the command that forked us stays open here.
    // SAFETY: closes only descriptors; this process runs no more Rust
    // code that holds any of them.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if let Some(exe) = lean {
        let _ = nix::unistd::execv(&exe, &[exe.as_c_str(), c"--pause"]);
    }
    let _ = nix::sys::prctl::set_name(c"strata-pause");
    pause_forever()
}

/// Wait for signals until one ends us.
pub fn pause_forever() -> ! {
    loop {
        // SAFETY: pause only waits for a signal.
        unsafe { libc::pause() };
    }
}

/// Only the user's own ids: the kernel lets its owner write that map.
fn map_single(pid: i32, rl: &Rootless) -> Result<()> {
    let w = |f: &str, v: String| {
        std::fs::write(format!("/proc/{pid}/{f}"), v)
            .with_context(|| format!("write {f} of the rootless namespace"))
    };
    w("uid_map", format!("0 {} 1\n", rl.uid))?;
    w("setgroups", "deny".into())?;
    w("gid_map", format!("0 {} 1\n", rl.gid))
}

fn run_map(tool: &str, pid: i32, args: &[String]) -> Result<()> {
    // The program found as `make` checked for it (PATH, then /usr/bin).
    let program = which(tool).unwrap_or_else(|| PathBuf::from(tool));
    let out = std::process::Command::new(program)
        .arg(pid.to_string())
        .args(args)
        .output()
        .with_context(|| format!("run {tool}"))?;
    if !out.status.success() {
        bail!(
            "{tool} {pid} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_else(|| vec!["/usr/bin".into(), "/bin".into()])
        .into_iter()
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The pause process of this rootless engine, if one runs (for `info`).
pub fn pause_pid(rl: &Rootless) -> Option<i32> {
    running_pause(&rl.run_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_and_map_arguments() {
        let text = "root:100000:65536\nrl1:200000:65536\n1001:300000:1000\nrl2:1:0\nbad line\n";
        let r = ranges(text, "rl1", 1001);
        assert_eq!(
            r,
            vec![
                Range {
                    start: 200000,
                    count: 65536
                },
                Range {
                    start: 300000,
                    count: 1000
                }
            ]
        );
        assert_eq!(
            map_args(1001, &r),
            [
                "0", "1001", "1", "1", "200000", "65536", "65537", "300000", "1000"
            ]
        );
        assert!(
            ranges(text, "rl2", 1002).is_empty(),
            "a zero-sized range is none"
        );
        assert!(ranges(text, "nobody", 65534).is_empty());
        assert_eq!(map_args(5, &[]), ["0", "5", "1"]);
    }
}
