//! Loading and validating an OCI bundle's `config.json`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::error::{Error, Result};

/// A loaded bundle: the spec plus the absolute paths it resolves to.
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
}

pub fn load_bundle(dir: &Path) -> Result<Bundle> {
    let dir = std::path::absolute(dir).map_err(|source| Error::Io {
        context: format!("bundle path {}", dir.display()),
        source,
    })?;
    let path = dir.join("config.json");
    let data = std::fs::read(&path).map_err(|source| Error::ReadSpec {
        path: path.clone(),
        source,
    })?;
    let malformed = |e: serde_json::Error| Error::MalformedSpec {
        path: path.clone(),
        msg: e.to_string(),
    };
    let mut value: serde_json::Value = serde_json::from_slice(&data).map_err(malformed)?;
    if let Some(process) = value.get_mut("process") {
        spec_names_to_oci_spec(process);
    }
    let spec: Spec = serde_json::from_value(value).map_err(malformed)?;
    validate(&spec)?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("root must be set".into()))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    if !rootfs.is_dir() {
        return Err(Error::MissingRootfs(rootfs));
    }
    Ok(Bundle { dir, spec, rootfs })
}

/// The runtime-spec's names for `process.scheduler.flags` where the
/// oci-spec crate (0.10) spells them otherwise (`SCHED_FLAG_RESET_ON_FORK`
/// is its `SCHED_RESET_ON_FORK`, `SCHED_FLAG_DL_OVERRUN` its
/// `SCHED_FLAG_D_L_OVERRUN`): renamed in the JSON before it is parsed, so
/// that a config written to the spec is not refused.
pub fn spec_names_to_oci_spec(process: &mut serde_json::Value) {
    let Some(flags) = process
        .pointer_mut("/scheduler/flags")
        .and_then(|f| f.as_array_mut())
    else {
        return;
    };
    for f in flags {
        let renamed = match f.as_str() {
            Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
            Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
            _ => continue,
        };
        *f = renamed.into();
    }
}

/// Checks the spec for what the runtime would otherwise trip over halfway
/// through creating the container.
pub fn validate(spec: &Spec) -> Result<()> {
    let version = spec.version();
    if !version.starts_with("1.") {
        return Err(Error::InvalidSpec(format!(
            "unsupported ociVersion {version:?} (want 1.x)"
        )));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("process must be set".into()))?;
    validate_process(process)?;
    if let Some(linux) = spec.linux() {
        let mut seen = HashSet::new();
        for ns in linux.namespaces().iter().flatten() {
            if !seen.insert(ns.typ()) {
                return Err(Error::InvalidSpec(format!(
                    "duplicate namespace {:?}",
                    ns.typ().to_string()
                )));
            }
            if let Some(p) = ns.path()
                && !p.as_os_str().is_empty()
                && !p.is_absolute()
            {
                return Err(Error::InvalidSpec(format!(
                    "namespace path {} must be absolute",
                    p.display()
                )));
            }
        }
        let has_userns = seen.contains(&LinuxNamespaceType::User);
        let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if has_maps && !has_userns {
            return Err(Error::InvalidSpec(
                "uidMappings given without a user namespace".into(),
            ));
        }
        if linux.sysctl().is_some() && !seen.contains(&LinuxNamespaceType::Uts) {
            for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
                if key == "kernel.hostname" || key == "kernel.domainname" {
                    return Err(Error::InvalidSpec(format!(
                        "sysctl {key} needs a new uts namespace"
                    )));
                }
            }
        }
        if spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
            && !seen.contains(&LinuxNamespaceType::Uts)
        {
            return Err(Error::InvalidSpec(
                "hostname requires a new uts namespace".into(),
            ));
        }
        if let Some(offsets) = linux.time_offsets().as_ref().filter(|o| !o.is_empty()) {
            let new_timens = linux
                .namespaces()
                .iter()
                .flatten()
                .any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none());
            if !new_timens {
                return Err(Error::InvalidSpec(
                    "timeOffsets need a new time namespace".into(),
                ));
            }
            if let Some(clock) = offsets
                .keys()
                .find(|c| *c != "monotonic" && *c != "boottime")
            {
                return Err(Error::InvalidSpec(format!(
                    "timeOffsets: unknown clock {clock:?} (monotonic or boottime)"
                )));
            }
        }
        if let Some(flags) = linux
            .personality()
            .as_ref()
            .and_then(|p| p.flags().as_ref())
            .filter(|f| !f.is_empty())
        {
            return Err(Error::InvalidSpec(format!(
                "personality flags {flags:?} are not supported"
            )));
        }
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return Err(Error::InvalidSpec(format!(
                "mount destination {} must be absolute",
                m.destination().display()
            )));
        }
    }
    Ok(())
}

pub fn validate_process(process: &Process) -> Result<()> {
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(Error::InvalidProcess("args must not be empty".into())),
    }
    if !process.cwd().is_absolute() {
        return Err(Error::InvalidProcess(format!(
            "cwd {} must be an absolute path",
            process.cwd().display()
        )));
    }
    for kv in process.env().iter().flatten() {
        if !kv.contains('=') {
            return Err(Error::InvalidProcess(format!(
                "env entry {kv:?} is not KEY=VALUE"
            )));
        }
    }
    crate::process::scheduling::validate(process)
}

/// The namespaces the spec asks for: (type, optional path to join).
pub fn namespaces(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .into_iter()
        // An empty path is no path: a new namespace (runc reads it so).
        .map(|ns| {
            let path = ns.path().clone().filter(|p| !p.as_os_str().is_empty());
            (ns.typ(), path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_from(json: serde_json::Value) -> Result<Spec> {
        let spec: Spec =
            serde_json::from_value(json).map_err(|e| Error::InvalidSpec(e.to_string()))?;
        validate(&spec)?;
        Ok(spec)
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
        })
    }

    #[test]
    fn minimal_spec_is_valid() {
        spec_from(minimal()).unwrap();
    }

    #[test]
    fn empty_args_rejected() {
        let mut j = minimal();
        j["process"]["args"] = serde_json::json!([]);
        let err = spec_from(j).unwrap_err().to_string();
        assert!(err.contains("args must not be empty"), "{err}");
    }

    #[test]
    fn relative_cwd_rejected() {
        let mut j = minimal();
        j["process"]["cwd"] = serde_json::json!("tmp");
        assert!(spec_from(j).unwrap_err().to_string().contains("absolute"));
    }

    #[test]
    fn duplicate_namespace_rejected() {
        let mut j = minimal();
        j["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "pid"}]);
        assert!(
            spec_from(j)
                .unwrap_err()
                .to_string()
                .contains("duplicate namespace")
        );
    }

    #[test]
    fn hostname_without_uts_rejected() {
        let mut j = minimal();
        j["hostname"] = serde_json::json!("box");
        assert!(spec_from(j).unwrap_err().to_string().contains("uts"));
    }

    #[test]
    fn wrong_major_version_rejected() {
        let mut j = minimal();
        j["ociVersion"] = serde_json::json!("2.0.0");
        assert!(spec_from(j).unwrap_err().to_string().contains("ociVersion"));
    }
}
