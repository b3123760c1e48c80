//! `delete`: remove a stopped (or created, or with --force any) container:
//! its processes, cgroup, state; poststop hooks run last.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::hooks;
use crate::signals;
use crate::state::{self, ContainerState, Root, Status};

pub fn delete(root: &Root, id: &str, force: bool) -> Result<()> {
    crate::state::validate_id(id)?;
    let st = match root.load(id) {
        Ok(st) => st,
        Err(Error::NotExist(_)) if root.dir(id).is_dir() => {
            // A create that died before writing state: nothing runs.
            return root.remove(id);
        }
        Err(Error::NotExist(_)) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    let _lock = root.lock(id)?;
    let status = st.status(&root.dir(id));
    match status {
        Status::Stopped | Status::Creating => {}
        Status::Created => kill_and_wait(&st)?,
        Status::Running | Status::Paused if force => {
            if status == Status::Paused
                && let Some(cg) = st.cgroup()
            {
                let _ = crate::cgroups::freeze(&cg, id, false);
            }
            kill_and_wait(&st)?;
        }
        Status::Running | Status::Paused => {
            return Err(Error::NotStopped {
                id: id.to_string(),
                status: status.to_string(),
            });
        }
    }
    destroy(root, &st)
}

fn kill_and_wait(st: &ContainerState) -> Result<()> {
    let _ = signals::send(st.pid, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    while st.init_alive() {
        if Instant::now() > deadline {
            return Err(Error::Container(format!(
                "container init {} did not die after SIGKILL",
                st.pid
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

fn destroy(root: &Root, st: &ContainerState) -> Result<()> {
    if let Some(cg) = st.cgroup() {
        // Processes left behind (no PID namespace) go with the cgroup.
        crate::cgroups::remove(&cg, &st.id)?;
    }
    let own_mount_ns = crate::spec::namespaces(&st.spec)
        .iter()
        .any(|(t, _)| *t == oci_spec::runtime::LinuxNamespaceType::Mount);
    if !own_mount_ns {
        crate::rootfs::unmount_shared(&st.rootfs);
    }
    let hs = state::hook_state(st, Status::Stopped);
    hooks::run_all(
        "poststop",
        st.spec.hooks().as_ref().and_then(|h| h.poststop().as_ref()),
        &hs,
    );
    root.remove(&st.id)
}
