//! Persistent container state under `--root/<id>/`: `state.json` (written
//! atomically), the `exec.fifo` that holds a created container until
//! `start`, and a directory lock that serialises mutating commands.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

pub const STATE_FILE: &str = "state.json";
/// The state of a container whose create is still running.
const CREATING_FILE: &str = ".creating.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// What the runtime remembers about a container between commands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Host pid of the container's init; 0 while creating.
    pub pid: i32,
    /// Start time of `pid` in clock ticks since boot (field 22 of
    /// /proc/pid/stat), to tell our init from a recycled pid.
    pub pid_start: u64,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The cgroup path handed to libcgroups, if the container has one.
    pub cgroup_path: Option<PathBuf>,
    /// The cgroup v2 mount that path is in; absent for v1 (and for states
    /// from before this field, which were made on this host's layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup2_root: Option<PathBuf>,
    /// The systemd scope unit owning the cgroup (`--systemd-cgroup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// The config the container was created from (exec and hooks need it
    /// after the bundle may have changed).
    pub spec: Spec,
}

impl ContainerState {
    /// The state of a container being made from `bundle` in `cgroup`:
    /// no process yet (pid 0, `creating`).
    pub fn new(id: &str, bundle: &crate::spec::Bundle, cgroup: &crate::cgroups::Cgroup) -> Self {
        ContainerState {
            id: id.to_string(),
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            pid: 0,
            pid_start: 0,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            owner: String::new(),
            annotations: bundle
                .spec
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            cgroup_path: Some(cgroup.path.clone()),
            cgroup2_root: cgroup.v2_root.clone(),
            systemd_unit: cgroup.systemd_unit.clone(),
            spec: bundle.spec.clone(),
        }
    }
}

/// The state as `runc state` prints it (OCI state plus runc's extras).
#[derive(Debug, Serialize, Deserialize)]
pub struct StateView {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty", default)]
    pub annotations: HashMap<String, String>,
}

/// The OCI state handed to hooks on stdin.
pub fn hook_state(st: &ContainerState, status: Status) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": crate::OCI_VERSION,
        "id": st.id,
        "status": status.to_string(),
        "pid": st.pid,
        "bundle": st.bundle,
        "annotations": st.annotations,
    })
}

pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::EmptyId);
    }
    let ok = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if !ok || id == "." || id == ".." || id.len() > 1024 {
        return Err(Error::InvalidId(id.to_string()));
    }
    Ok(())
}

/// The runtime's state root (`--root`).
#[derive(Clone, Debug)]
pub struct Root {
    pub path: PathBuf,
}

impl Root {
    pub fn new(path: PathBuf) -> Self {
        Root { path }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.path.join(id)
    }

    /// Atomically claim `id`: the directory's creation is the uniqueness check.
    pub fn claim(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        std::fs::create_dir_all(&self.path)
            .ctx(|| format!("create state root {}", self.path.display()))?;
        let dir = self.dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711));
                Ok(dir)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Exists(id.to_string()))
            }
            Err(e) => Err(Error::Io {
                context: format!("create {}", dir.display()),
                source: e,
            }),
        }
    }

    /// Take the container's lock (blocking) for a mutating command.
    pub fn lock(&self, id: &str) -> Result<Flock<File>> {
        validate_id(id)?;
        let dir = self.dir(id);
        let f = File::open(&dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotExist(id.to_string())
            } else {
                Error::Io {
                    context: format!("open {}", dir.display()),
                    source: e,
                }
            }
        })?;
        Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| Error::Sys {
            context: format!("lock {}", dir.display()),
            source: e,
        })
    }

    pub fn load(&self, id: &str) -> Result<ContainerState> {
        validate_id(id)?;
        let dir = self.dir(id);
        // state.json, or the creating state of a create still running;
        // state.json once more, in case that create finished in between.
        let mut found = None;
        for name in [STATE_FILE, CREATING_FILE, STATE_FILE] {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(d) => {
                    found = Some((path, d));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Io {
                        context: format!("read {}", path.display()),
                        source: e,
                    });
                }
            }
        }
        let Some((path, data)) = found else {
            return Err(Error::NotExist(id.to_string()));
        };
        serde_json::from_slice(&data).map_err(|e| Error::CorruptState {
            path,
            msg: e.to_string(),
        })
    }

    /// Write the state of a container being created. It goes to a file of
    /// its own, so that [`save`](Self::save) creates state.json rather
    /// than replacing it: on ext4 a rename over an existing file starts
    /// writeback of the new one (auto_da_alloc), and a `delete` soon after
    /// then waits for that I/O in its unlink (20 to 190 ms on this disk,
    /// the slowest runs of a `run`).
    pub fn save_creating(&self, st: &ContainerState) -> Result<()> {
        self.write_atomically(st, CREATING_FILE)
    }

    pub fn save(&self, st: &ContainerState) -> Result<()> {
        self.write_atomically(st, STATE_FILE)?;
        match std::fs::remove_file(self.dir(&st.id).join(CREATING_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!("remove the creating state of {}: {e}", st.id);
            }
            _ => {}
        }
        Ok(())
    }

    fn write_atomically(&self, st: &ContainerState, name: &str) -> Result<()> {
        let dir = self.dir(&st.id);
        let tmp = dir.join(".state.json.tmp");
        let data =
            serde_json::to_vec(st).map_err(|e| Error::Container(format!("encode state: {e}")))?;
        let mut f = File::create(&tmp).ctx(|| format!("write {}", tmp.display()))?;
        f.write_all(&data)
            .ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(name)).ctx(|| format!("rename state in {}", dir.display()))
    }

    /// Ids of every container under the root, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let rd = match std::fs::read_dir(&self.path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => {
                return Err(Error::Io {
                    context: format!("read {}", self.path.display()),
                    source: e,
                });
            }
        };
        for entry in rd.flatten() {
            let p = entry.path();
            if p.join(STATE_FILE).exists() || p.join(CREATING_FILE).exists() {
                ids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io {
                context: format!("remove {}", dir.display()),
                source: e,
            }),
        }
    }
}

