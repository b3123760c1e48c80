//! Storage-wide verbs: `system df`, `system check`, `builder prune`.

use std::io::Write;

use anyhow::Result;
use serde_json::json;
use strata::containers::Engine;
use strata::containers::record::Status;
use strata::images::{self, human_size};
use strata_imagestore::Store;

use super::{BuilderCmd, Cmd, SystemCmd};

/// Run a system verb.
pub(crate) fn run(cmd: Cmd, store: &mut Store) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    match cmd {
        Cmd::Builder(BuilderCmd::Prune { .. }) => {
            let (entries, blobs, snaps) = store.cache_prune(None)?;
            writeln!(
                out,
                "Deleted build cache objects: {entries} ({blobs} blobs, {snaps} snapshots)"
            )?;
        }
        Cmd::System(SystemCmd::Df) => {
            let (n, size, blobs, snaps) = store.df()?;
            writeln!(out, "TYPE        TOTAL   SIZE")?;
            writeln!(out, "Images      {n:<7} {}", images::human_size(size))?;
            writeln!(out, "Blobs       -       {}", images::human_size(blobs))?;
            writeln!(out, "Snapshots   {snaps:<7} -")?;
            let vols = strata::volumes::Volumes::new(store.root());
            let names = vols.list()?;
            let bytes: u64 = names.iter().map(|n| vols.size(n)).sum();
            writeln!(
                out,
                "Volumes     {:<7} {}",
                names.len(),
                images::human_size(bytes)
            )?;
        }
        Cmd::System(SystemCmd::Check) => {
            let problems = store.check()?;
            if problems.is_empty() {
                writeln!(out, "store is consistent")?;
            } else {
                for p in &problems {
                    writeln!(out, "{p}")?;
                }
                anyhow::bail!("{} problem(s) found", problems.len());
            }
        }
        _ => unreachable!("not a system verb"),
    }
    Ok(0)
}

/// `version`: the client (and, daemonless, the engine is the client).
pub(crate) fn version(format: Option<&str>) -> Result<i32> {
    let arch = std::env::consts::ARCH;
    let doc = json!({
        "Client": {
            "Platform": {"Name": "Strata"},
            "Version": env!("CARGO_PKG_VERSION"),
            "ApiVersion": "1.41",
            "GitCommit": strata_runtime::COMMIT,
            "Os": std::env::consts::OS,
            "Arch": go_arch(arch),
            "OciVersion": strata_runtime::OCI_VERSION,
        },
    });
    let mut out = std::io::stdout().lock();
    if format.is_some() {
        strata::format::write_one(&mut out, format, &doc)?;
        return Ok(0);
    }
    let c = &doc["Client"];
    let lines = [
        ("Version", c["Version"].clone()),
        ("API version", c["ApiVersion"].clone()),
        ("Git commit", c["GitCommit"].clone()),
        ("OCI runtime spec", c["OciVersion"].clone()),
        (
            "OS/Arch",
            json!(format!(
                "{}/{}",
                c["Os"].as_str().unwrap_or(""),
                c["Arch"].as_str().unwrap_or("")
            )),
        ),
    ];
    writeln!(out, "Client: Strata")?;
    for (k, v) in lines {
        writeln!(
            out,
            " {:<18} {}",
            format!("{k}:"),
            v.as_str().unwrap_or_default()
        )?;
    }
    Ok(0)
}

