//! What the engine keeps about a container, in `containers/<id>/`:
//! `container.json` (how it was made, written once at create) and
//! `state.json` (where it is in its life, rewritten atomically by the
//! CLI and the monitor under the container's lock).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// A published port: `-p [ip:]host:container[/proto]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Port {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

impl Port {
    /// The host address, with "" shown as Docker shows it.
    pub fn host_addr(&self) -> &str {
        if self.host_ip.is_empty() {
            "0.0.0.0"
        } else {
            &self.host_ip
        }
    }
}

/// A container's place on a bridge network (the default `bridge` or a
/// user network), as asked for at create or `network connect`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Endpoint {
    /// The network's name.
    pub network: String,
    /// `--network-alias`: more names it is found by on that network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// `--ip`: a fixed address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// `--mac-address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// `--dns`, `--dns-search`, `--dns-option`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct DnsConfig {
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default)]
    pub search: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

/// An interface a running container has on a network.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Wired {
    pub network: String,
    pub network_id: String,
    /// `eth0`, `eth1`, ... inside.
    pub ifname: String,
    pub ip: String,
    pub prefix: u8,
    pub gateway: String,
    pub mac: String,
}

/// `--restart`: no | on-failure[:N] | always | unless-stopped.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct RestartPolicy {
    /// Docker's names; empty is `no`.
    #[serde(rename = "Name")]
    pub name: String,
    /// on-failure's N (0: no limit).
    #[serde(rename = "MaximumRetryCount")]
    pub max_retries: u32,
}

impl RestartPolicy {
    pub fn parse(s: &str) -> anyhow::Result<RestartPolicy> {
        let (name, n) = s.split_once(':').unwrap_or((s, ""));
        let max_retries = match (name, n) {
            (_, "") => 0,
            ("on-failure", n) => n
                .parse()
                .map_err(|_| anyhow::anyhow!("maximum retry count must be an integer: {n:?}"))?,
            _ => anyhow::bail!("maximum retry count cannot be used with restart policy '{name}'"),
        };
        if !["no", "on-failure", "always", "unless-stopped"].contains(&name) {
            anyhow::bail!("invalid restart policy '{name}'");
        }
        Ok(RestartPolicy {
            name: if name == "no" {
                String::new()
            } else {
                name.into()
            },
            max_retries,
        })
    }

    /// Restart after an exit with `code`, `restarts` restarts in?
    pub fn wants(&self, code: i32, restarts: u32) -> bool {
        match self.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => code != 0 && (self.max_retries == 0 || restarts < self.max_retries),
            _ => false,
        }
    }
}

/// A healthcheck, in the image config's shape (durations in ns).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// ["CMD", args...] | ["CMD-SHELL", command] | ["NONE"].
    #[serde(default)]
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: i64,
    #[serde(default)]
    pub timeout: i64,
    #[serde(default)]
    pub start_period: i64,
    #[serde(default)]
    pub retries: u32,
}

/// One probe's result, as Docker's `State.Health.Log` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct HealthLog {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// Docker's `State.Health`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// starting | healthy | unhealthy
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<HealthLog>,
}

/// How a container was made: fixed at create (but for a rename and
/// `network connect/disconnect`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record<S = serde_json::Value> {
    pub id: String,
    pub name: String,
    /// The image as the user named it, and its id.
    pub image_name: String,
    pub image: String,
    pub created: String,
    /// The command (entrypoint + cmd) as it will run.
    pub command: Vec<String>,
    pub tty: bool,
    pub interactive: bool,
    pub auto_remove: bool,
    /// none | host | bridge | the first user network's name
    pub network: String,
    /// The bridge networks it is on, the first one's route the default
    /// (empty for records from before user networks: `bridge` alone).
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// `--add-host NAME:IP`.
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    #[serde(default)]
    pub dns: DnsConfig,
    pub ports: Vec<Port>,
    /// Exposed ports ("80/tcp"): the image's and `--expose`.
    #[serde(default)]
    pub exposed: Vec<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub stop_signal: String,
    pub stop_timeout: u32,
    /// The anonymous volumes made for this container (`rm -v` removes
    /// them), by name.
    pub volumes: Vec<String>,
    /// The named volumes it uses (a volume in use is not removed).
    #[serde(default)]
    pub named_volumes: Vec<String>,
    /// The OCI config.json given to the runtime (a `SpecView` where only
    /// what `ps` and `inspect` show is read).
    pub spec: S,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// `--log-driver`, `--log-opt`.
    #[serde(default)]
    pub log: super::logs::LogConfig,
    /// The image's HEALTHCHECK with the `--health-*` flags over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
}

