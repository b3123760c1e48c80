//! Where Strata keeps its data: `/var/lib/strata` and `/run/strata` for
//! root; for a rootless user (see `rootless`) `$XDG_DATA_HOME/strata`
//! (or `~/.local/share/strata`) and `$XDG_RUNTIME_DIR/strata`.

use std::path::PathBuf;

pub fn default_root() -> PathBuf {
    if let Some(rl) = crate::rootless::mode() {
        return rl.data_dir.clone();
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/strata");
    }
    crate::rootless::Rootless::for_user(
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
    .data_dir
}

/// The run-time state of the default root: containers' runtime state,
/// network namespaces, the DNS servers' records.
pub fn default_run_dir() -> PathBuf {
    match crate::rootless::mode() {
        Some(rl) => rl.run_dir.clone(),
        None => PathBuf::from("/run/strata"),
    }
}
