//! Image config plus run options become the OCI `config.json`, the Docker
//! way: Entrypoint + Cmd, Env merged, WorkingDir, User, Docker's default
//! capabilities and seccomp policy, and the resource flags.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::users;

/// The init `--init` runs the command under.
pub const TINI: &str = "/usr/bin/tini-static";

/// Docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability we hold ourselves (our bounding set: a host may
/// withhold some, as this one does CAP_SYS_RESOURCE), for `--privileged`
/// and `--cap-add ALL`.
fn all_caps() -> Vec<String> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    CAP_NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

fn caps_all() -> std::collections::BTreeSet<String> {
    CAP_NAMES.iter().map(|s| s.to_string()).collect()
}

/// Capability names, in the kernel's bit order.
const CAP_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Run options that shape the spec.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub tty: bool,
    pub interactive: bool,
    pub env: Vec<String>,
    pub entrypoint: Option<String>,
    pub args: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub read_only: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// None: the default profile; Some(None): unconfined; Some(Some(f)): a file.
    pub seccomp: Option<Option<String>>,
    pub no_new_privileges: bool,
    pub memory: Option<i64>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    /// `--cgroup-parent`: the cgroup the container's goes under.
    pub cgroup_parent: Option<String>,
    pub init: bool,
    /// `--device HOST[:CONTAINER][:PERMS]`.
    pub devices: Vec<String>,
    /// OCI mounts from -v/--mount and the generated /etc files.
    pub mounts: Vec<Value>,
}

/// The container's `cgroupsPath`: `PARENT/ID` (Docker's cgroupfs rule,
/// with `/strata` as the parent when none is given). A rootless user
/// points `--cgroup-parent` at a cgroup v2 subtree delegated to it, and
/// the limits apply there.
pub fn cgroups_path(parent: Option<&str>, id: &str) -> anyhow::Result<String> {
    let parent = parent.unwrap_or("/strata").trim_end_matches('/');
    if parent.split('/').any(|c| c == ".." || c == ".") {
        anyhow::bail!("invalid --cgroup-parent {parent:?}: no . or .. components");
    }
    let parent = parent.trim_start_matches('/');
    Ok(if parent.is_empty() {
        format!("/{id}")
    } else {
        format!("/{parent}/{id}")
    })
}

/// `CAP_X`, `x` or `ALL` to the kernel's name.
fn cap_name(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

fn capabilities(o: &Options) -> Result<Vec<String>> {
    if o.privileged {
        return Ok(all_caps());
    }
    let known = caps_all();
    let mut set: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    for c in &o.cap_drop {
        if c.eq_ignore_ascii_case("ALL") {
            set.clear();
            continue;
        }
        let n = cap_name(c);
        if !known.contains(&n) {
            bail!("invalid --cap-drop: unknown capability {c:?}");
        }
        set.retain(|x| *x != n);
    }
    for c in &o.cap_add {
        if c.eq_ignore_ascii_case("ALL") {
            set = all_caps();
            continue;
        }
        let n = cap_name(c);
        if !known.contains(&n) {
            bail!("invalid --cap-add: unknown capability {c:?}");
        }
        if !set.contains(&n) {
            set.push(n);
        }
    }
    Ok(set)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

/// The command: `--entrypoint` replaces the image's (and drops its Cmd),
/// arguments replace Cmd.
pub fn command(image: &Value, o: &Options) -> Vec<String> {
    let c = &image["config"];
    let (entry, cmd) = match &o.entrypoint {
        Some(e) if e.is_empty() => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.clone()], Vec::new()),
        None => (strings(&c["Entrypoint"]), strings(&c["Cmd"])),
    };
    let cmd = if o.args.is_empty() {
        cmd
    } else {
        o.args.clone()
    };
    entry.into_iter().chain(cmd).collect()
}

