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
            out.push(st.view(&root.dir(&id)));
        }
    }
    Ok(out)
}
