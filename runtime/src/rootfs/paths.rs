//! Path resolution inside a container rootfs that cannot escape it.
//!
//! Every lookup goes through `openat2(RESOLVE_IN_ROOT)` from a directory fd
//! of the rootfs, so `..`, absolute symlinks and symlink chains are resolved
//! as if the rootfs were `/` (the CVE-2021-30465 class of mount-target
//! races is designed out: the kernel does the resolution atomically, and we
//! mount onto the resulting fd through `/proc/self/fd/N`).

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};

/// Resolve `path` inside the root `root_fd` and open it with `flags`.
pub fn open_in_root(
    root_fd: RawFd,
    path: &Path,
    flags: OFlag,
    extra: ResolveFlag,
) -> nix::Result<OwnedFd> {
    let rel = relative(path);
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS | extra);
    let fd = openat2(root_fd, rel.as_os_str(), how)?;
    // SAFETY: openat2 returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The path with its root and `.` components stripped ("" becomes ".").
pub fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// `/proc/self/fd/N`: a path the mount syscalls follow to the exact object
/// the fd refers to.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Create every missing directory of `path` inside the root and return an
/// `O_PATH` fd of the final directory.
pub fn mkdir_all_in_root(root_fd: RawFd, path: &Path, mode: u32) -> Result<OwnedFd> {
    let rel = relative(path);
    let mut prefix = PathBuf::new();
    let mut current = open_in_root(
        root_fd,
        Path::new("."),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        ResolveFlag::empty(),
    )
    .map_err(|e| sys("open rootfs", e))?;
    for comp in rel.components() {
        let name = match comp {
            Component::Normal(n) => n,
            Component::ParentDir => {
                // `..` is resolved by the kernel against the root; track it
                // by re-resolving the whole prefix.
                prefix.push("..");
                current = open_in_root(
                    root_fd,
                    &prefix,
                    OFlag::O_PATH | OFlag::O_DIRECTORY,
                    ResolveFlag::empty(),
                )
                .map_err(|e| sys(&format!("resolve {}", prefix.display()), e))?;
                continue;
            }
            _ => continue,
        };
        prefix.push(name);
        match open_in_root(
            root_fd,
            &prefix,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            ResolveFlag::empty(),
        ) {
            Ok(fd) => current = fd,
            Err(Errno::ENOENT) => {
                mkdirat(&current, name, mode)?;
                current = open_in_root(
                    root_fd,
                    &prefix,
                    OFlag::O_PATH | OFlag::O_DIRECTORY,
                    ResolveFlag::empty(),
                )
                .map_err(|e| sys(&format!("open new directory {}", prefix.display()), e))?;
            }
            Err(e) => return Err(sys(&format!("resolve {} in rootfs", prefix.display()), e)),
        }
    }
    Ok(current)
}

fn mkdirat(parent: &OwnedFd, name: &OsStr, mode: u32) -> Result<()> {
    match nix::sys::stat::mkdirat(
        Some(parent.as_raw_fd()),
        name,
        Mode::from_bits_truncate(mode),
    ) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(sys(&format!("mkdir {}", Path::new(name).display()), e)),
    }
}

/// Make sure a mount target exists inside the root (a directory, or an empty
/// file when mounting a file) and return an `O_PATH` fd to it.
pub fn ensure_target(root_fd: RawFd, dest: &Path, dir: bool) -> Result<OwnedFd> {
    match open_in_root(root_fd, dest, OFlag::O_PATH, ResolveFlag::empty()) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => {
            return Err(sys(
                &format!("resolve mount target {} in rootfs", dest.display()),
                e,
            ));
        }
    }
    let rel = relative(dest);
    let parent_path = rel.parent().unwrap_or(Path::new("."));
    let name = rel
        .file_name()
        .ok_or_else(|| Error::Container(format!("bad mount target {}", dest.display())))?;
    let parent = mkdir_all_in_root(root_fd, parent_path, 0o755)?;
    if dir {
        mkdirat(&parent, name, 0o755)?;
    } else {
        let flags = OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let parent_dir = reopen_dir(&parent)?;
        match nix::fcntl::openat(
            Some(parent_dir.as_raw_fd()),
            name,
            flags,
            Mode::from_bits_truncate(0o644),
        ) {
            Ok(fd) => drop(unsafe_owned(fd)),
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(sys(&format!("create mount target {}", dest.display()), e)),
        }
    }
    open_in_root(root_fd, dest, OFlag::O_PATH, ResolveFlag::empty())
        .map_err(|e| sys(&format!("open mount target {}", dest.display()), e))
}

/// Turn an `O_PATH` directory fd into one usable with `*at` calls that
/// create entries.
pub fn reopen_dir(fd: &OwnedFd) -> Result<OwnedFd> {
    let raw = nix::fcntl::open(
        &fd_path(fd),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys("reopen directory", e))?;
    Ok(unsafe_owned(raw))
}

fn unsafe_owned(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass an fd just returned by open/openat that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

pub(crate) fn sys(context: &str, source: Errno) -> Error {
    Error::Sys {
        context: context.to_string(),
        source,
    }
}

/// Bytes of a path, for syscalls that take C strings.
pub fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn relative_strips_root() {
        assert_eq!(relative(Path::new("/a/./b")), PathBuf::from("a/b"));
        assert_eq!(relative(Path::new("/")), PathBuf::from("."));
    }

    #[test]
    fn symlinks_cannot_leave_the_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), root.path().join("escape")).unwrap();
        symlink("../../../../", root.path().join("up")).unwrap();
        let rootfd = nix::fcntl::open(
            root.path(),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        // Absolute symlink to a host dir: resolved inside the root instead.
        let fd = ensure_target(rootfd, Path::new("/escape/sub"), true).unwrap();
        drop(fd);
        assert!(
            !outside.path().join("sub").exists(),
            "created outside the root"
        );
        assert!(
            root.path()
                .join(outside.path().strip_prefix("/").unwrap())
                .join("sub")
                .is_dir()
        );
        // Relative `..` chains clamp at the root.
        ensure_target(rootfd, Path::new("/up/file"), false).unwrap();
        assert!(root.path().join("file").is_file());
        ensure_target(rootfd, Path::new("/../../x/y"), true).unwrap();
        assert!(root.path().join("x/y").is_dir());
    }
}
