//! A rootless user's bridge networks live in a network namespace of the
//! user's own (podman's "rootless-netns"): pinned at
//! `RUN_DIR/rootless-netns` in the pause process's mount namespace, with
//! `pasta` as its uplink to the host. Inside it the rootful wiring runs
//! as it is: the bridges, the veths to the containers, the masquerade
//! rule (out through pasta's interface) and the networks' DNS servers.
//! Root in the user namespace owns that network namespace, so nothing
//! there needs a privilege the user lacks.
//!
//! The namespace is per thread: work on the bridges runs on a thread of
//! its own that enters the namespace (a process in a user namespace
//! could not enter the host's network namespace again), and processes it
//! starts (iptables, a DNS server) are born in there.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};

use super::{netns, pasta};

const NAME: &str = "rootless-netns";

/// Where the namespace is pinned.
pub fn path(run_dir: &Path) -> PathBuf {
    run_dir.join(NAME)
}

/// Is a namespace pinned at `p` (in this mount namespace)?
fn pinned(p: &Path) -> bool {
    nix::sys::statfs::statfs(p).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// The namespace, made with its uplink when missing; a dead uplink is
/// started again.
pub fn ensure(run_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(run_dir).with_context(|| format!("create {}", run_dir.display()))?;
    let lock_file = run_dir.join(format!("{NAME}.lock"));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_file)
        .with_context(|| format!("open {}", lock_file.display()))?;
    let _l = Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("lock {}: {e}", lock_file.display()))?;
    let p = path(run_dir);
    if pinned(&p) {
        if pasta::running(run_dir, NAME) {
            return Ok(p);
        }
        // Its uplink died: a new pasta for the same namespace, so the
        // containers on its bridges keep reaching each other and the
        // new ones (its interface went with the old pasta; the rules and
        // forwarding stay).
        pasta::stop(run_dir, NAME);
        pasta::start(run_dir, NAME, &p, &[])
            .context("rootless user networks: restart the uplink of their namespace")?;
        return Ok(p);
    }
    // A pasta left from a namespace that went with an earlier pause
    // process: start both afresh.
    pasta::stop(run_dir, NAME);
    netns::remove_netns(&p);
    netns::create_netns(&p)?;
    let up = pasta::start(run_dir, NAME, &p, &[])
        .context("rootless user networks: start the uplink of their namespace")
        .and_then(|()| {
            within(&p, || {
                std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
                    .context("enable IPv4 forwarding in the rootless network namespace")
            })
        });
    if let Err(e) = up {
        pasta::stop(run_dir, NAME);
        netns::remove_netns(&p);
        return Err(e);
    }
    Ok(p)
}

/// Take the namespace and its pasta down once no user network is left
/// (`network rm` of the last one); rootful, nothing to do.
pub fn remove_if_unused() {
    let Some(rl) = crate::rootless::mode() else {
        return;
    };
    if super::networks::any_claimed() {
        return;
    }
    pasta::stop(&rl.run_dir, NAME);
    netns::remove_netns(&path(&rl.run_dir));
}

/// Run `f` on a thread inside the namespace pinned at `ns`.
fn within<T: Send>(ns: &Path, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let file = std::fs::File::open(ns).with_context(|| format!("open {}", ns.display()))?;
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .context("enter the rootless network namespace")?;
            f()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("rootless network thread panicked"))?
    })
}

/// Run `f` where the bridges are: in the host's network namespace for
/// root, in the user's namespace (made when missing) rootless.
pub fn on_bridges<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    match crate::rootless::mode() {
        None => f(),
        Some(rl) => {
            let ns = ensure(&rl.run_dir)?;
            within(&ns, f)
        }
    }
}

/// Run `f` where the bridges are, if they can be there: rootless, only
/// while the namespace is pinned (with it gone, its bridges went too).
pub fn on_existing_bridges(f: impl FnOnce() -> Result<()> + Send) -> Result<()> {
    match crate::rootless::mode() {
        None => f(),
        Some(rl) => {
            let ns = path(&rl.run_dir);
            if pinned(&ns) { within(&ns, f) } else { Ok(()) }
        }
    }
}
