//! Overlay mounts of snapshot stacks, and `image mount`: a read-only
//! overlay of an image's snapshots (a bind mount for a one-layer image),
//! recorded in the database as a GC root.
//!
//! Stacks are mounted through the new mount API where the kernel has
//! `lowerdir+` (Linux 6.8+): one lower layer per fsconfig call, so the
//! number of layers is not capped by the one page that the classic
//! option string must fit in. Elsewhere the classic mount(2) is used, and
//! a stack whose options outgrow the page is refused with an error that
//! names the limit (the kernel alone would answer a bare ENOENT or EINVAL).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::digest::Digest;
use crate::error::{Context, Error, Result};
use crate::store::Store;

impl Store {
    pub fn mount_image(&mut self, id: &Digest) -> Result<PathBuf> {
        if let Some((p, _)) = self.mounted()?.into_iter().find(|(_, i)| i == id) {
            return Ok(PathBuf::from(p));
        }
        let dirs = self.snapshot_dirs(id)?;
        if dirs.is_empty() {
            return Err(Error::BadImage(format!(
                "image {} has no layers",
                id.short()
            )));
        }
        let target = self.root().join("mounts").join(id.hex());
        std::fs::create_dir_all(&target).ctx(|| format!("create {}", target.display()))?;
        let res = if dirs.len() == 1 {
            mount(
                Some(&dirs[0]),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .and_then(|_| {
                mount(
                    None::<&str>,
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None::<&str>,
                )
            })
        } else {
            let lower: Vec<PathBuf> = dirs.iter().rev().cloned().collect();
            return match mount_overlay(&lower, None, &target) {
                Ok(()) => {
                    self.record_mount(&target, id)?;
                    Ok(target)
                }
                Err(e) => {
                    let _ = std::fs::remove_dir(&target);
                    Err(e)
                }
            };
        };
        if let Err(e) = res {
            let _ = std::fs::remove_dir(&target);
            return Err(Error::Sys {
                context: format!("mount image {}", id.short()),
                source: e,
            });
        }
        self.record_mount(&target, id)?;
        Ok(target)
    }

    pub fn unmount_image(&mut self, id: &Digest) -> Result<PathBuf> {
        let (path, _) = self
            .mounted()?
            .into_iter()
            .find(|(_, i)| i == id)
            .ok_or_else(|| Error::BadImage(format!("image {} is not mounted", id.short())))?;
        match umount2(path.as_str(), MntFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                return Err(Error::Sys {
                    context: format!("unmount {path}"),
                    source: e,
                });
            }
        }
        let _ = std::fs::remove_dir(&path);
        self.forget_mount(&path)?;
        Ok(PathBuf::from(path))
    }
}

/// An overlay's writable half: the upper dir and overlay's work dir (on
/// the same filesystem).
pub struct Upper<'a> {
    pub upper: &'a Path,
    pub work: &'a Path,
}

/// The most bytes of options the classic mount(2) takes (one page).
const OPTIONS_MAX: usize = 4095;

/// Mount an overlay at `target`: `lower` newest first, writable when an
/// upper is given (read-only otherwise). Redirects, index and metacopy
/// are off, so an upper dir is a plain tree of changes that can be
/// written as a layer and stacked as a lower dir anywhere.
pub fn mount_overlay(lower: &[PathBuf], upper: Option<Upper>, target: &Path) -> Result<()> {
    if lower.is_empty() {
        return Err(Error::BadImage(
            "an overlay needs at least one lower layer".into(),
        ));
    }
    // A mount program (`--storage-opt overlay.mount_program=`, or
    // `[storage] mount_program` in strata.toml) instead of the kernel's.
    if let Some(program) = mount_program() {
        return mount_with_program(&program, lower, upper.as_ref(), target);
    }
    match mount_overlay_kernel(lower, upper.as_ref(), target) {
        // The kernel refuses overlayfs in this user namespace (before
        // Linux 5.11, or a filesystem it will not stack): fuse-overlayfs,
        // as podman falls back, where it is installed.
        Err(Error::Sys { source, .. })
            if matches!(source, Errno::EPERM | Errno::EINVAL)
                && in_user_namespace()
                && Path::new(FUSE_OVERLAYFS).is_file() =>
        {
            tracing::warn!("the kernel refused overlayfs here ({source}): using {FUSE_OVERLAYFS}");
            mount_with_program(Path::new(FUSE_OVERLAYFS), lower, upper.as_ref(), target)
        }
        other => other,
    }
}

/// Debian's fuse-overlayfs.
pub const FUSE_OVERLAYFS: &str = "/usr/bin/fuse-overlayfs";

/// The environment variable that names the mount program for this
/// process and the ones it starts (the engine sets it from its options).
pub const MOUNT_PROGRAM_ENV: &str = "STRATA_MOUNT_PROGRAM";

/// The configured overlay mount program, if any.
pub fn mount_program() -> Option<PathBuf> {
    std::env::var_os(MOUNT_PROGRAM_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// The overlay mounted by a FUSE program (fuse-overlayfs): the same
/// options as the kernel's; it forks its server and exits once mounted.
fn mount_with_program(
    program: &Path,
    lower: &[PathBuf],
    upper: Option<&Upper>,
    target: &Path,
) -> Result<()> {
    let opts = dirs_option(lower, upper);
    let out = std::process::Command::new(program)
        .arg("-o")
        .arg(&opts)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Io {
            context: format!("run {}", program.display()),
            source: e,
        })?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let hint = if why.contains("/dev/fuse") || why.contains("fuse: device") {
            " (/dev/fuse must be open to this user: mode 0666, as Debian's udev makes it)"
        } else {
            ""
        };
        return Err(Error::BadImage(format!(
            "{} could not mount the overlay at {}: {why}{hint}",
            program.display(),
            target.display()
        )));
    }
    Ok(())
}

