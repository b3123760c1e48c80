//! COPY and ADD: files from the context, a stage or an image into the
//! stage's rootfs, without a container. Sources are read by directory fds
//! inside their root and destinations are made inside the destination
//! root (see [`crate::build::fsops`]), so neither side's symlinks can reach
//! outside. Modes (setuid bits too), xattrs, hard links within one copy,
//! symlinks and mtimes are kept; owners are 0:0 from the context, kept
//! from a stage or image, or `--chown`'s.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

use crate::build::context::Ignore;
use crate::build::fsops::{self, Kind, Stat};

pub struct CopyOptions {
    /// `--chown`, resolved.
    pub owner: Option<(u32, u32)>,
    /// Keep the source's owners (a stage or an image) rather than 0:0.
    pub keep_owner: bool,
    /// `--chmod`.
    pub chmod: Option<u32>,
    /// `--exclude` patterns.
    pub exclude: Ignore,
}

/// One copy operation between two roots.
pub struct Copier<'a> {
    pub src: &'a OwnedFd,
    pub dst: &'a OwnedFd,
    pub o: &'a CopyOptions,
    /// Is this source path part of the source (the context's ignore rules)?
    pub visible: &'a dyn Fn(&str) -> bool,
    /// (dev, inode) of multiply linked files copied -> their dest path.
    links: HashMap<(u64, u64), PathBuf>,
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

impl<'a> Copier<'a> {
    pub fn new(
        src: &'a OwnedFd,
        dst: &'a OwnedFd,
        o: &'a CopyOptions,
        visible: &'a dyn Fn(&str) -> bool,
    ) -> Copier<'a> {
        Copier {
            src,
            dst,
            o,
            visible,
            links: HashMap::new(),
        }
    }

    fn owner_of(&self, st: &Stat) -> (u32, u32) {
        self.o.owner.unwrap_or(if self.o.keep_owner {
            (st.uid, st.gid)
        } else {
            (0, 0)
        })
    }

    /// The owner of directories the copy creates on the way.
    pub fn dir_owner(&self) -> (u32, u32) {
        self.o.owner.unwrap_or((0, 0))
    }

    /// Copy one source (resolved inside the source root, symlinks
    /// followed there) to `dest` (a path in the destination root):
    /// a directory's contents go into `dest`; a file becomes `dest`, or
    /// `dest/NAME` when `into_dir`.
    pub fn copy(&mut self, src_rel: &str, dest: &Path, into_dir: bool) -> Result<()> {
        let fd =
            fsops::open_in(self.src, Path::new(src_rel), OFlag::O_PATH).map_err(|e| match e {
                Errno::ENOENT | Errno::ENOTDIR => anyhow!("{:?} not found", format!("/{src_rel}")),
                e => anyhow!("open /{src_rel}: {e}"),
            })?;
        let st = fsops::fstat(fd.as_raw_fd()).map_err(|e| anyhow!("stat /{src_rel}: {e}"))?;
        if st.kind == Kind::Dir {
            let dfd = fsops::mkdir_all_in(self.dst, dest, 0o755, self.dir_owner())
                .with_context(|| format!("create {}", dest.display()))?;
            let sdir = fsops::reopen_dir(&fd)?;
            return self.contents(&sdir, src_rel, "", &dfd, dest);
        }
        let base = Path::new(src_rel)
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        // An existing directory at the destination takes the file inside.
        let into_dir =
            into_dir || fsops::stat_in(self.dst, dest, false).is_ok_and(|s| s.kind == Kind::Dir);
        let (parent, name) = if into_dir {
            (dest.to_path_buf(), base)
        } else {
            (
                dest.parent().map(Path::to_path_buf).unwrap_or_default(),
                dest.file_name()
                    .map(|n| n.to_os_string())
                    .ok_or_else(|| anyhow!("invalid destination {}", dest.display()))?,
            )
        };
        let pfd = fsops::mkdir_all_in(self.dst, &parent, 0o755, self.dir_owner())
            .with_context(|| format!("create {}", parent.display()))?;
        self.node(fd, &st, src_rel, &pfd, &name, &parent.join(&name))
    }

    /// Copy a directory's children.
    fn contents(
        &mut self,
        sdir: &OwnedFd,
        src_rel: &str,
        within: &str,
        ddir: &OwnedFd,
        dst_rel: &Path,
    ) -> Result<()> {
        for (name, st) in fsops::list_os(sdir)? {
            let n = name.to_string_lossy();
            let child = join(src_rel, &n);
            let inner = join(within, &n);
            if !(self.visible)(&child) || self.o.exclude.excluded(&inner) {
                continue;
            }
            let fd = nix::fcntl::openat(
                Some(sdir.as_raw_fd()),
                name.as_os_str(),
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| anyhow!("open /{child}: {e}"))?;
            // SAFETY: fresh fd from openat.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            if st.kind == Kind::Dir {
                self.dir(fd, &st, &child, &inner, ddir, &name, &dst_rel.join(&name))?;
            } else {
                self.node(fd, &st, &child, ddir, &name, &dst_rel.join(&name))?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn dir(
        &mut self,
        fd: OwnedFd,
        st: &Stat,
        src_rel: &str,
        within: &str,
        ddir: &OwnedFd,
        name: &OsStr,
        dst_rel: &Path,
    ) -> Result<()> {
        match fsops::stat_at(ddir, name) {
            Ok(s) if s.kind == Kind::Dir => {}
            Ok(_) => {
                fsops::remove_at(ddir, name)?;
                mkdir(ddir, name)?;
            }
            Err(_) => mkdir(ddir, name)?,
        }
        let sub = fsops::openat_dir(ddir, name)?;
        let sdir = fsops::reopen_dir(&fd)?;
        self.contents(&sdir, src_rel, within, &sub, dst_rel)?;
        fsops::fchown(sub.as_raw_fd(), self.owner_of(st))?;
        fsops::copy_xattrs(&sdir, sub.as_raw_fd())?;
        fsops::fchmod(sub.as_raw_fd(), self.o.chmod.unwrap_or(st.mode))?;
        fsops::set_mtime_at(ddir, name, st.mtime, st.mtime_nsec)
    }

    /// A non-directory (or, from `copy`, a directory source handled
    /// there): file, symlink, FIFO or device.
    fn node(
        &mut self,
        fd: OwnedFd,
        st: &Stat,
        src_rel: &str,
        ddir: &OwnedFd,
        name: &OsStr,
        dst_rel: &Path,
    ) -> Result<()> {
        let ctx = || format!("copy /{src_rel} to {}", dst_rel.display());
        if let Ok(existing) = fsops::stat_at(ddir, name)
            && existing.kind == Kind::Dir
        {
            bail!(
                "{}: cannot replace the directory {} with a file",
                ctx(),
                dst_rel.display()
            );
        }
        fsops::remove_at(ddir, name).with_context(ctx)?;
        if st.kind != Kind::Dir && st.nlink > 1 {
            let key = (st.dev, st.ino);
            if let Some(first) = self.links.get(&key) {
                let first_fd = fsops::open_in(self.dst, first, OFlag::O_PATH | OFlag::O_NOFOLLOW)
                    .map_err(|e| anyhow!("{}: {e}", ctx()))?;
                nix::unistd::linkat(
                    Some(first_fd.as_raw_fd()),
                    Path::new(""),
                    Some(ddir.as_raw_fd()),
                    Path::new(name),
                    nix::fcntl::AtFlags::AT_EMPTY_PATH,
                )
                .map_err(|e| anyhow!("{}: link: {e}", ctx()))?;
                return Ok(());
            }
            self.links.insert(key, dst_rel.to_path_buf());
        }
        let owner = self.owner_of(st);
        match st.kind {
            Kind::File => {
                let src =
                    fsops::reopen(&fd, OFlag::O_RDONLY).map_err(|e| anyhow!("{}: {e}", ctx()))?;
                let out = nix::fcntl::openat(
                    Some(ddir.as_raw_fd()),
                    name,
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| anyhow!("{}: create: {e}", ctx()))?;
                // SAFETY: fresh fd from openat.
                let mut out = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(out) });
                let mut input = std::fs::File::from(src);
                std::io::copy(&mut input, &mut out).with_context(ctx)?;
                fsops::fchown(out.as_raw_fd(), owner)?;
                fsops::copy_xattrs(&fd, out.as_raw_fd())?;
                // After chown, which clears setuid and setgid.
                fsops::fchmod(out.as_raw_fd(), self.o.chmod.unwrap_or(st.mode))?;
                drop(out);
                fsops::set_mtime_at(ddir, name, st.mtime, st.mtime_nsec)
            }
            Kind::Symlink => {
                let target = fsops::read_link_fd(&fd)?;
                nix::unistd::symlinkat(target.as_os_str(), Some(ddir.as_raw_fd()), name)
                    .map_err(|e| anyhow!("{}: symlink: {e}", ctx()))?;
                fsops::lchown_at(ddir, name, owner)?;
                fsops::set_mtime_at(ddir, name, st.mtime, st.mtime_nsec)
            }
            Kind::Other => {
                let t = st.raw_mode & libc::S_IFMT;
                if t == libc::S_IFSOCK {
                    return Ok(()); // sockets are not copied
                }
                nix::sys::stat::mknodat(
                    Some(ddir.as_raw_fd()),
                    name,
                    SFlag::from_bits_truncate(t),
                    Mode::from_bits_truncate(st.mode),
                    st.rdev,
                )
                .map_err(|e| anyhow!("{}: mknod: {e}", ctx()))?;
                fsops::lchown_at(ddir, name, owner)?;
                nix::sys::stat::fchmodat(
                    Some(ddir.as_raw_fd()),
                    name,
                    Mode::from_bits_truncate(self.o.chmod.unwrap_or(st.mode)),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .map_err(|e| anyhow!("{}: chmod: {e}", ctx()))?;
                fsops::set_mtime_at(ddir, name, st.mtime, st.mtime_nsec)
            }
            Kind::Dir => unreachable!("directories go through Copier::dir"),
        }
    }
}

