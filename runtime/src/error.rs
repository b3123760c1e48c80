//! Typed errors of the runtime library. Their `Display` text is what users
//! (and containerd / conmon, which match substrings) see, so the wording
//! follows runc's where a peer depends on it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container id must not be empty")]
    EmptyId,
    #[error("invalid container id {0:?}: only [a-zA-Z0-9_+.-] allowed, and not . or ..")]
    InvalidId(String),
    #[error("container with id exists: {0}")]
    Exists(String),
    #[error("container \"{0}\" does not exist")]
    NotExist(String),
    #[error("container not running")]
    NotRunning,
    /// The cgroup tree is not ours to write (rootless).
    #[error("{0}")]
    CgroupDenied(String),
    #[error("sync: peer closed while waiting for {0}")]
    SyncClosed(String),
    #[error("cannot start a container that has stopped")]
    StartStopped,
    #[error("cannot start an already running container")]
    AlreadyRunning,
    #[error("cannot delete container {id} that is not stopped: {status}")]
    NotStopped { id: String, status: String },
    #[error("cannot read {path}: {source}")]
    ReadSpec {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("malformed config.json {path}: {msg}")]
    MalformedSpec { path: PathBuf, msg: String },
    #[error("invalid config.json: {0}")]
    InvalidSpec(String),
    #[error("invalid process spec: {0}")]
    InvalidProcess(String),
    #[error("rootfs ({0}) does not exist")]
    MissingRootfs(PathBuf),
    #[error("unknown signal {0:?}")]
    UnknownSignal(String),
    #[error("container state is corrupt ({path}): {msg}")]
    CorruptState { path: PathBuf, msg: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Sys { context: String, source: nix::Error },
    #[error("cgroups: {0}")]
    Cgroup(String),
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("{0}")]
    Container(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Attach a human context to io / nix errors, the way `anyhow::Context` does
/// for binaries, while keeping the error typed.
pub trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sys {
            context: context(),
            source,
        })
    }
}
