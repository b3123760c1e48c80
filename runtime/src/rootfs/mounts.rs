//! The spec's `mounts`: each made on a target resolved inside the rootfs.

use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, ResolveFlag};
use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::{FsFlags, statvfs};
use oci_spec::runtime::Mount;

use super::RootfsContext;
use super::options::{self, MountOptions};
use super::paths::{ensure_target, fd_path, open_in_root, sys};
use crate::error::{Error, Result};

/// Make every mount of the spec. Returns the mounts whose read-only flag
/// waits until the rest of the rootfs is built: a read-only /dev gets its
/// devpts, mqueue and device nodes first (as runc does).
pub fn mount_all(ctx: &RootfsContext, root_fd: RawFd) -> Result<Vec<(PathBuf, MsFlags)>> {
    let mut deferred = Vec::new();
    for (i, m) in ctx.spec.mounts().iter().flatten().enumerate() {
        let opened = ctx.bind_sources.get(i).and_then(Option::as_ref);
        mount_one(ctx, root_fd, m, opened, &mut deferred).map_err(|e| {
            Error::Container(format!(
                "error mounting {:?} to rootfs at {:?}: {e}",
                source_of(m),
                m.destination()
            ))
        })?;
    }
    Ok(deferred)
}

/// `rro`: make the mount at `target` and all below it read-only.
fn recursive_readonly(target: &std::os::fd::OwnedFd) -> Result<()> {
    use std::os::fd::AsRawFd;
    /// struct mount_attr of <linux/mount.h>.
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `attr` (of the size we pass) and an
    // empty NUL-terminated path relative to our fd.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map(drop).map_err(|e| {
        sys(
            "make the mount recursively read-only (rro; needs Linux 5.12)",
            e,
        )
    })
}

/// `tmpcopyup`: copy the tree in `src` (the directory the tmpfs now
/// covers, opened before the mount) into `dst` (the tmpfs), with modes,
/// owners and symlinks, the root's mode and owner too. Every step is
/// relative to a directory fd: a path through /proc/self/fd would land on
/// the tmpfs itself, and nothing here follows a symlink.
fn copy_up(src: &std::os::fd::OwnedFd, dst: &std::os::fd::OwnedFd) -> Result<()> {
    use nix::fcntl::{AtFlags, openat};
    use nix::sys::stat::{FchmodatFlags, Mode, fchmod, fstat, fstatat, mkdirat};
    use std::os::fd::{FromRawFd, OwnedFd};
    let e = |what: &str, err: Errno| sys(&format!("tmpcopyup: {what}"), err);
    let own = |raw: RawFd| -> OwnedFd {
        // SAFETY: a fresh fd from openat, owned by nothing else.
        unsafe { OwnedFd::from_raw_fd(raw) }
    };
    let root = fstat(src.as_raw_fd()).map_err(|x| e("stat", x))?;
    let _ = nix::unistd::fchown(
        dst.as_raw_fd(),
        Some(root.st_uid.into()),
        Some(root.st_gid.into()),
    );
    fchmod(
        dst.as_raw_fd(),
        Mode::from_bits_truncate(root.st_mode & 0o7777),
    )
    .map_err(|x| e("chmod", x))?;
    let dup = nix::unistd::dup(src.as_raw_fd()).map_err(|x| e("dup", x))?;
    let mut dir = nix::dir::Dir::from_fd(dup).map_err(|x| e("read dir", x))?;
    let names: Vec<std::ffi::CString> = dir
        .iter()
        .flatten()
        .map(|d| d.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    let (s, d) = (src.as_raw_fd(), dst.as_raw_fd());
    let nofollow = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    for name in names {
        let name = name.as_c_str();
        let st = fstatat(Some(s), name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|x| e("stat", x))?;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                mkdirat(Some(d), name, mode).map_err(|x| e("mkdir", x))?;
                let from = own(openat(
                    Some(s),
                    name,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | nofollow,
                    Mode::empty(),
                )
                .map_err(|x| e("open dir", x))?);
                let to = own(openat(
                    Some(d),
                    name,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | nofollow,
                    Mode::empty(),
                )
                .map_err(|x| e("open dir", x))?);
                copy_up(&from, &to)?;
            }
            libc::S_IFREG => {
                let from = own(
                    openat(Some(s), name, OFlag::O_RDONLY | nofollow, Mode::empty())
                        .map_err(|x| e("open file", x))?,
                );
                let to = own(openat(
                    Some(d),
                    name,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | nofollow,
                    mode,
                )
                .map_err(|x| e("create file", x))?);
                let (mut r, mut w) = (std::fs::File::from(from), std::fs::File::from(to));
                std::io::copy(&mut r, &mut w).map_err(|x| Error::Io {
                    context: "tmpcopyup: copy".into(),
                    source: x,
                })?;
                let _ = nix::unistd::fchown(
                    w.as_raw_fd(),
                    Some(st.st_uid.into()),
                    Some(st.st_gid.into()),
                );
                fchmod(w.as_raw_fd(), mode).map_err(|x| e("chmod", x))?;
                continue;
            }
            libc::S_IFLNK => {
                let target =
                    nix::fcntl::readlinkat(Some(s), name).map_err(|x| e("read link", x))?;
                nix::unistd::symlinkat(target.as_os_str(), Some(d), name)
                    .map_err(|x| e("symlink", x))?;
            }
            // Device nodes, fifos, sockets are not copied, as with runc.
            _ => continue,
        }
        let _ = nix::unistd::fchownat(
            Some(d),
            name,
            Some(st.st_uid.into()),
            Some(st.st_gid.into()),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        );
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            nix::sys::stat::fchmodat(Some(d), name, mode, FchmodatFlags::FollowSymlink)
                .map_err(|x| e("chmod", x))?;
        }
    }
    Ok(())
}

