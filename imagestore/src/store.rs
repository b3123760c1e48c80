//! The image store: content store + metadata + snapshots, and the
//! operations the CLI verbs need (import, storing a manifest's image, tag,
//! rmi, inspect, df). Its other rooms: `archive` (save and load), `gc`,
//! `check`, `commit` (new images from snapshots), `cache` (build cache).
//! Layers of one image unpack in parallel threads; a snapshot and
//! its blob are published only after both digests verified, and the
//! image's rows are written in one transaction at the end, so a failed or
//! killed load leaves no image behind.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{ImageConfiguration, ImageManifest};
use serde_json::json;

use crate::content::{BlobWriter, ContentStore, Expected, unique};
use crate::digest::{Digest, chain_ids};
use crate::error::{Context, Error, Result};
use crate::metadata::{Db, ImageRow, LayerRow, write};
use crate::reference::Reference;
use crate::unpack::{Compression, unpack};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub struct Store {
    pub(crate) root: PathBuf,
    pub content: ContentStore,
    pub(crate) db: Db,
}

/// A layer to bring into the store: where its bytes come from and what
/// they must hash to.
pub(crate) struct LayerJob {
    pub(crate) blob: Expected,
    pub(crate) media_type: String,
    pub(crate) diff_id: Digest,
    pub(crate) chain_id: Digest,
}

/// Where the blobs of an image being stored come from: files of a layout
/// or archive, or a registry's streams. Called from worker threads.
pub type BlobSource<'a> = dyn Fn(&Digest) -> Result<Box<dyn Read + Send>> + Sync + 'a;

pub(crate) fn file_source(
    locate: impl Fn(&Digest) -> PathBuf + Sync,
) -> impl Fn(&Digest) -> Result<Box<dyn Read + Send>> + Sync {
    move |d: &Digest| {
        let p = locate(d);
        let f = File::open(&p).ctx(|| format!("open blob {d} at {}", p.display()))?;
        Ok(Box::new(f) as Box<dyn Read + Send>)
    }
}

/// A snapshot unpacked into a temp dir, waiting to be published.
pub(crate) struct Unpacked {
    pub(crate) tmp: Option<PathBuf>,
    pub(crate) size: u64,
}

