//! The layer writer: a directory of changes (an overlay upper dir, or a
//! snapshot made by COPY) becomes an OCI layer in one pass: walk, tar,
//! compress and hash (the diff_id of the tar and the digest of the blob),
//! written straight into the content store. Used by `build` and `commit`.
//!
//! - overlay whiteouts (0/0 character devices) become `.wh.NAME` files,
//!   opaque directories (`trusted.overlay.opaque=y`) get `.wh..wh..opq`;
//!   overlay's own xattrs never reach the layer;
//! - owners, modes with setuid/setgid/sticky bits, xattrs (PAX
//!   `SCHILY.xattr.*`, e.g. `security.capability`), hard links (by inode),
//!   symlinks, FIFOs and device nodes are kept;
//! - entries are sorted (names in byte order, each directory before its
//!   contents), owner names are left empty and, with a clamp time
//!   (SOURCE_DATE_EPOCH), no mtime is later than it; gzip ([`crate::gzip`])
//!   is fixed-size members with no time or name, deflated or stored by
//!   their own content. The same tree gives the same bytes on any machine.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use crate::content::ContentStore;
use crate::digest::{Digest, HashingWriter};
use crate::error::{Context, Error, Result};
use crate::unpack::Compression;

/// How to write a layer.
#[derive(Clone, Debug)]
pub struct LayerOptions {
    pub compression: Compression,
    /// No entry's mtime is later than this (seconds since the epoch).
    pub clamp_mtime: Option<i64>,
    /// Paths (relative to the dir) left out of the layer.
    pub skip: Vec<PathBuf>,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            compression: Compression::Gzip,
            clamp_mtime: None,
            skip: Vec::new(),
        }
    }
}

/// A layer written into the content store.
#[derive(Clone, Debug)]
pub struct WrittenLayer {
    pub blob: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub media_type: String,
    /// Bytes of file content in the layer.
    pub content_size: u64,
}

/// Does `dir` hold no changes at all?
pub fn is_empty(dir: &Path) -> Result<bool> {
    Ok(std::fs::read_dir(dir)
        .ctx(|| format!("read {}", dir.display()))?
        .next()
        .is_none())
}

/// Write `dir` as a layer into `content`.
pub fn write(dir: &Path, content: &ContentStore, o: &LayerOptions) -> Result<WrittenLayer> {
    let blob = content.writer()?;
    let (blob, diff_id, content_size) = match o.compression {
        Compression::Gzip => {
            let gz = crate::gzip::ParallelGz::new(blob);
            let (gz, diff, n) = write_tar(dir, gz, o)?;
            (gz.finish().ctx(|| "finish gzip".into())?, diff, n)
        }
        Compression::Zstd => {
            let z = zstd::stream::write::Encoder::new(blob, 3).ctx(|| "zstd encoder".into())?;
            let (z, diff, n) = write_tar(dir, z, o)?;
            (z.finish().ctx(|| "finish zstd".into())?, diff, n)
        }
        Compression::None => write_tar(dir, blob, o)?,
    };
    let (digest, size) = blob.finish(None)?;
    Ok(WrittenLayer {
        blob: digest,
        size,
        diff_id,
        media_type: crate::store::layer_media_type(o.compression).to_string(),
        content_size,
    })
}

/// `dir` as a plain tar into `w` (a flattened filesystem for `export`).
pub fn write_tar_to<W: Write>(dir: &Path, w: W, o: &LayerOptions) -> Result<W> {
    Ok(write_tar(dir, w, o)?.0)
}

/// The tar stream of `dir` into `w`; returns `w`, the diff_id and the
/// content bytes.
fn write_tar<W: Write>(dir: &Path, w: W, o: &LayerOptions) -> Result<(W, Digest, u64)> {
    let mut b = tar::Builder::new(HashingWriter::new(std::io::BufWriter::with_capacity(
        1 << 20,
        w,
    )));
    let mut walker = Walker {
        root: dir.to_path_buf(),
        links: HashMap::new(),
        clamp: o.clamp_mtime,
        skip: o.skip.clone(),
        bytes: 0,
    };
    walker.dir(&mut b, Path::new(""))?;
    b.finish().ctx(|| "finish tar".into())?;
    let hw = b.into_inner().ctx(|| "finish tar".into())?;
    let (diff_id, _, buf) = hw.finish();
    let w = buf.into_inner().map_err(|e| Error::Io {
        context: "flush layer".into(),
        source: e.into_error(),
    })?;
    Ok((w, diff_id, walker.bytes))
}

