//! Building the container's root filesystem inside its mount namespace:
//! propagation, the spec's mounts, /dev, pivot_root, then masked and
//! read-only paths.

pub mod devices;
pub mod mounts;
pub mod options;
pub mod paths;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, ResolveFlag};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

use crate::error::{Error, Result};
use paths::{fd_path, open_in_root, sys};

/// What rootfs setup needs to know besides the spec.
pub struct RootfsContext<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub cgroup: Option<&'a crate::cgroups::Cgroup>,
    /// False: no mount namespace in the config, so we are in the caller's
    /// and must not change its propagation or mount over its root.
    pub own_mount_ns: bool,
    /// Bind sources opened by the runtime before the init entered its user
    /// namespace (by mount index): the mapped root may not be able to
    /// reach them by path.
    pub bind_sources: &'a [Option<OwnedFd>],
    pub new_userns: bool,
    pub new_cgroupns: bool,
}

/// Everything up to (not including) pivot_root: propagation, the bind of the
/// rootfs onto itself, mounts, devices. Returns an fd of the rootfs.
pub fn prepare(ctx: &RootfsContext) -> Result<OwnedFd> {
    let linux = ctx.spec.linux().as_ref();
    if ctx.own_mount_ns {
        let prop = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
            Some(name) => options::propagation(name)
                .ok_or_else(|| Error::InvalidSpec(format!("unknown rootfsPropagation {name:?}")))?,
            None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        };
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            prop | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| sys("set propagation of /", e))?;
        mounts::make_parent_mount_private(ctx.rootfs)?;
        mount(
            Some(ctx.rootfs),
            ctx.rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| sys(&format!("bind rootfs {}", ctx.rootfs.display()), e))?;
    }
    let root_fd: OwnedFd = {
        let raw = nix::fcntl::open(
            ctx.rootfs,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| sys("open rootfs", e))?;
        // SAFETY: open returned a fresh fd that nothing else owns.
        unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) }
    };
    let deferred = mounts::mount_all(ctx, root_fd.as_raw_fd())?;

    let dev_is_bind = ctx.spec.mounts().iter().flatten().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    });
    if !dev_is_bind {
        let mut devs = devices::defaults();
        for d in linux
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
        {
            let dev = devices::from_spec(d)?;
            devs.retain(|x| x.path != dev.path);
            devs.push(dev);
        }
        // In a user namespace (the spec's own, or the rootless engine's
        // we run in) the kernel makes no device nodes: bind the host's.
        let bind = ctx.new_userns || crate::process::namespaces::in_user_namespace();
        for d in &devs {
            devices::create(root_fd.as_raw_fd(), d, bind)?;
        }
        devices::symlinks(root_fd.as_raw_fd(), Path::new("/proc/kcore").exists())?;
    }
    // The working directory is created if the image lacks it.
    if let Some(p) = ctx.spec.process() {
        paths::mkdir_all_in_root(root_fd.as_raw_fd(), p.cwd(), 0o755)?;
    }
    for (dest, flags) in deferred {
        mounts::remount(root_fd.as_raw_fd(), &dest, flags | MsFlags::MS_BIND)?;
    }
    Ok(root_fd)
}

/// Make the rootfs `/`. With `no_pivot`, move it over `/` and chroot
/// (for ramfs roots, where pivot_root is impossible).
pub fn enter(rootfs: &Path, no_pivot: bool) -> Result<()> {
    if no_pivot {
        hide_host_proc_and_sys(rootfs)?;
        nix::unistd::chdir(rootfs).map_err(|e| sys("chdir rootfs", e))?;
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(|e| sys("move rootfs to /", e))?;
        nix::unistd::chroot(".").map_err(|e| sys("chroot", e))?;
        return nix::unistd::chdir("/").map_err(|e| sys("chdir /", e));
    }
    let old = nix::fcntl::open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys("open /", e))?;
    // SAFETY: fresh fd from open.
    let old: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(old) };
    nix::unistd::chdir(rootfs).map_err(|e| sys("chdir rootfs", e))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; we
    // then detach it from where we stand.
    nix::unistd::pivot_root(".", ".").map_err(|e| sys("pivot_root", e))?;
    nix::unistd::fchdir(old.as_raw_fd()).map_err(|e| sys("fchdir old root", e))?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| sys("make old root rslave", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| sys("unmount old root", e))?;
    nix::unistd::chdir("/").map_err(|e| sys("chdir /", e))
}

