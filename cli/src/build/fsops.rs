//! File operations confined to a root directory fd: every path is
//! resolved with `openat2(RESOLVE_IN_ROOT)` (symlinks and `..` cannot leave
//! the root), and trees are walked by directory fds with `O_NOFOLLOW`, so
//! a symlink in a build context, a stage or a base image is a symlink,
//! never a way out. The build's COPY/ADD, WORKDIR and `cp` use these.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, ResolveFlag};
use nix::sys::stat::Mode;
use strata_runtime::rootfs::paths::open_in_root;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

#[derive(Clone, Debug)]
pub struct Stat {
    pub kind: Kind,
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    /// The whole st_mode (type bits too), for mknod.
    pub raw_mode: u32,
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub nlink: u64,
    pub dev: u64,
    pub ino: u64,
    pub rdev: u64,
}

fn kind_of(mode: u32) -> Kind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFREG => Kind::File,
        libc::S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    }
}

fn stat_from(st: libc::stat) -> Stat {
    Stat {
        kind: kind_of(st.st_mode),
        mode: st.st_mode & 0o7777,
        raw_mode: st.st_mode,
        size: st.st_size as u64,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec,
        nlink: st.st_nlink,
        dev: st.st_dev,
        ino: st.st_ino,
        rdev: st.st_rdev,
    }
}

/// A directory opened for reading (a root for the other calls).
pub fn open_dir(p: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        p,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| anyhow!("open {}: {e}", p.display()))?;
    // SAFETY: fresh fd from open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open `rel` inside `root`; symlinks are followed, but only inside it.
/// With `O_NOFOLLOW` a final symlink is not followed (use `O_PATH` then).
pub fn open_in(root: &OwnedFd, rel: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    open_in_root(root.as_raw_fd(), rel, flags, ResolveFlag::empty())
}

pub fn reopen_dir(fd: &OwnedFd) -> Result<OwnedFd> {
    reopen(fd, OFlag::O_RDONLY | OFlag::O_DIRECTORY).map_err(|e| anyhow!("reopen dir: {e}"))
}

/// A new fd for the object an fd (often `O_PATH`) refers to.
pub fn reopen(fd: &OwnedFd, flags: OFlag) -> nix::Result<OwnedFd> {
    let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let raw = nix::fcntl::open(p.as_str(), flags | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: fresh fd from open.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

pub fn fstat(fd: RawFd) -> nix::Result<Stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    let empty = c"";
    // SAFETY: fstatat with AT_EMPTY_PATH on a valid fd fills `st`.
    let rc = unsafe { libc::fstatat(fd, empty.as_ptr(), st.as_mut_ptr(), libc::AT_EMPTY_PATH) };
    Errno::result(rc)?;
    // SAFETY: fstatat succeeded, so `st` is initialised.
    Ok(stat_from(unsafe { st.assume_init() }))
}

/// `lstat` (nofollow) or `stat` of `rel` inside `root`.
pub fn stat_in(root: &OwnedFd, rel: &Path, nofollow: bool) -> nix::Result<Stat> {
    let mut flags = OFlag::O_PATH;
    if nofollow {
        flags |= OFlag::O_NOFOLLOW;
    }
    let fd = open_in(root, rel, flags)?;
    fstat(fd.as_raw_fd())
}

/// `lstat` of a name in a directory fd.
pub fn stat_at(dir: &OwnedFd, name: &OsStr) -> nix::Result<Stat> {
    let c = CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid dirfd and NUL-terminated name; fills `st`.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    Errno::result(rc)?;
    // SAFETY: fstatat succeeded.
    Ok(stat_from(unsafe { st.assume_init() }))
}

pub fn read_link_in(root: &OwnedFd, rel: &Path) -> Result<PathBuf> {
    let fd = open_in(root, rel, OFlag::O_PATH | OFlag::O_NOFOLLOW)
        .map_err(|e| anyhow!("open {}: {e}", rel.display()))?;
    read_link_fd(&fd)
}

/// The target of a symlink opened with `O_PATH | O_NOFOLLOW`.
pub fn read_link_fd(fd: &OwnedFd) -> Result<PathBuf> {
    let t =
        nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "").map_err(|e| anyhow!("readlink: {e}"))?;
    Ok(PathBuf::from(t))
}

/// Names in a directory fd with their kinds, sorted by name.
pub fn list(dir: &OwnedFd) -> Result<Vec<(String, Kind)>> {
    let mut out = Vec::new();
    for (name, st) in list_os(dir)? {
        out.push((name.to_string_lossy().into_owned(), st.kind));
    }
    Ok(out)
}

/// Names (as given) and their lstat, sorted by name bytes.
pub fn list_os(dir: &OwnedFd) -> Result<Vec<(OsString, Stat)>> {
    let d =
        nix::dir::Dir::from_fd(nix::unistd::dup(dir.as_raw_fd()).map_err(|e| anyhow!("dup: {e}"))?)
            .map_err(|e| anyhow!("read dir: {e}"))?;
    let mut names = Vec::new();
    let mut d = d;
    for e in d.iter() {
        let e = e.map_err(|e| anyhow!("read dir: {e}"))?;
        let n = e.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        names.push(OsString::from(OsStr::from_bytes(n)));
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let st = stat_at(dir, &n).map_err(|e| anyhow!("stat {}: {e}", n.to_string_lossy()))?;
        out.push((n, st));
    }
    Ok(out)
}

