//! `exec`: run another process in a running container's namespaces and
//! cgroup, with the container's seccomp profile.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Process};

use crate::error::{Context, Error, Result};
use crate::process::sync::{self, Msg, SyncSocket};
use crate::process::{namespaces, setup};
use crate::security::seccomp::Compiled;
use crate::state::{ContainerState, Root, Status};
use crate::{security, signals};

#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub id: String,
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    pub preserve_fds: u32,
    /// `--ignore-paused`: exec into a paused container (the process is
    /// frozen with it until resume).
    pub ignore_paused: bool,
    /// `--cgroup`: sub-cgroups of the container's to run in.
    pub sub_cgroups: Vec<String>,
}

/// Runs the process; returns its exit code, or 0 once started with detach.
pub fn exec(root: &Root, opts: &ExecOptions) -> Result<i32> {
    crate::spec::validate_process(&opts.process)?;
    let st = root.load(&opts.id)?;
    let status = st.status(&root.dir(&opts.id));
    match status {
        Status::Running | Status::Created => {}
        Status::Paused if opts.ignore_paused => {}
        Status::Paused => {
            return Err(Error::Container(
                "cannot exec in a paused container (use --ignore-paused to override)".into(),
            ));
        }
        _ => {
            return Err(Error::Container(
                "cannot exec in a stopped container".into(),
            ));
        }
    }
    let seccomp = crate::security::seccomp::for_spec(&st.spec, &root.path)?;
    let tty = opts.process.terminal() == Some(true);
    if !opts.detach {
        crate::process::become_subreaper()?;
        signals::block_all()?;
    }
    // Console: the caller's socket, or our own pair to proxy in the foreground.
    let (console, proxy_end): (Option<OwnedFd>, Option<OwnedFd>) = match (&opts.console_socket, tty)
    {
        (Some(p), true) => (Some(crate::console::connect(p)?), None),
        (None, true) if !opts.detach => {
            let (a, b) = crate::console::proxy_pair()?;
            (Some(a), Some(b))
        }
        (None, true) => {
            return Err(Error::Container(
                "cannot allocate tty if runtime will detach without setting console socket".into(),
            ));
        }
        _ => (None, None),
    };

    // Stage 1 joins the container's cgroup on its way in (see
    // cgroups::Placement); a container without one runs it as forked.
    let cgroup = st.cgroup();
    // Into a frozen cgroup only the process itself goes, once it runs: a
    // stage joining it would freeze before it could report.
    let frozen = status == Status::Paused;
    let placement = cgroup
        .as_ref()
        .filter(|_| !frozen)
        .map(crate::cgroups::prepare)
        .transpose()?;
    let tasks = match (&cgroup, opts.sub_cgroups.is_empty()) {
        (Some(cg), false) => crate::cgroups::sub_cgroup_tasks(cg, &opts.sub_cgroups)?,
        (None, false) => {
            return Err(Error::Cgroup(
                "exec --cgroup: the container has no cgroup".into(),
            ));
        }
        _ => placement
            .as_ref()
            .map(|p| p.self_join_tasks().to_vec())
            .unwrap_or_default(),
    };
    let (parent_sock, child_sock) = sync::pair()?;
    let console_raw = console.as_ref().map(|c| c.as_raw_fd());
    let stage1_main = || {
        // The child must not hold the parent's end, or the parent would
        // never see EOF when the child dies.
        let _ = nix::unistd::close(parent_sock.raw());
        join_and_fork(
            &st,
            opts,
            seccomp.as_ref(),
            console_raw,
            &tasks,
            &child_sock,
        )
    };
    let (stage1, placed) = crate::process::fork_placed(placement.as_ref(), stage1_main)?;
    drop(placement);
    drop(child_sock);
    drop(console);
    if let Some(cg) = cgroup.as_ref().filter(|_| !placed && !frozen)
        && let Err(e) = crate::cgroups::join(cg, &opts.id, stage1.as_raw())
    {
        let _ = nix::sys::signal::kill(stage1, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(stage1, None);
        return Err(e);
    }
    parent_sock.send(&Msg::Go)?;
    let mut pid = None;
    let mut failure = None;
    // EOF means every child end is closed: stage 1 exited and the process
    // exec'd (its end is close-on-exec).
    let listener = seccomp.as_ref().and_then(|c| c.listener.clone());
    // The notify fd (from the process) and its pid (from stage 1) come in
    // either order: the fd goes to the agent once both are here.
    let mut notify_fd = None;
    while let Some((msg, fd)) = parent_sock.recv_with_fd()? {
        match msg {
            Msg::Pid(p) => pid = Some(p),
            Msg::SeccompFd if fd.is_some() && listener.is_some() => notify_fd = fd,
            Msg::SeccompFd => failure = Some("a seccomp fd nobody listens for".into()),
            Msg::Error(e) => failure = Some(e),
            other => failure = Some(format!("unexpected message {other:?}")),
        }
    }
    let _ = nix::sys::wait::waitpid(stage1, None);
    if let Some(e) = failure {
        if let Some(p) = pid {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(p), None);
        }
        return Err(Error::Container(format!("exec failed: {e}")));
    }
    let pid = pid.ok_or_else(|| Error::Container("exec failed: process did not start".into()))?;
    if let (Some(fd), Some(l)) = (notify_fd, listener.as_ref()) {
        let hs = crate::state::hook_state(&st, Status::Running);
        crate::security::seccomp::send_to_agent(l, &fd, pid, &hs)
            .map_err(|e| Error::Container(format!("exec failed: {e}")))?;
    }
    if let Some(cg) = cgroup.as_ref().filter(|_| frozen) {
        crate::cgroups::join(cg, &opts.id, pid)?;
    }
    if let Some(pf) = &opts.pid_file {
        super::write_pid_file(pf, pid)?;
    }
    if opts.detach {
        return Ok(0);
    }
    let pty = match proxy_end {
        Some(end) => Some(crate::console::recv_fd(end.as_raw_fd())?),
        None => None,
    };
    signals::wait_forwarding(pid, pty)
}