fn source_of(m: &Mount) -> String {
    m.source()
        .as_ref()
        .map(|s| s.display().to_string())
        .unwrap_or_else(|| m.typ().clone().unwrap_or_default())
}

fn mount_one(
    ctx: &RootfsContext,
    root_fd: RawFd,
    m: &Mount,
    opened: Option<&std::os::fd::OwnedFd>,
    deferred: &mut Vec<(PathBuf, MsFlags)>,
) -> Result<()> {
    let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("none");
    let dest = m.destination();
    if opts.bind || typ == "bind" {
        return bind_mount(ctx, root_fd, m, &opts, opened);
    }
    match typ {
        "cgroup" | "cgroup2" => return mount_cgroup(ctx, root_fd, dest, &opts),
        _ => {}
    }
    // proc and sysfs must land on a real directory: a symlink could move
    // them over a masked path.
    let extra = if typ == "proc" || typ == "sysfs" {
        ResolveFlag::RESOLVE_NO_SYMLINKS
    } else {
        ResolveFlag::empty()
    };
    let not_a_dir = || {
        Error::Container(format!(
            "{typ} must be mounted on ordinary directory: {} is a symlink",
            dest.display()
        ))
    };
    // A dangling symlink resolves to ENOENT: look at the last component
    // itself before creating anything.
    if !extra.is_empty() {
        let rel = dest.strip_prefix("/").unwrap_or(dest);
        if let Ok(st) =
            nix::sys::stat::fstatat(Some(root_fd), rel, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            && (st.st_mode & libc::S_IFMT) == libc::S_IFLNK
        {
            return Err(not_a_dir());
        }
    }
    let (target, existed) = match open_in_root(root_fd, dest, OFlag::O_PATH, extra) {
        Ok(fd) => (fd, true),
        Err(Errno::ENOENT) => (ensure_target(root_fd, dest, true)?, false),
        Err(Errno::ELOOP) => return Err(not_a_dir()),
        Err(e) => return Err(sys("resolve mount target", e)),
    };
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    // A tmpfs over a directory of the image keeps that directory's mode
    // unless `mode=` says otherwise (runc's issue 3952: a sticky /tmp).
    let mut data_text = opts.data.clone();
    if typ == "tmpfs"
        && existed
        && !data_text.split(',').any(|o| o.starts_with("mode="))
        && let Ok(st) = nix::sys::stat::fstat(target.as_raw_fd())
    {
        let mode = format!("mode={:o}", st.st_mode & 0o7777);
        data_text = if data_text.is_empty() {
            mode
        } else {
            format!("{data_text},{mode}")
        };
    }
    let data = (!data_text.is_empty()).then_some(data_text.as_str());
    let mut flags = opts.flags & !MsFlags::MS_REMOUNT;
    if dest == Path::new("/dev") && flags.contains(MsFlags::MS_RDONLY) {
        flags.remove(MsFlags::MS_RDONLY);
        deferred.push((dest.to_path_buf(), flags | MsFlags::MS_RDONLY));
    }
    let copy_up_ro = typ == "tmpfs" && opts.tmpcopyup && flags.contains(MsFlags::MS_RDONLY);
    if copy_up_ro {
        flags.remove(MsFlags::MS_RDONLY);
    }
    // The directory the tmpfs will cover, opened while it is visible.
    let covered = if typ == "tmpfs" && opts.tmpcopyup {
        let raw = nix::fcntl::openat(
            Some(target.as_raw_fd()),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| sys("open the directory under the tmpfs", e))?;
        // SAFETY: a fresh fd from openat.
        Some(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
    } else {
        None
    };
    match mount(Some(&source), &fd_path(&target), Some(typ), flags, data) {
        Ok(()) if covered.is_some() => {
            let fresh = open_in_root(
                root_fd,
                dest,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                ResolveFlag::empty(),
            )
            .map_err(|e| sys("reopen tmpfs", e))?;
            if let Some(c) = &covered {
                copy_up(c, &fresh)?;
            }
            if copy_up_ro {
                remount(root_fd, dest, flags | MsFlags::MS_RDONLY)?;
            }
        }
        Ok(()) => {}
        Err(Errno::EINVAL)
            if typ == "devpts"
                && data_text.split(',').any(|o| o.starts_with("gid="))
                && crate::process::namespaces::in_user_namespace() =>
        {
            // A user namespace without that group (a rootless user with
            // no subordinate gids has no gid 5, tty): the kernel refuses
            // the option; the ptys belong to the user's group, as runc's
            // rootless spec makes them.
            let fewer: Vec<&str> = data_text
                .split(',')
                .filter(|o| !o.starts_with("gid="))
                .collect();
            mount(
                Some(&source),
                &fd_path(&target),
                Some(typ),
                flags,
                Some(fewer.join(",").as_str()),
            )
            .map_err(|e| sys("mount devpts", e))?;
        }
        Err(Errno::EPERM) if typ == "sysfs" => {
            // Inside a user namespace without its own network namespace the
            // kernel refuses a new sysfs: fall back to the host's, as runc does.
            mount(
                Some("/sys"),
                &fd_path(&target),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| sys("bind /sys", e))?;
            remount(root_fd, dest, flags | MsFlags::MS_BIND)?;
        }
        Err(e) => return Err(sys(&format!("mount {typ}"), e)),
    }
    apply_propagation(root_fd, dest, &opts)
}

/// A bind mount's source as the spec names it (relative to the bundle).
pub fn bind_source(m: &Mount, bundle: &Path) -> Option<PathBuf> {
    let src = m.source().clone()?;
    Some(if src.is_absolute() {
        src
    } else {
        bundle.join(src)
    })
}

/// Is `m` a bind mount?
pub fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// Take every bind source while we can still reach it: before the init
/// enters a new user namespace, whose root may lack search permission on
/// the source's parents (runc, too, takes them beforehand). Indexed as
/// the spec's mounts; None where nothing needs or could be opened (the
/// init then reports the error by path).
pub fn open_bind_sources(
    spec: &oci_spec::runtime::Spec,
    bundle: &Path,
) -> Vec<Option<std::os::fd::OwnedFd>> {
    spec.mounts()
        .iter()
        .flatten()
        .map(|m| {
            if !is_bind(m) {
                return None;
            }
            let src = bind_source(m, bundle)?;
            let recursive = m.options().iter().flatten().any(|o| o == "rbind");
            let path = std::ffi::CString::new(src.as_os_str().as_encoded_bytes()).ok()?;
            // A detached copy of the source mount (open_tree with
            // OPEN_TREE_CLONE): it belongs to no mount namespace, so the
            // init can attach it in its own with move_mount.
            let flags = libc::OPEN_TREE_CLONE
                | libc::OPEN_TREE_CLOEXEC
                | if recursive {
                    libc::AT_RECURSIVE as u32
                } else {
                    0
                };
            // SAFETY: open_tree with a NUL-terminated path and plain flags;
            // the result is checked and then owned.
            let raw =
                unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
            if raw < 0 {
                return None;
            }
            // SAFETY: a fresh fd from open_tree.
            Some(unsafe {
                <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw as i32)
            })
        })
        .collect()
}

fn bind_mount(
    ctx: &RootfsContext,
    root_fd: RawFd,
    m: &Mount,
    opts: &MountOptions,
    opened: Option<&std::os::fd::OwnedFd>,
) -> Result<()> {
    let named = bind_source(m, ctx.bundle)
        .ok_or_else(|| Error::Container("bind mount without source".into()))?;
    // Through the fd the runtime opened, where it did: no path walk.
    let src = opened.map(fd_path).unwrap_or_else(|| named.clone());
    let meta = std::fs::metadata(&src).map_err(|e| Error::Io {
        context: format!("bind source {}", named.display()),
        source: e,
    })?;
    let target = ensure_target(root_fd, m.destination(), meta.is_dir())?;
    let mut flags = MsFlags::MS_BIND;
    if opts.recursive {
        flags |= MsFlags::MS_REC;
    }
    if let Some(tree) = opened {
        // SAFETY: move_mount of our detached tree onto our target fd, both
        // by fd with empty NUL-terminated paths.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                tree.as_raw_fd(),
                c"".as_ptr(),
                target.as_raw_fd(),
                c"".as_ptr(),
                libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
            )
        };
        Errno::result(rc).map_err(|e| sys("attach the bind mount", e))?;
    } else {
        mount(
            Some(&src),
            &fd_path(&target),
            None::<&str>,
            flags,
            None::<&str>,
        )
        .map_err(|e| sys("bind mount", e))?;
    }
    drop(target);
    let extra = opts.flags & !(MsFlags::MS_REMOUNT);
    if !extra.is_empty() {
        remount(root_fd, m.destination(), extra | MsFlags::MS_BIND)?;
    }
    if opts.rro {
        let fd = open_in_root(
            root_fd,
            m.destination(),
            OFlag::O_PATH,
            ResolveFlag::empty(),
        )
        .map_err(|e| sys("reopen mount", e))?;
        recursive_readonly(&fd)?;
    }
    apply_propagation(root_fd, m.destination(), opts)
}