/// `mkdir -p` of `rel` inside `root`, creating what is missing with
/// `mode` and `owner`; returns the directory opened for reading. A
/// symlink on the way is followed inside the root.
pub fn mkdir_all_in(root: &OwnedFd, rel: &Path, mode: u32, owner: (u32, u32)) -> Result<OwnedFd> {
    let mut cur = reopen_dir(root)?;
    let mut sofar = PathBuf::new();
    for c in rel.components() {
        let std::path::Component::Normal(name) = c else {
            continue;
        };
        sofar.push(name);
        match open_in(root, &sofar, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
            Ok(fd) => {
                cur = fd;
                continue;
            }
            Err(Errno::ENOENT) => {}
            Err(Errno::ENOTDIR) => {
                return Err(anyhow!("{} is not a directory", sofar.display()));
            }
            Err(e) => return Err(anyhow!("open {}: {e}", sofar.display())),
        }
        match nix::sys::stat::mkdirat(Some(cur.as_raw_fd()), name, Mode::from_bits_truncate(0o700))
        {
            Ok(()) => {
                let fd = openat_dir(&cur, name)?;
                fchown(fd.as_raw_fd(), owner)?;
                fchmod(fd.as_raw_fd(), mode)?;
                cur = fd;
            }
            // A dangling symlink in the way: its target does not exist
            // inside the root, and nothing is made through it.
            Err(Errno::EEXIST) => {
                return Err(anyhow!(
                    "{} is a symlink to nothing inside the root",
                    sofar.display()
                ));
            }
            Err(e) => return Err(anyhow!("mkdir {}: {e}", sofar.display())),
        }
    }
    Ok(cur)
}

/// Open a subdirectory of a directory fd, never through a symlink.
pub fn openat_dir(dir: &OwnedFd, name: &OsStr) -> Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| anyhow!("open {}: {e}", name.to_string_lossy()))?;
    // SAFETY: fresh fd from openat.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn fchown(fd: RawFd, owner: (u32, u32)) -> Result<()> {
    nix::unistd::fchown(fd, Some(owner.0.into()), Some(owner.1.into()))
        .map_err(|e| anyhow!("chown: {e}"))
}

pub fn fchmod(fd: RawFd, mode: u32) -> Result<()> {
    nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode)).map_err(|e| anyhow!("chmod: {e}"))
}

/// Remove whatever is at `name` in `dir` (a non-directory, or a whole
/// directory tree).
pub fn remove_at(dir: &OwnedFd, name: &OsStr) -> Result<()> {
    match stat_at(dir, name) {
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(anyhow!("stat {}: {e}", name.to_string_lossy())),
        Ok(st) if st.kind == Kind::Dir => {
            let sub = openat_dir(dir, name)?;
            for (n, _) in list_os(&sub)? {
                remove_at(&sub, &n)?;
            }
            nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::RemoveDir,
            )
            .map_err(|e| anyhow!("rmdir {}: {e}", name.to_string_lossy()))
        }
        Ok(_) => nix::unistd::unlinkat(
            Some(dir.as_raw_fd()),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )
        .map_err(|e| anyhow!("unlink {}: {e}", name.to_string_lossy())),
    }
}

/// Set mtime (and atime to the same) of `name` in `dir`, not following.
pub fn set_mtime_at(dir: &OwnedFd, name: &OsStr, sec: i64, nsec: i64) -> Result<()> {
    let c = CString::new(name.as_bytes()).map_err(|_| anyhow!("NUL in name"))?;
    let ts = libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    let times = [ts, ts];
    // SAFETY: valid dirfd, NUL-terminated name, two timespecs.
    let rc = unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    Errno::result(rc)
        .map(drop)
        .map_err(|e| anyhow!("utimes {}: {e}", name.to_string_lossy()))
}

pub fn lchown_at(dir: &OwnedFd, name: &OsStr, owner: (u32, u32)) -> Result<()> {
    nix::unistd::fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(owner.0.into()),
        Some(owner.1.into()),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| anyhow!("chown {}: {e}", name.to_string_lossy()))
}

/// Copy the xattrs of one fd to another (overlay's own are skipped).
pub fn copy_xattrs(from: &OwnedFd, to: RawFd) -> Result<()> {
    let p =
        CString::new(format!("/proc/self/fd/{}", from.as_raw_fd())).map_err(|_| anyhow!("path"))?;
    let mut names = vec![0u8; 4096];
    // SAFETY: NUL-terminated path; buffer pointer and length match.
    let n = unsafe { libc::listxattr(p.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Ok(());
    }
    for name in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
    {
        if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
            continue;
        }
        let cname = CString::new(name).map_err(|_| anyhow!("xattr name"))?;
        let mut val = vec![0u8; 65536];
        // SAFETY: NUL-terminated path and name; buffer pointer and length match.
        let r = unsafe {
            libc::getxattr(
                p.as_ptr(),
                cname.as_ptr(),
                val.as_mut_ptr().cast(),
                val.len(),
            )
        };
        if r < 0 {
            continue;
        }
        // SAFETY: valid fd, NUL-terminated name, value pointer and length.
        let rc = unsafe { libc::fsetxattr(to, cname.as_ptr(), val.as_ptr().cast(), r as usize, 0) };
        if rc < 0 {
            let e = Errno::last();
            if e != Errno::ENOTSUP && e != Errno::EPERM {
                return Err(anyhow!("set xattr {}: {e}", String::from_utf8_lossy(name)));
            }
        }
    }
    Ok(())
}
