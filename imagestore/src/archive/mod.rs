//! `save`: images out as an oci-archive (OCI image layout in a tar) or a
//! docker-archive (`docker save` format). Written to a temp file beside the
//! target and renamed, so a failed save never leaves a half-written file.

mod load;

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use serde_json::json;

use crate::digest::Digest;
use crate::error::{Context, Error, Result};
use crate::reference::Reference;
use crate::store::{OCI_INDEX, REF_NAME, Store};
use crate::unpack::{Compression, detect};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OciArchive,
    DockerArchive,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Format> {
        match s {
            "oci-archive" => Ok(Format::OciArchive),
            "docker-archive" => Ok(Format::DockerArchive),
            other => Err(Error::BadImage(format!(
                "unknown save format {other:?} (oci-archive or docker-archive)"
            ))),
        }
    }
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn dir_header() -> tar::Header {
    let mut h = header(0, 0o755);
    h.set_entry_type(tar::EntryType::Directory);
    h
}

/// A stored layer blob, decompressed.
fn layer_reader(store: &Store, blob: &Digest) -> Result<Box<dyn Read>> {
    let mut magic = [0u8; 4];
    let n = store
        .content
        .open_blob(blob)?
        .read(&mut magic)
        .ctx(|| format!("read layer {blob}"))?;
    let f = store.content.open_blob(blob)?;
    Ok(match detect(&magic[..n]) {
        Compression::None => Box::new(f),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
            f,
        ))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(f).ctx(|| "zstd".into())?),
    })
}

/// Save `images` (as the user named them) to `out`.
pub fn save(store: &Store, images: &[String], format: Format, out: &Path) -> Result<()> {
    let mut resolved = Vec::new();
    for n in images {
        let id = store.resolve(n)?;
        // Name to record: the one the user gave if it is a name, else all.
        let name = [Reference::parse(n), Reference::parse_local(n)]
            .into_iter()
            .flatten()
            .map(|r| r.to_string())
            .find(|full| {
                store
                    .image(&id)
                    .map(|i| i.names.contains(full))
                    .unwrap_or(false)
            });
        resolved.push((id, name));
    }
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        out.file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        let f = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        let mut b = tar::Builder::new(BufWriter::with_capacity(1 << 20, f));
        match format {
            Format::OciArchive => write_oci(store, &resolved, &mut b)?,
            Format::DockerArchive => write_docker(store, &resolved, &mut b)?,
        }
        let w = b.into_inner().ctx(|| "finish archive".into())?;
        let f = w.into_inner().map_err(|e| Error::Io {
            context: "flush archive".into(),
            source: e.into_error(),
        })?;
        f.sync_all().ctx(|| "fsync archive".into())?;
        std::fs::rename(&tmp, out).ctx(|| format!("rename to {}", out.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn append_blob<W: Write>(
    store: &Store,
    b: &mut tar::Builder<W>,
    d: &Digest,
    done: &mut Vec<Digest>,
) -> Result<()> {
    if done.contains(d) {
        return Ok(());
    }
    let f = store.content.open_blob(d)?;
    let size = f.metadata().ctx(|| format!("stat blob {d}"))?.len();
    let mut h = header(size, 0o644);
    b.append_data(&mut h, format!("blobs/sha256/{}", d.hex()), f)
        .ctx(|| format!("write blob {d}"))?;
    done.push(d.clone());
    Ok(())
}

fn write_oci<W: Write>(
    store: &Store,
    images: &[(Digest, Option<String>)],
    b: &mut tar::Builder<W>,
) -> Result<()> {
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    b.append_data(
        &mut header(layout.len() as u64, 0o644),
        "oci-layout",
        &layout[..],
    )
    .ctx(|| "write oci-layout".into())?;
    for d in ["blobs/", "blobs/sha256/"] {
        b.append_data(&mut dir_header(), d, std::io::empty())
            .ctx(|| "write dir".into())?;
    }
    let mut done = Vec::new();
    let mut manifests = Vec::new();
    for (id, name) in images {
        let img = store.image(id)?;
        append_blob(store, b, &img.manifest, &mut done)?;
        append_blob(store, b, id, &mut done)?;
        for l in store.layers(id)? {
            append_blob(store, b, &l.blob, &mut done)?;
        }
        let names: Vec<String> = match name {
            Some(n) => vec![n.clone()],
            None => img.names.clone(),
        };
        let size = store.content.size(&img.manifest)?;
        let mt = if img.media_type.is_empty() {
            crate::store::OCI_MANIFEST.to_string()
        } else {
            img.media_type.clone()
        };
        if names.is_empty() {
            manifests
                .push(json!({"mediaType": mt, "digest": img.manifest.to_string(), "size": size}));
        }
        for n in names {
            manifests.push(
                json!({"mediaType": mt, "digest": img.manifest.to_string(), "size": size,
                                  "annotations": {REF_NAME: n}}),
            );
        }
    }
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}),
    )
    .map_err(|e| Error::BadImage(e.to_string()))?;
    b.append_data(
        &mut header(index.len() as u64, 0o644),
        "index.json",
        &index[..],
    )
    .ctx(|| "write index.json".into())
}

fn write_docker<W: Write>(
    store: &Store,
    images: &[(Digest, Option<String>)],
    b: &mut tar::Builder<W>,
) -> Result<()> {
    let mut entries = Vec::new();
    let mut done: Vec<String> = Vec::new();
    for (id, name) in images {
        let img = store.image(id)?;
        let config = store.content.read(id)?;
        let cname = format!("{}.json", id.hex());
        if !done.contains(&cname) {
            b.append_data(&mut header(config.len() as u64, 0o644), &cname, &config[..])
                .ctx(|| "write config".into())?;
            done.push(cname.clone());
        }
        let mut layer_names = Vec::new();
        for l in store.layers(id)? {
            // docker save writes uncompressed layers named by diff_id.
            let lname = format!("{}/layer.tar", l.diff_id.hex());
            layer_names.push(lname.clone());
            if done.contains(&lname) {
                continue;
            }
            b.append_data(
                &mut dir_header(),
                format!("{}/", l.diff_id.hex()),
                std::io::empty(),
            )
            .ctx(|| "write dir".into())?;
            // The uncompressed size must be known for the tar header: hash
            // and count once, then write.
            let mut h = crate::digest::HashingReader::new(layer_reader(store, &l.blob)?);
            h.drain().ctx(|| format!("read layer {}", l.blob))?;
            let (diff, size) = h.finish();
            if diff != l.diff_id {
                return Err(Error::DigestMismatch {
                    what: format!("stored layer {}", l.blob),
                    expected: l.diff_id.to_string(),
                    actual: diff.to_string(),
                });
            }
            let reader = layer_reader(store, &l.blob)?;
            b.append_data(&mut header(size, 0o644), &lname, reader)
                .ctx(|| "write layer".into())?;
            done.push(lname);
        }
        let tags: Vec<String> = match name {
            Some(n) => vec![n.clone()],
            None => img.names.clone(),
        }
        .iter()
        .filter_map(|n| Reference::parse(n).ok())
        .filter(|r| r.tag.is_some())
        .map(|r| r.familiar())
        .collect();
        entries.push(json!({"Config": cname, "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { json!(tags) }, "Layers": layer_names}));
    }
    let manifest = serde_json::to_vec(&entries).map_err(|e| Error::BadImage(e.to_string()))?;
    b.append_data(
        &mut header(manifest.len() as u64, 0o644),
        "manifest.json",
        &manifest[..],
    )
    .ctx(|| "write manifest.json".into())
}
