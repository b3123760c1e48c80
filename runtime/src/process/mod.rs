//! Process creation: the fork into namespaces, the sync protocol with the
//! parent, the container init and the final exec.
//!
//! Shape of a create: the parent makes the cgroup and forks stage 1, which
//! moves itself into it (v1) or is born in it (v2, clone3); the parent
//! sends Go; stage 1 joins namespaces given by path, unshares
//! a user namespace (the parent writes its id maps), unshares the rest and
//! forks the init (PID 1 of a new PID namespace), reports its pid, exits.
//! The init is reparented to the nearest subreaper (containerd's shim,
//! conmon, or `run` itself), as with runc.

pub mod init;
pub mod namespaces;
pub mod scheduling;
pub mod setup;
pub mod sync;

use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::LinuxNamespaceType;

use crate::error::{Context, Result};
use sync::{Msg, SyncSocket};

/// Fork; the child runs `child` and never returns to the caller's code.
pub fn fork_child(child: impl FnOnce() -> i32) -> Result<Pid> {
    // SAFETY: no other thread lives at a fork (hooks run in the forked
    // children or after; create's cgroup-manager thread starts after the
    // stage 1 fork and is joined, or the create has failed, before
    // anything forks again), so the child may run ordinary code; it
    // leaves through _exit.
    match unsafe { nix::unistd::fork() }.ctx(|| "fork".into())? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            let code = child();
            // SAFETY: _exit skips destructors that belong to the parent.
            unsafe { libc::_exit(code) }
        }
    }
}

/// `fork_child`, with the child born in the cgroup v2 directory `cgroup`
/// (clone3 with CLONE_INTO_CGROUP). None when the kernel has no clone3 or
/// no CLONE_INTO_CGROUP (before 5.7): the caller forks and places the
/// child itself then.
pub fn fork_child_into(
    cgroup: std::os::fd::BorrowedFd,
    child: impl FnOnce() -> i32,
) -> Result<Option<Pid>> {
    // The kernel's struct clone_args, up to `cgroup` (CLONE_ARGS_SIZE_VER2).
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&cgroup);
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: u64::try_from(fd).unwrap_or_default(),
        ..Default::default()
    };
    // SAFETY: clone3 without CLONE_VM is a fork: the child gets a copy of
    // this address space, and the struct is read before it returns. As
    // in `fork_child`, no other thread lives at this point, so the child
    // may run ordinary code; it leaves through _exit.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match rc {
        0 => {
            let code = child();
            // SAFETY: _exit skips destructors that belong to the parent.
            unsafe { libc::_exit(code) }
        }
        pid if pid > 0 => Ok(Some(Pid::from_raw(pid as i32))),
        _ => match nix::errno::Errno::last() {
            nix::errno::Errno::ENOSYS | nix::errno::Errno::E2BIG => Ok(None),
            e => Err(e).ctx(|| "clone3 into the container's cgroup".into()),
        },
    }
}

/// Fork `child` on its way into the container's cgroup by `placement`
/// (None: the container has no cgroup of its own). Returns its pid and
/// whether it is placed (or places itself); when not (a v2 kernel
/// without CLONE_INTO_CGROUP) the caller must place it.
pub fn fork_placed(
    placement: Option<&crate::cgroups::Placement>,
    child: impl Fn() -> i32,
) -> Result<(Pid, bool)> {
    use crate::cgroups::Placement;
    match placement {
        None | Some(Placement::SelfJoin(_)) => Ok((fork_child(child)?, true)),
        Some(Placement::Born(dir)) => {
            match fork_child_into(std::os::fd::AsFd::as_fd(dir), &child)? {
                Some(pid) => Ok((pid, true)),
                None => Ok((fork_child(child)?, false)),
            }
        }
    }
}

/// Stage 1 of a create: namespaces, then fork the init.
///
/// Namespace creation (a network namespace is the slow one) overlaps with
/// the parent's cgroup setup: only the cgroup namespace, and the fork of
/// the init, wait for the parent's Go, so the init starts inside the
/// container's cgroup and a new cgroup namespace is rooted there.
pub fn stage1(cfg: &init::InitConfig, sync: &SyncSocket) -> i32 {
    let result = (|| -> Result<()> {
        // Into the cgroup first, while still in the host's namespaces.
        crate::cgroups::join_self(&cfg.cgroup_tasks)?;
        let wanted = crate::spec::namespaces(cfg.spec);
        let joins: Vec<(LinuxNamespaceType, PathBuf)> = wanted
            .iter()
            .filter_map(|(t, p)| p.clone().map(|p| (*t, p)))
            .collect();
        let fds = namespaces::open_joins(&joins)?;
        namespaces::join_all(&fds)?;
        drop(fds);
        let mut go_seen = false;
        let mut flags = CloneFlags::empty();
        let mut late = CloneFlags::empty();
        for (t, p) in &wanted {
            match (t, p) {
                (_, Some(_)) => {}
                (LinuxNamespaceType::User, None) => go_seen |= namespaces::unshare_user(sync)?,
                (LinuxNamespaceType::Cgroup, None) => late |= namespaces::clone_flag(*t),
                (_, None) => flags |= namespaces::clone_flag(*t),
            }
        }
        namespaces::unshare_rest(flags)?;
        if flags.contains(namespaces::clone_flag(LinuxNamespaceType::Time)) {
            namespaces::write_time_offsets(cfg.spec)?;
        }
        if !go_seen {
            sync.expect(Msg::Go)?;
        }
        namespaces::unshare_rest(late)?;
        let pid = fork_child(|| init::run(cfg, sync))?;
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

/// Make this process the subreaper of its descendants, so that a
/// grandchild (the container init) is reparented to us when stage 1 exits.
pub fn become_subreaper() -> Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    nix::errno::Errno::result(rc)
        .map(drop)
        .ctx(|| "become child subreaper".into())
}
