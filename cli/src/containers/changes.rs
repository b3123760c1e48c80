//! What a container changed, and images as plain trees: `commit` (the
//! container's upper dir becomes a layer through the image store's layer
//! writer), `diff` (A/C/D from the upper dir), `export` (a container's
//! or an image's flattened filesystem as a tar) and `cp` both ways, every
//! path resolved inside the container's rootfs.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use strata_imagestore::Store;
use strata_imagestore::commit::{ManifestFormat, NewImage};
use strata_imagestore::digest::Digest;
use strata_imagestore::layer::LayerOptions;
use strata_imagestore::metadata::LayerRow;

use super::Engine;
use super::record::Status;
use crate::build::fsops::{self, Kind};
use crate::build::steps::copy::{Copier, CopyOptions};
use crate::build::steps::meta;

/// Mount points the engine binds over a container's /etc: their empty
/// stubs in the upper dir are not the container's changes.
const GENERATED: &[&str] = &["etc/hostname", "etc/hosts", "etc/resolv.conf"];

/// A read-only view of an image's layers, unmounted when dropped.
pub struct ImageView {
    pub path: PathBuf,
    mounted: bool,
    _tmp: Option<tempfile::TempDir>,
}

impl Drop for ImageView {
    fn drop(&mut self) {
        if self.mounted {
            let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

pub fn image_view(store: &Store, id: &Digest) -> Result<ImageView> {
    let mut dirs = store.snapshot_dirs(id)?;
    let t = tempfile::Builder::new()
        .prefix("view-")
        .tempdir_in(store.root().join("tmp"))?;
    match dirs.len() {
        0 => Ok(ImageView {
            path: t.path().to_path_buf(),
            mounted: false,
            _tmp: Some(t),
        }),
        1 => Ok(ImageView {
            path: dirs.remove(0),
            mounted: false,
            _tmp: None,
        }),
        _ => {
            dirs.reverse();
            strata_imagestore::mounts::mount_overlay(&dirs, None, t.path())?;
            Ok(ImageView {
                path: t.path().to_path_buf(),
                mounted: true,
                _tmp: Some(t),
            })
        }
    }
}

/// Write the tree at `dir` as a plain tar to `dest` ("-" for stdout).
fn tar_tree(dir: &Path, dest: &Path) -> Result<()> {
    let opts = LayerOptions::default();
    if dest == Path::new("-") {
        let out = std::io::stdout().lock();
        strata_imagestore::layer::write_tar_to(dir, out, &opts)?.flush()?;
        return Ok(());
    }
    let tmp = PathBuf::from(format!("{}.tmp-{}", dest.display(), std::process::id()));
    let result = (|| {
        let f = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        let mut f = strata_imagestore::layer::write_tar_to(dir, f, &opts)?;
        f.flush()?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest).with_context(|| format!("write {}", dest.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An image's flattened filesystem as a tar (`build --output type=tar`).
pub fn export_image(store: &mut Store, id: &Digest, dest: &Path) -> Result<()> {
    let v = image_view(store, id)?;
    tar_tree(&v.path, dest)
}

/// An image's flattened filesystem copied into `dest` (`--output type=local`).
pub fn copy_image_to(store: &mut Store, id: &Digest, dest: &Path) -> Result<()> {
    let v = image_view(store, id)?;
    std::fs::create_dir_all(dest).with_context(|| format!("create {}", dest.display()))?;
    let src = fsops::open_dir(&v.path)?;
    let dst = fsops::open_dir(dest)?;
    let opts = CopyOptions {
        owner: None,
        keep_owner: true,
        chmod: None,
        exclude: Default::default(),
    };
    let all = |_: &str| true;
    Copier::new(&src, &dst, &opts, &all).copy("", Path::new(""), true)
}

impl Engine {
    /// The container's rootfs, mounted (a stopped container's is not).
    fn rootfs_of(&self, what: &str) -> Result<(String, PathBuf)> {
        let row = self.find(what)?;
        let image: Digest = row.image.clone();
        self.mount_rootfs(&row.id, &image)?;
        Ok((row.id.clone(), self.dir(&row.id).rootfs()))
    }

    /// `export`: the container's filesystem as a tar.
    pub fn export(&self, what: &str, dest: &Path) -> Result<()> {
        let (_, rootfs) = self.rootfs_of(what)?;
        tar_tree(&rootfs, dest)
    }

    /// `diff`: `A /path`, `C /path`, `D /path`, as Docker prints them.
    pub fn diff(&self, what: &str) -> Result<Vec<String>> {
        let row = self.find(what)?;
        let upper = self.dir(&row.id).path().join("upper");
        let view = image_view(&self.store, &row.image)?;
        let lower = fsops::open_dir(&view.path)?;
        let up = fsops::open_dir(&upper)?;
        let mut out = Vec::new();
        walk_changes(&up, &lower, "", &mut out)?;
        Ok(out)
    }

    /// `commit`: a new image of the container's image plus its changes.
    pub fn commit(&mut self, what: &str, o: &CommitOptions) -> Result<Digest> {
        let row = self.find(what)?;
        let st = self.refresh(&row.id)?;
        let paused = o.pause && st.status == Status::Running;
        let root = self.runtime_root();
        let cgroup_freeze = |freeze: bool| {
            let _ = strata_runtime::container::pause::set_paused(&root, &row.id, freeze);
        };
        if paused {
            cgroup_freeze(true);
        }
        let r = self.commit_paused(&row.id, &row.image, o);
        if paused {
            cgroup_freeze(false);
        }
        r
    }

    fn commit_paused(&mut self, id: &str, image: &Digest, o: &CommitOptions) -> Result<Digest> {
        let upper = self.dir(id).path().join("upper");
        let mut layers = self.store.layers(image)?;
        let base: Value = serde_json::from_slice(&self.store.content.read(image)?)?;
        let mut config = json!({
            "architecture": base["architecture"], "os": base["os"],
            "config": base["config"].clone(),
            "history": base["history"].as_array().cloned().unwrap_or_default(),
        });
        for c in &o.changes {
            apply_change(&mut config, c)?;
        }
        let mut skip: Vec<PathBuf> = Vec::new();
        for g in GENERATED {
            if std::fs::symlink_metadata(upper.join(g)).is_ok_and(|m| m.is_file() && m.len() == 0) {
                skip.push(PathBuf::from(g));
            }
        }
        let _lock = self.store.lock_shared()?;
        let written = strata_imagestore::layer::write(
            &upper,
            &self.store.content,
            &LayerOptions {
                skip,
                ..Default::default()
            },
        )?;
        let chain = strata_imagestore::digest::chain_next(
            layers.last().map(|l| &l.chain_id),
            &written.diff_id,
        );
        if self.store.chain_dir(&chain)?.is_none() {
            // The snapshot is the layer itself, unpacked by the safe unpacker.
            let draft = self.store.snapshot_draft()?;
            let blob = self.store.content.open_blob(&written.blob)?;
            strata_imagestore::unpack::unpack(blob, &draft.fs(), "committed layer")?;
            self.store
                .publish_snapshot(draft, &chain, &written.diff_id, written.content_size)?;
        }
        layers.push(LayerRow {
            blob: written.blob,
            media_type: written.media_type,
            diff_id: written.diff_id,
            chain_id: chain,
        });
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut h = json!({"created": now, "created_by": o.created_by});
        if !o.message.is_empty() {
            h["comment"] = json!(o.message);
        }
        if let Some(a) = config["history"].as_array_mut() {
            a.push(h);
        }
        if !o.author.is_empty() {
            config["author"] = json!(o.author);
        }
        config["created"] = json!(now);
        config["rootfs"] = json!({"type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()});
        let bytes = serde_json::to_vec(&config)?;
        let names: Vec<String> = o.name.iter().cloned().collect();
        Ok(self.store.create_image(&NewImage {
            config: &bytes,
            layers: &layers,
            format: o.format,
            names: &names,
        })?)
    }

    /// `cp CONTAINER:SRC DEST` or `cp SRC CONTAINER:DEST`.
    pub fn cp(&self, from: &str, to: &str, archive: bool) -> Result<()> {
        let split = |s: &str| -> Option<(String, String)> {
            let (c, p) = s.split_once(':')?;
            if c.is_empty() || c.contains('/') {
                return None;
            }
            Some((c.to_string(), p.to_string()))
        };
        let opts = CopyOptions {
            owner: None,
            keep_owner: archive,
            chmod: None,
            exclude: Default::default(),
        };
        let all = |_: &str| true;
        match (split(from), split(to)) {
            (Some((c, src)), None) => {
                let (_, rootfs) = self.rootfs_of(&c)?;
                let root = fsops::open_dir(&rootfs)?;
                let rel = src.trim_start_matches('/').to_string();
                fsops::stat_in(&root, Path::new(&rel), false)
                    .map_err(|_| anyhow!("Could not find the file {src} in container {c}"))?;
                let (dst_root, dest, into) = host_dest(Path::new(to))?;
                let mut cp = Copier::new(&root, &dst_root, &opts, &all);
                cp.copy(&rel, &dest, into)
            }
            (None, Some((c, dst))) => {
                let (_, rootfs) = self.rootfs_of(&c)?;
                let root = fsops::open_dir(&rootfs)?;
                let src = Path::new(from);
                let parent = src
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let name = src
                    .file_name()
                    .ok_or_else(|| anyhow!("invalid source {from}"))?
                    .to_string_lossy()
                    .into_owned();
                let src_root = fsops::open_dir(parent)
                    .with_context(|| format!("no such file or directory: {from}"))?;
                fsops::stat_in(&src_root, Path::new(&name), false)
                    .map_err(|_| anyhow!("no such file or directory: {from}"))?;
                let rel = dst.trim_start_matches('/');
                let into = dst.ends_with('/')
                    || fsops::stat_in(&root, Path::new(rel), false)
                        .is_ok_and(|s| s.kind == Kind::Dir);
                let mut cp = Copier::new(&src_root, &root, &opts, &all);
                cp.copy(&name, Path::new(rel), into)
            }
            (Some(_), Some(_)) => bail!("copying between containers is not supported"),
            (None, None) => bail!("must specify at least one container source"),
        }
    }
}

/// A host destination as (root fd, path below it, copy into it?).
fn host_dest(dest: &Path) -> Result<(OwnedFd, PathBuf, bool)> {
    if dest.is_dir() {
        return Ok((fsops::open_dir(dest)?, PathBuf::new(), true));
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        bail!("no such directory: {}", parent.display());
    }
    let name = dest
        .file_name()
        .ok_or_else(|| anyhow!("invalid destination {}", dest.display()))?;
    Ok((fsops::open_dir(parent)?, PathBuf::from(name), false))
}

fn walk_changes(up: &OwnedFd, lower: &OwnedFd, rel: &str, out: &mut Vec<String>) -> Result<()> {
    let dir = if rel.is_empty() {
        fsops::reopen_dir(up)?
    } else {
        fsops::open_in(
            up,
            Path::new(rel),
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_NOFOLLOW,
        )
        .map_err(|e| anyhow!("open {rel}: {e}"))?
    };
    for (name, st) in fsops::list_os(&dir)? {
        let n = name.to_string_lossy();
        let child = if rel.is_empty() {
            n.to_string()
        } else {
            format!("{rel}/{n}")
        };
        if GENERATED.contains(&child.as_str()) && st.kind == Kind::File && st.size == 0 {
            continue;
        }
        let whiteout =
            st.kind == Kind::Other && st.raw_mode & libc::S_IFMT == libc::S_IFCHR && st.rdev == 0;
        let in_lower = fsops::stat_in(lower, Path::new(&child), true).is_ok();
        if whiteout {
            out.push(format!("D /{child}"));
            continue;
        }
        out.push(format!("{} /{child}", if in_lower { "C" } else { "A" }));
        if st.kind == Kind::Dir {
            walk_changes(up, lower, &child, out)?;
        }
    }
    Ok(())
}

/// What `commit` takes beyond the container.
pub struct CommitOptions {
    pub name: Option<String>,
    pub changes: Vec<String>,
    pub message: String,
    pub author: String,
    pub pause: bool,
    pub format: ManifestFormat,
    pub created_by: String,
}

/// One `--change`: a Dockerfile instruction that only sets config (CMD,
/// ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME,
/// WORKDIR), as `docker commit -c` takes them.
pub fn apply_change(config: &mut Value, change: &str) -> Result<()> {
    let df = crate::build::dockerfile::parse::parse(change)
        .map_err(|e| anyhow!("invalid --change {change:?}: {}", e.msg))?;
    let none = |_: &str| None::<String>;
    for ins in &df.instructions {
        let args = ins.args.trim();
        let words = |s: &str| {
            crate::build::dockerfile::expand::words(s, '\\', &none).map_err(|e| anyhow!("{e}"))
        };
        match ins.keyword.as_str() {
            "CMD" | "ENTRYPOINT" => {
                let v = ins
                    .json
                    .clone()
                    .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), args.to_string()]);
                let f = if ins.keyword == "CMD" {
                    "Cmd"
                } else {
                    "Entrypoint"
                };
                meta::cfg(config).insert(f.into(), json!(v));
            }
            "ENV" | "LABEL" => {
                let kvs = crate::build::dockerfile::expand::key_values(
                    args,
                    '\\',
                    &none,
                    false,
                    &ins.keyword,
                )
                .map_err(|e| anyhow!("{e}"))?;
                for (k, v) in kvs {
                    let v = v.unwrap_or_default();
                    if ins.keyword == "ENV" {
                        meta::set_env(config, &k, &v);
                    } else {
                        meta::add_label(config, &k, &v);
                    }
                }
            }
            "EXPOSE" => {
                for w in words(args)? {
                    meta::expose(config, &w)?;
                }
            }
            "VOLUME" => {
                for w in ins.json.clone().map(Ok).unwrap_or_else(|| words(args))? {
                    meta::add_volume(config, &w);
                }
            }
            "USER" => {
                meta::cfg(config).insert("User".into(), json!(args));
            }
            "WORKDIR" => {
                meta::cfg(config).insert("WorkingDir".into(), json!(args));
            }
            "STOPSIGNAL" => {
                meta::cfg(config).insert("StopSignal".into(), json!(args));
            }
            "ONBUILD" => {
                let c = meta::cfg(config);
                let mut l: Vec<Value> = c
                    .get("OnBuild")
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default();
                l.push(json!(args));
                c.insert("OnBuild".into(), json!(l));
            }
            other => bail!("{other} is not a valid change command"),
        }
    }
    Ok(())
}