/// Remount the mount at `dest` with `flags`; when the kernel refuses
/// because the mount has locked flags (a bind from a nosuid/nodev source
/// inside a user namespace), keep those and retry.
pub fn remount(root_fd: RawFd, dest: &Path, flags: MsFlags) -> Result<()> {
    let fd = open_in_root(root_fd, dest, OFlag::O_PATH, ResolveFlag::empty())
        .map_err(|e| sys("reopen mount", e))?;
    let path = fd_path(&fd);
    let flags = flags | MsFlags::MS_REMOUNT;
    match mount(None::<&str>, &path, None::<&str>, flags, None::<&str>) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) => {
            let locked = locked_flags(&path);
            mount(
                None::<&str>,
                &path,
                None::<&str>,
                flags | locked,
                None::<&str>,
            )
            .map_err(|e| sys(&format!("remount {}", dest.display()), e))
        }
        Err(e) => Err(sys(&format!("remount {}", dest.display()), e)),
    }
}

fn locked_flags(path: &Path) -> MsFlags {
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}

fn apply_propagation(root_fd: RawFd, dest: &Path, opts: &MountOptions) -> Result<()> {
    if opts.propagation.is_empty() {
        return Ok(());
    }
    let fd = open_in_root(root_fd, dest, OFlag::O_PATH, ResolveFlag::empty())
        .map_err(|e| sys("reopen mount", e))?;
    for p in &opts.propagation {
        mount(None::<&str>, &fd_path(&fd), None::<&str>, *p, None::<&str>)
            .map_err(|e| sys(&format!("set propagation of {}", dest.display()), e))?;
    }
    Ok(())
}