pub fn layer_media_type(c: Compression) -> &'static str {
    match c {
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

fn is_supported_layer(mt: &str) -> bool {
    matches!(
        mt,
        "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    )
}

/// Reads through `r`, copying every byte into a blob writer.
struct Tee<R> {
    r: R,
    w: Option<BlobWriter>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.r.read(buf)?;
        if let Some(w) = self.w.as_mut() {
            w.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

/// Store-wide lock: writers that add content (import, load) hold it shared
/// for their whole run; gc and check hold it exclusive, so they never sweep
/// blobs or snapshot dirs a load has written but not yet registered.
pub(crate) fn store_lock(root: &Path, exclusive: bool) -> Result<Flock<File>> {
    let f = File::create(root.join("locks").join("store")).ctx(|| "create store lock".into())?;
    let arg = if exclusive {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockShared
    };
    Flock::lock(f, arg).map_err(|(_, e)| Error::Sys {
        context: "lock store".into(),
        source: e,
    })
}

impl Store {
    pub fn open(root: &Path) -> Result<Store> {
        for d in ["snapshots", "tmp", "locks"] {
            std::fs::create_dir_all(root.join(d))
                .ctx(|| format!("create {}", root.join(d).display()))?;
        }
        let content = ContentStore::open(root)?;
        let db = Db::open(&root.join("strata.db"))?;
        Ok(Store {
            root: root.to_path_buf(),
            content,
            db,
        })
    }

    /// Close the database connection (its caches go with it) until the
    /// next query opens it again: for a process that keeps the store
    /// while it waits, such as a container's monitor.
    pub fn suspend(&mut self) {
        self.db.suspend();
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    pub(crate) fn db_mut(&mut self) -> &mut Db {
        &mut self.db
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn snapshot_dir(&self, id: i64) -> PathBuf {
        self.root.join("snapshots").join(id.to_string()).join("fs")
    }

    /// An image by full or short name, id, or unique id prefix.
    pub fn resolve(&self, s: &str) -> Result<Digest> {
        if let Ok(d) = s.parse::<Digest>()
            && self.db.image(&d)?.is_some()
        {
            return Ok(d);
        }
        for r in [Reference::parse(s), Reference::parse_local(s)]
            .into_iter()
            .flatten()
        {
            if let Some(id) = self.db.image_by_name(&r.to_string())? {
                return Ok(id);
            }
        }
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let ids = self.db.images_by_prefix(&hex.to_ascii_lowercase())?;
            match ids.len() {
                1 => return Ok(ids[0].clone()),
                0 => {}
                _ => return Err(Error::BadImage(format!("id prefix {s:?} is ambiguous"))),
            }
        }
        Err(Error::ImageNotFound(s.to_string()))
    }

    pub fn images(&self) -> Result<Vec<ImageRow>> {
        self.db.images()
    }

    /// Remember that `blobs` exist in `host/repository` (for cross-repo
    /// mounts when pushing elsewhere on the same registry).
    pub fn record_blob_sources(
        &mut self,
        blobs: &[Digest],
        host: &str,
        repository: &str,
    ) -> Result<()> {
        let tx = self.db.tx()?;
        for b in blobs {
            tx.execute(
                "INSERT OR IGNORE INTO blob_sources (blob, host, repository) VALUES (?1, ?2, ?3)",
                [b.to_string(), host.to_string(), repository.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn blob_sources(&self, blob: &Digest, host: &str) -> Result<Vec<String>> {
        self.db.blob_sources(blob, host)
    }

    pub fn mounted(&self) -> Result<Vec<(String, Digest)>> {
        self.db.mounted_images()
    }

    pub(crate) fn record_mount(&mut self, path: &Path, id: &Digest) -> Result<()> {
        let tx = self.db.tx()?;
        tx.execute(
            "INSERT OR REPLACE INTO mounts (path, image) VALUES (?1, ?2)",
            [path.display().to_string(), id.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn forget_mount(&mut self, path: &str) -> Result<()> {
        let tx = self.db.tx()?;
        tx.execute("DELETE FROM mounts WHERE path = ?1", [path])?;
        tx.commit()?;
        Ok(())
    }

    pub fn image(&self, id: &Digest) -> Result<ImageRow> {
        self.db
            .image(id)?
            .ok_or_else(|| Error::ImageNotFound(id.to_string()))
    }

    pub fn layers(&self, id: &Digest) -> Result<Vec<LayerRow>> {
        self.db.layers(id)
    }

    pub fn config(&self, id: &Digest) -> Result<ImageConfiguration> {
        let data = self.content.read(id)?;
        serde_json::from_slice(&data).map_err(|e| Error::BadImage(format!("config {id}: {e}")))
    }

    /// Snapshot directories of an image, lowest layer first.
    pub fn snapshot_dirs(&self, id: &Digest) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for l in self.db.layers(id)? {
            let sid = self.db.snapshot_id(&l.chain_id)?.ok_or_else(|| {
                Error::Corrupt(
                    self.root.clone(),
                    format!("snapshot of {} is missing", l.chain_id),
                )
            })?;
            out.push(self.snapshot_dir(sid));
        }
        Ok(out)
    }

    /// `strata import`: a rootfs tarball (plain, gzip or zstd) becomes a
    /// one-layer image.
    pub fn import(&mut self, reader: impl Read + Send, name: Option<&str>) -> Result<Digest> {
        let _lock = store_lock(&self.root, false)?;
        let tmp = self
            .root
            .join("snapshots")
            .join(format!("tmp-{}", unique()));
        std::fs::create_dir_all(tmp.join("fs")).ctx(|| format!("create {}", tmp.display()))?;
        let result = (|| {
            let mut tee = Tee {
                r: reader,
                w: Some(self.content.writer()?),
            };
            let u = unpack(&mut tee, &tmp.join("fs"), "imported tarball")?;
            let w = tee
                .w
                .take()
                .ok_or_else(|| Error::BadImage("blob writer lost".into()))?;
            let (blob, size) = w.finish(None)?;
            Ok::<_, Error>((u, blob, size))
        })();
        let (u, blob, size) = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let config = json!({
            "created": now,
            "architecture": host_arch(),
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [u.diff_id.to_string()]},
            "history": [{"created": now, "created_by": "strata import"}]
        });
        let config_bytes =
            serde_json::to_vec(&config).map_err(|e| Error::BadImage(e.to_string()))?;
        let config_digest = self.content.put(&config_bytes)?;
        let media = layer_media_type(u.compression);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len()},
            "layers": [{"mediaType": media, "digest": blob.to_string(), "size": size}]
        });
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| Error::BadImage(e.to_string()))?;
        let manifest_digest = self.content.put(&manifest_bytes)?;
        let layer = LayerRow {
            blob,
            media_type: media.into(),
            diff_id: u.diff_id.clone(),
            chain_id: u.diff_id.clone(),
        };
        let names: Vec<String> = name
            .map(|n| Reference::parse_local(n).map(|r| r.to_string()))
            .transpose()?
            .into_iter()
            .collect();
        let unpacked = vec![Unpacked {
            tmp: Some(tmp),
            size: u.uncompressed_size,
        }];
        self.commit_image(
            &config_digest,
            &manifest_digest,
            OCI_MANIFEST,
            Some(&now),
            &[layer],
            unpacked,
            &names,
        )?;
        Ok(config_digest)
    }

    /// Publish snapshots and write the image's rows in one transaction.
    #[allow(clippy::too_many_arguments)]
    fn commit_image(
        &mut self,
        id: &Digest,
        manifest: &Digest,
        media_type: &str,
        created: Option<&str>,
        layers: &[LayerRow],
        unpacked: Vec<Unpacked>,
        names: &[String],
    ) -> Result<()> {
        let total: u64 = unpacked.iter().map(|u| u.size).sum();
        let root = self.root.clone();
        let tx = self.db.tx()?;
        let mut leftovers = Vec::new();
        for (l, u) in layers.iter().zip(unpacked) {
            leftovers.extend(publish_unpacked(&tx, &root, l, u)?);
        }
        write::image(&tx, id, manifest, media_type, created, total)?;
        for (i, l) in layers.iter().enumerate() {
            write::layer(&tx, id, i, l)?;
        }
        for n in names {
            write::name(&tx, n, id)?;
        }
        tx.commit()?;
        for t in leftovers {
            let _ = std::fs::remove_dir_all(t);
        }
        Ok(())
    }

    /// Bring layers in: for each, stream the source into the content store
    /// (if missing) while unpacking (if no snapshot has the chain yet), all
    /// layers in parallel; verify blob digest/size and diff_id.
    fn ingest_layers(&self, jobs: &[LayerJob], source: &BlobSource) -> Result<Vec<Unpacked>> {
        let results: Vec<Result<Unpacked>> = std::thread::scope(|s| {
            let (root, content) = (&self.root, &self.content);
            let handles: Vec<_> = jobs
                .iter()
                .map(|job| s.spawn(move || ingest_layer(root, content, job, source)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::BadImage("layer worker panicked".into())))
                })
                .collect()
        });
        let mut out = Vec::new();
        let mut first_err = None;
        for r in results {
            match r {
                Ok(u) => out.push(u),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            for u in out {
                if let Some(t) = u.tmp {
                    let _ = std::fs::remove_dir_all(t);
                }
            }
            return Err(e);
        }
        Ok(out)
    }

    /// Store one image manifest (already verified against `mdigest`) whose
    /// config and layers come from `source`; layers the store has are not
    /// fetched. Returns the image id.
    pub fn store_manifest(
        &mut self,
        data: &[u8],
        mdigest: &Digest,
        names: Vec<String>,
        source: &BlobSource,
    ) -> Result<Digest> {
        let manifest: ImageManifest =
            serde_json::from_slice(data).map_err(|e| Error::BadImage(format!("manifest: {e}")))?;
        let cdesc = manifest.config();
        let cdigest: Digest = cdesc.digest().to_string().parse()?;
        // The config is small: from the store if we have it, else fetched.
        let mut cbytes = Vec::new();
        let reader: Box<dyn Read + Send> = if self.content.exists(&cdigest) {
            Box::new(self.content.open_blob(&cdigest)?)
        } else {
            source(&cdigest)?
        };
        reader
            .take(16 << 20)
            .read_to_end(&mut cbytes)
            .ctx(|| format!("read config {cdigest}"))?;
        // Verify before parsing: corrupt bytes are a digest mismatch, not
        // a JSON error.
        let actual = Digest::of(&cbytes);
        if actual != cdigest {
            return Err(Error::DigestMismatch {
                what: "config".into(),
                expected: cdigest.to_string(),
                actual: actual.to_string(),
            });
        }
        let config: ImageConfiguration = serde_json::from_slice(&cbytes)
            .map_err(|e| Error::BadImage(format!("config {cdigest}: {e}")))?;
        let diff_ids: Vec<Digest> = config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| d.parse())
            .collect::<Result<_>>()?;
        if diff_ids.len() != manifest.layers().len() {
            return Err(Error::BadImage(format!(
                "manifest has {} layers but the config lists {} diff_ids",
                manifest.layers().len(),
                diff_ids.len()
            )));
        }
        let chains = chain_ids(&diff_ids);
        let mut jobs = Vec::new();
        for (i, l) in manifest.layers().iter().enumerate() {
            let d: Digest = l.digest().to_string().parse()?;
            jobs.push(LayerJob {
                blob: Expected {
                    digest: d.clone(),
                    size: Some(l.size()),
                    what: format!("layer {} ({d})", i + 1),
                },
                media_type: l.media_type().to_string(),
                diff_id: diff_ids[i].clone(),
                chain_id: chains[i].clone(),
            });
        }
        let unpacked = self.ingest_layers(&jobs, source)?;
        // Config and manifest last, verified like the layers.
        self.content.ingest(
            &cbytes[..],
            Some(&Expected {
                digest: cdigest.clone(),
                size: Some(cdesc.size()),
                what: "config".into(),
            }),
        )?;
        self.content.ingest(
            data,
            Some(&Expected {
                digest: mdigest.clone(),
                size: None,
                what: "manifest".into(),
            }),
        )?;
        let layers: Vec<LayerRow> = jobs
            .iter()
            .map(|j| LayerRow {
                blob: j.blob.digest.clone(),
                media_type: j.media_type.clone(),
                diff_id: j.diff_id.clone(),
                chain_id: j.chain_id.clone(),
            })
            .collect();
        let mt = manifest
            .media_type()
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_else(|| OCI_MANIFEST.to_string());
        let created = config.created().clone();
        let unpacked_sized: Vec<Unpacked> = unpacked;
        let mut sizes = Vec::new();
        for (j, u) in jobs.iter().zip(unpacked_sized) {
            // Layers already present: take their recorded size.
            let size = if u.tmp.is_some() {
                u.size
            } else {
                self.snapshot_size(&j.chain_id)?
            };
            sizes.push(Unpacked { tmp: u.tmp, size });
        }
        self.commit_image(
            &cdigest,
            mdigest,
            &mt,
            created.as_deref(),
            &layers,
            sizes,
            &names,
        )?;
        Ok(cdigest)
    }

    fn snapshot_size(&self, chain: &Digest) -> Result<u64> {
        Ok(self
            .db
            .snapshots()?
            .into_iter()
            .find(|(_, c, _)| c == chain)
            .map(|(_, _, s)| s)
            .unwrap_or(0))
    }

    pub fn tag(&mut self, source: &str, target: &str) -> Result<String> {
        let id = self.resolve(source)?;
        let name = Reference::parse_local(target)?;
        if name.digest.is_some() {
            return Err(Error::InvalidReference(
                target.into(),
                "cannot tag with a digest".into(),
            ));
        }
        let tx = self.db.tx()?;
        write::name(&tx, &name.to_string(), &id)?;
        tx.commit()?;
        Ok(name.to_string())
    }

    /// `rmi`: by name, untag; the image goes when its last name goes (or
    /// at once with `force`, or when given by id). Returns what happened,
    /// Docker style ("Untagged: x", "Deleted: sha256:...").
    pub fn remove(
        &mut self,
        what: &str,
        force: bool,
        in_use: &dyn Fn(&Digest) -> bool,
    ) -> Result<Vec<String>> {
        let id = self.resolve(what)?;
        let names = self.db.names_of(&id)?;
        let by_name = [Reference::parse(what), Reference::parse_local(what)]
            .into_iter()
            .flatten()
            .map(|r| r.to_string())
            .find(|n| names.contains(n));
        let mut said = Vec::new();
        let tx = self.db.tx()?;
        let delete_image = match &by_name {
            Some(n) if names.len() > 1 && !force => {
                tx.execute("DELETE FROM names WHERE name = ?1", [n])?;
                said.push(format!("Untagged: {n}"));
                false
            }
            _ => {
                if names.len() > 1 && by_name.is_none() && !force {
                    return Err(Error::InUse(
                        format!("image {}", id.short()),
                        format!(
                            "several names ({}); use -f or remove by name",
                            names.join(", ")
                        ),
                    ));
                }
                if in_use(&id)
                    || tx.query_row(
                        "SELECT (SELECT COUNT(*) FROM mounts WHERE image = ?1) + (SELECT COUNT(*) FROM containers WHERE image = ?1)",
                        [id.to_string()],
                        |r| r.get::<_, i64>(0),
                    )? > 0
                {
                    return Err(Error::InUse(
                        format!("image {}", id.short()),
                        "a container or mount".into(),
                    ));
                }
                for n in &names {
                    said.push(format!("Untagged: {n}"));
                }
                tx.execute("DELETE FROM images WHERE id = ?1", [id.to_string()])?;
                said.push(format!("Deleted: {id}"));
                true
            }
        };
        tx.commit()?;
        if delete_image {
            self.gc()?;
        }
        Ok(said)
    }

    /// (images, total image size, blobs bytes, snapshots count).
    pub fn df(&self) -> Result<(usize, u64, u64, usize)> {
        let images = self.db.images()?;
        let size = images.iter().map(|i| i.size).sum();
        let mut blobs = 0;
        for d in self.content.list()? {
            blobs += self.content.size(&d).unwrap_or(0);
        }
        Ok((images.len(), size, blobs, self.db.snapshots()?.len()))
    }

    /// `image inspect` JSON in Docker's shape (`Id` is the config digest
    /// with its algorithm, as Docker prints it).
    pub fn inspect(&self, id: &Digest) -> Result<serde_json::Value> {
        let img = self.image(id)?;
        let config: serde_json::Value = serde_json::from_slice(&self.content.read(id)?)
            .map_err(|e| Error::BadImage(e.to_string()))?;
        let layers = self.db.layers(id)?;
        let dirs = self.snapshot_dirs(id).unwrap_or_default();
        Ok(json!({
            "Id": id.to_string(),
            "Digest": img.manifest.to_string(),
            "RepoTags": img.names,
            "Created": img.created,
            "Size": img.size,
            "Architecture": config["architecture"],
            "Os": config["os"],
            "Config": config["config"],
            "History": config["history"],
            "ManifestType": img.media_type,
            "RootFS": {"Type": "layers", "Layers": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
            "GraphDriver": {"Name": "overlay", "Data": {"LowerDirs": dirs}}
        }))
    }
}

/// One layer of `ingest_layers` (runs on a worker thread).
/// Give an unpacked layer its snapshot row and dir (inside `tx`). Returns
/// the temp dir to remove if another process published the chain first.
pub(crate) fn publish_unpacked(
    tx: &rusqlite::Transaction,
    root: &Path,
    l: &LayerRow,
    u: Unpacked,
) -> Result<Option<PathBuf>> {
    let Some(tmp) = u.tmp else { return Ok(None) };
    let exists: Option<i64> = tx
        .query_row(
            "SELECT id FROM snapshots WHERE chain_id = ?1",
            [l.chain_id.to_string()],
            |r| r.get(0),
        )
        .ok();
    if exists.is_some() {
        return Ok(Some(tmp));
    }
    let sid = write::snapshot(tx, &l.chain_id, &l.diff_id, u.size)?;
    let dest = root.join("snapshots").join(sid.to_string());
    std::fs::rename(&tmp, &dest).ctx(|| format!("publish snapshot {}", dest.display()))?;
    Ok(None)
}

pub(crate) fn ingest_layer(
    root: &Path,
    content: &ContentStore,
    job: &LayerJob,
    source: &BlobSource,
) -> Result<Unpacked> {
    if !is_supported_layer(&job.media_type) {
        return Err(Error::UnsupportedMediaType(job.media_type.clone()));
    }
    // One unpack per chain at a time across processes.
    let lockf =
        File::create(root.join("locks").join(job.chain_id.hex())).ctx(|| "create lock".into())?;
    let _lock = Flock::lock(lockf, FlockArg::LockExclusive).map_err(|(_, e)| Error::Sys {
        context: "lock layer".into(),
        source: e,
    })?;
    let have_snapshot = Db::open(&root.join("strata.db"))?
        .snapshot_id(&job.chain_id)?
        .is_some();
    let have_blob = content.exists(&job.blob.digest);
    if have_snapshot && have_blob {
        return Ok(Unpacked { tmp: None, size: 0 });
    }
    let src = source(&job.blob.digest)?;
    if have_snapshot {
        content.ingest(src, Some(&job.blob))?;
        return Ok(Unpacked { tmp: None, size: 0 });
    }
    let tmp = root.join("snapshots").join(format!("tmp-{}", unique()));
    std::fs::create_dir_all(tmp.join("fs")).ctx(|| format!("create {}", tmp.display()))?;
    let result = (|| {
        let w = if have_blob {
            None
        } else {
            Some(content.writer()?)
        };
        let mut tee = Tee { r: src, w };
        let u = unpack(&mut tee, &tmp.join("fs"), &job.blob.what)?;
        if u.digest != job.blob.digest {
            return Err(Error::DigestMismatch {
                what: job.blob.what.clone(),
                expected: job.blob.digest.to_string(),
                actual: u.digest.to_string(),
            });
        }
        if u.diff_id != job.diff_id {
            return Err(Error::DigestMismatch {
                what: format!("diff_id of {}", job.blob.what),
                expected: job.diff_id.to_string(),
                actual: u.diff_id.to_string(),
            });
        }
        if let Some(w) = tee.w.take() {
            w.finish(Some(&job.blob))?;
        }
        Ok(u.uncompressed_size)
    })();
    match result {
        Ok(size) => Ok(Unpacked {
            tmp: Some(tmp),
            size,
        }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}
