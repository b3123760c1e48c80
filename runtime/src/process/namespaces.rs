//! Entering namespaces: joining existing ones by path, unsharing new ones,
//! and the fork that makes the container process PID 1 of a new PID
//! namespace. Runs in the first forked child ("stage 1").

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns, unshare};
use oci_spec::runtime::LinuxNamespaceType;

use super::sync::{Msg, SyncSocket};
use crate::error::{Context, Error, Result};

pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        // CLONE_NEWTIME is not in nix's CloneFlags; the raw bit works.
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The /proc/<pid>/ns entry name of a namespace type.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Join order: user first (it grants the rights for the others), mount
/// last (it changes how later paths resolve); all files are opened before
/// any join for the same reason.
const ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

/// Open the namespace files to join, in join order.
pub fn open_joins(
    joins: &[(LinuxNamespaceType, PathBuf)],
) -> Result<Vec<(LinuxNamespaceType, OwnedFd, PathBuf)>> {
    let mut out = Vec::new();
    for t in ORDER {
        for (jt, path) in joins.iter().filter(|(jt, _)| *jt == t) {
            let f = std::fs::File::open(path)
                .ctx(|| format!("open namespace {} {}", proc_name(*jt), path.display()))?;
            out.push((*jt, OwnedFd::from(f), path.clone()));
        }
    }
    Ok(out)
}

pub fn join_all(fds: &[(LinuxNamespaceType, OwnedFd, PathBuf)]) -> Result<()> {
    for (t, fd, path) in fds {
        setns(fd.as_fd(), clone_flag(*t))
            .ctx(|| format!("join {} namespace {}", proc_name(*t), path.display()))?;
    }
    Ok(())
}

/// Is `path` the namespace we are in already (same inode)?
pub fn is_current(t: LinuxNamespaceType, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mine = std::fs::metadata(format!("/proc/self/ns/{}", proc_name(t)));
    let theirs = std::fs::metadata(path);
    matches!((mine, theirs), (Ok(a), Ok(b)) if a.ino() == b.ino() && a.dev() == b.dev())
}

/// Unshare a new user namespace and have the parent write its id maps.
/// Returns whether the parent's Go arrived meanwhile (it may be sent while
/// we wait for the maps).
pub fn unshare_user(sync: &SyncSocket) -> Result<bool> {
    unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "unshare user namespace".into())?;
    sync.send(&Msg::UsernsReady)?;
    let mut go_seen = false;
    loop {
        match sync.recv()? {
            Some(Msg::MapsWritten) => break,
            Some(Msg::Go) => go_seen = true,
            Some(Msg::Error(e)) => return Err(crate::error::Error::Container(e)),
            other => {
                return Err(crate::error::Error::Container(format!(
                    "sync: expected MapsWritten, got {other:?}"
                )));
            }
        }
    }
    // Become root of the new namespace (mapped by the parent).
    nix::unistd::setresgid(0.into(), 0.into(), 0.into())
        .ctx(|| "setgid 0 in user namespace".into())?;
    nix::unistd::setresuid(0.into(), 0.into(), 0.into())
        .ctx(|| "setuid 0 in user namespace".into())?;
    Ok(go_seen)
}

pub fn unshare_rest(flags: CloneFlags) -> Result<()> {
    if flags.is_empty() {
        return Ok(());
    }
    unshare(flags).map_err(|e| Error::Sys {
        context: format!("unshare namespaces {flags:?}"),
        source: e,
    })
}

/// Do we run inside a user namespace other than the host's (a rootless
/// engine's)? There uid 0 is not root on the host: cgroups and device
/// nodes are not ours to make.
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| !is_host_map(&m))
}

/// Do we run rootless: not root, or root only inside a user namespace
/// (a rootless engine's)? Then the cgroup tree and the kernel's
/// privileged interfaces are not ours.
pub fn rootless() -> bool {
    !nix::unistd::geteuid().is_root() || in_user_namespace()
}

/// The initial user namespace's map: all 2^32-1 ids, from 0 to 0.
fn is_host_map(map: &str) -> bool {
    let f: Vec<&str> = map.split_whitespace().collect();
    f == ["0", "0", "4294967295"]
}

/// Write uid_map/gid_map of `pid` (called by the parent).
pub fn write_id_maps(pid: i32, uid: &str, gid: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        // An unprivileged writer must deny setgroups before a gid map.
        let _ = std::fs::write(format!("/proc/{pid}/setgroups"), "deny");
    }
    std::fs::write(format!("/proc/{pid}/uid_map"), uid)
        .ctx(|| format!("write uid_map of {pid}"))?;
    std::fs::write(format!("/proc/{pid}/gid_map"), gid).ctx(|| format!("write gid_map of {pid}"))
}

pub fn format_maps(maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>) -> String {
    maps.into_iter()
        .flatten()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// `linux.timeOffsets` into a time namespace we just unshared: they must
/// be written before any process lives in it (our children will).
pub fn write_time_offsets(spec: &oci_spec::runtime::Spec) -> Result<()> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut text = String::new();
    let mut clocks: Vec<_> = offsets.iter().collect();
    clocks.sort_by_key(|(k, _)| k.as_str());
    // The clock names were checked with the spec (monotonic, boottime).
    for (clock, off) in clocks {
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    std::fs::write("/proc/self/timens_offsets", text).map_err(|e| Error::Io {
        context: "write /proc/self/timens_offsets".into(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_map_is_told_from_a_user_namespace() {
        assert!(super::is_host_map("         0          0 4294967295\n"));
        assert!(!super::is_host_map(
            "         0       1001          1\n         1     100000      65535\n"
        ));
        assert!(!super::is_host_map("0 0 1\n"));
    }
}
