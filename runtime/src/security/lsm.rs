//! AppArmor profiles and SELinux labels. A security setting the host
//! cannot apply is refused, never dropped: `process.apparmorProfile` on a
//! host without AppArmor, `process.selinuxLabel` or `linux.mountLabel` on
//! one without SELinux. Where the LSM is there, the exec label is set on
//! the init's thread right before execve (the kernel applies it at exec).

use std::path::Path;

use oci_spec::runtime::{Process, Spec};

use crate::error::{Error, Result};

/// Is AppArmor enabled in this kernel?
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

/// Is SELinux enabled (selinuxfs known to the kernel and mounted)?
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
        || std::fs::read_to_string("/proc/filesystems").is_ok_and(|f| {
            f.lines().any(|l| l.ends_with("\tselinuxfs")) && Path::new("/sys/fs/selinux").is_dir()
        })
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Refuse what this host cannot apply, before anything is made.
pub fn check(process: Option<&Process>, spec: Option<&Spec>) -> Result<()> {
    if let Some(p) = process {
        if let Some(profile) = nonempty(p.apparmor_profile())
            && !apparmor_enabled()
        {
            return Err(Error::InvalidSpec(format!(
                "apparmorProfile {profile:?} is set but AppArmor is not enabled on this host"
            )));
        }
        if let Some(label) = nonempty(p.selinux_label())
            && !selinux_enabled()
        {
            return Err(Error::InvalidSpec(format!(
                "selinuxLabel {label:?} is set but SELinux is not enabled on this host"
            )));
        }
    }
    if let Some(label) = spec
        .and_then(|s| s.linux().as_ref())
        .and_then(|l| nonempty(l.mount_label()))
    {
        if !selinux_enabled() {
            return Err(Error::InvalidSpec(format!(
                "mountLabel {label:?} is set but SELinux is not enabled on this host"
            )));
        }
        return Err(Error::InvalidSpec(format!(
            "mountLabel {label:?}: labelling mounts is not supported by strata-runtime yet"
        )));
    }
    Ok(())
}

/// Write `value` to the first of the thread's LSM attr files that exists.
fn write_attr(files: &[&str], value: &str, what: &str) -> Result<()> {
    let mut last = None;
    for f in files {
        match std::fs::write(f, value) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                last = Some(e);
                break;
            }
        }
    }
    Err(Error::Container(match last {
        Some(e) => format!("set {what}: {e}"),
        None => format!("set {what}: no LSM attribute file in /proc"),
    }))
}

/// Set the labels the process gets at execve (call last before it).
pub fn set_exec_labels(p: &Process) -> Result<()> {
    if let Some(profile) = nonempty(p.apparmor_profile()) {
        write_attr(
            &[
                "/proc/thread-self/attr/apparmor/exec",
                "/proc/thread-self/attr/exec",
            ],
            &format!("exec {profile}"),
            &format!("AppArmor profile {profile:?}"),
        )?;
    }
    if let Some(label) = nonempty(p.selinux_label()) {
        write_attr(
            &["/proc/thread-self/attr/exec"],
            label,
            &format!("SELinux label {label:?}"),
        )?;
    }
    Ok(())
}
