//! The last steps before the user's program runs, shared by the container
//! init and `exec`: rlimits, executable lookup, user switch, capabilities,
//! no_new_privs, seccomp, fd hygiene and execve.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{SigHandler, SigSet, Signal, signal};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxCapabilities, PosixRlimitType, Process};

use crate::error::{Context, Error, Result};
use crate::security;
use crate::security::seccomp::Compiled;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn rlimit_resource(t: PosixRlimitType) -> Option<libc::__rlimit_resource_t> {
    Some(match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

pub fn set_rlimits(process: &Process) -> Result<()> {
    for rl in process.rlimits().iter().flatten() {
        let name = serde_json::to_value(rl.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let Some(res) = rlimit_resource(rl.typ()) else {
            return Err(Error::InvalidProcess(format!("unsupported rlimit {name}")));
        };
        let lim = libc::rlimit {
            rlim_cur: rl.soft(),
            rlim_max: rl.hard(),
        };
        // SAFETY: `lim` is a valid rlimit for the duration of the call.
        let rc = unsafe { libc::setrlimit(res, &lim) };
        Errno::result(rc).map_err(|e| {
            let hint = if e == Errno::EPERM {
                " (raising a hard limit needs CAP_SYS_RESOURCE)"
            } else {
                ""
            };
            Error::Container(format!(
                "error setting rlimit {name} (soft {}, hard {}): {e}{hint}",
                rl.soft(),
                rl.hard()
            ))
        })?;
    }
    Ok(())
}

fn env_lookup<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Find the program to run the way Go's exec.LookPath does (runc's
/// wording is kept: podman maps "executable file not found" and "no such
/// file or directory" to exit 127 and "permission denied" to 126).
pub fn find_executable(arg0: &str, env: &[String]) -> Result<PathBuf> {
    let check = |p: &Path| -> std::result::Result<(), String> {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => Err(format!("exec: {arg0:?}: is a directory")),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => {
                Err(format!("exec: {arg0:?}: permission denied"))
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Err(format!("exec: {arg0:?}: permission denied"))
            }
            Err(_) => Err(format!(
                "exec: {arg0:?}: stat {}: no such file or directory",
                p.display()
            )),
        }
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return check(&p).map(|_| p).map_err(Error::Container);
    }
    let path = env_lookup(env, "PATH").unwrap_or(DEFAULT_PATH);
    let mut denied = None;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        match check(&cand) {
            Ok(()) => return Ok(cand),
            Err(e) if e.contains("permission denied") => denied = Some(e),
            Err(_) => {}
        }
    }
    Err(Error::Container(denied.unwrap_or_else(|| {
        format!("exec: {arg0:?}: executable file not found in $PATH")
    })))
}

/// HOME from the container's /etc/passwd when the spec does not set it.
pub fn with_home(env: &[String], uid: u32) -> Vec<String> {
    let mut env = env.to_vec();
    if env_lookup(&env, "HOME").is_none() {
        let home = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid))
                        .then(|| f[5].to_string())
                })
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "/".to_string());
        env.push(format!("HOME={home}"));
    }
    env
}

/// The environment (HOME filled in, `extra` appended) and the executable
/// of `process`, resolved in the current root; errors in runc's wording.
pub fn resolve_program(process: &Process, extra: &[String]) -> Result<(PathBuf, Vec<String>)> {
    let mut env = with_home(
        process.env().as_deref().unwrap_or(&[]),
        process.user().uid(),
    );
    env.extend(extra.iter().cloned());
    let arg0 = process
        .args()
        .as_ref()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_default();
    let exe = find_executable(&arg0, &env)
        .map_err(|e| Error::Container(format!("unable to start container process: {e}")))?;
    Ok((exe, env))
}

/// Switch to the process user, keeping the capabilities the spec gives.
pub fn switch_user(process: &Process) -> Result<()> {
    let user = process.user();
    // SAFETY: prctl with PR_SET_KEEPCAPS takes plain integer arguments.
    Errno::result(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) })
        .ctx(|| "set keepcaps".into())?;
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match nix::unistd::setgroups(&gids) {
        Ok(()) => {}
        // setgroups is denied in a user namespace with setgroups=deny.
        Err(Errno::EPERM) if gids.is_empty() => {}
        Err(e) => {
            return Err(Error::Sys {
                context: "setgroups".into(),
                source: e,
            });
        }
    }
    let gid = Gid::from_raw(user.gid());
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresgid(gid, gid, gid).ctx(|| format!("setgid {gid}"))?;
    nix::unistd::setresuid(uid, uid, uid).ctx(|| format!("setuid {uid}"))?;
    // SAFETY: as above.
    Errno::result(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) })
        .ctx(|| "clear keepcaps".into())?;
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    Ok(())
}