/// Stage 1 of an exec: join the init's namespaces, fork the process.
fn join_and_fork(
    st: &ContainerState,
    opts: &ExecOptions,
    seccomp: Option<&Compiled>,
    console: Option<i32>,
    cgroup_tasks: &[PathBuf],
    sync: &SyncSocket,
) -> i32 {
    let result = (|| -> Result<()> {
        sync.expect(Msg::Go)?;
        tracing::debug!("nsexec container setup: exec stage 1 joins the container's namespaces");
        crate::cgroups::join_self(cgroup_tasks)?;
        let mut joins = Vec::new();
        for (t, _) in crate::spec::namespaces(&st.spec) {
            let path = PathBuf::from(format!("/proc/{}/ns/{}", st.pid, namespaces::proc_name(t)));
            if !namespaces::is_current(t, &path) {
                joins.push((t, path));
            }
        }
        let fds = namespaces::open_joins(&joins)?;
        // Re-check the init is ours after opening its ns files (pid reuse).
        if !st.init_alive() {
            return Err(Error::NotRunning);
        }
        namespaces::join_all(&fds)?;
        drop(fds);
        let in_new_userns = joins.iter().any(|(t, _)| *t == LinuxNamespaceType::User);
        let pid =
            crate::process::fork_child(|| exec_child(opts, seccomp, console, sync, in_new_userns))?;
        sync.send(&Msg::Pid(pid.as_raw()))
    })();
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = sync.send(&Msg::Error(e.to_string()));
            1
        }
    }
}

fn exec_child(
    opts: &ExecOptions,
    seccomp: Option<&Compiled>,
    console: Option<i32>,
    sync: &SyncSocket,
    userns: bool,
) -> i32 {
    let err = (|| -> Result<Error> {
        tracing::debug!("child process in init(): exec setup in {}", opts.id);
        security::set_non_dumpable()?;
        if userns {
            nix::unistd::setresgid(0.into(), 0.into(), 0.into())
                .ctx(|| "setgid 0 in user namespace".into())?;
            nix::unistd::setresuid(0.into(), 0.into(), 0.into())
                .ctx(|| "setuid 0 in user namespace".into())?;
        }
        let p = &opts.process;
        if p.terminal() == Some(true) {
            nix::unistd::setsid().ctx(|| "setsid".into())?;
            let sock = console.ok_or_else(|| Error::Container("no console socket".into()))?;
            // Our own foreground proxy (no --console-socket): runc's settings.
            let sane = opts.console_socket.is_none();
            crate::console::setup_pty(sock, p.user().uid(), crate::console::size_of(p), sane)?;
            let _ = nix::unistd::close(sock);
        }
        nix::unistd::chdir(p.cwd()).ctx(|| format!("chdir to cwd {:?}", p.cwd()))?;
        setup::set_rlimits(p)?;
        crate::process::scheduling::apply(p)?;
        let (exe, env) = setup::resolve_program(p, &[])?;
        // Before the filter: the profile need not allow close_range.
        setup::cloexec_from(3 + opts.preserve_fds)?;
        // Kept open until exec (see the init): no close after the filter.
        let listener = setup::drop_privileges(p, seccomp)?;
        if let Some(l) = &listener {
            sync.send_fd(&Msg::SeccompFd, l.as_raw_fd())?;
        }
        tracing::debug!("setns_init: about to exec {}", exe.display());
        Ok(setup::exec_program(&exe, p, &env))
    })();
    let msg = match err {
        Ok(e) | Err(e) => e.to_string(),
    };
    let _ = sync.send(&Msg::Error(msg));
    127
}
