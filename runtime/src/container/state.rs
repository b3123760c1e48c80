//! `state` and `list`.

use crate::error::Result;
use crate::state::{Root, StateView};

pub fn state(root: &Root, id: &str) -> Result<StateView> {
    Ok(root.load(id)?.view(&root.dir(id)))
}

pub fn list(root: &Root) -> Result<Vec<StateView>> {
    let mut out = Vec::new();
    for id in root.ids()? {
        // A container deleted while we list is simply not listed.
        if let Ok(st) = root.load(&id) {
            let dir = root.dir(&id);
            let mut view = st.view(&dir);
            view.owner = owner_of(&dir);
            out.push(view);
        }
    }
    Ok(out)
}

/// The user who owns a container's state directory, by name as runc's
/// `list` shows it (the uid when the name is unknown).
fn owner_of(dir: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(dir) else {
        return String::new();
    };
    let uid = nix::unistd::Uid::from_raw(meta.uid());
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => format!("#{uid}"),
    }
}
