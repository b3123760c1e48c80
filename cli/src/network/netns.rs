//! Network namespaces: every non-host container gets one of its own,
//! pinned by a bind mount so it outlives processes, with `lo` brought up
//! by us.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// Make a new network namespace pinned at `path`.
pub fn create_netns(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let target = path.to_path_buf();
    // A thread of our own enters a new namespace and pins it; the
    // namespace is per thread, so the rest of the process is untouched.
    let res = std::thread::spawn(move || -> nix::Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        loopback_up()?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    })
    .join()
    .map_err(|_| anyhow::anyhow!("netns thread panicked"))?;
    if let Err(e) = res {
        let _ = std::fs::remove_file(path);
        bail!("create network namespace {}: {e}", path.display());
    }
    Ok(())
}

/// Bring `lo` up in the current thread's network namespace (what the CNI
/// loopback plugin does, without an exec).
fn loopback_up() -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value for it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the ifreq we own, on our socket.
    nix::errno::Errno::result(unsafe {
        libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req)
    })?;
    // SAFETY: the flags member of the union is the one SIOCGIFFLAGS set.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we pass, on our socket.
    nix::errno::Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

pub fn remove_netns(path: &Path) {
    let _ = umount2(path, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}

pub fn netns_path(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join("netns").join(id)
}