/// Without pivot_root the old root stays in our mount namespace, and a
/// full proc or sysfs there would let the container mount new ones (the
/// kernel allows that where one is fully visible): detach every proc and
/// sysfs mount outside the rootfs first, or cover it where that is not
/// allowed, as runc does.
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::Io {
        context: "read mountinfo".into(),
        source: e,
    })?;
    let root = std::fs::canonicalize(rootfs).unwrap_or_else(|_| rootfs.to_path_buf());
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            let mp = left.split(' ').nth(4)?;
            (fstype == "proc" || fstype == "sysfs").then(|| PathBuf::from(mp.replace("\\040", " ")))
        })
        .filter(|p| !p.starts_with(&root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        // Nothing of this may reach the host.
        let _ = mount(
            None::<&str>,
            &p,
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        );
        match umount2(&p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(Errno::EPERM) => mount(
                Some("tmpfs"),
                &p,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .map_err(|e| sys(&format!("cover {}", p.display()), e))?,
            Err(e) => return Err(sys(&format!("detach {}", p.display()), e)),
        }
    }
    Ok(())
}

/// Make the rootfs `/` in the caller's mount namespace: chroot, as runc
/// does when the config has no mount namespace.
pub fn enter_shared(rootfs: &Path) -> Result<()> {
    nix::unistd::chdir(rootfs).map_err(|e| sys("chdir rootfs", e))?;
    nix::unistd::chroot(".").map_err(|e| sys("chroot", e))?;
    nix::unistd::chdir("/").map_err(|e| sys("chdir /", e))
}

/// Unmount what a container without a mount namespace of its own left
/// under its rootfs in ours (deepest first), at delete.
pub fn unmount_shared(rootfs: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let Ok(root) = std::fs::canonicalize(rootfs) else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(&root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = umount2(&p, MntFlags::MNT_DETACH);
    }
}

/// After pivot_root: re-apply the propagation asked for and make `/`
/// read-only if asked.
pub fn finalize(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    if let Some(name) = linux.and_then(|l| l.rootfs_propagation().as_deref())
        && let Some(p) = options::propagation(name)
    {
        mount(None::<&str>, "/", None::<&str>, p, None::<&str>)
            .map_err(|e| sys("set rootfs propagation", e))?;
    }
    if spec
        .root()
        .as_ref()
        .is_some_and(|r| r.readonly() == Some(true))
    {
        let root = open_root()?;
        mounts::remount(
            root.as_raw_fd(),
            Path::new("/"),
            MsFlags::MS_BIND | MsFlags::MS_RDONLY,
        )?;
    }
    Ok(())
}

fn open_root() -> Result<OwnedFd> {
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys("open /", e))?;
    // SAFETY: fresh fd from open.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(root) })
}

/// Read-only and masked paths. Runs after sysctls are written (they go
/// through /proc/sys, which is usually a read-only path).
pub fn protect_paths(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let root = open_root()?;
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        readonly_path(&root, Path::new(p))?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        mask_path(&root, Path::new(p))?;
    }
    Ok(())
}

fn readonly_path(root: &OwnedFd, p: &Path) -> Result<()> {
    let fd = match open_in_root(root.as_raw_fd(), p, OFlag::O_PATH, ResolveFlag::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(sys(&format!("readonly path {}", p.display()), e)),
    };
    mount(
        Some(&fd_path(&fd)),
        &fd_path(&fd),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| sys(&format!("bind readonly path {}", p.display()), e))?;
    mounts::remount(
        root.as_raw_fd(),
        p,
        MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
    )
}

fn mask_path(root: &OwnedFd, p: &Path) -> Result<()> {
    let fd = match open_in_root(root.as_raw_fd(), p, OFlag::O_PATH, ResolveFlag::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(sys(&format!("masked path {}", p.display()), e)),
    };
    let is_dir = nix::sys::stat::fstat(fd.as_raw_fd())
        .map(|st| SFlagExt::is_dir(st.st_mode))
        .map_err(|e| sys("stat masked path", e))?;
    let target = fd_path(&fd);
    let res = if is_dir {
        mount(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    res.map_err(|e| sys(&format!("mask {}", p.display()), e))
}

struct SFlagExt;
impl SFlagExt {
    fn is_dir(mode: u32) -> bool {
        mode & libc::S_IFMT == libc::S_IFDIR
    }
}

/// Set the hostname and domainname of a new UTS namespace.
pub fn set_names(spec: &Spec) -> Result<()> {
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(|e| sys("sethostname", e))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        // SAFETY: pointer and length describe the live &str.
        let rc = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
        Errno::result(rc).map_err(|e| sys("setdomainname", e))?;
    }
    Ok(())
}

/// Write `linux.sysctl` under /proc/sys (the container's proc).
pub fn sysctls(spec: &Spec) -> Result<()> {
    let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (key, value) in map {
        if key.is_empty() || key.contains("..") || key.contains('/') {
            return Err(Error::InvalidSpec(format!("invalid sysctl {key:?}")));
        }
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|e| Error::Io {
            context: format!("set sysctl {key}={value}"),
            source: e,
        })?;
    }
    Ok(())
}
