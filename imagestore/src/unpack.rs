//! Layer unpacking: one pass over the bytes does the compressed digest,
//! decompression (gzip or zstd, detected by magic), the uncompressed
//! digest (diff_id) and the extraction into a snapshot directory.
//!
//! Safety: every entry is created relative to an fd of the snapshot root,
//! its parent resolved with `openat2(RESOLVE_IN_ROOT)`, so `..`, absolute
//! paths and symlinks (same layer or chained) cannot reach outside. `..`
//! that would climb above the root is refused outright; hardlink targets
//! must be inside the layer; whiteouts become overlayfs whiteouts (0/0 char
//! devices, `trusted.overlay.opaque`), and overlay xattrs in a layer are
//! dropped so a layer cannot forge them.

use std::ffi::{CString, OsStr};
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, SFlag};
use sha2::{Digest as _, Sha256};
use tar::EntryType;

use crate::digest::Digest;
use crate::error::{Error, Result};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn detect(magic: &[u8]) -> Compression {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// What one pass over a layer found.
#[derive(Clone, Debug)]
pub struct Unpacked {
    /// Digest and size of the bytes as given (compressed).
    pub digest: Digest,
    pub size: u64,
    /// Digest and size of the uncompressed tar (the diff_id).
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    pub compression: Compression,
}

/// Bytes handed from the decoding thread to the extracting one.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the two threads.
const DEPTH: usize = 16;

/// A reader over chunks sent by the decoding thread.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0), // the decoder is done
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The decoding half: hash the bytes as given, decompress, hash the tar,
/// and send it on in chunks. Returns both digests once the input ends.
fn decode(
    reader: impl Read,
    tx: std::sync::mpsc::SyncSender<std::io::Result<Vec<u8>>>,
) -> std::io::Result<(Digest, u64, Digest, u64, Compression)> {
    let mut outer = crate::digest::HashingReader::new(reader);
    let mut buffered = BufReader::with_capacity(1 << 20, &mut outer);
    let compression = detect(buffered.fill_buf()?);
    let mut decoded: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    };
    let mut inner = Sha256::new();
    let mut count = 0u64;
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            match decoded.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            }
        }
        if filled == 0 {
            break;
        }
        chunk.truncate(filled);
        inner.update(&chunk);
        count += filled as u64;
        if tx.send(Ok(chunk)).is_err() {
            // The extractor stopped (it failed): stop too.
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                EXTRACTION_STOPPED,
            ));
        }
    }
    drop(decoded);
    drop(tx);
    let (digest, size) = outer.finish();
    Ok((digest, size, Digest::from_sha256(inner), count, compression))
}

/// The decoder's error when the extractor stopped reading.
const EXTRACTION_STOPPED: &str = "extraction stopped";

/// Unpack `reader` (a layer, compressed or not) into `dest` (an existing
/// empty directory). `name` is used in errors. Decoding (read, hash,
/// decompress, hash) runs on its own thread, extraction on this one, so
/// the CPU work and the filesystem syscalls overlap.
pub fn unpack(reader: impl Read + Send, dest: &Path, name: &str) -> Result<Unpacked> {
    let root =
        open_dir(dest).map_err(|e| sys(name, &format!("open snapshot {}", dest.display()), e))?;
    let (tx, rx) = std::sync::mpsc::sync_channel(DEPTH);
    std::thread::scope(|s| {
        let decoder = s.spawn(move || decode(reader, tx));
        let mut archive = tar::Archive::new(ChannelReader {
            rx,
            buf: Vec::new(),
            pos: 0,
        });
        let extracted = (|| {
            let mut ex = Extractor {
                root,
                name: name.to_string(),
                dirs: Vec::new(),
            };
            for entry in archive
                .entries()
                .map_err(|e| bad(name, &format!("not a tar archive: {e}")))?
            {
                let entry = entry.map_err(|e| bad(name, &format!("corrupt tar: {e}")))?;
                ex.entry(entry)?;
            }
            ex.finish_dirs()?;
            // Let the decoder hash what tar did not need (end padding).
            std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
                .map_err(|e| bad(name, &format!("corrupt stream: {e}")))?;
            Ok(())
        })();
        let decoded = decoder
            .join()
            .map_err(|_| bad(name, "decoder thread panicked"))?;
        // A decoding error explains an extraction error ("corrupt tar").
        let (digest, size, diff_id, uncompressed_size, compression) = match (decoded, extracted) {
            // The extractor failed first, and the decoder stopped for it:
            // the extractor's error is the one to tell.
            (Err(e), Err(x)) if e.to_string() == EXTRACTION_STOPPED => return Err(x),
            (Err(e), _) => return Err(bad(name, &format!("corrupt stream: {e}"))),
            (Ok(_), Err(e)) => return Err(e),
            (Ok(d), Ok(())) => d,
        };
        Ok(Unpacked {
            digest,
            size,
            diff_id,
            uncompressed_size,
            compression,
        })
    })
}