fn mkdir(dir: &OwnedFd, name: &OsStr) -> Result<()> {
    nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o700))
        .map_err(|e| anyhow!("mkdir {}: {e}", name.to_string_lossy()))
}

/// Write `content` as the file `dest` (a heredoc of COPY/ADD).
pub fn write_file(
    dst: &OwnedFd,
    dest: &Path,
    content: &[u8],
    mode: u32,
    owner: (u32, u32),
    mtime: Option<i64>,
) -> Result<()> {
    let parent = dest.parent().unwrap_or(Path::new(""));
    let name = dest
        .file_name()
        .ok_or_else(|| anyhow!("invalid destination {}", dest.display()))?;
    let pfd = fsops::mkdir_all_in(dst, parent, 0o755, owner)?;
    fsops::remove_at(&pfd, name)?;
    let fd = nix::fcntl::openat(
        Some(pfd.as_raw_fd()),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| anyhow!("create {}: {e}", dest.display()))?;
    // SAFETY: fresh fd from openat.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    std::io::Write::write_all(&mut f, content)
        .with_context(|| format!("write {}", dest.display()))?;
    fsops::fchown(f.as_raw_fd(), owner)?;
    fsops::fchmod(f.as_raw_fd(), mode)?;
    drop(f);
    if let Some(t) = mtime {
        fsops::set_mtime_at(&pfd, name, t, 0)?;
    }
    Ok(())
}
