//! New images from snapshots made here (`build`, `commit`): a directory
//! of changes is published as the snapshot of its chain, and an image is
//! written from its config and layer list (config and manifest blobs, then
//! every row in one transaction). The snapshot directories that `build`
//! stacks are the very directories its steps wrote: nothing built is
//! unpacked again.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::Flock;
use serde_json::json;

use crate::content::unique;
use crate::digest::Digest;
use crate::error::{Context, Error, Result};
use crate::metadata::{LayerRow, write};
use crate::reference::Reference;
use crate::store::{DOCKER_MANIFEST, OCI_CONFIG, OCI_MANIFEST, Store};

pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Manifest and config media types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ManifestFormat {
    #[default]
    Oci,
    Docker,
}

impl std::str::FromStr for ManifestFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "oci" => Ok(ManifestFormat::Oci),
            "docker" => Ok(ManifestFormat::Docker),
            other => Err(Error::BadImage(format!(
                "unknown image format {other:?} (oci or docker)"
            ))),
        }
    }
}

/// A layer's media type in the given manifest format.
pub fn media_type_for(format: ManifestFormat, mt: &str) -> Result<String> {
    let gz = mt.ends_with("gzip");
    let zstd = mt.ends_with("zstd");
    Ok(match format {
        ManifestFormat::Oci if gz => "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        ManifestFormat::Oci if zstd => "application/vnd.oci.image.layer.v1.tar+zstd".into(),
        ManifestFormat::Oci => "application/vnd.oci.image.layer.v1.tar".into(),
        ManifestFormat::Docker if gz => DOCKER_LAYER_GZIP.into(),
        ManifestFormat::Docker if zstd => {
            return Err(Error::BadImage(
                "zstd layers need the oci image format (--format oci)".into(),
            ));
        }
        ManifestFormat::Docker => DOCKER_LAYER.into(),
    })
}

/// A snapshot directory being filled (`fs/` inside), not yet published.
/// Dropped unpublished, it is removed.
pub struct SnapshotDraft {
    dir: PathBuf,
    published: bool,
}

impl SnapshotDraft {
    /// The tree that becomes the snapshot (an overlay upperdir, say).
    pub fn fs(&self) -> PathBuf {
        self.dir.join("fs")
    }

