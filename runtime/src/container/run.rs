//! `run`: create + start, then (unless detached) wait for the container,
//! forwarding signals and proxying a terminal, and delete it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use super::create::{CreateOptions, create_from};
use super::delete::delete;
use super::start::start;
use crate::error::{Error, Result};
use crate::signals;
use crate::state::Root;

pub fn run(root: &Root, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    let mut opts = opts.clone();
    let mut proxy_end: Option<OwnedFd> = None;
    let bundle = crate::spec::load_bundle(&opts.bundle)?;
    if !detach {
        crate::process::become_subreaper()?;
        signals::block_all()?;
        let tty = bundle.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
        if tty && opts.console_socket.is_none() {
            let (a, b) = crate::console::proxy_pair()?;
            opts.console_fd = Some(Arc::new(a));
            proxy_end = Some(b);
        }
    }
    let st = create_from(root, &opts, &bundle)?;
    opts.console_fd = None;
    let pty = match proxy_end {
        Some(end) => {
            let master = crate::console::recv_fd(end.as_raw_fd())?;
            // Before start: nothing was written yet.
            crate::console::clear_onlcr(&master)?;
            Some(master)
        }
        None => None,
    };
    if let Err(e) = start(root, &opts.id) {
        let _ = delete(root, &opts.id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let code = signals::wait_forwarding(st.pid, pty);
    if !keep && let Err(e) = delete(root, &opts.id, true) {
        tracing::warn!("delete after run: {e}");
    }
    code.map_err(|e| Error::Container(format!("waiting for container: {e}")))
}