/// `lowerdir=A:B[,upperdir=U,workdir=W]`: the kernel's and
/// fuse-overlayfs's options alike.
fn dirs_option(lower: &[PathBuf], upper: Option<&Upper>) -> String {
    let mut opts = format!(
        "lowerdir={}",
        lower
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    );
    if let Some(u) = upper {
        opts.push_str(&format!(
            ",upperdir={},workdir={}",
            u.upper.display(),
            u.work.display()
        ));
    }
    opts
}

/// The kernel's overlayfs: the new mount API, else mount(2).
fn mount_overlay_kernel(lower: &[PathBuf], upper: Option<&Upper>, target: &Path) -> Result<()> {
    match mount_overlay_fsconfig(lower, upper, target) {
        Ok(()) => return Ok(()),
        // No new mount API or no lowerdir+ (before 6.8): the classic way.
        Err(Errno::ENOSYS) | Err(Errno::EINVAL) | Err(Errno::EOPNOTSUPP) => {}
        Err(e) => {
            return Err(Error::Sys {
                context: format!(
                    "mount overlay of {} layers at {}",
                    lower.len(),
                    target.display()
                ),
                source: e,
            });
        }
    }
    let mut data = dirs_option(lower, upper);
    data.push_str(&format!(
        ",redirect_dir={},index=off,metacopy=off",
        redirect_dir()
    ));
    if data.len() > OPTIONS_MAX {
        return Err(Error::BadImage(format!(
            "{} layers are more than this kernel can stack: the overlay mount options take {} bytes, over the one page ({OPTIONS_MAX}) that mount(2) accepts, and this kernel has no lowerdir+ (Linux 6.8+)",
            lower.len(),
            data.len()
        )));
    }
    let flags = if upper.is_some() {
        MsFlags::empty()
    } else {
        MsFlags::MS_RDONLY
    };
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        flags,
        Some(data.as_str()),
    )
    .map_err(|e| Error::Sys {
        context: format!("mount overlay at {}", target.display()),
        source: e,
    })
}

use nix::errno::Errno;

/// `redirect_dir`: `off` (none made, lower ones followed) as root; in a
/// user namespace (the rootless engine) the kernel lets only `nofollow`
/// through, and our layers, unpacked from tars, hold no redirects anyway.
fn redirect_dir() -> &'static str {
    if in_user_namespace() {
        "nofollow"
    } else {
        "off"
    }
}

/// Are we inside a user namespace other than the host's (the rootless
/// engine's)? Its uid_map is not the host's `0 0 4294967295`.
pub(crate) fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| {
        let f: Vec<&str> = m.split_whitespace().collect();
        f != ["0", "0", "4294967295"]
    })
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

fn cstr(s: &[u8]) -> std::result::Result<CString, Errno> {
    CString::new(s).map_err(|_| Errno::EINVAL)
}

fn fsconfig_string(fs: &OwnedFd, key: &str, value: &Path) -> std::result::Result<(), Errno> {
    let k = cstr(key.as_bytes())?;
    let v = cstr(value.as_os_str().as_bytes())?;
    // SAFETY: fsconfig on our own fs context fd with NUL-terminated strings.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            k.as_ptr(),
            v.as_ptr(),
            0,
        )
    };
    Errno::result(rc).map(drop)
}

fn mount_overlay_fsconfig(
    lower: &[PathBuf],
    upper: Option<&Upper>,
    target: &Path,
) -> std::result::Result<(), Errno> {
    let name = cstr(b"overlay")?;
    // SAFETY: fsopen with a NUL-terminated filesystem name; the fd is ours.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) };
    let fd = Errno::result(fd)?;
    // SAFETY: fsopen returned a fresh fd that nothing else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    for l in lower {
        fsconfig_string(&fs, "lowerdir+", l)?;
    }
    if let Some(u) = upper {
        fsconfig_string(&fs, "upperdir", u.upper)?;
        fsconfig_string(&fs, "workdir", u.work)?;
    }
    for (k, v) in [
        ("redirect_dir", redirect_dir()),
        ("index", "off"),
        ("metacopy", "off"),
    ] {
        fsconfig_string(&fs, k, Path::new(v))?;
    }
    // SAFETY: the create command on our fs context fd takes no pointers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    Errno::result(rc)?;
    let attrs = if upper.is_some() {
        0
    } else {
        MOUNT_ATTR_RDONLY
    };
    // SAFETY: fsmount on our configured fs context fd.
    let m = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    let m = Errno::result(m)?;
    // SAFETY: fsmount returned a fresh mount fd that nothing else owns.
    let mnt = unsafe { OwnedFd::from_raw_fd(m as i32) };
    let empty = cstr(b"")?;
    let t = cstr(target.as_os_str().as_bytes())?;
    // SAFETY: move_mount of our detached mount fd onto a NUL-terminated path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(rc).map(drop)
}
