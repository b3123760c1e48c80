//! Garbage collection: `image prune` and the blob/snapshot sweep that
//! every remove and `builder prune` ends with. Roots are images and build
//! cache entries (`Db::referenced_blobs` and the snapshot rows they keep).

use std::fs::File;

use nix::fcntl::{Flock, FlockArg};

use crate::digest::Digest;
use crate::error::{Context, Error, Result};
use crate::store::{Store, store_lock};

impl Store {
    /// `image prune`: remove images without a name that are not in use,
    /// then unreferenced blobs and snapshots. Returns the deleted ids.
    pub fn prune(&mut self, in_use: &dyn Fn(&Digest) -> bool) -> Result<Vec<Digest>> {
        let mounted: Vec<Digest> = self.mounted()?.into_iter().map(|(_, i)| i).collect();
        let dangling: Vec<Digest> = self
            .db
            .images()?
            .into_iter()
            .filter(|i| {
                i.names.is_empty()
                    && !mounted.contains(&i.id)
                    && !in_use(&i.id)
                    && !self.image_has_containers(&i.id).unwrap_or(true)
            })
            .map(|i| i.id)
            .collect();
        let tx = self.db.tx()?;
        for id in &dangling {
            tx.execute("DELETE FROM images WHERE id = ?1", [id.to_string()])?;
        }
        tx.commit()?;
        self.gc()?;
        Ok(dangling)
    }

    /// Remove blobs and snapshots no image references. Returns (blobs,
    /// snapshots) removed.
    pub fn gc(&mut self) -> Result<(usize, usize)> {
        let _lock = store_lock(&self.root, true)?;
        let referenced = self.db.referenced_blobs()?;
        let mut blobs = 0;
        for d in self.content.list()? {
            if !referenced.contains(&d) {
                self.content.delete(&d)?;
                blobs += 1;
            }
        }
        let mut snaps = 0;
        for (sid, chain) in self.db.unreferenced_snapshots()? {
            let lockf = File::create(self.root.join("locks").join(chain.hex()))
                .ctx(|| "create lock".into())?;
            let _lock =
                Flock::lock(lockf, FlockArg::LockExclusive).map_err(|(_, e)| Error::Sys {
                    context: "lock layer".into(),
                    source: e,
                })?;
            let tx = self.db.tx()?;
            tx.execute("DELETE FROM snapshots WHERE id = ?1", [sid])?;
            tx.commit()?;
            let dir = self.root.join("snapshots").join(sid.to_string());
            std::fs::remove_dir_all(&dir)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .ctx(|| format!("remove {}", dir.display()))?;
            let _ = std::fs::remove_file(self.root.join("locks").join(chain.hex()));
            snaps += 1;
        }
        self.content.clean_ingest()?;
        Ok((blobs, snaps))
    }
}
