//! `strata.db`: images, their layers, names and snapshots, and the
//! containers that use images (GC roots), in SQLite (WAL).
//! Every change is one transaction.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::digest::Digest;
use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    manifest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    created TEXT,
    size INTEGER NOT NULL,
    added TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS layers (
    image TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    blob TEXT NOT NULL,
    media_type TEXT NOT NULL,
    diff_id TEXT NOT NULL,
    chain_id TEXT NOT NULL,
    PRIMARY KEY (image, idx)
);
CREATE TABLE IF NOT EXISTS names (
    name TEXT PRIMARY KEY,
    image TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chain_id TEXT NOT NULL UNIQUE,
    diff_id TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blob_sources (
    blob TEXT NOT NULL,
    host TEXT NOT NULL,
    repository TEXT NOT NULL,
    PRIMARY KEY (blob, host, repository)
);
CREATE TABLE IF NOT EXISTS mounts (
    path TEXT PRIMARY KEY,
    image TEXT NOT NULL REFERENCES images(id)
);
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,
    blob TEXT,
    media_type TEXT,
    diff_id TEXT,
    chain_id TEXT,
    used TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image TEXT NOT NULL REFERENCES images(id),
    created TEXT NOT NULL
);
";

pub struct Db {
    path: std::path::PathBuf,
    /// Open from `open` on; dropped by `suspend` (a process that waits
    /// for days needs no connection caches) and opened again on next use.
    conn: std::cell::OnceCell<Connection>,
}

