//! The container lifecycle, one operation a file. Each takes the runtime
//! root and typed options and returns typed results; printing is the CLI's.

pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod kill;
pub mod pause;
pub mod run;
pub mod start;
pub mod state;

use std::path::Path;

use crate::error::{Context, Result};

/// Write a pid file atomically (temp file + rename), as runc does, so a
/// reader never sees a partial number.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = std::path::absolute(path).ctx(|| format!("pid file {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string()).ctx(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).ctx(|| format!("rename {}", path.display()))
}