fn io(layer: &str, what: &str, e: std::io::Error) -> Error {
    Error::Io {
        context: format!("{what} ({layer})"),
        source: e,
    }
}
fn sys(layer: &str, what: &str, e: Errno) -> Error {
    Error::Sys {
        context: format!("{what} ({layer})"),
        source: e,
    }
}
/// A chown that failed: in a user namespace EINVAL means the owner has
/// no id there (a rootless user without enough subordinate ids).
fn chown_error(layer: &str, what: &str, e: Errno, uid: u32, gid: u32) -> Error {
    if e == Errno::EINVAL && crate::mounts::in_user_namespace() {
        return bad(
            layer,
            &format!(
                "{what}: owner {uid}:{gid} is not mapped in this user namespace: a rootless user needs subordinate ids covering it in /etc/subuid and /etc/subgid"
            ),
        );
    }
    sys(layer, what, e)
}

fn bad(layer: &str, msg: &str) -> Error {
    Error::BadLayer {
        layer: layer.to_string(),
        msg: msg.to_string(),
    }
}

fn open_dir(p: &Path) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        p,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: fresh fd from open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Clean an entry path into components below the root. Leading `/` and
/// `.` are dropped; `..` is applied, and refused if it climbs above root.
pub fn clean_path(raw: &Path) -> std::result::Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err("climbs above the layer root with ..");
                }
            }
            Component::Prefix(_) => return Err("has a path prefix"),
        }
    }
    Ok(out)
}

struct DirMeta {
    path: PathBuf,
    mode: u32,
    mtime: i64,
}

struct Extractor {
    root: OwnedFd,
    name: String,
    dirs: Vec<DirMeta>,
}

impl Extractor {
    fn unsafe_path(&self, path: &Path, why: &str) -> Error {
        Error::UnsafePath {
            layer: self.name.clone(),
            path: path.display().to_string(),
            why: why.to_string(),
        }
    }

    /// Resolve (creating as needed) a directory inside the root.
    fn dir(&self, rel: &Path) -> Result<OwnedFd> {
        match self.open_in_root(rel, OFlag::O_DIRECTORY) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(Errno::ENOTDIR) => return Err(self.unsafe_path(rel, "a parent is not a directory")),
            Err(e) => return Err(sys(&self.name, &format!("resolve {}", rel.display()), e)),
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel
            .file_name()
            .ok_or_else(|| self.unsafe_path(rel, "empty name"))?;
        let pfd = self.dir(parent)?;
        let pdir = reopen(&pfd).map_err(|e| sys(&self.name, "reopen dir", e))?;
        match nix::sys::stat::mkdirat(
            Some(pdir.as_raw_fd()),
            name,
            Mode::from_bits_truncate(0o755),
        ) {
            Ok(()) => {}
            // A dangling symlink in the way: do not create through it.
            Err(Errno::EEXIST) => {
                return Err(
                    self.unsafe_path(rel, "a symlink on the way points nowhere in the layer")
                );
            }
            Err(e) => return Err(sys(&self.name, &format!("mkdir {}", rel.display()), e)),
        }
        self.open_in_root(rel, OFlag::O_DIRECTORY)
            .map_err(|e| sys(&self.name, &format!("open {}", rel.display()), e))
    }