/// The parts of a record's spec that `ps` and `inspect` show: parsing
/// only these skips most of the record's bytes without building them.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct SpecView {
    #[serde(default)]
    pub hostname: serde_json::Value,
    #[serde(default)]
    pub process: ProcessView,
    #[serde(default)]
    pub mounts: Vec<serde_json::Value>,
    #[serde(default)]
    pub linux: LinuxView,
}

#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct LinuxView {
    #[serde(default, rename = "cgroupsPath")]
    pub cgroups_path: String,
}

impl LinuxView {
    /// Docker's `HostConfig.CgroupParent`: empty for the default parent.
    pub fn cgroup_parent(&self) -> &str {
        match self.cgroups_path.rsplit_once('/') {
            Some(("/strata", _)) | None => "",
            Some(("", _)) => "/",
            Some((parent, _)) => parent,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct ProcessView {
    #[serde(default)]
    pub env: serde_json::Value,
    #[serde(default)]
    pub cwd: serde_json::Value,
    #[serde(default)]
    pub user: serde_json::Value,
}

impl<S> Record<S> {
    /// The bridge networks it is on, in order.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        if self.endpoints.is_empty() && self.network == "bridge" {
            return vec![Endpoint {
                network: "bridge".into(),
                ..Default::default()
            }];
        }
        self.endpoints.clone()
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    /// Between an exit and the restart its policy asks for.
    Restarting,
    Exited,
}

/// Where a container is in its life.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct State {
    pub status: Status,
    /// The container's init, and when it started (to tell a reused pid).
    pub pid: i32,
    pub pid_start: u64,
    /// The monitor, likewise.
    pub monitor_pid: i32,
    pub monitor_start: u64,
    pub exit_code: i32,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The boot the pids belong to; after a reboot they mean nothing.
    pub boot_id: String,
    /// The address on the first network, when there is one.
    pub ip: Option<String>,
    /// Every network interface it has while it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<Wired>,
    /// Restarts by its policy since it was started.
    #[serde(default)]
    pub restart_count: u32,
    /// `stop` (or `rm -f`) asked it to end: no restart follows.
    #[serde(default)]
    pub stop_requested: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Set when the state was repaired after its monitor died.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn boot_id() -> String {
    // Read once per process: `ps` asks for every running container.
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
    .clone()
}

/// Start time of a process (field 22 of /proc/PID/stat), if it lives.
pub fn start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); a zombie has exited.
    if f.first() == Some(&"Z") {
        return None;
    }
    f.get(19)?.parse().ok()
}

/// Is the process that was `pid` at `start` still alive?
pub fn alive(pid: i32, start: u64) -> bool {
    start_time(pid).is_some_and(|s| s == start)
}

/// Record `pid` with its start time in `path` (`PID START`), so that a
/// later reader tells it from a process that reused the number.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let start = start_time(pid).unwrap_or(0);
    write_atomic(path, format!("{pid} {start}\n").as_bytes())
}

/// The process a [`write_pid_file`] file names, while it still lives.
pub fn live_pid_file(path: &Path) -> Option<i32> {
    let s = std::fs::read_to_string(path).ok()?;
    let mut it = s.split_whitespace();
    let pid: i32 = it.next()?.parse().ok()?;
    let start: u64 = it.next()?.parse().ok()?;
    (pid > 1 && alive(pid, start)).then_some(pid)
}