/// Go's names for architectures (`amd64`, not `x86_64`), as Docker prints.
fn go_arch(a: &str) -> &str {
    match a {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `info` / `system info`: counts, storage, cgroups, kernel, security.
pub(crate) fn info(engine: &Engine, format: Option<&str>) -> Result<i32> {
    let (mut running, mut paused, mut stopped) = (0, 0, 0);
    let containers = engine.store.containers()?;
    for c in &containers {
        match engine.refresh(&c.id).map(|s| s.status) {
            Ok(Status::Running) if engine.is_paused(&c.id) => paused += 1,
            Ok(Status::Running) => running += 1,
            _ => stopped += 1,
        }
    }
    let images = engine.store.images()?.len();
    let uname = nix::sys::utsname::uname().ok();
    let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uname
            .as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let cgroup_version = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into());
    let mem_total = strata::containers::stats::host_memory();
    let rl = strata::rootless::mode();
    let rootless = rl.is_some();
    // Rootless: the id maps of the namespace we run in, as podman's
    // `info` shows them (host.idMappings).
    let id_maps = |f: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(format!("/proc/self/{f}"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let v: Vec<u64> = l
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                (v.len() == 3).then(|| json!({"ContainerID": v[0], "HostID": v[1], "Size": v[2]}))
            })
            .collect()
    };
    let rootless_doc = rl.map(|r| {
        json!({
            "UID": r.uid,
            "GID": r.gid,
            "UIDMap": id_maps("uid_map"),
            "GIDMap": id_maps("gid_map"),
            "PausePID": strata::rootless::userns::pause_pid(r),
            "NetworkBackend": "pasta",
        })
    });
    let doc = json!({
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": "overlay",
        "DriverStatus": [["Backing Filesystem", "overlayfs"]],
        "DockerRootDir": engine.root,
        "RunDir": engine.run_dir,
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "KernelVersion": field(|u| u.release()),
        "OperatingSystem": os,
        "OSType": "linux",
        "Architecture": field(|u| u.machine()),
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem_total,
        "Name": field(|u| u.nodename()),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "DefaultRuntime": "strata-runtime",
        "Runtimes": {"strata-runtime": {"path": "built in"}},
        "LoggingDriver": "json-file",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Rootless": rootless,
        "RootlessInfo": rootless_doc,
        "Daemonless": true,
    });
    let mut out = std::io::stdout().lock();
    if format.is_some() {
        strata::format::write_one(&mut out, format, &doc)?;
        return Ok(0);
    }
    let s = |k: &str| match &doc[k] {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let s2 = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    writeln!(out, "Server:")?;
    writeln!(out, " Containers: {}", s("Containers"))?;
    writeln!(out, "  Running: {}", s("ContainersRunning"))?;
    writeln!(out, "  Paused: {}", s("ContainersPaused"))?;
    writeln!(out, "  Stopped: {}", s("ContainersStopped"))?;
    writeln!(out, " Images: {}", s("Images"))?;
    writeln!(out, " Server Version: {}", s("ServerVersion"))?;
    writeln!(out, " Storage Driver: {}", s("Driver"))?;
    writeln!(out, " Logging Driver: {}", s("LoggingDriver"))?;
    writeln!(out, " Cgroup Driver: {}", s("CgroupDriver"))?;
    writeln!(out, " Cgroup Version: {}", s("CgroupVersion"))?;
    writeln!(out, " Default Runtime: {}", s("DefaultRuntime"))?;
    writeln!(out, " Security Options:\n  seccomp\n   Profile: builtin")?;
    writeln!(out, " Kernel Version: {}", s("KernelVersion"))?;
    writeln!(out, " Operating System: {}", s("OperatingSystem"))?;
    writeln!(out, " OSType: {}", s("OSType"))?;
    writeln!(out, " Architecture: {}", s("Architecture"))?;
    writeln!(out, " CPUs: {}", s("NCPU"))?;
    writeln!(out, " Total Memory: {}", human_size(mem_total))?;
    writeln!(out, " Name: {}", s("Name"))?;
    writeln!(out, " Docker Root Dir: {}", engine.root.display())?;
    writeln!(out, " Rootless: {rootless}")?;
    if let Some(r) = &rootless_doc {
        for (k, label) in [("UIDMap", "UID Map"), ("GIDMap", "GID Map")] {
            let maps: Vec<String> = r[k]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| format!("{}:{}:{}", m["ContainerID"], m["HostID"], m["Size"]))
                .collect();
            writeln!(out, "  {label}: {}", maps.join(" "))?;
        }
        writeln!(
            out,
            "  Storage Driver: overlay ({})",
            match strata_imagestore::mounts::mount_program() {
                Some(p) => p.display().to_string(),
                None => "kernel, in the user namespace".to_string(),
            }
        )?;
        writeln!(out, "  Network Backend: {}", s2(&r["NetworkBackend"]))?;
    }
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Every image no container uses, not only dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask.
    #[arg(short, long)]
    pub force: bool,
    /// Unused volumes too.
    #[arg(long)]
    pub volumes: bool,
    /// until=TIME (only what was made before), label=KEY[=VALUE].
    #[arg(long)]
    pub filter: Vec<String>,
}

