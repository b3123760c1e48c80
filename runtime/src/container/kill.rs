//! `kill`: signal the init, or with --all every process of the container.

use crate::error::{Error, Result};
use crate::signals;
use crate::state::{Root, Status};

pub fn kill(root: &Root, id: &str, sig: i32, all: bool) -> Result<()> {
    let st = root.load(id)?;
    let status = st.status(&root.dir(id));
    // --all signals whatever is left in the cgroup, as runc does: on a
    // stopped container that is nothing (or processes its init left
    // behind without a PID namespace), and not an error. containerd's
    // shim sends `kill --all ID KILL` whenever a container exits.
    if all && status == Status::Stopped {
        if let Some(cg) = st.cgroup() {
            for pid in crate::cgroups::pids(&cg, id).unwrap_or_default() {
                let _ = signals::send(pid, sig);
            }
        }
        return Ok(());
    }
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(Error::NotRunning);
    }
    if all && let Some(cg) = st.cgroup() {
        for pid in crate::cgroups::pids(&cg, id)? {
            let _ = signals::send(pid, sig);
        }
        if status == Status::Paused && (sig == libc::SIGKILL || sig == libc::SIGTERM) {
            // A frozen task only acts on its signal once thawed.
            crate::cgroups::freeze(&cg, id, false)?;
        }
        return Ok(());
    }
    signals::send(st.pid, sig).map_err(|e| match e {
        nix::errno::Errno::ESRCH => Error::Container("no such process".into()),
        e => Error::Sys {
            context: format!("kill {}", st.pid),
            source: e,
        },
    })
}