/// Image Env, then -e (a later KEY replaces an earlier one), PATH and
/// HOSTNAME and HOME filled in as Docker does.
fn environment(image: &Value, o: &Options, hostname: &str, home: &str) -> Vec<String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |kv: &str| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(e) => e.1 = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        }
    };
    set("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    set(&format!("HOSTNAME={hostname}"));
    for e in strings(&image["config"]["Env"]) {
        set(&e);
    }
    for e in &o.env {
        set(e);
    }
    if o.tty {
        set("TERM=xterm");
    }
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push(("HOME".into(), home.to_string()));
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Build the spec. `rootfs` is the mounted container root (for user
/// lookup); `netns` the network namespace to join, if any.
pub fn build(
    image: &Value,
    o: &Options,
    rootfs: &Path,
    hostname: &str,
    network: &str,
    netns: Option<&Path>,
    cgroups_path: &str,
) -> Result<(Value, Vec<String>)> {
    let mut spec = strata_runtime::template::default_spec(false);
    let args = command(image, o);
    if args.is_empty() {
        bail!("no command specified");
    }
    let user_spec = o
        .user
        .clone()
        .unwrap_or_else(|| image["config"]["User"].as_str().unwrap_or("").to_string());
    let user = users::resolve(rootfs, &user_spec)?;
    let caps = capabilities(o)?;
    let cwd = o
        .workdir
        .clone()
        .or_else(|| image["config"]["WorkingDir"].as_str().map(String::from))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        bail!("invalid working directory {cwd:?}: must be absolute");
    }
    let mut args = args;
    if o.init {
        // Docker's --init: tini (Debian's static build) bound read-only at
        // /dev/init reaps zombies and forwards signals to the command.
        let tini = Path::new(TINI);
        if !tini.exists() {
            bail!("--init needs {TINI} (Debian package tini)");
        }
        args.insert(0, "/dev/init".into());
        args.insert(1, "--".into());
        if let Some(m) = spec["mounts"].as_array_mut() {
            m.push(
                json!({"destination": "/dev/init", "type": "bind", "source": TINI,
                          "options": ["bind", "ro"]}),
            );
        }
    }
    let p = &mut spec["process"];
    p["terminal"] = json!(o.tty);
    p["args"] = json!(args);
    p["env"] = json!(environment(image, o, hostname, &user.home));
    p["cwd"] = json!(cwd);
    p["user"] = json!({"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids});
    p["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    p["noNewPrivileges"] = json!(o.no_new_privileges);
    if let Some(obj) = p.as_object_mut() {
        obj.remove("rlimits");
    }
    spec["root"] = json!({"path": rootfs, "readonly": o.read_only});
    spec["hostname"] = json!(hostname);
    let linux = &mut spec["linux"];
    linux["cgroupsPath"] = json!(cgroups_path);
    let mut ns = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    match (network, netns) {
        ("host", _) => {}
        (_, Some(path)) => ns.push(json!({"type": "network", "path": path})),
        _ => ns.push(json!({"type": "network"})),
    }
    linux["namespaces"] = json!(ns);
    let mut res = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(m) = o.memory {
        res["memory"] = json!({"limit": m});
    }
    if let Some(c) = o.cpus {
        let period = 100_000u64;
        res["cpu"] = json!({"quota": (c * period as f64) as i64, "period": period});
    }
    if let Some(pl) = o.pids_limit {
        res["pids"] = json!({"limit": pl});
    }
    let mut devices = Vec::new();
    for d in &o.devices {
        devices.extend(super::devices::parse(d)?);
    }
    if let Some(rules) = res["devices"].as_array_mut() {
        rules.extend(devices.iter().map(|d| d.rule.clone()));
    }
    if o.privileged {
        // Every host device, as Docker gives (--device ones come after, so
        // a renamed node is kept too).
        let mut all = super::devices::host_devices();
        all.append(&mut devices);
        devices = all;
        res["devices"] = json!([{"allow": true, "access": "rwm"}]);
        if let Some(l) = linux.as_object_mut() {
            l.remove("maskedPaths");
            l.remove("readonlyPaths");
        }
        // /sys writable, as Docker does for privileged containers.
        if let Some(ms) = spec["mounts"].as_array_mut() {
            for m in ms.iter_mut() {
                if m["destination"] == "/sys" || m["destination"] == "/sys/fs/cgroup" {
                    m["options"] = json!(["nosuid", "noexec", "nodev"]);
                }
            }
        }
    } else {
        // Docker masks a few more.
        if let Some(mp) = spec["linux"]["maskedPaths"].as_array_mut() {
            for extra in ["/proc/interrupts", "/sys/devices/virtual/powercap"] {
                mp.push(json!(extra));
            }
        }
    }
    spec["linux"]["resources"] = res;
    if !devices.is_empty() {
        spec["linux"]["devices"] = json!(devices.into_iter().map(|d| d.node).collect::<Vec<_>>());
    }
    let seccomp = match &o.seccomp {
        _ if o.privileged => None,
        None => Some(super::seccomp::default_profile(&caps)),
        Some(None) => None,
        Some(Some(file)) => {
            let data =
                std::fs::read(file).with_context(|| format!("read seccomp profile {file}"))?;
            let v = super::seccomp::profile_from_file(&data, &caps)
                .with_context(|| format!("seccomp profile {file}"))?;
            Some(v)
        }
    };
    if let Some(s) = seccomp {
        spec["linux"]["seccomp"] = s;
    }
    if let Some(ms) = spec["mounts"].as_array_mut() {
        // A real /dev/shm size as Docker's (64 MiB) is the template's.
        ms.extend(o.mounts.iter().cloned());
    }
    let args = args_of(&spec);
    Ok((spec, args))
}

fn args_of(spec: &Value) -> Vec<String> {
    strings(&spec["process"]["args"])
}

/// `--memory`: `512m`, `1g`, `1048576` (bytes), Docker's suffixes.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size: {s:?}"))?;
    if n <= 0.0 {
        bail!("invalid size: {s:?}");
    }
    Ok((n * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_cmd_and_overrides() {
        let img = json!({"config": {"Entrypoint": ["/bin/app"], "Cmd": ["--serve"]}});
        let mut o = Options::default();
        assert_eq!(command(&img, &o), ["/bin/app", "--serve"]);
        o.args = vec!["--help".into()];
        assert_eq!(command(&img, &o), ["/bin/app", "--help"]);
        o.entrypoint = Some("/bin/sh".into());
        o.args.clear();
        assert_eq!(command(&img, &o), ["/bin/sh"]);
    }

    #[test]
    fn cgroup_parent_rules() {
        assert_eq!(cgroups_path(None, "abc").unwrap(), "/strata/abc");
        assert_eq!(
            cgroups_path(Some("/users/me/"), "abc").unwrap(),
            "/users/me/abc"
        );
        assert_eq!(cgroups_path(Some("mine"), "abc").unwrap(), "/mine/abc");
        assert_eq!(cgroups_path(Some("/"), "abc").unwrap(), "/abc");
        assert!(cgroups_path(Some("/a/../b"), "abc").is_err());
    }

    #[test]
    fn env_merges_later_wins() {
        let img = json!({"config": {"Env": ["A=1", "PATH=/x"]}});
        let o = Options {
            env: vec!["A=2".into(), "B=3".into()],
            ..Default::default()
        };
        let env = environment(&img, &o, "h", "/root");
        assert!(env.contains(&"A=2".to_string()));
        assert!(env.contains(&"PATH=/x".to_string()));
        assert!(env.contains(&"HOSTNAME=h".to_string()));
        assert!(env.contains(&"HOME=/root".to_string()));
    }

    #[test]
    fn caps_add_drop_and_bad_names() {
        let o = Options {
            cap_drop: vec!["chown".into()],
            cap_add: vec!["NET_ADMIN".into()],
            ..Default::default()
        };
        let c = capabilities(&o).unwrap();
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        let bad = Options {
            cap_add: vec!["FLY".into()],
            ..Default::default()
        };
        assert!(capabilities(&bad).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-1m").is_err());
    }
}

/// Run flags that tune the built spec: rlimits, /dev/shm, tmpfs mounts,
/// sysctls, extra groups, OOM score, more resources, annotations.
#[derive(Clone, Debug, Default)]
pub struct Tuning {
    /// `--ulimit nofile=1024:2048` (soft[:hard]).
    pub ulimits: Vec<String>,
    /// `--shm-size 128m`.
    pub shm_size: Option<String>,
    /// `--tmpfs /run[:options]`.
    pub tmpfs: Vec<String>,
    /// `--sysctl net.ipv4.ip_forward=1`.
    pub sysctls: Vec<String>,
    /// `--group-add 100` (numbers; names from the image's /etc/group).
    pub group_add: Vec<String>,
    pub oom_score_adj: Option<i32>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub blkio_weight: Option<u16>,
    pub memory_swap: Option<String>,
    pub memory_reservation: Option<String>,
    pub oom_kill_disable: bool,
    /// `--annotation key=value`.
    pub annotations: Vec<String>,
    /// `--pid`, `--ipc`, `--uts`: "host", or "path:/proc/PID/ns" (another
    /// container's, resolved by the engine); None keeps a private one.
    pub pid: Option<String>,
    pub ipc: Option<String>,
    pub uts: Option<String>,
    /// `--cgroupns host|private`.
    pub cgroupns: Option<String>,
}

/// Share (or not) one namespace kind per a `--pid/--ipc/--uts/--cgroupns`
/// value.
fn share_namespace(spec: &mut Value, kind: &str, how: &str) -> Result<()> {
    let Some(ns) = spec["linux"]["namespaces"].as_array_mut() else {
        return Ok(());
    };
    let flag = if kind == "cgroup" { "cgroupns" } else { kind };
    if how == "host" {
        ns.retain(|n| n["type"] != kind);
    } else if let Some(dir) = how.strip_prefix("path:") {
        for n in ns.iter_mut().filter(|n| n["type"] == kind) {
            n["path"] = json!(format!("{dir}/{kind}"));
        }
    } else if !(how == "private" || (kind != "cgroup" && how.is_empty())) {
        bail!(
            "invalid --{flag} {how:?}: want host{}",
            if kind == "cgroup" {
                " or private"
            } else {
                " or container:NAME"
            }
        );
    }
    Ok(())
}

fn key_value<'a>(s: &'a str, flag: &str) -> Result<(&'a str, &'a str)> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| anyhow::anyhow!("invalid {flag} {s:?}: want KEY=VALUE"))
}

/// Apply `t` to a built spec; `group_of` resolves a group name in the
/// image.
pub fn tune(spec: &mut Value, t: &Tuning, group_of: &dyn Fn(&str) -> Option<u32>) -> Result<()> {
    for u in &t.ulimits {
        let (name, vals) = key_value(u, "--ulimit")?;
        let (soft, hard) = vals.split_once(':').unwrap_or((vals, vals));
        let parse = |v: &str| -> Result<u64> {
            match v {
                "-1" | "unlimited" => Ok(u64::MAX),
                _ => v
                    .parse()
                    .map_err(|_| anyhow::anyhow!("invalid --ulimit {u:?}: {v:?} is not a number")),
            }
        };
        let (soft, hard) = (parse(soft)?, parse(hard)?);
        if soft > hard {
            bail!("invalid --ulimit {u:?}: soft limit above the hard limit");
        }
        let known = [
            "core",
            "cpu",
            "data",
            "fsize",
            "locks",
            "memlock",
            "msgqueue",
            "nice",
            "nofile",
            "nproc",
            "rss",
            "rtprio",
            "rttime",
            "sigpending",
            "stack",
            "as",
        ];
        if !known.contains(&name) {
            bail!("invalid --ulimit {u:?}: unknown limit {name:?}");
        }
        let kind = format!("RLIMIT_{}", name.to_ascii_uppercase());
        let list = spec["process"]["rlimits"].as_array_mut();
        let entry = json!({"type": kind, "soft": soft, "hard": hard});
        match list {
            Some(l) => {
                l.retain(|r| r["type"] != json!(kind));
                l.push(entry);
            }
            None => spec["process"]["rlimits"] = json!([entry]),
        }
    }
    if let Some(s) = &t.shm_size {
        let bytes =
            parse_bytes(s).map_err(|e| anyhow::anyhow!("invalid --shm-size {s:?}: {e:#}"))?;
        if bytes <= 0 {
            bail!("invalid --shm-size {s:?}: must be positive");
        }
        if let Some(m) = spec["mounts"]
            .as_array_mut()
            .and_then(|ms| ms.iter_mut().find(|m| m["destination"] == "/dev/shm"))
            && let Some(opts) = m["options"].as_array_mut()
        {
            opts.retain(|o| !o.as_str().is_some_and(|o| o.starts_with("size=")));
            opts.push(json!(format!("size={bytes}")));
        }
    }
    for tm in &t.tmpfs {
        let (dst, opts) = tm.split_once(':').unwrap_or((tm, ""));
        if !dst.starts_with('/') {
            bail!("invalid --tmpfs {tm:?}: the target must be an absolute path");
        }
        let mut o = vec![json!("nosuid"), json!("nodev"), json!("noexec")];
        o.extend(opts.split(',').filter(|x| !x.is_empty()).map(|x| json!(x)));
        if let Some(ms) = spec["mounts"].as_array_mut() {
            ms.retain(|m| m["destination"] != json!(dst));
            ms.push(json!({"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": o}));
        }
    }
    for s in &t.sysctls {
        let (k, v) = key_value(s, "--sysctl")?;
        spec["linux"]["sysctl"][k] = json!(v);
    }
    for g in &t.group_add {
        let gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_of(g).ok_or_else(|| {
                anyhow::anyhow!("unable to find group {g}: no matching entries in group file")
            })?,
        };
        let user = &mut spec["process"]["user"];
        match user["additionalGids"].as_array_mut() {
            Some(l) => {
                if !l.contains(&json!(gid)) {
                    l.push(json!(gid));
                }
            }
            None => user["additionalGids"] = json!([gid]),
        }
    }
    if let Some(o) = t.oom_score_adj {
        if !(-1000..=1000).contains(&o) {
            bail!("invalid --oom-score-adj {o}: want -1000..1000");
        }
        spec["process"]["oomScoreAdj"] = json!(o);
    }
    let res = &mut spec["linux"]["resources"];
    if let Some(s) = t.cpu_shares {
        res["cpu"]["shares"] = json!(s);
    }
    if let Some(c) = &t.cpuset_cpus {
        res["cpu"]["cpus"] = json!(c);
    }
    if let Some(m) = &t.cpuset_mems {
        res["cpu"]["mems"] = json!(m);
    }
    if let Some(w) = t.blkio_weight {
        if !(10..=1000).contains(&w) {
            bail!("invalid --blkio-weight {w}: want 10..1000");
        }
        res["blockIO"]["weight"] = json!(w);
    }
    if let Some(s) = &t.memory_reservation {
        res["memory"]["reservation"] = json!(parse_bytes(s)?);
    }
    if let Some(s) = &t.memory_swap {
        let swap = if s == "-1" { -1 } else { parse_bytes(s)? };
        let limit = res["memory"]["limit"].as_i64();
        if limit.is_none() {
            bail!("you should always set the memory limit when using the memory swap limit");
        }
        if swap != -1 && limit.is_some_and(|l| swap < l) {
            bail!("minimum memoryswap limit should be larger than memory limit");
        }
        res["memory"]["swap"] = json!(swap);
    }
    if t.oom_kill_disable {
        res["memory"]["disableOOMKiller"] = json!(true);
    }
    for a in &t.annotations {
        let (k, v) = key_value(a, "--annotation")?;
        spec["annotations"][k] = json!(v);
    }
    for (kind, how) in [
        ("pid", &t.pid),
        ("ipc", &t.ipc),
        ("uts", &t.uts),
        ("cgroup", &t.cgroupns),
    ] {
        if let Some(how) = how {
            share_namespace(spec, kind, how)?;
        }
    }
    // The host's UTS namespace: its hostname is the host's to keep.
    if t.uts.as_deref() == Some("host")
        && let Some(o) = spec.as_object_mut()
    {
        o.remove("hostname");
    }
    // The host's IPC namespace: the host's /dev/shm with it.
    if t.ipc.as_deref() == Some("host")
        && let Some(mounts) = spec["mounts"].as_array_mut()
    {
        for m in mounts.iter_mut().filter(|m| m["destination"] == "/dev/shm") {
            *m = json!({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                        "options": ["rbind", "nosuid", "noexec", "nodev"]});
        }
    }
    Ok(())
}