/// `system prune`, as Docker's: asks unless `-f` (anything but y/Y on
/// stdin, EOF included, is no).
pub(crate) fn prune(engine: &mut Engine, a: &PruneArgs) -> Result<i32> {
    let filters = strata::filters::Filters::parse(&a.filter, &["until", "label"])?;
    let until = match filters.values("until").last() {
        Some(t) => Some(strata::containers::logs::parse_time(t, chrono::Utc::now())?),
        None => None,
    };
    let before = |created: Option<&str>| {
        until.is_none_or(|u| {
            created
                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                .is_some_and(|c| c < u)
        })
    };
    let mut out = std::io::stdout().lock();
    if !a.force {
        let mut what = vec![
            "all stopped containers",
            "all networks not used by at least one container",
        ];
        what.push(if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        });
        if a.volumes {
            what.push("all volumes not used by at least one container");
        }
        what.push("all build cache");
        writeln!(out, "WARNING! This will remove:")?;
        for w in what {
            writeln!(out, "  - {w}")?;
        }
        write!(out, "\nAre you sure you want to continue? [y/N] ")?;
        out.flush()?;
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y") {
            writeln!(out)?;
            return Ok(0);
        }
    }
    let mut reclaimed = 0u64;
    // Containers: every one not running, made before `until`.
    let mut gone = Vec::new();
    for c in engine.store.containers()? {
        let st = engine.refresh(&c.id)?;
        let labels = engine
            .dir(&c.id)
            .record()
            .map(|r| r.labels)
            .unwrap_or_default();
        if st.status != Status::Running && before(Some(&c.created)) && filters.labels_match(&labels)
        {
            engine.remove(&c.id, false, false)?;
            gone.push(c.id);
        }
    }
    if !gone.is_empty() {
        writeln!(out, "Deleted Containers:")?;
        for id in &gone {
            writeln!(out, "{id}")?;
        }
        writeln!(out)?;
    }
    // Networks no container is on.
    let nets = super::networks::prune_unused(engine, &|n| {
        before(Some(&n.created)) && filters.labels_match(&n.labels)
    })?;
    if !nets.is_empty() {
        writeln!(out, "Deleted Networks:")?;
        for n in &nets {
            writeln!(out, "{n}")?;
        }
        writeln!(out)?;
    }
    // Images: dangling ones, or with -a every one no container uses.
    let mut lines = Vec::new();
    let images = engine.store.images()?;
    for i in images {
        let unused = !engine.store.image_has_containers(&i.id)?;
        if unused && (a.all || i.names.is_empty()) && before(i.created.as_deref()) {
            match engine.store.remove(&i.id.to_string(), true, &|_| false) {
                Ok(said) => {
                    reclaimed += i.size;
                    super::images::removal_events(engine.store.root(), &i.id.to_string(), &said);
                    lines.extend(said);
                }
                Err(e) => eprintln!("Error: {e}"),
            }
        }
    }
    engine.store.gc()?;
    if !lines.is_empty() {
        writeln!(out, "Deleted Images:")?;
        for l in &lines {
            if let Some(n) = l.strip_prefix("Untagged: ") {
                writeln!(out, "untagged: {n}")?;
            } else if let Some(id) = l.strip_prefix("Deleted: ") {
                writeln!(out, "deleted: {id}")?;
            }
        }
        writeln!(out)?;
    }
    if a.volumes {
        let (deleted, freed) = super::volumes::prune_unused(engine, &|m| {
            before(Some(&m.created)) && filters.labels_match(&m.labels)
        })?;
        reclaimed += freed;
        if !deleted.is_empty() {
            writeln!(out, "Deleted Volumes:")?;
            for n in &deleted {
                writeln!(out, "{n}")?;
            }
            writeln!(out)?;
        }
    }
    let (entries, _, _) = engine.store.cache_prune(None)?;
    if entries > 0 {
        writeln!(out, "Deleted build cache objects: {entries}\n")?;
    }
    writeln!(out, "Total reclaimed space: {}", human_size(reclaimed))?;
    Ok(0)
}
