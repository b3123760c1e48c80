//! `linux.seccomp` compiled through libseccomp, and loaded.
//!
//! Compiling is the costly part (a Docker-style allowlist of ~380 rules
//! on three architectures takes libseccomp ~10 ms), so the parent compiles
//! the filter to classic BPF before it forks, keeping the program in a
//! cache under the runtime's root keyed by the SHA-256 of the profile, the
//! libseccomp version and the architecture. The container's process only
//! hands the ready program to `seccomp(2)` just before it execs.

use std::collections::HashSet;
use std::io::{Read, Seek, Write};
use std::path::Path;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const EPERM: i32 = libc::EPERM;

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(errno.map(|e| e as i32).unwrap_or(EPERM))
        }
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(errno.map(|e| e as u16).unwrap_or(EPERM as u16))
        }
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn arch(a: &Arch) -> Option<ScmpArch> {
    Some(match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        _ => return None,
    })
}

fn compare(arg: &oci_spec::runtime::LinuxSeccompArg) -> ScmpArgCompare {
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(arg.value()),
    };
    let datum = if matches!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq) {
        arg.value_two().unwrap_or(0)
    } else {
        arg.value()
    };
    ScmpArgCompare::new(arg.index() as u32, op, datum)
}

fn err(context: &str, e: impl std::fmt::Display) -> Error {
    Error::Seccomp(format!("{context}: {e}"))
}

/// Build the filter (without loading it).
pub fn build(spec: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default = action(spec.default_action(), spec.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| err("new filter", e))?;
    // no_new_privs is the spec's own switch; loading must not force it.
    ctx.set_ctl_nnp(false)
        .map_err(|e| err("clear nnp attribute", e))?;
    for a in spec.architectures().iter().flatten() {
        if let Some(a) = arch(a) {
            match ctx.add_arch(a) {
                Ok(_) => {}
                Err(e) => tracing::debug!("seccomp arch {a:?} not added: {e}"),
            }
        }
    }
    for rule in spec.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue; // libseccomp rejects rules equal to the default action
        }
        let args: Vec<ScmpArgCompare> = rule.args().iter().flatten().map(compare).collect();
        let mut indexes = HashSet::new();
        let repeated = rule
            .args()
            .iter()
            .flatten()
            .any(|a| !indexes.insert(a.index()));
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                tracing::debug!("seccomp: syscall {name} unknown here; skipped");
                continue;
            };
            let result = if args.is_empty() {
                ctx.add_rule(act, sc)
            } else if repeated {
                // Several conditions on one argument are alternatives:
                // libseccomp needs them as separate rules.
                args.iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, sc, &[*c]).map(drop))
                    .map(|_| &mut ctx)
            } else {
                ctx.add_rule_conditional(act, sc, &args)
            };
            result.map_err(|e| err(&format!("add rule for {name}"), e))?;
        }
    }
    Ok(ctx)
}

/// A filter compiled to classic BPF, with the `seccomp(2)` flags it is
/// loaded with.
#[derive(Debug, Clone)]
pub struct Compiled {
    program: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
    /// `linux.seccomp.listenerPath`: the filter has SCMP_ACT_NOTIFY rules
    /// and its listener fd goes to the agent listening there.
    pub listener: Option<Listener>,
}

/// Where a filter's notify fd goes (`listenerPath`, `listenerMetadata`).
#[derive(Debug, Clone)]
pub struct Listener {
    pub path: std::path::PathBuf,
    pub metadata: String,
}

/// Does the profile use SCMP_ACT_NOTIFY anywhere?
fn uses_notify(spec: &LinuxSeccomp) -> bool {
    spec.default_action() == LinuxSeccompAction::ScmpActNotify
        || spec
            .syscalls()
            .iter()
            .flatten()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify)
}

/// The largest program the kernel takes (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;
const INSN_SIZE: usize = std::mem::size_of::<libc::sock_filter>();

/// Where compiled filters are kept under the runtime's root. '@' cannot
/// appear in a container id, so this never names a container.
pub const CACHE_DIR: &str = "seccomp@cache";

fn filter_flags(spec: &LinuxSeccomp) -> libc::c_ulong {
    let mut flags = 0;
    for f in spec.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 6.0).
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 1 << 5,
        };
    }
    flags
}

fn cache_key(spec: &LinuxSeccomp) -> Result<String> {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(spec).map_err(|e| err("serialise profile", e))?);
    let v = libseccomp::ScmpVersion::current().map_err(|e| err("libseccomp version", e))?;
    // The program's format: libseccomp's output behind our ENOSYS stub.
    h.update(b"enosys-stub-1");
    h.update(format!(
        "\0{}.{}.{}\0{}",
        v.major,
        v.minor,
        v.micro,
        std::env::consts::ARCH
    ));
    Ok(hex::encode(h.finalize()))
}