    fn open_in_root(&self, rel: &Path, extra: OFlag) -> nix::Result<OwnedFd> {
        let p: &Path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | extra)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        // EAGAIN: a mount or rename elsewhere raced a ".." walk and the
        // kernel could not prove it stayed inside the root; retry.
        let mut tries = 0;
        let fd = loop {
            match openat2(self.root.as_raw_fd(), p, how) {
                Err(nix::errno::Errno::EAGAIN) if tries < 32 => tries += 1,
                other => break other?,
            }
        };
        // SAFETY: fresh fd from openat2.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn entry<R: Read>(&mut self, mut e: tar::Entry<R>) -> Result<()> {
        let raw = e
            .path()
            .map_err(|err| bad(&self.name, &format!("bad entry name: {err}")))?
            .into_owned();
        let rel = clean_path(&raw).map_err(|why| self.unsafe_path(&raw, why))?;
        let Some(base) = rel.file_name().map(|b| b.to_os_string()) else {
            return Ok(()); // the root itself ("./"): nothing to create
        };
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let base_str = base.to_string_lossy();
        let hdr = e.header().clone();
        let kind = hdr.entry_type();

        if base_str == OPAQUE_MARKER {
            let pfd = self.dir(&parent_rel)?;
            return setxattr_fd(&pfd, "trusted.overlay.opaque", b"y").map_err(|err| {
                sys(
                    &self.name,
                    &format!("mark {} opaque", parent_rel.display()),
                    err,
                )
            });
        }
        if let Some(hidden) = base_str.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(self.unsafe_path(&raw, "whiteout of nothing"));
            }
            let pfd = self.dir(&parent_rel)?;
            let pdir = reopen(&pfd).map_err(|err| sys(&self.name, "reopen dir", err))?;
            remove_existing(&pdir, OsStr::new(hidden));
            return nix::sys::stat::mknodat(
                Some(pdir.as_raw_fd()),
                hidden,
                SFlag::S_IFCHR,
                Mode::empty(),
                0,
            )
            .map_err(|err| sys(&self.name, &format!("whiteout {}", rel.display()), err));
        }

        let pfd = self.dir(&parent_rel)?;
        let pdir = reopen(&pfd).map_err(|err| sys(&self.name, "reopen dir", err))?;
        let name = base.as_os_str();
        // Links carry no meaningful mode; some writers leave it blank.
        let mode = match kind {
            EntryType::Symlink | EntryType::Link => hdr.mode().unwrap_or(0o777),
            _ => hdr
                .mode()
                .map_err(|err| bad(&self.name, &err.to_string()))?,
        } & 0o7777;
        let uid = hdr.uid().map_err(|err| bad(&self.name, &err.to_string()))? as u32;
        let gid = hdr.gid().map_err(|err| bad(&self.name, &err.to_string()))? as u32;
        let mtime = hdr.mtime().unwrap_or(0) as i64;
        let xattrs = pax_xattrs(&mut e);
        let d = pdir.as_raw_fd();
        let ctx = |what: &str| format!("{what} {}", rel.display());

        match kind {
            EntryType::Directory => {
                match nix::sys::stat::mkdirat(Some(d), name, Mode::from_bits_truncate(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) if is_dir_at(d, name) => {}
                    Err(Errno::EEXIST) => {
                        remove_existing(&pdir, name);
                        nix::sys::stat::mkdirat(Some(d), name, Mode::from_bits_truncate(0o700))
                            .map_err(|err| sys(&self.name, &ctx("mkdir"), err))?;
                    }
                    Err(err) => return Err(sys(&self.name, &ctx("mkdir"), err)),
                }
                chown_at(d, name, uid, gid)
                    .map_err(|err| chown_error(&self.name, &ctx("chown"), err, uid, gid))?;
                let fd = self
                    .open_in_root(&rel, OFlag::O_DIRECTORY)
                    .map_err(|err| sys(&self.name, &ctx("open"), err))?;
                for (k, v) in &xattrs {
                    setxattr_fd(&fd, k, v).map_err(|err| sys(&self.name, &ctx("xattr"), err))?;
                }
                // Mode and mtime last: children change the mtime, and a
                // read-only mode would stop us creating them.
                self.dirs.push(DirMeta {
                    path: rel.clone(),
                    mode,
                    mtime,
                });
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                remove_existing(&pdir, name);
                let flags = OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC;
                let fd = nix::fcntl::openat(Some(d), name, flags, Mode::from_bits_truncate(0o600))
                    .map_err(|err| sys(&self.name, &ctx("create"), err))?;
                // SAFETY: fresh fd from openat.
                let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
                std::io::copy(&mut e, &mut f).map_err(|err| io(&self.name, &ctx("write"), err))?;
                nix::unistd::fchown(f.as_raw_fd(), Some(uid.into()), Some(gid.into()))
                    .map_err(|err| chown_error(&self.name, &ctx("chown"), err, uid, gid))?;
                for (k, v) in &xattrs {
                    setxattr_raw(f.as_raw_fd(), k, v)
                        .map_err(|err| sys(&self.name, &ctx("xattr"), err))?;
                }
                // After chown, which clears setuid/setgid bits.
                nix::sys::stat::fchmod(f.as_raw_fd(), Mode::from_bits_truncate(mode))
                    .map_err(|err| sys(&self.name, &ctx("chmod"), err))?;
                set_times(f.as_raw_fd(), None, mtime, false)
                    .map_err(|err| sys(&self.name, &ctx("utimes"), err))?;
            }
            EntryType::Symlink => {
                let target = e
                    .link_name()
                    .map_err(|err| bad(&self.name, &err.to_string()))?
                    .ok_or_else(|| {
                        bad(
                            &self.name,
                            &format!("symlink {} without target", rel.display()),
                        )
                    })?
                    .into_owned();
                remove_existing(&pdir, name);
                nix::unistd::symlinkat(target.as_os_str(), Some(d), name)
                    .map_err(|err| sys(&self.name, &ctx("symlink"), err))?;
                chown_at(d, name, uid, gid).map_err(|err| sys(&self.name, &ctx("lchown"), err))?;
                set_times(d, Some(name), mtime, true)
                    .map_err(|err| sys(&self.name, &ctx("utimes"), err))?;
            }
            EntryType::Link => {
                let target_raw = e
                    .link_name()
                    .map_err(|err| bad(&self.name, &err.to_string()))?
                    .ok_or_else(|| {
                        bad(
                            &self.name,
                            &format!("hardlink {} without target", rel.display()),
                        )
                    })?
                    .into_owned();
                let target =
                    clean_path(&target_raw).map_err(|why| self.unsafe_path(&target_raw, why))?;
                // The target must be an existing non-directory of this
                // layer; O_NOFOLLOW links a symlink itself, never its target.
                let tfd = self.open_in_root(&target, OFlag::O_NOFOLLOW).map_err(|_| {
                    self.unsafe_path(&target_raw, "hardlink target is not in this layer")
                })?;
                if is_dir_fd(tfd.as_raw_fd()) {
                    return Err(self.unsafe_path(&target_raw, "hardlink to a directory"));
                }
                remove_existing(&pdir, name);
                nix::unistd::linkat(
                    Some(tfd.as_raw_fd()),
                    Path::new(""),
                    Some(d),
                    Path::new(name),
                    AtFlags::AT_EMPTY_PATH,
                )
                .map_err(|err| sys(&self.name, &ctx("link"), err))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let kind_flag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let major = hdr.device_major().ok().flatten().unwrap_or(0) as u64;
                let minor = hdr.device_minor().ok().flatten().unwrap_or(0) as u64;
                remove_existing(&pdir, name);
                match nix::sys::stat::mknodat(
                    Some(d),
                    name,
                    kind_flag,
                    Mode::from_bits_truncate(mode),
                    nix::sys::stat::makedev(major, minor),
                ) {
                    Ok(()) => {}
                    // In a user namespace (the rootless engine) the kernel
                    // makes no device nodes: skipped, as podman skips them.
                    // The container gets its devices from the runtime.
                    Err(nix::errno::Errno::EPERM)
                        if kind_flag != SFlag::S_IFIFO && crate::mounts::in_user_namespace() =>
                    {
                        tracing::warn!(
                            "layer {}: skipping device node {} (no device nodes in a user namespace)",
                            self.name,
                            rel.display()
                        );
                        return Ok(());
                    }
                    Err(err) => return Err(sys(&self.name, &ctx("mknod"), err)),
                }
                chown_at(d, name, uid, gid)
                    .map_err(|err| chown_error(&self.name, &ctx("chown"), err, uid, gid))?;
                nix::sys::stat::fchmodat(
                    Some(d),
                    name,
                    Mode::from_bits_truncate(mode),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .map_err(|err| sys(&self.name, &ctx("chmod"), err))?;
            }
            other => {
                tracing::warn!(
                    "layer {}: skipping {} of unsupported type {other:?}",
                    self.name,
                    rel.display()
                );
            }
        }
        Ok(())
    }

    fn finish_dirs(&mut self) -> Result<()> {
        // Deepest first, so setting a parent's mtime is the last change to it.
        self.dirs
            .sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
        for d in std::mem::take(&mut self.dirs) {
            let fd = self
                .open_in_root(&d.path, OFlag::O_DIRECTORY)
                .map_err(|e| sys(&self.name, "reopen dir", e))?;
            let rfd = reopen(&fd).map_err(|e| sys(&self.name, "reopen dir", e))?;
            nix::sys::stat::fchmod(rfd.as_raw_fd(), Mode::from_bits_truncate(d.mode))
                .map_err(|e| sys(&self.name, &format!("chmod {}", d.path.display()), e))?;
            set_times(rfd.as_raw_fd(), None, d.mtime, false)
                .map_err(|e| sys(&self.name, &format!("utimes {}", d.path.display()), e))?;
        }
        Ok(())
    }
}