struct Walker {
    root: PathBuf,
    /// (dev, inode) of files with several links -> the first path written.
    links: HashMap<(u64, u64), PathBuf>,
    clamp: Option<i64>,
    skip: Vec<PathBuf>,
    bytes: u64,
}

fn sorted_names(dir: &Path) -> Result<Vec<OsString>> {
    let mut names: Vec<OsString> = std::fs::read_dir(dir)
        .ctx(|| format!("read {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .ctx(|| format!("read {}", dir.display()))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

impl Walker {
    fn header(&self, meta: &std::fs::Metadata, kind: EntryType) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid() as u64);
        h.set_gid(meta.gid() as u64);
        let mtime = meta.mtime().max(0);
        let mtime = match self.clamp {
            Some(c) => mtime.min(c.max(0)),
            None => mtime,
        };
        h.set_mtime(mtime as u64);
        h.set_size(0);
        h
    }

    fn dir<W: Write>(&mut self, b: &mut tar::Builder<W>, rel: &Path) -> Result<()> {
        let abs = self.root.join(rel);
        for name in sorted_names(&abs)? {
            let rel_child = rel.join(&name);
            if self.skip.contains(&rel_child) {
                continue;
            }
            self.entry(b, &rel_child)?;
        }
        Ok(())
    }

    fn entry<W: Write>(&mut self, b: &mut tar::Builder<W>, rel: &Path) -> Result<()> {
        let abs = self.root.join(rel);
        let meta = std::fs::symlink_metadata(&abs).ctx(|| format!("stat {}", abs.display()))?;
        let ft = meta.file_type();
        let ctx = |what: &str| format!("{what} {} into the layer", rel.display());
        if ft.is_char_device() && meta.rdev() == 0 {
            // An overlay whiteout: the OCI form is an empty `.wh.` file.
            let name = rel.file_name().unwrap_or_default();
            let mut wh = OsString::from(".wh.");
            wh.push(name);
            let path = rel.with_file_name(wh);
            let mut h = self.header(&meta, EntryType::Regular);
            h.set_mode(0o600);
            h.set_uid(0);
            h.set_gid(0);
            b.append_data(&mut h, &path, std::io::empty())
                .ctx(|| ctx("write whiteout"))?;
            return Ok(());
        }
        let xattrs = xattrs(&abs)?;
        let opaque = xattrs
            .iter()
            .any(|(k, v)| overlay_key(k) && k.ends_with("overlay.opaque") && v == b"y");
        let kept: Vec<(String, Vec<u8>)> = xattrs
            .into_iter()
            .filter(|(k, _)| !overlay_key(k))
            .collect();
        if !kept.is_empty() {
            pax(b, rel, &kept).ctx(|| ctx("write xattrs of"))?;
        }
        if ft.is_dir() {
            let mut h = self.header(&meta, EntryType::Directory);
            let mut p = rel.as_os_str().to_os_string();
            p.push("/");
            b.append_data(&mut h, Path::new(&p), std::io::empty())
                .ctx(|| ctx("write"))?;
            if opaque {
                let mut oh = self.header(&meta, EntryType::Regular);
                oh.set_mode(0o600);
                oh.set_uid(0);
                oh.set_gid(0);
                b.append_data(&mut oh, rel.join(".wh..wh..opq"), std::io::empty())
                    .ctx(|| ctx("write opaque marker of"))?;
            }
            return self.dir(b, rel);
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(&abs).ctx(|| ctx("read link"))?;
            let mut h = self.header(&meta, EntryType::Symlink);
            b.append_link(&mut h, rel, &target).ctx(|| ctx("write"))?;
            return Ok(());
        }
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                let mut h = self.header(&meta, EntryType::Link);
                b.append_link(&mut h, rel, first).ctx(|| ctx("write"))?;
                return Ok(());
            }
            self.links.insert(key, rel.to_path_buf());
        }
        if ft.is_file() {
            let mut h = self.header(&meta, EntryType::Regular);
            h.set_size(meta.len());
            let f = File::open(&abs).ctx(|| ctx("open"))?;
            // A file that changes size under us would corrupt the tar:
            // read exactly what the header says.
            let mut limited = std::io::Read::take(f, meta.len());
            b.append_data(&mut h, rel, &mut limited)
                .ctx(|| ctx("write"))?;
            if limited.limit() != 0 {
                return Err(Error::BadImage(format!(
                    "{} shrank while it was written into the layer",
                    rel.display()
                )));
            }
            self.bytes += meta.len();
            return Ok(());
        }
        let kind = if ft.is_fifo() {
            EntryType::Fifo
        } else if ft.is_char_device() {
            EntryType::Char
        } else if ft.is_block_device() {
            EntryType::Block
        } else {
            tracing::warn!("layer: skipping socket {}", rel.display());
            return Ok(());
        };
        let mut h = self.header(&meta, kind);
        let rdev = meta.rdev();
        let _ = h.set_device_major(nix::sys::stat::major(rdev) as u32);
        let _ = h.set_device_minor(nix::sys::stat::minor(rdev) as u32);
        b.append_data(&mut h, rel, std::io::empty())
            .ctx(|| ctx("write"))?;
        Ok(())
    }
}

