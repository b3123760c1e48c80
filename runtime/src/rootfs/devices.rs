//! Device nodes and the standard /dev symlinks of a container.

use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::mount::{MsFlags, mount};
use nix::sys::stat::{Mode, SFlag, makedev, mknodat};
use nix::unistd::{Gid, Uid, fchownat};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::paths::{ensure_target, fd_path, mkdir_all_in_root, reopen_dir, sys};
use crate::error::{Error, Result};

/// A device to create: path in the container, kind, numbers, mode, owner.
#[derive(Debug, Clone)]
pub struct Device {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every container gets (as runc and crun give them).
pub fn defaults() -> Vec<Device> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| Device {
        path: PathBuf::from("/dev").join(name),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

pub fn from_spec(d: &LinuxDevice) -> Result<Device> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::InvalidSpec(format!(
                "device {} has type a",
                d.path().display()
            )));
        }
    };
    Ok(Device {
        path: d.path().clone(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Create `dev` inside the root: mknod where allowed, else (inside a user
/// namespace) a bind mount of the host's node.
pub fn create(root_fd: RawFd, dev: &Device, bind: bool) -> Result<()> {
    if !dev.path.starts_with("/dev") {
        return Err(Error::InvalidSpec(format!(
            "device path {} is not under /dev",
            dev.path.display()
        )));
    }
    let rel = super::paths::relative(&dev.path);
    let name = rel
        .file_name()
        .ok_or_else(|| Error::InvalidSpec(format!("bad device path {}", dev.path.display())))?;
    let parent = mkdir_all_in_root(root_fd, rel.parent().unwrap_or(Path::new(".")), 0o755)?;
    let dir = reopen_dir(&parent)?;
    if bind {
        let target = ensure_target(root_fd, &dev.path, false)?;
        return mount(
            Some(&dev.path),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| sys(&format!("bind device {}", dev.path.display()), e));
    }
    let mode = Mode::from_bits_truncate(dev.mode);
    let rdev = makedev(dev.major, dev.minor);
    match mknodat(Some(dir.as_raw_fd()), name, dev.kind, mode, rdev) {
        Ok(()) => {}
        Err(Errno::EEXIST) => {
            let _ = nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            mknodat(Some(dir.as_raw_fd()), name, dev.kind, mode, rdev)
                .map_err(|e| sys(&format!("mknod {}", dev.path.display()), e))?;
        }
        Err(e) => return Err(sys(&format!("mknod {}", dev.path.display()), e)),
    }
    // mknod is subject to the umask; set the exact mode and owner.
    nix::sys::stat::fchmodat(
        Some(dir.as_raw_fd()),
        name,
        mode,
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .or_else(|e| {
        if e == Errno::EOPNOTSUPP {
            Ok(())
        } else {
            Err(e)
        }
    })
    .map_err(|e| sys(&format!("chmod {}", dev.path.display()), e))?;
    fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(Uid::from_raw(dev.uid)),
        Some(Gid::from_raw(dev.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| sys(&format!("chown {}", dev.path.display()), e))
}

/// /dev/fd, /dev/stdin..., /dev/core and /dev/ptmx links.
pub fn symlinks(root_fd: RawFd, with_kcore: bool) -> Result<()> {
    let dev = mkdir_all_in_root(root_fd, Path::new("/dev"), 0o755)?;
    let dir = reopen_dir(&dev)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if with_kcore {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match nix::unistd::symlinkat(target, Some(dir.as_raw_fd()), name) {
            Ok(()) => {}
            Err(Errno::EEXIST) if name == "ptmx" => {
                // A ptmx node from a devices list or the image: the pts
                // instance's ptmx is the one that works, so replace it.
                let _ = nix::unistd::unlinkat(
                    Some(dir.as_raw_fd()),
                    name,
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
                nix::unistd::symlinkat(target, Some(dir.as_raw_fd()), name)
                    .map_err(|e| sys("symlink /dev/ptmx", e))?;
            }
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(sys(&format!("symlink /dev/{name}"), e)),
        }
    }
    Ok(())
}
