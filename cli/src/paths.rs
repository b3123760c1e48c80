//! Where Strata keeps its data: `/var/lib/strata` for root,
//! `$XDG_DATA_HOME/strata` (or `~/.local/share/strata`) otherwise.

use std::path::PathBuf;

pub fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/strata");
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("strata");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/share/strata")
}
