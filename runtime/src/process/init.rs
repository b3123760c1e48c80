//! The container's init: PID 1 of the new namespaces until it execs the
//! user's program. Builds the rootfs, applies the process settings, waits
//! on the exec fifo for `start`, then execs.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::setup;
use super::sync::{Msg, SyncSocket};
use crate::error::{Context, Error, Result};
use crate::rootfs::{self, RootfsContext};
use crate::{hooks, security};

/// Everything the init needs; it is a forked copy of the parent, so this
/// is plain memory, not a serialised message.
pub struct InitConfig<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub cgroup: Option<&'a crate::cgroups::Cgroup>,
    /// v1 `tasks` files stage 1 writes "0" to, placing itself (and so the
    /// init it forks) in the container's cgroup; empty on v2 (born in it)
    /// or without a cgroup of its own.
    pub cgroup_tasks: Vec<std::path::PathBuf>,
    pub fifo_path: &'a Path,
    pub console: Option<RawFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// fds 3..3+preserve stay open for the program.
    pub preserve_fds: u32,
    /// Extra environment (LISTEN_FDS and friends).
    pub extra_env: Vec<String>,
    /// The hook state JSON, for createContainer/startContainer hooks.
    pub hook_state: serde_json::Value,
    /// The seccomp filter, compiled by the parent.
    pub seccomp: Option<security::seccomp::Compiled>,
    /// Bind sources the parent opened (see `rootfs::mounts::open_bind_sources`).
    pub bind_sources: Vec<Option<OwnedFd>>,
}

fn has_new(spec: &Spec, t: LinuxNamespaceType) -> bool {
    crate::spec::namespaces(spec)
        .iter()
        .any(|(nt, p)| *nt == t && p.is_none())
}

/// Run the init; never returns. Setup errors go to the parent over `sync`.
pub fn run(cfg: &InitConfig, sync: &SyncSocket) -> ! {
    let err = match setup_and_exec(cfg, sync) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // Before `start` the parent reports the error; after it, nobody listens
    // on sync any more and the container's stderr is the place. A parent
    // that went away mid-setup has failed (and says why) or was killed:
    // nothing to add then.
    let parent_gone = matches!(err, Error::SyncClosed(_));
    if !parent_gone && sync.send(&Msg::Error(err.to_string())).is_err() {
        let _ = writeln!(std::io::stderr(), "strata-runtime: {err}");
    }
    // SAFETY: _exit is async-signal-safe and skips Rust destructors, which
    // belong to the parent's copy of this memory.
    unsafe { libc::_exit(127) }
}

enum Never {}

fn setup_and_exec(cfg: &InitConfig, sync: &SyncSocket) -> Result<Never> {
    tracing::debug!("child process in init(): container {} setup", cfg.id);
    security::set_non_dumpable()?;
    nix::unistd::setsid().ctx(|| "setsid".into())?;
    let spec = cfg.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("process must be set".into()))?;

    // The fifo is reached by path only before pivot_root: keep an O_PATH
    // fd and reopen it through /proc/self/fd when waiting for `start`.
    let fifo = nix::fcntl::open(
        cfg.fifo_path,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", cfg.fifo_path.display()))?;
    // SAFETY: fresh fd from open.
    let fifo = unsafe { OwnedFd::from_raw_fd(fifo) };

    let ctx = RootfsContext {
        spec,
        rootfs: cfg.rootfs,
        bundle: cfg.bundle,
        cgroup: cfg.cgroup,
        own_mount_ns: crate::spec::namespaces(spec)
            .iter()
            .any(|(t, _)| *t == LinuxNamespaceType::Mount),
        bind_sources: &cfg.bind_sources,
        new_userns: has_new(spec, LinuxNamespaceType::User),
        new_cgroupns: has_new(spec, LinuxNamespaceType::Cgroup),
    };
    let root_fd = rootfs::prepare(&ctx)?;
    sync.send(&Msg::MountsDone)?;
    sync.expect(Msg::HooksDone)?;
    hooks::run(
        "createContainer",
        spec.hooks()
            .as_ref()
            .and_then(|h| h.create_container().as_ref()),
        &cfg.hook_state,
    )?;
    drop(root_fd);
    if ctx.own_mount_ns {
        rootfs::enter(cfg.rootfs, cfg.no_pivot)?;
    } else {
        rootfs::enter_shared(cfg.rootfs)?;
    }
    rootfs::finalize(spec)?;

    if has_new(spec, LinuxNamespaceType::Uts) {
        rootfs::set_names(spec)?;
    }
    rootfs::sysctls(spec)?;
    rootfs::protect_paths(spec)?;
    if !cfg.no_new_keyring {
        join_session_keyring(cfg.id);
    }
    if process.terminal() == Some(true) {
        let sock = cfg.console.ok_or_else(|| {
            Error::Container(
                "cannot allocate tty if runtime will detach without setting console socket".into(),
            )
        })?;
        crate::console::setup_pty(
            sock,
            process.user().uid(),
            crate::console::size_of(process),
            false,
        )?;
    }
    if let Some(sock) = cfg.console {
        let _ = nix::unistd::close(sock);
    }
    nix::unistd::chdir(process.cwd())
        .ctx(|| format!("chdir to cwd {:?} set in config.json", process.cwd()))?;
    setup::set_rlimits(process)?;
    super::scheduling::apply(process)?;
    setup::set_personality(spec)?;

    let (exe, env) = setup::resolve_program(process, &cfg.extra_env)?;
    // The fd work comes before any seccomp filter: whatever the init does
    // after the filter is loaded must be allowed by a profile that only
    // allows the user's process (old profiles lack close_range).
    setup::cloexec_from(3 + cfg.preserve_fds)?;
    let seccomp = cfg.seccomp.as_ref();
    // The listener fd stays open until exec closes it (close-on-exec): a
    // close of ours could be a notified syscall, waiting on the agent.
    let listener = setup::drop_privileges(process, seccomp)?;
    if let Some(l) = &listener {
        sync.send_fd(&Msg::SeccompFd, l.as_raw_fd())?;
    }

    tracing::debug!("init: closing the pipe to signal completion (ready; waiting for start)");
    sync.send_plain(&Msg::Ready)?;
    // Held open (close-on-exec) until the exec: `start` waits for its end
    // of the fifo to close before it runs the poststart hooks, which the
    // spec runs after the user's process is executed.
    let _started = wait_for_start(&fifo)?;
    hooks::run(
        "startContainer",
        spec.hooks()
            .as_ref()
            .and_then(|h| h.start_container().as_ref()),
        &cfg.hook_state,
    )?;
    Err(setup::exec_program(&exe, process, &env))
}

/// Block until `start` opens the fifo for reading, then tell it we go on.
/// The write end is returned, to stay open until the exec closes it.
fn wait_for_start(fifo: &OwnedFd) -> Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let fd = nix::fcntl::open(
        path.as_str(),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open exec fifo".into())?;
    // SAFETY: fresh fd from open.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::unistd::write(&fd, b"0").ctx(|| "write exec fifo".into())?;
    Ok(fd)
}

/// A session keyring of the container's own, so containers do not share
/// the host's keys. Failures (no keyctl in this kernel) are not fatal.
fn join_session_keyring(id: &str) {
    let Ok(name) = std::ffi::CString::new(format!("_ses.{id}")) else {
        return;
    };
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING takes a NUL-terminated name.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            libc::KEYCTL_JOIN_SESSION_KEYRING,
            name.as_ptr(),
        )
    };
    if rc < 0 {
        tracing::debug!("join session keyring: {}", std::io::Error::last_os_error());
    }
}