fn overlay_key(k: &str) -> bool {
    k.starts_with("trusted.overlay.") || k.starts_with("user.overlay.")
}

/// A PAX extended header (type `x`) with the xattrs of the next entry.
fn pax<W: Write>(
    b: &mut tar::Builder<W>,
    rel: &Path,
    xattrs: &[(String, Vec<u8>)],
) -> std::io::Result<()> {
    let mut data = Vec::new();
    for (k, v) in xattrs {
        let key = format!("SCHILY.xattr.{k}");
        // "LEN key=value\n", LEN counting itself.
        let body = key.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        data.extend_from_slice(format!("{len} {key}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    let mut h = Header::new_ustar();
    h.set_entry_type(EntryType::XHeader);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(0);
    let name = rel
        .file_name()
        .map(|n| n.as_bytes().iter().take(80).copied().collect::<Vec<u8>>())
        .unwrap_or_default();
    let mut p = b"PaxHeaders/".to_vec();
    p.extend_from_slice(&name);
    b.append_data(&mut h, Path::new(OsStr::from_bytes(&p)), &data[..])
}

/// Every xattr of a path (not followed if a symlink).
fn xattrs(p: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let c = CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::BadImage(format!("path with NUL: {}", p.display())))?;
    let mut names = vec![0u8; 1024];
    let n = loop {
        // SAFETY: NUL-terminated path; the buffer pointer and length match.
        let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            break n as usize;
        }
        match nix::errno::Errno::last() {
            nix::errno::Errno::ERANGE => names.resize(names.len() * 4, 0),
            nix::errno::Errno::ENOTSUP => return Ok(Vec::new()),
            e => {
                return Err(Error::Sys {
                    context: format!("list xattrs of {}", p.display()),
                    source: e,
                });
            }
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let key = String::from_utf8_lossy(name).into_owned();
        let cname = CString::new(name).map_err(|_| Error::BadImage("xattr name".into()))?;
        let mut val = vec![0u8; 256];
        loop {
            // SAFETY: NUL-terminated path and name; buffer pointer and length match.
            let r = unsafe {
                libc::lgetxattr(
                    c.as_ptr(),
                    cname.as_ptr(),
                    val.as_mut_ptr().cast(),
                    val.len(),
                )
            };
            if r >= 0 {
                val.truncate(r as usize);
                break;
            }
            match nix::errno::Errno::last() {
                nix::errno::Errno::ERANGE => val.resize(val.len() * 16, 0),
                nix::errno::Errno::ENODATA => {
                    val.clear();
                    break;
                }
                e => {
                    return Err(Error::Sys {
                        context: format!("read xattr {key} of {}", p.display()),
                        source: e,
                    });
                }
            }
        }
        out.push((key, val));
    }
    out.sort();
    Ok(out)
}
