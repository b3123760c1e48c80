//! `create`: everything up to the init waiting on the exec fifo.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxNamespaceType;

use crate::cgroups;
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::process::init::InitConfig;
use crate::process::namespaces;
use crate::process::sync::{self, Msg};
use crate::state::{self, ContainerState, EXEC_FIFO, Root, Status};

#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// An already connected console socket (foreground `run` with a tty).
    pub console_fd: Option<std::sync::Arc<OwnedFd>>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub systemd_cgroup: bool,
}

/// Undo a half-made container (create, restore): kill what was started,
/// remove the cgroup and the state directory. Disarmed once it is made.
pub(super) struct Cleanup<'a> {
    pub root: &'a Root,
    pub id: String,
    pub pids: Vec<i32>,
    pub cgroup: Option<cgroups::Cgroup>,
    pub armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for pid in &self.pids {
            let _ = nix::sys::signal::kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        for pid in &self.pids {
            // Reap our children; the init may be someone else's by now.
            let _ = nix::sys::wait::waitpid(Pid::from_raw(*pid), None);
        }
        if let Some(cg) = &self.cgroup
            && let Err(e) = cgroups::remove(cg, &self.id)
        {
            tracing::warn!("cleanup: {e}");
        }
        let _ = self.root.remove(&self.id);
    }
}

/// What a container without a mount namespace of its own cannot have: it
/// would remount the caller's mounts.
fn check_shared_mount_ns(spec: &oci_spec::runtime::Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let paths = linux.is_some_and(|l| {
        l.masked_paths().as_ref().is_some_and(|p| !p.is_empty())
            || l.readonly_paths().as_ref().is_some_and(|p| !p.is_empty())
    });
    if paths {
        return Err(Error::InvalidSpec(
            "maskedPaths and readonlyPaths need a mount namespace of the container's own (add {\"type\": \"mount\"} to linux.namespaces)".into(),
        ));
    }
    if linux.is_some_and(|l| l.rootfs_propagation().is_some()) {
        return Err(Error::InvalidSpec(
            "rootfsPropagation needs a mount namespace of the container's own".into(),
        ));
    }
    if spec
        .root()
        .as_ref()
        .is_some_and(|r| r.readonly() == Some(true))
    {
        return Err(Error::InvalidSpec(
            "a read-only root needs a mount namespace of the container's own".into(),
        ));
    }
    Ok(())
}

pub fn create(root: &Root, opts: &CreateOptions) -> Result<ContainerState> {
    create_from(root, opts, &crate::spec::load_bundle(&opts.bundle)?)
}