/// The container's directory and its files.
#[derive(Clone, Debug)]
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn rootfs(&self) -> PathBuf {
        self.0.join("merged")
    }
    pub fn log(&self) -> PathBuf {
        self.0.join("ctr.log")
    }

    pub fn lock(&self) -> Result<Flock<File>> {
        let f = File::create(self.0.join("lock"))
            .with_context(|| format!("lock {}", self.0.display()))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, e)| anyhow::anyhow!("lock {}: {e}", self.0.display()))
    }

    pub fn record(&self) -> Result<Record> {
        let p = self.0.join("container.json");
        let data = std::fs::read(&p).with_context(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&data).with_context(|| format!("parse {}", p.display()))
    }

    /// The record with only the spec's shown parts (`SpecView`).
    pub fn record_view(&self) -> Result<Record<SpecView>> {
        let p = self.0.join("container.json");
        let data = std::fs::read(&p).with_context(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&data).with_context(|| format!("parse {}", p.display()))
    }

    pub fn save_record(&self, r: &Record) -> Result<()> {
        write_atomic(
            &self.0.join("container.json"),
            &serde_json::to_vec_pretty(r)?,
        )
    }

    pub fn state(&self) -> Result<State> {
        let p = self.0.join("state.json");
        match std::fs::read(&p) {
            Ok(d) => serde_json::from_slice(&d).with_context(|| format!("parse {}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e).with_context(|| format!("read {}", p.display())),
        }
    }

    pub fn save_state(&self, s: &State) -> Result<()> {
        write_atomic(&self.0.join("state.json"), &serde_json::to_vec_pretty(s)?)
    }
}

/// Write to a temp file beside `path`, fsync, rename over it.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// A new 64-hex container id.
pub fn new_id() -> Result<String> {
    let mut b = [0u8; 32];
    random_bytes(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Fill `buf` from the kernel's random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, buf))
        .context("read /dev/urandom")
}

/// Docker-style names: adjective_surname.
pub fn random_name(id: &str) -> String {
    const ADJ: &[&str] = &[
        "brave", "calm", "eager", "fond", "gentle", "happy", "keen", "lucid", "merry", "nimble",
        "proud", "quiet", "sharp", "tender", "vivid", "witty",
    ];
    const NAME: &[&str] = &[
        "babbage", "curie", "dijkstra", "euler", "feynman", "gauss", "hopper", "knuth", "lamport",
        "lovelace", "noether", "pascal", "ritchie", "shannon", "turing", "wirth",
    ];
    let n = u32::from_str_radix(id.get(..8).unwrap_or("0"), 16).unwrap_or(0) as usize;
    format!(
        "{}_{}",
        ADJ[n % ADJ.len()],
        NAME[(n / ADJ.len()) % NAME.len()]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_parent_as_docker_shows_it() {
        let v = |p: &str| LinuxView {
            cgroups_path: p.into(),
        };
        assert_eq!(v("/strata/abc").cgroup_parent(), "");
        assert_eq!(v("").cgroup_parent(), "");
        assert_eq!(v("/user-1000/abc").cgroup_parent(), "/user-1000");
        assert_eq!(v("/a/b/abc").cgroup_parent(), "/a/b");
        assert_eq!(v("/abc").cgroup_parent(), "/");
    }

    #[test]
    fn start_time_tells_a_live_process() {
        let me = std::process::id() as i32;
        let t = start_time(me).unwrap();
        assert!(alive(me, t));
        assert!(!alive(me, t + 1));
        assert!(start_time(0).is_none());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pid");
        write_pid_file(&f, me).unwrap();
        assert_eq!(live_pid_file(&f), Some(me));
        std::fs::write(&f, format!("{me} {}", t + 1)).unwrap();
        assert_eq!(live_pid_file(&f), None, "the number reused");
        std::fs::write(&f, "garbage").unwrap();
        assert_eq!(live_pid_file(&f), None);
    }

    #[test]
    fn ids_and_names() {
        let id = new_id().unwrap();
        assert_eq!(id.len(), 64);
        assert!(random_name(&id).contains('_'));
    }
}