/// A `cgroup` mount shows the container its own cgroups. On a cgroup v2 host
/// with a private cgroup namespace that is a fresh cgroup2 mount; otherwise
/// (v1, hybrid, or a shared namespace) a tmpfs holding bind mounts of the
/// container's own directory in each hierarchy.
fn mount_cgroup(
    ctx: &RootfsContext,
    root_fd: RawFd,
    dest: &Path,
    opts: &MountOptions,
) -> Result<()> {
    let target = ensure_target(root_fd, dest, true)?;
    let flags = opts.flags & !MsFlags::MS_REMOUNT;
    let unified = match ctx.cgroup {
        Some(cg) => cg.v2_root.is_some(),
        None => crate::cgroups::is_unified(),
    };
    if unified && ctx.new_cgroupns {
        mount(
            Some("cgroup2"),
            &fd_path(&target),
            Some("cgroup2"),
            flags,
            None::<&str>,
        )
        .map_err(|e| sys("mount cgroup2", e))?;
        return apply_propagation(root_fd, dest, opts);
    }
    let Some(cgroup) = ctx.cgroup else {
        // No cgroup of its own: an empty tmpfs, like a container without cgroups.
        mount(
            Some("tmpfs"),
            &fd_path(&target),
            Some("tmpfs"),
            flags,
            Some("mode=755"),
        )
        .map_err(|e| sys("mount cgroup tmpfs", e))?;
        return Ok(());
    };
    let cgroup_path = &cgroup.path;
    if let Some(root) = &cgroup.v2_root {
        let src = root.join(super::paths::relative(cgroup_path));
        mount(
            Some(&src),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| sys("bind cgroup2", e))?;
        drop(target);
        if !flags.is_empty() {
            remount(root_fd, dest, flags | MsFlags::MS_BIND)?;
        }
        return Ok(());
    }
    mount(
        Some("tmpfs"),
        &fd_path(&target),
        Some("tmpfs"),
        flags & !MsFlags::MS_RDONLY,
        Some("mode=755"),
    )
    .map_err(|e| sys("mount cgroup tmpfs", e))?;
    drop(target);
    for hier in crate::cgroups::v1_hierarchies() {
        let src = hier.mount_point.join(super::paths::relative(cgroup_path));
        if !src.is_dir() {
            continue;
        }
        let name = hier
            .mount_point
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default();
        let sub = dest.join(&name);
        let fd = ensure_target(root_fd, &sub, true)?;
        mount(
            Some(&src),
            &fd_path(&fd),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| sys(&format!("bind cgroup {}", name.display()), e))?;
        drop(fd);
        remount(root_fd, &sub, flags | MsFlags::MS_BIND)?;
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        remount(root_fd, dest, flags)?;
    }
    Ok(())
}

/// Make the mount containing `path` private so that pivot_root accepts a
/// new root below it even when the host's `/` is shared.
pub fn make_parent_mount_private(path: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::Io {
        context: "read /proc/self/mountinfo".into(),
        source: e,
    })?;
    let mut best: Option<PathBuf> = None;
    for line in info.lines() {
        let Some(mp) = line.split(' ').nth(4) else {
            continue;
        };
        let mp = PathBuf::from(unescape_mountinfo(mp));
        if path.starts_with(&mp)
            && best
                .as_ref()
                .is_none_or(|b| mp.as_os_str().len() > b.as_os_str().len())
        {
            best = Some(mp);
        }
    }
    let mp = best.unwrap_or_else(|| PathBuf::from("/"));
    mount(
        None::<&str>,
        &mp,
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| sys(&format!("make {} private", mp.display()), e))
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo(r"/x\\"), r"/x\\");
    }
}
