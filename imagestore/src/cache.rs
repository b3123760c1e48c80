//! The build cache: a step's cache key (see the builder's `cache` room)
//! to the layer it made, or to "no layer" for a step that changed nothing.
//! Entries are GC roots: their blobs and snapshots outlive the images
//! that used them, until `builder prune`. An entry is written only after
//! its layer blob and snapshot are published, so an interrupted build
//! leaves only whole steps behind.

use rusqlite::{OptionalExtension, params};

use crate::digest::Digest;
use crate::error::{Error, Result};
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
            .conn()?
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
        self.db().conn()?.execute(
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
        let mut stmt = self.db().conn()?.prepare("SELECT blob FROM build_cache")?;
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

/// The config media type of an exported build cache (`--cache-to`): an
/// OCI image manifest whose config is a [`CacheConfig`] and whose layers
/// are every layer blob the records name, so registries keep them.
pub const CACHE_CONFIG: &str = "application/vnd.strata.build.cache.config.v1+json";

/// A layer of an exported cache.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheLayer {
    pub digest: Digest,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
    #[serde(rename = "diffID")]
    pub diff_id: Digest,
}

/// A step of an exported cache: its key and the index of the layer it
/// made in [`CacheConfig::layers`] (none: the step changed no file).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheRecord {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheConfig {
    pub layers: Vec<CacheLayer>,
    pub records: Vec<CacheRecord>,
}

impl CacheConfig {
    /// Parse and check an exported cache config (from a registry or a
    /// directory: not trusted).
    pub fn parse(bytes: &[u8]) -> Result<CacheConfig> {
        let c: CacheConfig = serde_json::from_slice(bytes)
            .map_err(|e| Error::BadImage(format!("build cache config: {e}")))?;
        for r in &c.records {
            if r.layer.is_some_and(|i| i >= c.layers.len()) {
                return Err(Error::BadImage(format!(
                    "build cache config: record {} names layer {:?} of {}",
                    r.key,
                    r.layer,
                    c.layers.len()
                )));
            }
        }
        Ok(c)
    }

    /// The layer `key` made, `Some(None)` for an empty step, `None` if the
    /// cache has no such step.
    pub fn lookup(&self, key: &str) -> Option<Option<&CacheLayer>> {
        self.records
            .iter()
            .find(|r| r.key == key)
            .map(|r| r.layer.map(|i| &self.layers[i]))
    }
}

/// An exported cache, ready to write: the manifest's bytes and every
/// blob it names (config first), all in the content store.
pub struct CacheExport {
    pub manifest: Vec<u8>,
    pub config: Digest,
    pub blobs: Vec<Digest>,
}

impl Store {
    /// Build the cache manifest of `records` (key, result), writing its
    /// config blob into the content store.
    pub fn cache_export(&self, records: &[(String, Cached)]) -> Result<CacheExport> {
        let mut cfg = CacheConfig::default();
        for (key, c) in records {
            let layer = match c {
                Cached::Empty => None,
                Cached::Layer(l) => {
                    Some(match cfg.layers.iter().position(|x| x.digest == l.blob) {
                        Some(i) => i,
                        None => {
                            cfg.layers.push(CacheLayer {
                                digest: l.blob.clone(),
                                media_type: l.media_type.clone(),
                                size: self.content.size(&l.blob)?,
                                diff_id: l.diff_id.clone(),
                            });
                            cfg.layers.len() - 1
                        }
                    })
                }
            };
            if !cfg.records.iter().any(|r| &r.key == key) {
                cfg.records.push(CacheRecord {
                    key: key.clone(),
                    layer,
                });
            }
        }
        let bytes = serde_json::to_vec(&cfg).map_err(|e| Error::BadImage(e.to_string()))?;
        let config = self.content.put(&bytes)?;
        let layers: Vec<serde_json::Value> = cfg
            .layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size,
                })
            })
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::store::OCI_MANIFEST,
            "config": {"mediaType": CACHE_CONFIG, "digest": config.to_string(), "size": bytes.len()},
            "layers": layers,
        });
        let manifest = serde_json::to_vec(&manifest).map_err(|e| Error::BadImage(e.to_string()))?;
        let mut blobs = vec![config.clone()];
        blobs.extend(cfg.layers.iter().map(|l| l.digest.clone()));
        Ok(CacheExport {
            manifest,
            config,
            blobs,
        })
    }

    /// Take an imported cache's step into this store: its layer's blob
    /// (from `source`, verified) and snapshot as chain `chain`, then the
    /// cache row for `key`.
    pub fn cache_adopt(
        &mut self,
        key: &str,
        l: &CacheLayer,
        chain: &Digest,
        source: &crate::store::BlobSource,
    ) -> Result<Cached> {
        let row = self.adopt_layer(l, chain, source)?;
        let hit = Cached::Layer(row);
        self.cache_put(key, &hit)?;
        Ok(hit)
    }

    /// Bring layer `l` in as the top of chain `chain`: its blob from
    /// `source` unless the store has it, verified, and its snapshot.
    pub(crate) fn adopt_layer(
        &mut self,
        l: &CacheLayer,
        chain: &Digest,
        source: &crate::store::BlobSource,
    ) -> Result<LayerRow> {
        let row = LayerRow {
            blob: l.digest.clone(),
            media_type: l.media_type.clone(),
            diff_id: l.diff_id.clone(),
            chain_id: chain.clone(),
        };
        let job = crate::store::LayerJob {
            blob: crate::content::Expected {
                digest: l.digest.clone(),
                size: Some(l.size),
                what: format!("cached layer {}", l.digest.short()),
            },
            media_type: l.media_type.clone(),
            diff_id: l.diff_id.clone(),
            chain_id: chain.clone(),
        };
        let root = self.root().to_path_buf();
        let u = crate::store::ingest_layer(&root, &self.content, &job, source)?;
        let tx = self.db_mut().tx()?;
        let leftover = crate::store::publish_unpacked(&tx, &root, &row, u)?;
        tx.commit()?;
        if let Some(t) = leftover {
            let _ = std::fs::remove_dir_all(t);
        }
        Ok(row)
    }
}