/// Privilege shaping in the order the kernel needs: bounding set (needs
/// CAP_SETPCAP), seccomp without no_new_privs (needs CAP_SYS_ADMIN), user,
/// capability sets, no_new_privs, then seccomp with no_new_privs. The
/// filter is in place before the init waits for `start`, as with runc:
/// startContainer hooks run under it, and a notify listener's fd (which
/// is returned for the caller to send on) reaches the agent before the
/// process runs.
pub fn drop_privileges(process: &Process, seccomp: Option<&Compiled>) -> Result<Option<OwnedFd>> {
    let caps: Option<&LinuxCapabilities> = process.capabilities().as_ref();
    security::capabilities::drop_bounding(caps)?;
    let nnp = process.no_new_privileges().unwrap_or(false);
    let mut listener = None;
    if let (Some(sc), false) = (seccomp, nnp) {
        listener = sc.load()?;
    }
    switch_user(process)?;
    security::capabilities::apply(caps)?;
    if nnp {
        security::set_no_new_privs()?;
        if let Some(sc) = seccomp {
            listener = sc.load()?;
        }
    }
    Ok(listener)
}

/// Close (on exec) every fd above stdio and the preserved ones. Called
/// before any seccomp filter is loaded; where close_range(2) is refused
/// anyway (a kernel before 5.11, or a filter of the caller's), each open
/// fd listed in /proc/self/fd gets FD_CLOEXEC by fcntl.
pub fn cloexec_from(first: u32) -> Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on fds.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if Errno::result(rc).is_ok() {
        return Ok(());
    }
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .ctx(|| "list /proc/self/fd".into())?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first as i32)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD only changes the flags of an fd number; one
        // that closed since the listing (the dir's own) fails with EBADF.
        let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        if let Err(e) = Errno::result(rc)
            && e != Errno::EBADF
        {
            return Err(e).ctx(|| format!("mark fd {fd} close-on-exec"));
        }
    }
    Ok(())
}

/// Reset what execve does not: ignored signals and the blocked mask (Rust
/// ignores SIGPIPE at startup; a container must not inherit that).
pub fn reset_signals() {
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: SIG_DFL installs no Rust handler.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
    let _ = SigSet::empty().thread_set_mask();
}

/// Load a no_new_privs seccomp filter if asked, then execve. Only returns
/// on failure.
pub fn exec_program(path: &Path, process: &Process, env: &[String]) -> Error {
    let to_c = |s: &str| {
        CString::new(s).map_err(|_| Error::InvalidProcess(format!("{s:?} contains a NUL byte")))
    };
    let args: Result<Vec<CString>> = process.args().iter().flatten().map(|a| to_c(a)).collect();
    let env: Result<Vec<CString>> = env.iter().map(|a| to_c(a)).collect();
    let (args, env) = match (args, env) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) else {
        return Error::InvalidProcess("executable path contains a NUL byte".into());
    };
    reset_signals();
    if let Err(e) = crate::security::lsm::set_exec_labels(process) {
        return e;
    }
    match nix::unistd::execve(&cpath, &args, &env) {
        Ok(never) => match never {},
        Err(e) => Error::Container(format!(
            "exec {}: {}",
            path.display(),
            e.desc().to_lowercase()
        )),
    }
}

/// `linux.personality`: the execution domain (LINUX or LINUX32). No flags
/// are defined by the spec's users yet; any given is refused, not ignored.
pub fn set_personality(spec: &oci_spec::runtime::Spec) -> Result<()> {
    use oci_spec::runtime::LinuxPersonalityDomain;
    let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) else {
        return Ok(());
    };
    if let Some(flags) = p.flags().as_ref().filter(|f| !f.is_empty()) {
        return Err(Error::InvalidSpec(format!(
            "personality flags {flags:?} are not supported"
        )));
    }
    let persona: libc::c_ulong = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    // SAFETY: personality takes a plain integer.
    let rc = unsafe { libc::personality(persona) };
    Errno::result(rc).map(drop).ctx(|| "set personality".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookpath_messages_match_runc() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(find_executable("sh", &env).unwrap().ends_with("sh"));
        let e = find_executable("no-such-binary-xyz", &env)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            r#"exec: "no-such-binary-xyz": executable file not found in $PATH"#
        );
        let e = find_executable("/no/such", &env).unwrap_err().to_string();
        assert!(e.contains("no such file or directory"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("not-executable");
        std::fs::write(&plain, "x").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = find_executable(plain.to_str().unwrap(), &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("permission denied"), "{e}");
    }

    #[test]
    fn home_defaults() {
        let env = with_home(&["HOME=/x".to_string()], 0);
        assert_eq!(env, vec!["HOME=/x".to_string()]);
        let env = with_home(&[], 4242424);
        assert_eq!(env, vec!["HOME=/".to_string()]);
    }
}
