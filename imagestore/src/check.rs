//! `system check`: re-verify what the store holds and sweep debris a
//! killed process left (temp dirs, temp blobs, draft snapshots).

use std::path::Path;

use crate::error::{Context, Result};
use crate::store::{Store, store_lock};

impl Store {
    /// Re-verify every blob and snapshot record; remove debris left by a
    /// killed load (temp dirs, temp blobs). Returns the problems found.
    pub fn check(&mut self) -> Result<Vec<String>> {
        let _lock = store_lock(&self.root, true)?;
        let mut problems = Vec::new();
        for d in self.content.list()? {
            if let Err(e) = self.content.verify(&d) {
                problems.push(e.to_string());
            }
        }
        for img in self.db.images()? {
            for d in [&img.id, &img.manifest] {
                if !self.content.exists(d) {
                    problems.push(format!("image {}: blob {d} is missing", img.id.short()));
                }
            }
            for l in self.db.layers(&img.id)? {
                if !self.content.exists(&l.blob) {
                    problems.push(format!(
                        "image {}: layer blob {} is missing",
                        img.id.short(),
                        l.blob
                    ));
                }
                match self.db.snapshot_id(&l.chain_id)? {
                    Some(sid) if self.snapshot_dir(sid).is_dir() => {}
                    _ => problems.push(format!(
                        "image {}: snapshot for {} is missing",
                        img.id.short(),
                        l.chain_id
                    )),
                }
            }
        }
        let known: std::collections::HashSet<String> = self
            .db
            .snapshots()?
            .into_iter()
            .map(|(sid, _, _)| sid.to_string())
            .collect();
        for e in std::fs::read_dir(self.root.join("snapshots"))
            .ctx(|| "read snapshots".into())?
            .flatten()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("tmp-") || !known.contains(&n) {
                // Debris of an interrupted load; nobody else uses it unless
                // its writer is still alive.
                let pid: Option<i32> = n
                    .strip_prefix("tmp-")
                    .and_then(|r| r.split('-').next())
                    .and_then(|p| p.parse().ok());
                if pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists()) {
                    continue;
                }
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        for e in std::fs::read_dir(self.root.join("tmp"))
            .ctx(|| "read tmp".into())?
            .flatten()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            let pid: Option<i32> = n
                .strip_prefix("load-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse().ok());
            if !pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        self.content.clean_ingest()?;
        Ok(problems)
    }
}
