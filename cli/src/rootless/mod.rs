//! The rootless engine: `strata` run by an unprivileged user.
//!
//! As podman does, every command of that user runs inside one user
//! namespace (with a mount namespace of its own) that a pause process
//! keeps alive: root in there is the user on the host, and uids 1.. are
//! the user's subordinate range from /etc/subuid (set by Debian's setuid
//! `newuidmap`/`newgidmap`; strata has no setuid helper of its own). So
//! every command sees the same mapping, layers unpack with their real
//! owners, and overlayfs mounts are made by the kernel inside the
//! namespace.
//!
//! Paths: the store under `$XDG_DATA_HOME/strata` (`~/.local/share/strata`),
//! run-time state under `$XDG_RUNTIME_DIR/strata`, or `/tmp/strata-run-UID`
//! when that is unset (podman's fallback is alike).

pub mod userns;

use std::path::PathBuf;
use std::sync::OnceLock;

/// The environment variable a joined command leaves to the processes it
/// starts (monitors, build steps, re-execs of strata): they are inside
/// the namespace already. Its value: `UID:GID`.
pub const ENV: &str = "_STRATA_ROOTLESS";

/// Who runs a rootless engine, and where it keeps its things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootless {
    /// The user on the host.
    pub uid: u32,
    pub gid: u32,
    /// `$XDG_DATA_HOME/strata`.
    pub data_dir: PathBuf,
    /// `$XDG_RUNTIME_DIR/strata` or `/tmp/strata-run-UID`.
    pub run_dir: PathBuf,
}

static MODE: OnceLock<Option<Rootless>> = OnceLock::new();

/// The rootless mode of this process, if it is one (set by `enter`).
pub fn mode() -> Option<&'static Rootless> {
    MODE.get().and_then(Option::as_ref)
}

impl Rootless {
    /// The paths for the user `uid`, from this process's environment.
    pub fn for_user(uid: u32, gid: u32) -> Rootless {
        Rootless::from_env(uid, gid, |k| std::env::var_os(k))
    }

    /// The paths for the user `uid`, with `env` as the environment.
    fn from_env(uid: u32, gid: u32, env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Rootless {
        let var = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let data_dir = var("XDG_DATA_HOME")
            .or_else(|| var("HOME").map(|h| h.join(".local/share")))
            .unwrap_or_else(|| PathBuf::from(format!("/tmp/strata-data-{uid}")))
            .join("strata");
        let run_dir = var("XDG_RUNTIME_DIR")
            .filter(|d| d.is_dir())
            .map(|d| d.join("strata"))
            .unwrap_or_else(|| PathBuf::from(format!("/tmp/strata-run-{uid}")));
        Rootless {
            uid,
            gid,
            data_dir,
            run_dir,
        }
    }
}

/// Called first in `main`, while the process has one thread: for a user
/// other than root, join (or make) the user's namespace. Root on the
/// host, and processes already inside (`ENV` set), go on as they are.
pub fn enter() -> anyhow::Result<()> {
    if let Some(rl) = inherited() {
        let _ = MODE.set(Some(rl));
        return Ok(());
    }
    let uid = nix::unistd::geteuid().as_raw();
    if uid == 0 {
        let _ = MODE.set(None);
        return Ok(());
    }
    let rl = Rootless::for_user(uid, nix::unistd::getegid().as_raw());
    userns::join(&rl)?;
    // SAFETY: called from main before any other thread exists.
    unsafe { std::env::set_var(ENV, format!("{}:{}", rl.uid, rl.gid)) };
    let _ = MODE.set(Some(rl));
    Ok(())
}

/// A process started inside the namespace by a rootless strata.
fn inherited() -> Option<Rootless> {
    let v = std::env::var(ENV).ok()?;
    let (uid, gid) = v.split_once(':')?;
    let (uid, gid) = (uid.parse().ok()?, gid.parse().ok()?);
    strata_runtime::process::namespaces::in_user_namespace().then(|| Rootless::for_user(uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_xdg_and_fall_back() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let rl = Rootless::from_env(
            1001,
            1001,
            env(&[
                ("XDG_DATA_HOME", "/home/u/data"),
                ("XDG_RUNTIME_DIR", "/proc"),
                ("HOME", "/h"),
            ]),
        );
        assert_eq!(rl.data_dir, PathBuf::from("/home/u/data/strata"));
        assert_eq!(rl.run_dir, PathBuf::from("/proc/strata"));
        // No XDG_DATA_HOME: under HOME; a runtime dir that does not exist
        // (or none): /tmp/strata-run-UID.
        let rl = Rootless::from_env(
            1001,
            1001,
            env(&[
                ("HOME", "/home/u"),
                ("XDG_RUNTIME_DIR", "/nonexistent-run-dir"),
            ]),
        );
        assert_eq!(rl.data_dir, PathBuf::from("/home/u/.local/share/strata"));
        assert_eq!(rl.run_dir, PathBuf::from("/tmp/strata-run-1001"));
        let rl = Rootless::from_env(7, 7, env(&[("XDG_DATA_HOME", "")]));
        assert_eq!(rl.data_dir, PathBuf::from("/tmp/strata-data-7/strata"));
    }
}
