//! `pause` and `resume` through the freezer cgroup.

use crate::error::{Error, Result};
use crate::state::{Root, Status};

pub fn set_paused(root: &Root, id: &str, paused: bool) -> Result<()> {
    let _lock = root.lock(id)?;
    let st = root.load(id)?;
    let status = st.status(&root.dir(id));
    match (paused, status) {
        (true, Status::Running) | (false, Status::Paused) => {}
        (true, Status::Paused) => return Err(Error::Container("container already paused".into())),
        (false, Status::Running) => return Err(Error::Container("container not paused".into())),
        _ => return Err(Error::NotRunning),
    }
    let cg = st
        .cgroup()
        .ok_or_else(|| Error::Cgroup("container has no cgroup".into()))?;
    crate::cgroups::freeze(&cg, id, paused)
}