/// `create` with the bundle already loaded (`run` reads it first).
pub fn create_from(
    root: &Root,
    opts: &CreateOptions,
    bundle: &crate::spec::Bundle,
) -> Result<ContainerState> {
    let spec = &bundle.spec;
    crate::security::lsm::check(spec.process().as_ref(), Some(spec))?;
    let wanted = crate::spec::namespaces(spec);
    if !wanted.iter().any(|(t, _)| *t == LinuxNamespaceType::Mount) {
        // The runtime-spec: a namespace left out is the runtime's own.
        // Then the mounts go into the caller's namespace and the process
        // is chrooted; what would change the caller's own mounts is
        // refused, as runc does.
        check_shared_mount_ns(spec)?;
    }
    if opts.systemd_cgroup && !cgroups::systemd::running() {
        return Err(Error::Cgroup(
            "systemd is not running on this host (no /run/systemd/system): --systemd-cgroup cannot be used".into(),
        ));
    }
    let dir = root.claim(&opts.id)?;
    let mut cleanup = Cleanup {
        root,
        id: opts.id.clone(),
        pids: Vec::new(),
        cgroup: None,
        armed: true,
    };
    let _lock = root.lock(&opts.id)?;

    let cgroup_path = cgroups::path_for(spec, &opts.id, opts.systemd_cgroup)?;
    // With the systemd driver the cgroup is a scope that systemd makes
    // around stage 1 (below), not a directory of ours.
    let scope = if opts.systemd_cgroup {
        Some(cgroups::systemd::unit_of(&cgroup_path)?)
    } else {
        None
    };
    let cgroup = cgroups::Cgroup {
        path: cgroup_path.clone(),
        v2_root: cgroups::v2_root_for_new()?,
        systemd_unit: scope.as_ref().map(|(unit, _)| unit.clone()),
    };
    let mut st = ContainerState::new(&opts.id, bundle, &cgroup);
    root.save_creating(&st)?;
    let fifo_path = dir.join(EXEC_FIFO);
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o622))
        .ctx(|| format!("mkfifo {}", fifo_path.display()))?;
    // mkfifo honours the umask; the init may run as any user.
    std::os::unix::fs::chown(&fifo_path, Some(0), Some(0)).ok();
    nix::sys::stat::fchmodat(
        None,
        &fifo_path,
        Mode::from_bits_truncate(0o622),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .ctx(|| "chmod exec fifo".into())?;

    let console: Option<OwnedFd> = match &opts.console_socket {
        Some(p) => Some(crate::console::connect(p)?),
        None => None,
    };
    let console_raw = console
        .as_ref()
        .map(|c| c.as_raw_fd())
        .or(opts.console_fd.as_ref().map(|c| c.as_raw_fd()));

    // Socket activation (LISTEN_FDS) and --preserve-fds keep fds open.
    let mut extra_env = Vec::new();
    let mut preserve = opts.preserve_fds;
    if let Some(n) = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        extra_env.push(format!("LISTEN_FDS={n}"));
        extra_env.push("LISTEN_PID=1".to_string());
        if let Ok(names) = std::env::var("LISTEN_FDNAMES") {
            extra_env.push(format!("LISTEN_FDNAMES={names}"));
        }
        preserve = preserve.max(n);
    }

    // Before the cleanup owns it: a cgroup refused here is not ours.
    cgroups::precheck(&cgroup, spec)?;
    // cgroup before anything runs in the namespaces, so that the cgroup
    // namespace (if any) is rooted at the container's cgroup.
    cleanup.cgroup = Some(cgroup.clone());
    let prepared = if scope.is_some() {
        Ok(None)
    } else {
        cgroups::prepare(&cgroup).map(Some)
    };
    let placement = match prepared {
        Ok(p) => p,
        // Rootless, as runc: without access to the cgroup tree the
        // container runs in ours, unless it asked for limits.
        Err(Error::CgroupDenied(e)) if namespaces::rootless() => {
            if cgroups::limits_requested(spec) {
                return Err(Error::Cgroup(format!(
                    "rootless container cannot set resource limits: they need a cgroup delegated to this user (a cgroup v2 subtree it may write, as systemd's Delegate=yes gives), and there is none here: {e}"
                )));
            }
            cleanup.cgroup = None;
            st.cgroup_path = None;
            st.cgroup2_root = None;
            None
        }
        Err(e) => return Err(e),
    };
    let own_cgroup = (placement.is_some() || scope.is_some()).then_some(&cgroup);
    let cfg = InitConfig {
        id: &opts.id,
        spec,
        bundle: &bundle.dir,
        rootfs: &bundle.rootfs,
        cgroup: own_cgroup,
        cgroup_tasks: placement
            .as_ref()
            .map(|p| p.self_join_tasks().to_vec())
            .unwrap_or_default(),
        fifo_path: &fifo_path,
        console: console_raw,
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        preserve_fds: preserve,
        extra_env,
        // The create-time hooks (prestart, createRuntime, createContainer)
        // see `created`: the runtime-spec runs them after the environment
        // is made (lifecycle step 2, which ends `creating`) and does not
        // say which of the two they see; crun and the runtime-tools
        // validation say `created`.
        hook_state: state::hook_state(&st, Status::Created),
        seccomp: crate::security::seccomp::for_spec(spec, &root.path)?,
        bind_sources: if crate::spec::namespaces(spec)
            .iter()
            .any(|(t, p)| *t == LinuxNamespaceType::User && p.is_none())
        {
            crate::rootfs::mounts::open_bind_sources(spec, &bundle.dir)
        } else {
            Vec::new()
        },
    };
    let listener = cfg.seccomp.as_ref().and_then(|c| c.listener.clone());
    let (parent_sock, child_sock) = sync::pair()?;
    let stage1_main = || {
        // The child must not hold the parent's end, or the parent would
        // never see EOF when the child dies.
        let _ = nix::unistd::close(parent_sock.raw());
        // Worded as runc's debug lines are (its stage 1 is nsexec), for
        // the tools and tests that look for them.
        tracing::debug!(
            "nsexec container setup: stage 1 (pid {}) joins or makes the namespaces",
            std::process::id()
        );
        crate::process::stage1(&cfg, &child_sock)
    };
    let (stage1, placed) = crate::process::fork_placed(placement.as_ref(), stage1_main)?;
    drop(placement);
    drop(child_sock);
    cleanup.pids.push(stage1.as_raw());
    drop(console);

    // libcgroups' manager (needed for the resources) takes most of a
    // millisecond to find the hierarchies: a thread builds it while we
    // place the process and let stage 1 go. (No fork follows in this
    // process while the thread lives.)
    let mut manager = own_cgroup.map(|cg| {
        let (cg, id) = (cg.clone(), opts.id.clone());
        std::thread::spawn(move || cgroups::manager(&cg, &id))
    });
    if let Some((unit, slice)) = &scope {
        let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
        let v2 = cgroup.v2_root.is_some();
        cgroups::systemd::start(unit, slice, &opts.id, stage1.as_raw(), resources, v2)?;
    } else if !placed {
        cgroups::place(&cgroup, &opts.id, stage1.as_raw())?;
    }
    if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        std::fs::write(format!("/proc/{}/oom_score_adj", stage1), adj.to_string())
            .ctx(|| format!("set oom_score_adj {adj}"))?;
    }
    if let Err(e) = parent_sock.send(&Msg::Go) {
        // Stage 1 failed before it waited for us: its message says why.
        if let Ok(Some(Msg::Error(m))) = parent_sock.recv() {
            return Err(Error::Container(m));
        }
        return Err(e);
    }
    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());

    let linux = spec.linux().as_ref();
    let mut notify_fd = None;
    loop {
        let (msg, fd) = match parent_sock.recv_with_fd()? {
            Some((m, fd)) => (Some(m), fd),
            None => (None, None),
        };
        match msg {
            Some(Msg::SeccompFd) => {
                if fd.is_none() || listener.is_none() {
                    return Err(Error::Container(
                        "init sent a seccomp fd nobody listens for".into(),
                    ));
                }
                if st.pid != 0 {
                    // Now: the init may be waiting on the agent already.
                    if let (Some(fd), Some(l)) = (fd, listener.as_ref()) {
                        let hs = state::hook_state(&st, Status::Creating);
                        crate::security::seccomp::send_to_agent(l, &fd, st.pid, &hs)?;
                    }
                } else {
                    // Once the init's pid is known (below).
                    notify_fd = fd;
                }
            }
            Some(Msg::UsernsReady) => {
                let uid = namespaces::format_maps(linux.and_then(|l| l.uid_mappings().as_ref()));
                let gid = namespaces::format_maps(linux.and_then(|l| l.gid_mappings().as_ref()));
                namespaces::write_id_maps(stage1.as_raw(), &uid, &gid)?;
                parent_sock.send(&Msg::MapsWritten)?;
            }
            Some(Msg::Pid(pid)) => {
                st.pid = pid;
                cleanup.pids.push(pid);
            }
            Some(Msg::MountsDone) => {
                // Resources once the rootfs is built, as runc sets them:
                // a device cgroup closed earlier would race the init's
                // mknod of the default devices. The program cannot run
                // before this: the init waits for HooksDone.
                if let Some(m) = manager.take() {
                    let m = m
                        .join()
                        .map_err(|_| Error::Cgroup("cgroup manager thread panicked".into()))??;
                    cgroups::apply_with(&m, &cgroup, resources)?;
                }
                let hs = state::hook_state(&st, Status::Created);
                let h = spec.hooks().as_ref();
                hooks::run("prestart", h.and_then(|h| h.prestart().as_ref()), &hs)?;
                hooks::run(
                    "createRuntime",
                    h.and_then(|h| h.create_runtime().as_ref()),
                    &hs,
                )?;
                parent_sock.send(&Msg::HooksDone)?;
            }
            Some(Msg::Ready) => break,
            Some(Msg::Error(e)) => return Err(Error::Container(e)),
            Some(other) => {
                return Err(Error::Container(format!(
                    "unexpected message from init: {other:?}"
                )));
            }
            None => {
                return Err(Error::Container(
                    "container init exited before it was ready".into(),
                ));
            }
        }
    }
    // Stage 1 sends the init's pid right after forking it, but it may be
    // scheduled out long enough for the init to get here first (seen on a
    // loaded CI host): the pid is still on its way.
    while st.pid == 0 {
        match parent_sock.recv()? {
            Some(Msg::Pid(pid)) => {
                st.pid = pid;
                cleanup.pids.push(pid);
            }
            Some(Msg::Error(e)) => return Err(Error::Container(e)),
            Some(other) => {
                return Err(Error::Container(format!(
                    "unexpected message from init: {other:?}"
                )));
            }
            None => break,
        }
    }
    if let (Some(fd), Some(l)) = (notify_fd, listener.as_ref()) {
        let hs = state::hook_state(&st, Status::Creating);
        crate::security::seccomp::send_to_agent(l, &fd, st.pid, &hs)?;
    }
    let _ = nix::sys::wait::waitpid(stage1, None);
    let (start, _) = state::proc_stat(st.pid)
        .ok_or_else(|| Error::Container("container init died right after setup".into()))?;
    st.pid_start = start;
    root.save(&st)?;
    if let Some(pf) = &opts.pid_file {
        super::write_pid_file(pf, st.pid)?;
    }
    cleanup.armed = false;
    Ok(st)
}