/// PAX `SCHILY.xattr.*` records, minus overlay's own attributes.
fn pax_xattrs<R: Read>(e: &mut tar::Entry<R>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(Some(exts)) = e.pax_extensions() {
        for ext in exts.flatten() {
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if name.starts_with("trusted.overlay.") {
                    tracing::warn!("dropping forged overlay xattr {name}");
                    continue;
                }
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    out
}

fn reopen(fd: &OwnedFd) -> nix::Result<OwnedFd> {
    let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let raw = nix::fcntl::open(
        p.as_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: fresh fd from open.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn is_dir_at(dir: RawFd, name: &OsStr) -> bool {
    nix::sys::stat::fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

fn is_dir_fd(fd: RawFd) -> bool {
    nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// Remove whatever is at `name` (an empty directory, or a non-directory).
fn remove_existing(dir: &OwnedFd, name: &OsStr) {
    let d = dir.as_raw_fd();
    if nix::unistd::unlinkat(Some(d), name, nix::unistd::UnlinkatFlags::NoRemoveDir).is_err() {
        let _ = nix::unistd::unlinkat(Some(d), name, nix::unistd::UnlinkatFlags::RemoveDir);
    }
}

fn chown_at(dir: RawFd, name: &OsStr, uid: u32, gid: u32) -> nix::Result<()> {
    nix::unistd::fchownat(
        Some(dir),
        name,
        Some(uid.into()),
        Some(gid.into()),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

fn set_times(fd: RawFd, name: Option<&OsStr>, mtime: i64, nofollow: bool) -> nix::Result<()> {
    let ts = libc::timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    let rc = match name {
        Some(n) => {
            let c = CString::new(n.as_bytes()).map_err(|_| Errno::EINVAL)?;
            let flags = if nofollow {
                libc::AT_SYMLINK_NOFOLLOW
            } else {
                0
            };
            // SAFETY: valid dirfd, NUL-terminated name, two timespecs.
            unsafe { libc::utimensat(fd, c.as_ptr(), times.as_ptr(), flags) }
        }
        // SAFETY: valid fd and two timespecs.
        None => unsafe { libc::futimens(fd, times.as_ptr()) },
    };
    Errno::result(rc).map(drop)
}

fn setxattr_raw(fd: RawFd, name: &str, value: &[u8]) -> nix::Result<()> {
    let c = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: valid fd, NUL-terminated name, value pointer and length.
    let rc = unsafe { libc::fsetxattr(fd, c.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    Errno::result(rc).map(drop)
}

/// Set an xattr on an O_PATH fd (through /proc/self/fd, not followed
/// further than the object itself).
fn setxattr_fd(fd: &OwnedFd, name: &str, value: &[u8]) -> nix::Result<()> {
    let p = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|_| Errno::EINVAL)?;
    let c = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: NUL-terminated path and name, value pointer and length.
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            c.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(
            clean_path(Path::new("/a/./b/")).unwrap(),
            PathBuf::from("a/b")
        );
        assert_eq!(
            clean_path(Path::new("a/b/../c")).unwrap(),
            PathBuf::from("a/c")
        );
        assert!(clean_path(Path::new("../etc/passwd")).is_err());
        assert!(clean_path(Path::new("a/../../x")).is_err());
    }

    #[test]
    fn compression_magic() {
        assert_eq!(detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(detect(b"usta"), Compression::None);
    }
}