fn to_bytes(program: &[libc::sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(program.len() * INSN_SIZE);
    for i in program {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.extend_from_slice(&[i.jt, i.jf]);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

fn from_bytes(bytes: &[u8]) -> Option<Vec<libc::sock_filter>> {
    if bytes.is_empty()
        || !bytes.len().is_multiple_of(INSN_SIZE)
        || bytes.len() / INSN_SIZE > MAX_INSNS
    {
        return None;
    }
    Some(
        bytes
            .chunks_exact(INSN_SIZE)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

/// Compile with libseccomp into BPF bytes.
fn export(spec: &LinuxSeccomp) -> Result<Vec<u8>> {
    let ctx = build(spec)?;
    let mut file = memfd("seccomp-bpf")?;
    ctx.export_bpf(&file).map_err(|e| err("export filter", e))?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| err("read exported filter", e))?;
    Ok(bytes)
}

fn memfd(name: &str) -> Result<std::fs::File> {
    let name = std::ffi::CString::new(name).map_err(|e| err("memfd name", e))?;
    // SAFETY: a NUL-terminated name and plain flags; the fd is checked and
    // then owned by the File.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    let fd = nix::errno::Errno::result(fd).map_err(|e| err("memfd_create", e))?;
    // SAFETY: `fd` was just returned to us and is owned by nothing else.
    Ok(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Compile `spec`, or take it from the cache in `cache_dir` (the
/// runtime's root). A cache that cannot be read or written is only a
/// slower start.
pub fn compile(spec: &LinuxSeccomp, cache_dir: Option<&Path>) -> Result<Compiled> {
    // Refuse what we cannot load before looking at the cache.
    action(spec.default_action(), spec.default_errno_ret())?;
    for rule in spec.syscalls().iter().flatten() {
        action(rule.action(), rule.errno_ret())?;
    }
    let notify = uses_notify(spec);
    let listener = match (notify, spec.listener_path()) {
        (true, Some(p)) if !p.as_os_str().is_empty() => Some(Listener {
            path: p.clone(),
            metadata: spec.listener_metadata().clone().unwrap_or_default(),
        }),
        (true, _) => {
            return Err(Error::Seccomp(
                "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath (the agent's socket)".into(),
            ));
        }
        (false, _) => None,
    };
    // The runtime's own writes between loading and exec (the sync
    // socket, the exec fifo) would wait on the agent: refused, as runc.
    if spec.syscalls().iter().flatten().any(|r| {
        r.action() == LinuxSeccompAction::ScmpActNotify && r.names().iter().any(|n| n == "write")
    }) {
        return Err(Error::Seccomp(
            "SCMP_ACT_NOTIFY cannot be used for the write syscall".into(),
        ));
    }
    if notify && spec.default_action() == LinuxSeccompAction::ScmpActNotify {
        // The runtime's own last syscalls would wait on the agent.
        return Err(Error::Seccomp(
            "SCMP_ACT_NOTIFY cannot be the default action".into(),
        ));
    }
    let mut flags = filter_flags(spec);
    if listener.is_some() {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    }
    let cached = cache_dir.and_then(|d| match cache_key(spec) {
        Ok(key) => Some(d.join(CACHE_DIR).join(key)),
        Err(e) => {
            tracing::debug!("seccomp cache: {e}");
            None
        }
    });
    if let Some(path) = &cached
        && let Ok(bytes) = std::fs::read(path)
    {
        if let Some(program) = from_bytes(&bytes) {
            return Ok(Compiled {
                program,
                flags,
                listener,
            });
        }
        tracing::debug!(
            "seccomp cache: {} is not a filter; recompiling",
            path.display()
        );
    }
    let bytes = export(spec)?;
    let mut program = from_bytes(&bytes).ok_or_else(|| {
        Error::Seccomp(format!("filter of {} bytes is not loadable", bytes.len()))
    })?;
    if let Some((max, clone3_named)) = super::enosys::plan(spec) {
        let mut with_stub = super::enosys::stub(max, clone3_named);
        with_stub.extend_from_slice(&program);
        if with_stub.len() > MAX_INSNS {
            return Err(Error::Seccomp(format!(
                "filter of {} instructions is over the kernel's {MAX_INSNS}",
                with_stub.len()
            )));
        }
        program = with_stub;
    }
    let bytes = to_bytes(&program);
    if let Some(path) = &cached
        && let Err(e) = store(path, &bytes)
    {
        tracing::debug!("seccomp cache: {}: {e}", path.display());
    }
    Ok(Compiled {
        program,
        flags,
        listener,
    })
}

/// The compiled filter of `spec`'s `linux.seccomp`, if it has one.
pub fn for_spec(spec: &oci_spec::runtime::Spec, cache_dir: &Path) -> Result<Option<Compiled>> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(|sc| compile(sc, Some(cache_dir)))
        .transpose()
}

/// Write the program next to its place, then rename it in: a reader sees
/// a whole program or none.
fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Hand a filter's notify fd to the agent at `listener.path`, with the
/// container process state the runtime-spec defines
/// (`containerProcessState`: ociVersion, fds, pid, metadata, state).
pub fn send_to_agent(
    listener: &Listener,
    fd: &std::os::fd::OwnedFd,
    pid: i32,
    state: &serde_json::Value,
) -> Result<()> {
    use std::os::fd::AsRawFd;
    let doc = serde_json::json!({
        "ociVersion": crate::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": listener.metadata,
        "state": state,
    });
    let data = serde_json::to_vec(&doc).map_err(|e| err("encode process state", e))?;
    let sock = std::os::unix::net::UnixStream::connect(&listener.path).map_err(|e| {
        err(
            &format!(
                "failed to connect with seccomp agent at {}",
                listener.path.display()
            ),
            e,
        )
    })?;
    let iov = [std::io::IoSlice::new(&data)];
    let fds = [fd.as_raw_fd()];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    nix::sys::socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &cmsg,
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| err("send the notify fd to the seccomp agent", e))?;
    Ok(())
}

impl Compiled {
    /// Install the filter on the calling thread. Needs no_new_privs or
    /// CAP_SYS_ADMIN, as any filter does. With a listener, returns the
    /// notify fd the kernel made for it.
    pub fn load(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `self.program`, which outlives the call;
        // the kernel copies the program.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        let rc = nix::errno::Errno::result(rc).map_err(|e| err("load filter", e))?;
        if self.listener.is_none() {
            return Ok(None);
        }
        // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER the return value
        // is a new fd that nothing else owns.
        Ok(Some(unsafe {
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(rc as i32)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_style_profile_builds() {
        let j = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["read", "write", "exit_group", "no_such_syscall_xyz"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 131072, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
            ]
        });
        let spec: LinuxSeccomp = serde_json::from_value(j).unwrap();
        build(&spec).unwrap();
    }

    #[test]
    fn compiled_filters_are_cached_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let j = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        });
        let spec: LinuxSeccomp = serde_json::from_value(j).unwrap();
        let first = compile(&spec, Some(dir.path())).unwrap();
        assert_eq!(first.flags, libc::SECCOMP_FILTER_FLAG_LOG);
        let files: Vec<_> = std::fs::read_dir(dir.path().join(CACHE_DIR))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(files.len(), 1, "one program, no temp file left");
        let path = files[0].path();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as usize,
            first.program.len() * INSN_SIZE
        );
        // The cache is what is loaded: a (valid) program planted there
        // replaces the compiled one.
        std::fs::write(&path, [0x06, 0, 0, 0, 0, 0, 0xff, 0x7f]).unwrap();
        let again = compile(&spec, Some(dir.path())).unwrap();
        assert_eq!(again.program.len(), 1);
        // A torn or foreign file is recompiled, not loaded.
        std::fs::write(&path, b"garbage").unwrap();
        let again = compile(&spec, Some(dir.path())).unwrap();
        assert_eq!(again.program.len(), first.program.len());
        // Another profile has another key.
        let other: LinuxSeccomp =
            serde_json::from_value(serde_json::json!({"defaultAction": "SCMP_ACT_LOG"})).unwrap();
        compile(&other, Some(dir.path())).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join(CACHE_DIR))
                .unwrap()
                .count(),
            2
        );
        // NOTIFY is refused even when a cache is given.
        let notify: LinuxSeccomp =
            serde_json::from_value(serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}))
                .unwrap();
        assert!(compile(&notify, Some(dir.path())).is_err());
    }

    #[test]
    fn a_compiled_filter_is_enforced() {
        let j = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77}]
        });
        let spec: LinuxSeccomp = serde_json::from_value(j).unwrap();
        let c = compile(&spec, None).unwrap();
        // In a child of our own, so the test process stays unfiltered.
        // SAFETY: the child only makes raw syscalls and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers.
                unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
                let code = match c.load() {
                    // SAFETY: getppid has no arguments.
                    Ok(_) => match unsafe { libc::syscall(libc::SYS_getppid) } {
                        -1 => nix::errno::Errno::last_raw(),
                        _ => 1,
                    },
                    Err(_) => 2,
                };
                // SAFETY: leaves the forked child without running Rust's
                // exit machinery.
                unsafe { libc::_exit(code) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                let st = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 77));
            }
        }
    }

    #[test]
    fn notify_needs_a_listener_and_is_no_default() {
        let j = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
        let spec: LinuxSeccomp = serde_json::from_value(j).unwrap();
        let e = compile(&spec, None).err().unwrap().to_string();
        assert!(e.contains("listenerPath"), "{e}");
        let j = serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"});
        let spec: LinuxSeccomp = serde_json::from_value(j).unwrap();
        let e = compile(&spec, None).err().unwrap().to_string();
        assert!(e.contains("cannot be the default action"), "{e}");
        let j = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
        let spec: LinuxSeccomp = serde_json::from_value(j).unwrap();
        let c = compile(&spec, None).unwrap();
        assert!(c.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0);
        let j = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]});
        let spec: LinuxSeccomp = serde_json::from_value(j).unwrap();
        let e = compile(&spec, None).err().unwrap().to_string();
        assert!(e.contains("cannot be used for the write syscall"), "{e}");
        assert_eq!(
            c.listener.unwrap().path,
            std::path::Path::new("/run/agent.sock")
        );
    }
}