/// Write an exported cache as an OCI layout in `dir` (`--cache-to
/// type=local,dest=DIR`): blobs it lacks first (each to a temp name, then
/// renamed), `index.json` last, so a reader never sees a half cache.
pub fn write_layout(store: &Store, dir: &std::path::Path, export: &CacheExport) -> Result<()> {
    use crate::error::Context as _;
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).ctx(|| format!("create {}", blobs.display()))?;
    let mdigest = Digest::of(&export.manifest);
    let put = |d: &Digest, data: Option<&[u8]>| -> Result<()> {
        let dest = blobs.join(d.hex());
        if dest.exists() {
            return Ok(());
        }
        let tmp = blobs.join(format!(".{}.tmp-{}", d.hex(), std::process::id()));
        let r = match data {
            Some(bytes) => std::fs::write(&tmp, bytes).ctx(|| format!("write {}", tmp.display())),
            None => {
                let mut src = store.content.open_blob(d)?;
                let mut f =
                    std::fs::File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
                std::io::copy(&mut src, &mut f).ctx(|| format!("write blob {d}"))?;
                f.sync_all().ctx(|| format!("fsync {}", tmp.display()))
            }
        };
        if let Err(e) = r.and_then(|_| {
            std::fs::rename(&tmp, &dest).ctx(|| format!("rename to {}", dest.display()))
        }) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(())
    };
    for d in &export.blobs {
        put(d, None)?;
    }
    put(&mdigest, Some(&export.manifest))?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::store::OCI_INDEX,
        "manifests": [{
            "mediaType": crate::store::OCI_MANIFEST,
            "digest": mdigest.to_string(),
            "size": export.manifest.len(),
            "annotations": {crate::store::REF_NAME: "latest"},
        }],
    });
    let tmp = dir.join(format!(".index.json.tmp-{}", std::process::id()));
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .ctx(|| "write oci-layout".into())?;
    std::fs::write(&tmp, index.to_string()).ctx(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join("index.json")).ctx(|| "write index.json".into())
}

/// Read the cache config of a manifest (verified by its caller) whose
/// blobs `read_blob` returns, limited and verified here.
pub fn read_export(
    manifest: &[u8],
    read_blob: &dyn Fn(&Digest) -> Result<Box<dyn std::io::Read + Send>>,
) -> Result<CacheConfig> {
    use std::io::Read as _;
    let m: serde_json::Value = serde_json::from_slice(manifest)
        .map_err(|e| Error::BadImage(format!("build cache manifest: {e}")))?;
    let mt = m["config"]["mediaType"].as_str().unwrap_or_default();
    if mt != CACHE_CONFIG {
        return Err(Error::BadImage(format!(
            "not a strata build cache (config media type {mt:?}, want {CACHE_CONFIG})"
        )));
    }
    let d: Digest = m["config"]["digest"].as_str().unwrap_or_default().parse()?;
    let mut bytes = Vec::new();
    read_blob(&d)?
        .take(64 << 20)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Io {
            context: format!("read build cache config {d}"),
            source: e,
        })?;
    let actual = Digest::of(&bytes);
    if actual != d {
        return Err(Error::DigestMismatch {
            what: "build cache config".into(),
            expected: d.to_string(),
            actual: actual.to_string(),
        });
    }
    CacheConfig::parse(&bytes)
}
