//! `strata.toml`: `/etc/strata/strata.toml` for root, else
//! `$XDG_CONFIG_HOME/strata/strata.toml` (`~/.config/...`); `--config` or
//! `$STRATA_CONFIG` override. A missing file means defaults.
//!
//! ```toml
//! insecure_registries = ["registry.lan:5000"]   # plain HTTP
//! [mirrors]
//! "docker.io" = ["mirror.lan:5000"]             # tried in order, then the origin
//! chunked_upload_above = 268435456              # bytes; larger blobs are pushed in chunks
//! read_timeout = 60                             # seconds without bytes before a download resumes
//! cgroup_parent = "/user-1000"                  # containers' cgroups go under it (a delegated subtree)
//! [storage]
//! mount_program = "/usr/bin/fuse-overlayfs"     # overlays by this FUSE program, not the kernel
//! ```

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    #[serde(default)]
    pub mirrors: HashMap<String, Vec<String>>,
    /// Push blobs larger than this many bytes in chunks (default 256 MiB).
    pub chunked_upload_above: Option<u64>,
    /// Seconds a registry may stall a read before the download is resumed
    /// on a new connection (default 60).
    pub read_timeout: Option<u64>,
    /// The default `--cgroup-parent` (Docker's daemon-wide setting): for
    /// a rootless user, the cgroup v2 subtree delegated to it.
    pub cgroup_parent: Option<String>,
    #[serde(default)]
    pub storage: StorageConfig,
}

/// `[storage]`: how container filesystems are stacked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// A FUSE program (fuse-overlayfs) to mount overlays with, as
    /// podman's `mount_program`.
    pub mount_program: Option<PathBuf>,
}

pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os("STRATA_CONFIG") {
        return PathBuf::from(p);
    }
    if crate::rootless::mode().is_none() && nix::unistd::geteuid().is_root() {
        return PathBuf::from("/etc/strata/strata.toml");
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/tmp"))
                .join(".config")
        });
    base.join("strata/strata.toml")
}

pub fn load(path: Option<&std::path::Path>) -> Result<Config> {
    let path = path.map(PathBuf::from).unwrap_or_else(default_path);
    match std::fs::read_to_string(&path) {
        Ok(s) => toml::from_str(&s).with_context(|| format!("bad config {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

impl Config {
    pub fn registry_options(&self, tls_verify: bool, domain: &str) -> strata_registry::Options {
        strata_registry::Options {
            insecure: !tls_verify,
            insecure_hosts: self.insecure_registries.clone(),
            mirrors: self.mirrors.get(domain).cloned().unwrap_or_default(),
            chunked_above: self.chunked_upload_above,
            read_timeout: self.read_timeout.map(std::time::Duration::from_secs),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_keys() {
        let c: Config = toml::from_str(
            "insecure_registries = [\"a:5000\"]\n[mirrors]\n\"docker.io\" = [\"m:1\"]\n",
        )
        .unwrap();
        assert_eq!(c.mirrors["docker.io"], vec!["m:1".to_string()]);
        assert!(toml::from_str::<Config>("mirror = 1").is_err());
        let o = c.registry_options(true, "docker.io");
        assert_eq!(o.mirrors, vec!["m:1".to_string()]);
        assert_eq!(o.insecure_hosts, vec!["a:5000".to_string()]);
    }
}
