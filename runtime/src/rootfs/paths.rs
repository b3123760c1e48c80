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

/// How often an openat2 that the kernel answered with EAGAIN is retried.
const OPENAT2_RETRIES: u32 = 32;

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
    // EAGAIN: a mount or rename elsewhere raced a ".." walk and the kernel
    // could not prove it stayed inside the root; it asks for a retry.
    let mut tries = 0;
    let fd = loop {
        match openat2(root_fd, rel.as_os_str(), how) {
            Err(nix::errno::Errno::EAGAIN) if tries < OPENAT2_RETRIES => tries += 1,
            other => break other?,
        }
    };
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

/// Most symlinks followed while resolving one path (the kernel's limit).
const MAX_SYMLINKS: usize = 40;

/// Create every missing directory of `path` inside the root and return an
/// `O_PATH` fd of the final directory plus its symlink-free path relative
/// to the root. Symlinks on the way are expanded by hand, as if the root
/// were `/` (absolute targets restart at the root, `..` stops there), so a
/// dangling link to a host path creates the directory inside the root.
pub fn mkdir_all_in_root(root_fd: RawFd, path: &Path, mode: u32) -> Result<OwnedFd> {
    resolve_creating(root_fd, path, mode).map(|(fd, _)| fd)
}

fn resolve_creating(root_fd: RawFd, path: &Path, mode: u32) -> Result<(OwnedFd, PathBuf)> {
    let mut pending: std::collections::VecDeque<std::ffi::OsString> = relative(path)
        .components()
        .filter_map(component_name)
        .collect();
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let parent = open_in_root(
            root_fd,
            &resolved,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            ResolveFlag::empty(),
        )
        .map_err(|e| sys(&format!("resolve {} in rootfs", resolved.display()), e))?;
        match nix::fcntl::readlinkat(Some(parent.as_raw_fd()), name.as_os_str()) {
            Ok(target) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(sys(
                        &format!("resolve {} in rootfs", path.display()),
                        Errno::ELOOP,
                    ));
                }
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for c in target
                    .components()
                    .filter_map(component_name)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                {
                    pending.push_front(c);
                }
                continue;
            }
            Err(Errno::EINVAL) => {} // exists, not a symlink
            Err(Errno::ENOENT) => mkdirat(&parent, &name, mode)?,
            Err(e) => {
                return Err(sys(
                    &format!("readlink {}", resolved.join(&name).display()),
                    e,
                ));
            }
        }
        resolved.push(&name);
    }
    let fd = open_in_root(
        root_fd,
        &resolved,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        ResolveFlag::empty(),
    )
    .map_err(|e| {
        sys(
            &format!("open directory {} in rootfs", resolved.display()),
            e,
        )
    })?;
    Ok((fd, resolved))
}

fn component_name(c: Component) -> Option<std::ffi::OsString> {
    match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some("..".into()),
        _ => None,
    }
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
    if dir {
        return mkdir_all_in_root(root_fd, dest, 0o755);
    }
    let rel = relative(dest);
    let name = rel
        .file_name()
        .ok_or_else(|| Error::Container(format!("bad mount target {}", dest.display())))?;
    let (parent, parent_path) =
        resolve_creating(root_fd, rel.parent().unwrap_or(Path::new(".")), 0o755)?;
    let parent_dir = reopen_dir(&parent)?;
    if let Ok(target) = nix::fcntl::readlinkat(Some(parent_dir.as_raw_fd()), name) {
        // A dangling symlink as the last component: create its target,
        // resolved inside the root.
        let target = PathBuf::from(target);
        let next = if target.is_absolute() {
            target
        } else {
            Path::new("/").join(&parent_path).join(target)
        };
        if next.components().count() > 4096 {
            return Err(sys(&format!("resolve {}", dest.display()), Errno::ELOOP));
        }
        return ensure_target(root_fd, &next, false);
    }
    let flags = OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
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
        // A dangling absolute symlink as the last component of a file target.
        symlink("/etc/strata-probe-file", root.path().join("lastlink")).unwrap();
        ensure_target(rootfd, Path::new("/lastlink"), false).unwrap();
        assert!(root.path().join("etc/strata-probe-file").is_file());
        assert!(!Path::new("/etc/strata-probe-file").exists());
        // Symlink loops end with an error, not a hang.
        symlink("loop2", root.path().join("loop1")).unwrap();
        symlink("loop1", root.path().join("loop2")).unwrap();
        assert!(ensure_target(rootfd, Path::new("/loop1/x"), true).is_err());
    }
}