    /// A scratch dir on the same filesystem (an overlay workdir).
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SnapshotDraft {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A held shared store lock: while it lives, gc and check wait.
pub struct StoreGuard(#[allow(dead_code)] Flock<File>);

/// What an image to write is made of.
pub struct NewImage<'a> {
    /// The config JSON as it will be stored (its digest is the image id).
    pub config: &'a [u8],
    /// Every layer, lowest first, each with its chain's snapshot present.
    pub layers: &'a [LayerRow],
    pub format: ManifestFormat,
    pub names: &'a [String],
}

impl Store {
    /// Hold the store shared (as a load does) for a build's whole run.
    pub fn lock_shared(&self) -> Result<StoreGuard> {
        Ok(StoreGuard(crate::store::store_lock(self.root(), false)?))
    }

    /// A new draft snapshot dir, named so that `system check` spares it
    /// while this process lives.
    pub fn snapshot_draft(&self) -> Result<SnapshotDraft> {
        let dir =
            self.root()
                .join("snapshots")
                .join(format!("tmp-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(dir.join("fs")).ctx(|| format!("create {}", dir.display()))?;
        std::fs::create_dir_all(dir.join("work")).ctx(|| format!("create {}", dir.display()))?;
        Ok(SnapshotDraft {
            dir,
            published: false,
        })
    }

    /// The snapshot dir of a chain, if the store has it.
    pub fn chain_dir(&self, chain: &Digest) -> Result<Option<PathBuf>> {
        Ok(self
            .db()
            .snapshot_id(chain)?
            .map(|id| self.snapshot_dir(id)))
    }

    /// `l` (a layer whose blob the store has) as the layer on top of the
    /// chain `parent`: the same blob and diff, and a snapshot for the new
    /// chain, unpacked from the blob if the store has none (COPY --link's
    /// rebase).
    pub fn layer_on_chain(&mut self, l: &LayerRow, parent: Option<&Digest>) -> Result<LayerRow> {
        let chain = crate::digest::chain_next(parent, &l.diff_id);
        let row = LayerRow {
            chain_id: chain.clone(),
            ..l.clone()
        };
        if self.chain_dir(&chain)?.is_some() {
            return Ok(row);
        }
        let layer = crate::cache::CacheLayer {
            digest: l.blob.clone(),
            media_type: l.media_type.clone(),
            size: self.content.size(&l.blob)?,
            diff_id: l.diff_id.clone(),
        };
        let path = self.content.path(&l.blob);
        let source = move |_: &Digest| -> Result<Box<dyn std::io::Read + Send>> {
            let f = std::fs::File::open(&path).ctx(|| format!("open {}", path.display()))?;
            Ok(Box::new(f))
        };
        self.adopt_layer(&layer, &chain, &source)?;
        Ok(row)
    }

    /// Publish a draft as the snapshot of `chain` (its layer `diff_id`).
    /// If the chain has a snapshot already, the draft is dropped. Returns
    /// the snapshot's fs dir.
    pub fn publish_snapshot(
        &mut self,
        mut draft: SnapshotDraft,
        chain: &Digest,
        diff_id: &Digest,
        size: u64,
    ) -> Result<PathBuf> {
        let _ = std::fs::remove_dir_all(draft.work());
        let root = self.root().to_path_buf();
        let tx = self.db_mut().tx()?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM snapshots WHERE chain_id = ?1",
                [chain.to_string()],
                |r| r.get(0),
            )
            .ok();
        let sid = match existing {
            Some(id) => id,
            None => {
                let sid = write::snapshot(&tx, chain, diff_id, size)?;
                let dest = root.join("snapshots").join(sid.to_string());
                std::fs::rename(&draft.dir, &dest)
                    .ctx(|| format!("publish snapshot {}", dest.display()))?;
                draft.published = true;
                tx.commit()?;
                return Ok(dest.join("fs"));
            }
        };
        drop(tx);
        Ok(self.snapshot_dir(sid))
    }

    /// Write an image: config and manifest blobs, then its rows and names
    /// in one transaction. Returns the image id (the config's digest).
    pub fn create_image(&mut self, img: &NewImage) -> Result<Digest> {
        let mut descs = Vec::new();
        let mut total = 0;
        for l in img.layers {
            let size = self.content.size(&l.blob)?;
            descs.push(json!({
                "mediaType": media_type_for(img.format, &l.media_type)?,
                "digest": l.blob.to_string(),
                "size": size,
            }));
            if self.db().snapshot_id(&l.chain_id)?.is_none() {
                return Err(Error::Corrupt(
                    self.root().to_path_buf(),
                    format!("snapshot of {} is missing", l.chain_id),
                ));
            }
        }
        for (_, c, s) in self.db().snapshots()? {
            if img.layers.iter().any(|l| l.chain_id == c) {
                total += s;
            }
        }
        let config_digest = self.content.put(img.config)?;
        let (manifest_type, config_type) = match img.format {
            ManifestFormat::Oci => (OCI_MANIFEST, OCI_CONFIG),
            ManifestFormat::Docker => (DOCKER_MANIFEST, DOCKER_CONFIG),
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": config_digest.to_string(), "size": img.config.len()},
            "layers": descs,
        });
        let mbytes = serde_json::to_vec(&manifest).map_err(|e| Error::BadImage(e.to_string()))?;
        let mdigest = self.content.put(&mbytes)?;
        let created = serde_json::from_slice::<serde_json::Value>(img.config)
            .ok()
            .and_then(|v| v["created"].as_str().map(String::from));
        let names: Vec<String> = img
            .names
            .iter()
            .map(|n| Reference::parse_local(n).map(|r| r.to_string()))
            .collect::<Result<_>>()?;
        let tx = self.db_mut().tx()?;
        // A rebuild of the same image: replace its rows.
        tx.execute(
            "DELETE FROM layers WHERE image = ?1",
            [config_digest.to_string()],
        )?;
        write::image(
            &tx,
            &config_digest,
            &mdigest,
            manifest_type,
            created.as_deref(),
            total,
        )?;
        tx.execute(
            "UPDATE images SET manifest = ?2, media_type = ?3, added = ?4 WHERE id = ?1",
            rusqlite::params![
                config_digest.to_string(),
                mdigest.to_string(),
                manifest_type,
                chrono::Utc::now().to_rfc3339()
            ],
        )?;
        for (i, l) in img.layers.iter().enumerate() {
            let row = LayerRow {
                media_type: media_type_for(img.format, &l.media_type)?,
                ..l.clone()
            };
            write::layer(&tx, &config_digest, i, &row)?;
        }
        for n in &names {
            write::name(&tx, n, &config_digest)?;
        }
        tx.commit()?;
        Ok(config_digest)
    }
}
