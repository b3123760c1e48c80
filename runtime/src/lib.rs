//! strata-runtime: an OCI runtime with runc's command-line contract.
//!
//! The library holds the whole runtime; `main.rs` parses runc's flags and
//! calls into [`container`].

pub mod cgroups;
pub mod cli;
pub mod console;
pub mod container;
pub mod criu;
pub mod error;
pub mod hooks;
pub mod logging;
pub mod process;
pub mod rootfs;
pub mod security;
pub mod signals;
pub mod spec;
pub mod state;
pub mod template;

/// The runtime-spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

/// The git commit this build is from ("unknown" outside a checkout).
pub const COMMIT: &str = env!("STRATA_COMMIT");

/// Default state root, as runc's /run/runc.
pub fn default_root() -> std::path::PathBuf {
    if nix::unistd::geteuid().is_root() {
        return "/run/strata-runtime".into();
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => std::path::PathBuf::from(d).join("strata-runtime"),
        None => std::env::temp_dir().join(format!("strata-runtime-{}", nix::unistd::geteuid())),
    }
}
