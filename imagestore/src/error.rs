//! Typed errors of the image store. Messages name the object and the
//! problem in the user's terms (digest mismatch, unsafe path, ...).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid digest {0:?}: want sha256:<64 hex digits>")]
    InvalidDigest(String),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("blob {0} not found in the content store")]
    BlobNotFound(String),
    #[error("invalid reference {0:?}: {1}")]
    InvalidReference(String, String),
    #[error("image {0:?} not found")]
    ImageNotFound(String),
    #[error("unsafe path in layer {layer}: {path:?}: {why}")]
    UnsafePath {
        layer: String,
        path: String,
        why: String,
    },
    #[error("bad layer {layer}: {msg}")]
    BadLayer { layer: String, msg: String },
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("bad image: {0}")]
    BadImage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Sys { context: String, source: nix::Error },
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{0} is in use by {1}")]
    InUse(String, String),
    #[error("the container name \"{0}\" is already in use")]
    NameInUse(String),
    #[error("no such container: {0}")]
    ContainerNotFound(String),
    #[error("store at {0} is corrupt: {1}")]
    Corrupt(PathBuf, String),
}

pub type Result<T> = std::result::Result<T, Error>;

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
