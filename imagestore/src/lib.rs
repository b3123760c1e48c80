//! strata-imagestore: content-addressed blobs, image metadata, safe layer
//! unpacking into snapshots, and image import/export. Knows nothing of
//! processes (see DESIGN.md).

pub mod archive;
pub mod cache;
pub mod check;
pub mod commit;
pub mod containers;
pub mod content;
pub mod digest;
pub mod error;
pub mod gc;
pub mod gzip;
pub mod layer;
pub mod metadata;
pub mod mounts;
pub mod reference;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use error::{Error, Result};
pub use store::Store;
