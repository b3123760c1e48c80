//! Host devices in a container: every one for `--privileged`, as Docker
//! gives, and the ones named with `--device HOST[:CONTAINER][:PERMS]`.
//! Each becomes an OCI `linux.devices` node and a device-cgroup rule.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DeviceError {
    #[error("--device {0:?}: {1}")]
    Spec(String, String),
    #[error("--device {spec:?}: {path}: {source}")]
    Host {
        spec: String,
        path: String,
        source: std::io::Error,
    },
}

/// A device node to create, and the cgroup rule that opens it.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub node: Value,
    pub rule: Value,
}

/// /dev entries a privileged container does not get from the host: the
/// runtime mounts its own pts, shm and mqueue, the fd links point into
/// the container's /proc, the host's console is the host's, and ptmx must
/// be the container's own pts instance.
const SKIPPED_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
const SKIPPED_FILES: &[&str] = &["console", "ptmx"];

/// The node at `host`, to appear at `inside`, or None if it is not a
/// character or block device.
fn node(host: &Path, inside: &Path, access: &str) -> std::io::Result<Option<Device>> {
    let md = std::fs::symlink_metadata(host)?;
    let kind = if md.file_type().is_char_device() {
        "c"
    } else if md.file_type().is_block_device() {
        "b"
    } else {
        return Ok(None);
    };
    let (major, minor) = (
        nix::sys::stat::major(md.rdev()),
        nix::sys::stat::minor(md.rdev()),
    );
    Ok(Some(Device {
        node: json!({
            "path": inside, "type": kind, "major": major, "minor": minor,
            "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid(),
        }),
        rule: json!({
            "allow": true, "type": kind, "major": major, "minor": minor, "access": access,
        }),
    }))
}

/// Every device node under `dir` (recursively), mapped below `inside`.
fn walk(dir: &Path, inside: &Path, access: &str, top: bool, out: &mut Vec<Device>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if !(top && SKIPPED_DIRS.contains(&name.as_ref())) {
                walk(&e.path(), &inside.join(&*name), access, false, out);
            }
        } else if !(top && SKIPPED_FILES.contains(&name.as_ref()))
            && let Ok(Some(d)) = node(&e.path(), &inside.join(&*name), access)
        {
            out.push(d);
        }
    }
}

/// The host's devices, as Docker gives them to `--privileged`.
pub fn host_devices() -> Vec<Device> {
    let mut out = Vec::new();
    walk(Path::new("/dev"), Path::new("/dev"), "rwm", true, &mut out);
    out
}

/// `--device HOST[:CONTAINER][:PERMS]`; HOST may be a directory of
/// devices.
pub fn parse(spec: &str) -> Result<Vec<Device>, DeviceError> {
    let bad = |why: &str| DeviceError::Spec(spec.to_string(), why.to_string());
    let parts: Vec<&str> = spec.split(':').collect();
    let is_perms = |s: &str| !s.is_empty() && s.chars().all(|c| "rwm".contains(c));
    let (host, inside, access) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if is_perms(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if is_perms(p) => (*h, *c, *p),
        [_, _, p] => return Err(bad(&format!("invalid permissions {p:?} (use r, w, m)"))),
        _ => return Err(bad("expected HOST[:CONTAINER][:PERMS]")),
    };
    if !host.starts_with('/') || !inside.starts_with('/') {
        return Err(bad("device paths must be absolute"));
    }
    let inside = PathBuf::from(inside);
    if inside
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(bad("container path may not contain \"..\""));
    }
    let host_err = |source| DeviceError::Host {
        spec: spec.to_string(),
        path: host.to_string(),
        source,
    };
    let md = std::fs::metadata(host).map_err(host_err)?;
    if md.is_dir() {
        let mut out = Vec::new();
        walk(Path::new(host), &inside, access, false, &mut out);
        if out.is_empty() {
            return Err(bad("the directory holds no devices"));
        }
        return Ok(out);
    }
    // A symlink such as /dev/disk/by-id/... names the node it points to.
    match node(
        &std::fs::canonicalize(host).map_err(host_err)?,
        &inside,
        access,
    )
    .map_err(host_err)?
    {
        Some(d) => Ok(vec![d]),
        None => Err(bad("not a character or block device")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_flags() {
        let d = parse("/dev/null").unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].node["path"], "/dev/null");
        assert_eq!(d[0].node["type"], "c");
        assert_eq!(
            (d[0].node["major"].clone(), d[0].node["minor"].clone()),
            (json!(1), json!(3))
        );
        assert_eq!(d[0].rule["access"], "rwm");
        let d = parse("/dev/null:/dev/nothing:r").unwrap();
        assert_eq!(d[0].node["path"], "/dev/nothing");
        assert_eq!(d[0].rule["access"], "r");
        let d = parse("/dev/zero:rw").unwrap();
        assert_eq!(d[0].node["path"], "/dev/zero");
        assert_eq!(d[0].rule["access"], "rw");

        for (bad, why) in [
            ("/etc/passwd", "not a character or block device"),
            ("/dev/nope", "No such file"),
            ("dev/null", "absolute"),
            ("/dev/null:/dev/x:rwx", "invalid permissions"),
            ("/dev/null:/dev/../etc/x", "\"..\""),
            ("/a:/b:r:x", "expected HOST"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn privileged_gets_the_hosts_devices_but_not_its_console_or_pts() {
        let all = host_devices();
        let paths: Vec<&str> = all.iter().filter_map(|d| d.node["path"].as_str()).collect();
        assert!(paths.contains(&"/dev/null"), "{paths:?}");
        assert!(paths.contains(&"/dev/kmsg"), "{paths:?}");
        assert!(!paths.contains(&"/dev/console"));
        assert!(!paths.contains(&"/dev/ptmx"));
        assert!(!paths.iter().any(|p| p.starts_with("/dev/pts/")));
        assert!(all.iter().all(|d| d.rule["allow"] == true));
    }
}