/// Start time (clock ticks since boot) and state letter of a process, from
/// /proc/<pid>/stat; None if it does not exist.
pub fn proc_stat(pid: i32) -> Option<(u64, char)> {
    let data = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces or ')'.
    let rest = &data[data.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 overall is index 19 after pid and comm.
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

impl ContainerState {
    /// Is our init (not a recycled pid) still alive and not a zombie?
    pub fn init_alive(&self) -> bool {
        if self.pid <= 0 {
            return false;
        }
        match proc_stat(self.pid) {
            Some((start, state)) => start == self.pid_start && state != 'Z' && state != 'X',
            None => false,
        }
    }

    /// The container's cgroup, if it has one.
    pub fn cgroup(&self) -> Option<crate::cgroups::Cgroup> {
        let path = self.cgroup_path.clone()?;
        let v2_root = self
            .cgroup2_root
            .clone()
            .or_else(crate::cgroups::host_v2_root);
        Some(crate::cgroups::Cgroup {
            path,
            v2_root,
            systemd_unit: self.systemd_unit.clone(),
        })
    }

    pub fn status(&self, dir: &Path) -> Status {
        if self.pid == 0 {
            return Status::Creating;
        }
        if !self.init_alive() {
            return Status::Stopped;
        }
        if dir.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if crate::cgroups::is_frozen(self) {
            return Status::Paused;
        }
        Status::Running
    }

    pub fn view(&self, dir: &Path) -> StateView {
        let status = self.status(dir);
        StateView {
            oci_version: self.spec.version().clone(),
            id: self.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc_rules() {
        validate_id("abc-1_2+3.x").unwrap();
        assert!(matches!(validate_id(""), Err(Error::EmptyId)));
        assert!(validate_id("..").is_err());
        assert!(validate_id("a/b").is_err());
        assert!(validate_id("a b").is_err());
    }

    #[test]
    fn proc_stat_reads_self() {
        let (start, state) = proc_stat(std::process::id() as i32).unwrap();
        assert!(start > 0);
        assert!(state == 'R' || state == 'S');
        assert!(proc_stat(i32::MAX).is_none());
    }

    #[test]
    fn claim_is_exclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(tmp.path().to_path_buf());
        root.claim("c1").unwrap();
        assert!(matches!(root.claim("c1"), Err(Error::Exists(_))));
        assert!(matches!(root.load("c1"), Err(Error::NotExist(_))));
    }

    #[test]
    fn a_creating_state_is_read_until_the_final_one_replaces_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(tmp.path().to_path_buf());
        let dir = root.claim("c2").unwrap();
        let mut st = ContainerState {
            id: "c2".into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            pid: 0,
            pid_start: 0,
            created: String::new(),
            owner: String::new(),
            annotations: HashMap::new(),
            cgroup_path: None,
            cgroup2_root: None,
            systemd_unit: None,
            spec: Spec::default(),
        };
        root.save_creating(&st).unwrap();
        assert!(!dir.join(STATE_FILE).exists());
        assert_eq!(root.load("c2").unwrap().status(&dir), Status::Creating);
        assert_eq!(root.ids().unwrap(), vec!["c2".to_string()]);
        st.pid = 42;
        root.save(&st).unwrap();
        assert!(dir.join(STATE_FILE).exists());
        assert!(!dir.join(CREATING_FILE).exists(), "creating state left");
        assert_eq!(root.load("c2").unwrap().pid, 42);
    }
}
