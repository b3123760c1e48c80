//! `-u USER[:GROUP]` and the image's `User`: names resolved from the
//! container's own /etc/passwd and /etc/group, read through
//! `openat2(RESOLVE_IN_ROOT)` so an image's symlinks cannot point the
//! lookup at the host's files.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Result, bail};
use nix::fcntl::{OFlag, ResolveFlag};
use strata_runtime::rootfs::paths::open_in_root;

#[derive(Debug, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

fn read_in_root(rootfs: &Path, path: &str) -> String {
    let Ok(root) = std::fs::File::open(rootfs) else {
        return String::new();
    };
    let Ok(fd) = open_in_root(
        root.as_raw_fd(),
        Path::new(path),
        OFlag::O_RDONLY,
        ResolveFlag::empty(),
    ) else {
        return String::new();
    };
    let mut s = String::new();
    // Bounded: a hostile image may make /etc/passwd huge or a device.
    let _ = std::fs::File::from(fd).take(4 << 20).read_to_string(&mut s);
    s
}

/// A group's id by name, from the rootfs's /etc/group (read inside it).
pub fn group_id(rootfs: &Path, name: &str) -> Option<u32> {
    read_in_root(rootfs, "/etc/group")
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == name)
        .and_then(|f| f[2].parse().ok())
}

/// Resolve `spec` ("", "name", "uid", "name:group", "uid:gid", ...).
pub fn resolve(rootfs: &Path, spec: &str) -> Result<User> {
    let passwd = read_in_root(rootfs, "/etc/passwd");
    let group = read_in_root(rootfs, "/etc/group");
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let by_name = entries.iter().find(|f| f[0] == u);
    let (uid, mut gid, name, home) = match (u.parse::<u32>(), by_name) {
        (Ok(uid), _) => {
            let e = entries.iter().find(|f| f[2].parse() == Ok(uid));
            (
                uid,
                e.and_then(|f| f[3].parse().ok()).unwrap_or(0),
                e.map(|f| f[0].to_string()),
                e.map(|f| f[5].to_string()).unwrap_or_else(|| "/".into()),
            )
        }
        (Err(_), Some(f)) => match (f[2].parse(), f[3].parse()) {
            (Ok(uid), Ok(gid)) => (uid, gid, Some(f[0].to_string()), f[5].to_string()),
            _ => bail!("bad /etc/passwd entry for user {u}"),
        },
        (Err(_), None) => bail!("unable to find user {u}: no matching entries in passwd file"),
    };
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => match groups.iter().find(|f| f[0] == g).map(|f| f[2].parse()) {
                Some(Ok(n)) => n,
                _ => bail!("unable to find group {g}: no matching entries in group file"),
            },
        };
    }
    // Supplementary groups: every group listing the user by name.
    let mut additional = Vec::new();
    if let Some(name) = &name {
        for f in &groups {
            if f[3].split(',').any(|m| m == name)
                && let Ok(n) = f[2].parse::<u32>()
                && n != gid
                && !additional.contains(&n)
            {
                additional.push(n);
            }
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids: additional,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_groups() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nwww:x:33:\nlogs:x:40:www,root\n",
        )
        .unwrap();
        let u = resolve(d.path(), "www").unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (33, 33, vec![40]));
        assert_eq!(u.home, "/var/www");
        let u = resolve(d.path(), "33:logs").unwrap();
        assert_eq!((u.uid, u.gid), (33, 40));
        let u = resolve(d.path(), "1234:5").unwrap();
        assert_eq!((u.uid, u.gid), (1234, 5));
        assert_eq!(resolve(d.path(), "").unwrap().uid, 0);
        assert!(resolve(d.path(), "nobody").is_err());
        assert!(resolve(d.path(), "www:nogroup").is_err());
    }

    #[test]
    fn a_symlinked_passwd_stays_inside_the_rootfs() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        // Points at the host's passwd when followed outside the root.
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("etc/passwd")).unwrap();
        assert!(resolve(d.path(), "root").is_err());
    }
}
