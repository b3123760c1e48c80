//! The build cache: a step's cache key (see the builder's `cache` room)
//! to the layer it made, or to "no layer" for a step that changed nothing.
//! Entries are GC roots: their blobs and snapshots outlive the images
//! that used them, until `builder prune`. An entry is written only after
//! its layer blob and snapshot are published, so an interrupted build
//! leaves only whole steps behind.

use rusqlite::{OptionalExtension, params};

use crate::digest::Digest;
use crate::error::Result;
use crate::metadata::LayerRow;
use crate::store::Store;

/// What a cached step produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cached {
    /// The step changed no file.
    Empty,
    Layer(LayerRow),
}

/// blob, media type, diff_id, chain id (all NULL for an empty step).
type CacheRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl Store {
    /// The cached result of `key`, if it and everything it needs (blob,
    /// snapshot) are still here.
    pub fn cache_get(&self, key: &str) -> Result<Option<Cached>> {
        let row: Option<CacheRow> = self
            .db()
            .conn()
            .query_row(
                "SELECT blob, media_type, diff_id, chain_id FROM build_cache WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some(row) = row else { return Ok(None) };
        let hit = match row {
            (Some(blob), Some(mt), Some(diff), Some(chain)) => {
                let l = LayerRow {
                    blob: blob.parse()?,
                    media_type: mt,
                    diff_id: diff.parse()?,
                    chain_id: chain.parse()?,
                };
                if !self.content.exists(&l.blob) || self.chain_dir(&l.chain_id)?.is_none() {
                    return Ok(None);
                }
                Cached::Layer(l)
            }
            _ => Cached::Empty,
        };
        self.db().conn().execute(
            "UPDATE build_cache SET used = ?2 WHERE key = ?1",
            params![key, chrono::Utc::now().to_rfc3339()],
        )?;
        Ok(Some(hit))
    }

    pub fn cache_put(&mut self, key: &str, value: &Cached) -> Result<()> {
        let tx = self.db_mut().tx()?;
        let now = chrono::Utc::now().to_rfc3339();
        match value {
            Cached::Empty => tx.execute(
                "INSERT OR REPLACE INTO build_cache (key, used) VALUES (?1, ?2)",
                params![key, now],
            )?,
            Cached::Layer(l) => tx.execute(
                "INSERT OR REPLACE INTO build_cache (key, blob, media_type, diff_id, chain_id, used) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![key, l.blob.to_string(), l.media_type, l.diff_id.to_string(), l.chain_id.to_string(), now],
            )?,
        };
        tx.commit()?;
        Ok(())
    }

    /// `builder prune`: forget cache entries (all, or those unused since
    /// `before`, RFC 3339), then collect what only they kept. Returns
    /// (entries, blobs, snapshots) removed.
    pub fn cache_prune(&mut self, before: Option<&str>) -> Result<(usize, usize, usize)> {
        let tx = self.db_mut().tx()?;
        let n = match before {
            Some(t) => tx.execute("DELETE FROM build_cache WHERE used < ?1", [t])?,
            None => tx.execute("DELETE FROM build_cache", [])?,
        };
        tx.commit()?;
        let (b, s) = self.gc()?;
        Ok((n, b, s))
    }

    /// Number of cache entries and their layers' bytes.
    pub fn cache_usage(&self) -> Result<(usize, u64)> {
        let mut stmt = self.db().conn().prepare("SELECT blob FROM build_cache")?;
        let blobs: Vec<Option<String>> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut size = 0;
        for b in blobs.iter().flatten() {
            if let Ok(d) = b.parse::<Digest>() {
                size += self.content.size(&d).unwrap_or(0);
            }
        }
        Ok((blobs.len(), size))
    }
}