/// A connection to an existing database, with the settings every one
/// of ours has.
fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// One image as stored.
#[derive(Clone, Debug)]
pub struct ImageRow {
    pub id: Digest,
    pub manifest: Digest,
    pub media_type: String,
    pub created: Option<String>,
    pub size: u64,
    pub names: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerRow {
    pub blob: Digest,
    pub media_type: String,
    pub diff_id: Digest,
    pub chain_id: Digest,
}

fn digest(s: String) -> rusqlite::Result<Digest> {
    s.parse().map_err(|e: Error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

impl Db {
    pub fn open(path: &Path) -> Result<Db> {
        // Switching a new database to WAL and creating the schema can fail
        // with SQLITE_BUSY without waiting when two processes do it at
        // once: serialise opening across processes.
        let lock_path = path.with_extension("db-init.lock");
        let lockf = std::fs::File::create(&lock_path).map_err(|e| Error::Io {
            context: format!("create {}", lock_path.display()),
            source: e,
        })?;
        let _lock = nix::fcntl::Flock::lock(lockf, nix::fcntl::FlockArg::LockExclusive).map_err(
            |(_, e)| Error::Sys {
                context: "lock database init".into(),
                source: e,
            },
        )?;
        let conn = connect(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Db {
            path: path.to_path_buf(),
            conn: std::cell::OnceCell::from(conn),
        })
    }

    pub(crate) fn conn(&self) -> Result<&Connection> {
        if let Some(c) = self.conn.get() {
            return Ok(c);
        }
        let c = connect(&self.path)?;
        Ok(self.conn.get_or_init(|| c))
    }

    /// Close the connection until the next query opens it again.
    pub fn suspend(&mut self) {
        self.conn.take();
    }

    /// A write transaction that takes the write lock up front.
    pub fn tx(&mut self) -> Result<Transaction<'_>> {
        self.conn()?;
        let conn = self.conn.get_mut().ok_or_else(|| Error::Io {
            context: format!("reopen {}", self.path.display()),
            source: std::io::Error::other("connection lost"),
        })?;
        Ok(conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
    }

    pub fn snapshot_id(&self, chain: &Digest) -> Result<Option<i64>> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT id FROM snapshots WHERE chain_id = ?1",
                [chain.to_string()],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn images(&self) -> Result<Vec<ImageRow>> {
        let mut stmt = self.conn()?.prepare(
            "SELECT id, manifest, media_type, created, size FROM images ORDER BY added DESC, id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ImageRow {
                    id: digest(r.get(0)?)?,
                    manifest: digest(r.get(1)?)?,
                    media_type: r.get(2)?,
                    created: r.get(3)?,
                    size: r.get::<_, i64>(4)? as u64,
                    names: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for mut img in rows {
            img.names = self.names_of(&img.id)?;
            out.push(img);
        }
        Ok(out)
    }

    pub fn image(&self, id: &Digest) -> Result<Option<ImageRow>> {
        Ok(self.images()?.into_iter().find(|i| &i.id == id))
    }

    pub fn names_of(&self, id: &Digest) -> Result<Vec<String>> {
        let mut stmt = self
            .conn()?
            .prepare("SELECT name FROM names WHERE image = ?1 ORDER BY name")?;
        let names = stmt
            .query_map([id.to_string()], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(names)
    }

    pub fn image_by_name(&self, name: &str) -> Result<Option<Digest>> {
        let v: Option<String> = self
            .conn()?
            .query_row("SELECT image FROM names WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        v.map(|s| s.parse()).transpose()
    }

    /// Image ids starting with `prefix` (hex, without `sha256:`).
    pub fn images_by_prefix(&self, prefix: &str) -> Result<Vec<Digest>> {
        let mut stmt = self
            .conn()?
            .prepare("SELECT id FROM images WHERE id LIKE ?1 ESCAPE '\\'")?;
        let pat = format!(
            "sha256:{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let ids = stmt
            .query_map([pat], |r| digest(r.get(0)?))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ids)
    }

    pub fn layers(&self, id: &Digest) -> Result<Vec<LayerRow>> {
        let mut stmt = self.conn()?.prepare(
            "SELECT blob, media_type, diff_id, chain_id FROM layers WHERE image = ?1 ORDER BY idx",
        )?;
        let rows = stmt
            .query_map([id.to_string()], |r| {
                Ok(LayerRow {
                    blob: digest(r.get(0)?)?,
                    media_type: r.get(1)?,
                    diff_id: digest(r.get(2)?)?,
                    chain_id: digest(r.get(3)?)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Snapshots (id, chain id) no image references.
    pub fn unreferenced_snapshots(&self) -> Result<Vec<(i64, Digest)>> {
        let mut stmt = self.conn()?.prepare(
            "SELECT id, chain_id FROM snapshots WHERE chain_id NOT IN (SELECT chain_id FROM layers)
             AND chain_id NOT IN (SELECT chain_id FROM build_cache WHERE chain_id IS NOT NULL)",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, digest(r.get(1)?)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn snapshots(&self) -> Result<Vec<(i64, Digest, u64)>> {
        let mut stmt = self
            .conn()?
            .prepare("SELECT id, chain_id, size FROM snapshots ORDER BY id")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, digest(r.get(1)?)?, r.get::<_, i64>(2)? as u64))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Every blob digest some image references (manifest, config, layers).
    pub fn referenced_blobs(&self) -> Result<std::collections::HashSet<Digest>> {
        let mut out = std::collections::HashSet::new();
        let mut stmt = self.conn()?.prepare("SELECT id, manifest FROM images")?;
        for r in stmt.query_map([], |r| Ok((digest(r.get(0)?)?, digest(r.get(1)?)?)))? {
            let (a, b) = r?;
            out.insert(a);
            out.insert(b);
        }
        let mut stmt = self.conn()?.prepare(
            "SELECT blob FROM layers UNION SELECT blob FROM build_cache WHERE blob IS NOT NULL",
        )?;
        for r in stmt.query_map([], |r| digest(r.get(0)?))? {
            out.insert(r?);
        }
        Ok(out)
    }

    /// Repositories of `host` a blob is known to exist in.
    pub fn blob_sources(&self, blob: &Digest, host: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn()?
            .prepare("SELECT repository FROM blob_sources WHERE blob = ?1 AND host = ?2")?;
        let rows = stmt
            .query_map([blob.to_string(), host.to_string()], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

    pub fn mounted_images(&self) -> Result<Vec<(String, Digest)>> {
        let mut stmt = self.conn()?.prepare("SELECT path, image FROM mounts")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, digest(r.get(1)?)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

/// Insert helpers used inside a transaction.
pub mod write {
    use super::*;

    pub fn image(
        tx: &Transaction,
        id: &Digest,
        manifest: &Digest,
        media_type: &str,
        created: Option<&str>,
        size: u64,
    ) -> Result<()> {
        tx.execute(
            "INSERT OR IGNORE INTO images (id, manifest, media_type, created, size, added) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id.to_string(), manifest.to_string(), media_type, created, size as i64, chrono::Utc::now().to_rfc3339()],
        )?;
        Ok(())
    }

    pub fn layer(tx: &Transaction, image: &Digest, idx: usize, l: &LayerRow) -> Result<()> {
        tx.execute(
            "INSERT OR REPLACE INTO layers (image, idx, blob, media_type, diff_id, chain_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![image.to_string(), idx as i64, l.blob.to_string(), l.media_type, l.diff_id.to_string(), l.chain_id.to_string()],
        )?;
        Ok(())
    }

    /// Point `name` at `image` (moving it from any other image).
    pub fn name(tx: &Transaction, name: &str, image: &Digest) -> Result<()> {
        tx.execute(
            "INSERT OR REPLACE INTO names (name, image) VALUES (?1, ?2)",
            params![name, image.to_string()],
        )?;
        Ok(())
    }

    pub fn snapshot(tx: &Transaction, chain: &Digest, diff: &Digest, size: u64) -> Result<i64> {
        tx.execute(
            "INSERT INTO snapshots (chain_id, diff_id, size) VALUES (?1, ?2, ?3)",
            params![chain.to_string(), diff.to_string(), size as i64],
        )?;
        Ok(tx.last_insert_rowid())
    }
}
