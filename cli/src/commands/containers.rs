//! The container verbs of `strata`: flags (clap) and what each does with
//! the engine in `strata::containers`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use serde_json::json;
use strata::containers::record::Status;
use strata::containers::{CreateOptions, Engine, StartError, spec};
use strata::network;

use super::Cmd;

#[derive(Args, Clone, Debug)]
pub struct CreateArgs {
    /// Print help (-h is --hostname, as in Docker).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Run in the background and print the container id.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// SRC:DST[:ro] (bind mount when SRC is a path, named volume otherwise).
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
    /// type=bind|volume|tmpfs,source=..,target=..[,readonly]
    #[arg(long)]
    pub mount: Vec<String>,
    #[arg(short, long)]
    pub workdir: Option<String>,
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(long)]
    pub entrypoint: Option<String>,
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// none | host | bridge | a network made with `network create`
    #[arg(long, visible_alias = "net", default_value = "bridge")]
    pub network: String,
    /// More names for the container on its (user) network.
    #[arg(long = "network-alias", visible_alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// A fixed IPv4 address on the (user) network.
    #[arg(long)]
    pub ip: Option<String>,
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// NAME:IP in /etc/hosts (IP may be host-gateway).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Nameservers for the container.
    #[arg(long)]
    pub dns: Vec<String>,
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    #[arg(long = "dns-option", visible_alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// [ip:][hostPort:]containerPort[/proto]
    #[arg(short, long = "publish")]
    pub publish: Vec<String>,
    /// Publish every exposed port (the image's and --expose) on a random
    /// host port.
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Expose a port or range: port[-end][/proto].
    #[arg(long)]
    pub expose: Vec<String>,
    #[arg(short, long)]
    pub memory: Option<String>,
    #[arg(long)]
    pub cpus: Option<f64>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// The cgroup the container's cgroup goes under (rootless: a cgroup
    /// v2 subtree delegated to you, for limits).
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// NAME=SOFT[:HARD] (nofile, nproc, core, ...).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Size of /dev/shm (64m).
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// A tmpfs at PATH[:OPTIONS].
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Namespaced kernel parameters (net.ipv4.ip_forward=1).
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// More groups for the process (ids, or names from the image).
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i32>,
    #[command(flatten)]
    pub resources: ResourceFlags,
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// KEY=VALUE annotations for the runtime.
    #[arg(long)]
    pub annotation: Vec<String>,
    /// Write the container's ID to this file (which must not exist).
    #[arg(long)]
    pub cidfile: Option<std::path::PathBuf>,
    #[arg(long = "read-only")]
    pub read_only: bool,
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    #[arg(long)]
    pub privileged: bool,
    /// The key sequence that detaches a foreground `-it` run.
    #[arg(long = "detach-keys", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// A host device in the container: HOST[:CONTAINER][:PERMS]
    #[arg(long = "device")]
    pub device: Vec<String>,
    /// seccomp=FILE|unconfined, no-new-privileges
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    #[arg(short, long = "label")]
    pub label: Vec<String>,
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<u32>,
    /// json-file (the default), k8s-file or none.
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// max-size=SIZE, max-file=N (rotation of the json-file log).
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// PID namespace: host, or container:NAME.
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC namespace: host, or container:NAME (private by default).
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace: host.
    #[arg(long)]
    pub uts: Option<String>,
    /// cgroup namespace: host or private (the default).
    #[arg(long)]
    pub cgroupns: Option<String>,
    /// User namespace: host (the rootful engine's only mode).
    #[arg(long)]
    pub userns: Option<String>,
    /// The image's platform: linux/amd64 (this host's) only.
    #[arg(long)]
    pub platform: Option<String>,
    /// no | on-failure[:N] | always | unless-stopped
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// The healthcheck command (run with /bin/sh -c in the container).
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between probes (30s).
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Time a probe may take (30s).
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Failures in a row that make it unhealthy (3).
    #[arg(long = "health-retries")]
    pub health_retries: Option<u32>,
    /// Time to start in, when failures do not count (0s).
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// No healthcheck, not even the image's.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Run an init (tini) as PID 1 that reaps zombies and forwards signals.
    #[arg(long)]
    pub init: bool,
    #[arg(long = "tls-verify", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
    /// missing | always | never
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// IMAGE [COMMAND] [ARG...]. Options end at the image, as Docker's:
    /// `run busybox ls -l` passes `-l` to ls, though `-l` is --label here.
    #[arg(
        trailing_var_arg = true,
        required = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub image_and_command: Vec<String>,
}

impl CreateArgs {
    pub fn image(&self) -> &str {
        self.image_and_command
            .first()
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn command(&self) -> &[String] {
        self.image_and_command.get(1..).unwrap_or(&[])
    }
}

#[derive(Subcommand, Debug)]
pub enum ContainerCmd {
    /// Remove all stopped containers.
    Prune,
    #[command(alias = "list")]
    Ls(PsArgs),
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Give a container a new name.
    Rename {
        container: String,
        new_name: String,
    },
    Pause(Names),
    Unpause(Names),
    Stats(StatsArgs),
    Update(UpdateArgs),
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Stopped containers too (their figures are zero).
    #[arg(short, long)]
    pub all: bool,
    /// One reading, then exit.
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Full container IDs.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// table, json, or a Go template (`{{.Name}} {{.CPUPerc}}`).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Containers (default: every running one).
    pub containers: Vec<String>,
}

/// The table headers of `stats` for template fields (Docker's names).
const STATS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
    ("Container", "CONTAINER"),
];

/// `stats`: two readings a moment apart per round (CPU % is the CPU time
/// between them); with `--no-stream` one round, else a round a second,
/// redrawn in place on a terminal, until interrupted.
pub fn stats(engine: &Engine, a: &StatsArgs, out: &mut impl Write) -> Result<i32> {
    use strata::containers::stats;
    let format = strata::format::Format::parse(&a.format);
    if let strata::format::Format::Template { text, .. } = &format {
        strata::format::Template::new(text)?;
    }
    let mut targets = Vec::new();
    if a.containers.is_empty() {
        for c in engine.store.containers()? {
            if a.all || engine.refresh(&c.id)?.status == Status::Running {
                targets.push((c.id, c.name));
            }
        }
    } else {
        for n in &a.containers {
            let c = engine.find(n)?;
            targets.push((c.id, c.name));
        }
    }
    let host = stats::host_memory();
    let tty = nix::unistd::isatty(1).unwrap_or(false);
    // Streaming: CPU over each second. One reading (`--no-stream`): the
    // average since the container started, as podman shows it, with no
    // window to wait for.
    let window = std::time::Duration::from_secs(1);
    let mut before: Vec<stats::Sample> = if a.no_stream {
        Vec::new()
    } else {
        targets
            .iter()
            .map(|(id, name)| engine.sample(id, name))
            .collect::<Result<_>>()?
    };
    loop {
        if !a.no_stream {
            std::thread::sleep(window);
        }
        let after: Vec<_> = targets
            .iter()
            .map(|(id, name)| engine.sample(id, name))
            .collect::<Result<_>>()?;
        if a.no_stream {
            before = after.iter().map(stats::Sample::at_start).collect();
        }
        let rows: Vec<serde_json::Value> = before
            .iter()
            .zip(&after)
            .map(|(b, x)| {
                let mut r = stats::row(b, x, host);
                if a.no_trunc {
                    r["ID"] = json!(x.id);
                    r["Container"] = json!(x.id);
                }
                r
            })
            .collect();
        if tty && !a.no_stream {
            // Redraw in place, as docker stats does on a terminal.
            write!(out, "\x1b[2J\x1b[H")?;
        }
        let table = |r: &serde_json::Value| {
            [
                "ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs",
            ]
            .map(|k| r[k].as_str().unwrap_or_default().to_string())
            .to_vec()
        };
        let headers = if format == strata::format::Format::Table {
            &STATS_HEADERS[..8]
        } else {
            STATS_HEADERS
        };
        strata::format::write_rows(out, &format, &rows, headers, &table)?;
        out.flush()?;
        if a.no_stream {
            return Ok(0);
        }
        before = after;
    }
}

/// Resource flags `run`/`create` and `update` share (Docker's names).
#[derive(Args, Debug, Clone, Default)]
pub struct ResourceFlags {
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Block IO weight (10-1000).
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Memory plus swap (-1: unlimited swap); needs --memory.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
}

/// `update`: Docker's resource flags.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Memory limit (512m, 1g).
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Number of CPUs (1.5).
    #[arg(long)]
    pub cpus: Option<f64>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    #[command(flatten)]
    pub resources: ResourceFlags,
    /// Maximum number of pids (-1: unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

impl UpdateArgs {
    /// The runtime's update flags for these (Docker's `--cpus` is a
    /// quota over a 100 ms period).
    fn runtime_args(&self) -> Result<strata_runtime::cli::update::UpdateArgs> {
        let (mut period, mut quota) = (self.cpu_period, self.cpu_quota);
        if let Some(c) = self.cpus {
            if !c.is_finite() || c <= 0.0 || period.is_some() || quota.is_some() {
                bail!(
                    "invalid --cpus {c}: want a positive number, and not with --cpu-period or --cpu-quota"
                );
            }
            period = Some(100_000);
            quota = Some((c * 100_000.0).round() as i64);
        }
        let r = &self.resources;
        let any = self.memory.is_some()
            || r.memory_swap.is_some()
            || r.memory_reservation.is_some()
            || period.is_some()
            || quota.is_some()
            || r.cpu_shares.is_some()
            || r.cpuset_cpus.is_some()
            || r.cpuset_mems.is_some()
            || r.blkio_weight.is_some()
            || self.pids_limit.is_some();
        if !any {
            bail!("you must provide one or more flags when using this command");
        }
        Ok(strata_runtime::cli::update::UpdateArgs {
            memory: self.memory.clone(),
            memory_swap: r.memory_swap.clone(),
            memory_reservation: r.memory_reservation.clone(),
            cpu_period: period,
            cpu_quota: quota,
            cpu_share: r.cpu_shares,
            cpuset_cpus: r.cpuset_cpus.clone(),
            cpuset_mems: r.cpuset_mems.clone(),
            blkio_weight: r.blkio_weight,
            pids_limit: self.pids_limit,
            ..Default::default()
        })
    }
}

/// One or more containers, by name or id.
#[derive(Args, Debug)]
pub struct Names {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    #[arg(short, long)]
    pub all: bool,
    #[arg(short, long)]
    pub quiet: bool,
    /// table, json, or a Go template (`{{.Names}}`, `table {{.ID}}\t{{.Status}}`).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// name=, label=, status=, ancestor=, id=, exited=, network= (repeatable).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Full IDs and commands.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    #[arg(short, long)]
    pub follow: bool,
    #[arg(short = 'n', long)]
    pub tail: Option<String>,
    #[arg(short, long)]
    pub timestamps: bool,
    /// Lines since a time: RFC 3339, Unix seconds, or a duration (10m).
    #[arg(long)]
    pub since: Option<String>,
    /// Lines until a time (same forms).
    #[arg(long)]
    pub until: Option<String>,
    /// Extra attributes of each line (none are recorded: accepted for
    /// Docker scripts).
    #[arg(long)]
    pub details: bool,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach stdin.
    #[arg(long)]
    pub no_stdin: bool,
    /// Pass signals the CLI receives to the container (without a tty).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// The key sequence that detaches from a `-t` container.
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    pub container: String,
}

#[derive(Args, Clone, Debug)]
pub struct ExecArgs {
    #[arg(short, long)]
    pub interactive: bool,
    #[arg(short, long)]
    pub tty: bool,
    #[arg(short, long)]
    pub detach: bool,
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short, long)]
    pub workdir: Option<String>,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// Turn flags into engine options (all validated before anything is made).
pub fn create_options(a: &CreateArgs) -> Result<CreateOptions> {
    strata::containers::attach::parse_detach_keys(&a.detach_keys)?;
    if a.network.starts_with("container:") {
        bail!("--network container:NAME is not supported yet");
    }
    let mut ports = Vec::new();
    for p in &a.publish {
        ports.extend(network::parse_publish(p)?);
    }
    if (!ports.is_empty() || a.publish_all) && ["host", "none"].contains(&a.network.as_str()) {
        bail!("-p and -P need a bridge network, not {}", a.network);
    }
    for d in &a.dns {
        if d.parse::<std::net::IpAddr>().is_err() {
            bail!("{d} is not an ip address");
        }
    }
    let mut expose = Vec::new();
    for e in &a.expose {
        expose.extend(network::parse_expose(e)?);
    }
    let mut env = Vec::new();
    for f in &a.env_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("read env file {f}"))?;
        for l in text.lines().map(str::trim) {
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            env.push(expand_env(l));
        }
    }
    env.extend(a.env.iter().map(|e| expand_env(e)));
    let mut volumes = Vec::new();
    for v in &a.volume {
        let parts: Vec<&str> = v.split(':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [d] => ("", *d, ""),
            [s, d] => (*s, *d, ""),
            [s, d, m] => (*s, *d, *m),
            _ => bail!("invalid volume spec {v:?}: want SRC:DST[:ro]"),
        };
        let ro = match mode {
            "" | "rw" => false,
            "ro" => true,
            _ => bail!("invalid volume mode {mode:?} in {v:?}: want ro or rw"),
        };
        let kind = if src.starts_with('/') {
            "bind"
        } else {
            "volume"
        };
        volumes.push((src.to_string(), dst.to_string(), ro, kind.to_string()));
    }
    for m in &a.mount {
        let (mut ty, mut src, mut dst, mut ro) =
            ("volume".to_string(), String::new(), String::new(), false);
        for kv in m.split(',') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k {
                "type" => ty = v.to_string(),
                "source" | "src" => src = v.to_string(),
                "target" | "destination" | "dst" => dst = v.to_string(),
                "readonly" | "ro" => ro = v.is_empty() || v == "true" || v == "1",
                _ => bail!("invalid --mount option {k:?} in {m:?}"),
            }
        }
        if !["bind", "volume", "tmpfs"].contains(&ty.as_str()) || dst.is_empty() {
            bail!("invalid --mount {m:?}: want type=bind|volume|tmpfs and a target");
        }
        volumes.push((src, dst, ro, ty));
    }
    let mut seccomp = None;
    let mut no_new_privileges = false;
    for o in &a.security_opt {
        match o.split_once(['=', ':']) {
            Some(("seccomp", "unconfined")) => seccomp = Some(None),
            Some(("seccomp", f)) => seccomp = Some(Some(f.to_string())),
            _ if o == "no-new-privileges"
                || o == "no-new-privileges=true"
                || o == "no-new-privileges:true" =>
            {
                no_new_privileges = true
            }
            _ => bail!("invalid --security-opt {o:?}"),
        }
    }
    if let Some(c) = a.cpus
        && (c.is_nan() || c <= 0.0)
    {
        bail!("invalid --cpus {c}: must be positive");
    }
    if a.pids_limit == Some(0) {
        bail!("invalid --pids-limit 0");
    }
    if !["missing", "always", "never"].contains(&a.pull.as_str()) {
        bail!("invalid --pull {:?}: want missing, always or never", a.pull);
    }
    if let Some(u) = a
        .userns
        .as_deref()
        .filter(|u| !u.is_empty() && *u != "host")
    {
        bail!(
            "invalid --userns {u:?}: the rootful engine runs containers in the host's user namespace (host)"
        );
    }
    if let Some(p) = &a.platform {
        strata::build::solve::check_platform(p)?;
    }
    if a.uts.as_deref().is_some_and(|u| u == "host") && a.hostname.is_some() {
        bail!("conflicting options: hostname and the UTS mode");
    }
    let restart = strata::containers::record::RestartPolicy::parse(&a.restart)?;
    if a.rm && !restart.name.is_empty() {
        bail!("Conflicting options: --restart and --rm");
    }
    let dur = |s: &Option<String>| -> Result<Option<std::time::Duration>> {
        s.as_deref()
            .map(strata::containers::health::parse_duration)
            .transpose()
    };
    let health = strata::containers::health::HealthFlags {
        cmd: a.health_cmd.clone(),
        interval: dur(&a.health_interval)?,
        timeout: dur(&a.health_timeout)?,
        start_period: dur(&a.health_start_period)?,
        retries: a.health_retries,
        none: a.no_healthcheck,
    };
    let log = strata::containers::logs::LogConfig::parse(a.log_driver.as_deref(), &a.log_opt)?;
    Ok(CreateOptions {
        restart,
        health,
        log,
        image: a.image().to_string(),
        name: a.name.clone(),
        auto_remove: a.rm,
        network: a.network.clone(),
        aliases: a.network_alias.clone(),
        ip: a.ip.clone(),
        mac: a.mac_address.clone(),
        extra_hosts: a.add_host.clone(),
        dns: strata::containers::record::DnsConfig {
            servers: a.dns.clone(),
            search: a.dns_search.clone(),
            options: a.dns_option.clone(),
        },
        ports,
        publish_all: a.publish_all,
        expose,
        labels: a.label.clone(),
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        volumes,
        tuning: spec::Tuning {
            ulimits: a.ulimit.clone(),
            shm_size: a.shm_size.clone(),
            tmpfs: a.tmpfs.clone(),
            sysctls: a.sysctl.clone(),
            group_add: a.group_add.clone(),
            oom_score_adj: a.oom_score_adj,
            cpu_shares: a.resources.cpu_shares,
            cpuset_cpus: a.resources.cpuset_cpus.clone(),
            cpuset_mems: a.resources.cpuset_mems.clone(),
            blkio_weight: a.resources.blkio_weight,
            memory_swap: a.resources.memory_swap.clone(),
            memory_reservation: a.resources.memory_reservation.clone(),
            oom_kill_disable: a.oom_kill_disable,
            annotations: a.annotation.clone(),
            pid: a.pid.clone(),
            ipc: a.ipc.clone(),
            uts: a.uts.clone(),
            cgroupns: a.cgroupns.clone(),
        },
        spec: spec::Options {
            tty: a.tty,
            interactive: a.interactive,
            env,
            entrypoint: a.entrypoint.clone(),
            args: a.command().to_vec(),
            workdir: a.workdir.clone(),
            user: a.user.clone(),
            hostname: a.hostname.clone(),
            read_only: a.read_only,
            cap_add: a.cap_add.clone(),
            cap_drop: a.cap_drop.clone(),
            privileged: a.privileged,
            seccomp,
            no_new_privileges,
            memory: a.memory.as_deref().map(spec::parse_bytes).transpose()?,
            cpus: a.cpus,
            pids_limit: a.pids_limit,
            cgroup_parent: a.cgroup_parent.clone().filter(|p| !p.is_empty()),
            init: a.init,
            devices: a.device.clone(),
            mounts: Vec::new(),
        },
    })
}

/// `-e KEY` takes KEY's value from our environment, as Docker does.
fn expand_env(e: &str) -> String {
    if e.contains('=') {
        e.to_string()
    } else {
        format!("{e}={}", std::env::var(e).unwrap_or_default())
    }
}

/// Exit code of a failed start (125, or 126/127 for the command).
pub fn start_error_code(e: &anyhow::Error) -> i32 {
    e.downcast_ref::<StartError>()
        .map(|s| s.code)
        .unwrap_or(125)
}

/// A foreground CLI's terminal and signals, set up before the container
/// starts: raw mode for `-t`, and the forwarded signals blocked so that
/// none that arrives while the monitor starts the container is lost (a
/// SIGWINCH's default action is to be discarded); they wait, pending,
/// for `attach_wait`.
pub struct Foreground {
    raw: Option<RawTerminal>,
    signals: nix::sys::signal::SigSet,
}

impl Foreground {
    pub fn prepare(tty: bool) -> Result<Foreground> {
        use nix::sys::signal::{SigSet, Signal};
        let mut signals = SigSet::empty();
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
            Signal::SIGWINCH,
        ] {
            signals.add(s);
        }
        signals.thread_block().context("block signals")?;
        let raw = if tty { RawTerminal::enable() } else { None };
        Ok(Foreground { raw, signals })
    }
}

/// Foreground: wait for the monitor (which relays the container's output
/// to us), forwarding our signals to the container; the exit code.
pub fn attach_wait(
    engine: &Engine,
    id: &str,
    mut monitor: strata::containers::Monitor,
    fg: Foreground,
) -> Result<i32> {
    use nix::sys::signal::Signal;
    let Foreground { raw, signals } = fg;
    let pid = engine.dir(id).state()?.pid;
    let monitor_pid = monitor.child.id() as i32;
    std::thread::spawn(move || {
        while let Ok(sig) = signals.wait() {
            // Window changes go to the monitor, which owns the pty.
            let target = if sig == Signal::SIGWINCH {
                monitor_pid
            } else {
                pid
            };
            let _ = strata_runtime::signals::send(target, sig as i32);
        }
    });
    match monitor.wait_event() {
        strata::containers::MonitorEvent::Detached => {
            // The container runs on; the monitor no longer holds our terminal.
            drop(raw);
            return Ok(0);
        }
        strata::containers::MonitorEvent::Exited(code) => {
            // Its restart policy brings it back; we return as Docker's
            // CLI does, with this run's code.
            drop(raw);
            return Ok(code);
        }
        strata::containers::MonitorEvent::Gone => {}
    }
    let status = monitor
        .child
        .wait()
        .context("wait for the container monitor")?;
    drop(raw);
    let st = engine.dir(id).state().ok();
    Ok(match st {
        Some(s) if s.status == Status::Exited => s.exit_code,
        _ => status.code().unwrap_or(125),
    })
}

/// Our terminal in raw mode while attached to a `-t` container.
struct RawTerminal(nix::sys::termios::Termios);

impl RawTerminal {
    fn enable() -> Option<RawTerminal> {
        use nix::sys::termios::*;
        let stdin = std::io::stdin();
        let old = tcgetattr(&stdin).ok()?;
        let mut raw = old.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal(old))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn ago(t: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(t) else {
        return String::new();
    };
    let s = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match s {
        0..=1 => "Less than a second".into(),
        2..=59 => format!("{s} seconds"),
        60..=3599 => format!("{} minutes", s / 60),
        3600..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86400),
    }
}

fn ports_text(ports: &[strata::containers::record::Port]) -> String {
    ports
        .iter()
        .map(|p| {
            format!(
                "{}:{}->{}/{}",
                p.host_addr(),
                p.host_port,
                p.container_port,
                p.protocol
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `--filter` keys `ps` takes (Docker's most used).
const PS_FILTERS: &[&str] = &[
    "name", "label", "status", "ancestor", "id", "exited", "network", "health",
];

/// The table headers of `ps` for template fields (Docker's names).
const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("RunningFor", "CREATED"),
    ("Status", "STATUS"),
    ("Ports", "PORTS"),
    ("Names", "NAMES"),
    ("CreatedAt", "CREATED AT"),
    ("State", "STATE"),
    ("Labels", "LABELS"),
    ("Networks", "NETWORKS"),
    ("Mounts", "MOUNTS"),
    ("Size", "SIZE"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

/// `ps`: Docker's table, `--format json`, or a Go template over Docker's
/// fields; `--filter` as Docker's.
pub fn ps(engine: &Engine, a: &PsArgs, out: &mut impl Write) -> Result<()> {
    let filters = strata::filters::Filters::parse(&a.filter, PS_FILTERS)?;
    let format = strata::format::Format::parse(&a.format);
    if let strata::format::Format::Template { text, .. } = &format {
        // A bad template is refused before anything is listed.
        strata::format::Template::new(text)?;
    }
    // A status or exit-code filter looks at stopped containers too.
    let all = a.all || filters.has("status") || filters.has("exited");
    let mut docs = Vec::new();
    let mut rows = Vec::new();
    for c in engine.store.containers()? {
        let dir = engine.dir(&c.id);
        let Ok(rec) = dir.record_view() else {
            continue;
        };
        let st = engine.refresh(&c.id)?;
        if !all && !matches!(st.status, Status::Running | Status::Restarting) {
            continue;
        }
        let paused = st.status == Status::Running && engine.is_paused(&c.id);
        let health = st.health.as_ref().map(|h| h.status.as_str());
        let state = if paused {
            "paused".to_string()
        } else {
            format!("{:?}", st.status).to_lowercase()
        };
        let keep = filters.any("name", |v| name_matches(v, &c.name))
            && filters.any("id", |v| c.id.starts_with(v))
            && filters.any("status", |v| v == state)
            && filters.any("health", |v| v == health.unwrap_or("none"))
            && filters.any("exited", |v| {
                st.status == Status::Exited && v.parse::<i32>().ok() == Some(st.exit_code)
            })
            && filters.any("ancestor", |v| {
                v == rec.image_name
                    || rec
                        .image
                        .trim_start_matches("sha256:")
                        .starts_with(v.trim_start_matches("sha256:"))
                    || engine
                        .store
                        .resolve(v)
                        .is_ok_and(|id| id.to_string() == rec.image)
            })
            && filters.any("network", |v| {
                v == rec.network || rec.endpoints().iter().any(|e| e.network == v)
            })
            && filters.labels_match(&rec.labels);
        if !keep {
            continue;
        }
        let status = match st.status {
            Status::Created => "Created".to_string(),
            Status::Running => format!(
                "Up {}{}{}",
                ago(st.started_at.as_deref().unwrap_or(&c.created)),
                if paused { " (Paused)" } else { "" },
                match health {
                    Some("starting") => " (health: starting)",
                    Some("healthy") => " (healthy)",
                    Some("unhealthy") => " (unhealthy)",
                    _ => "",
                }
            ),
            Status::Restarting => format!(
                "Restarting ({}) {} ago",
                st.exit_code,
                ago(st.finished_at.as_deref().unwrap_or(&c.created))
            ),
            Status::Exited => format!(
                "Exited ({}) {} ago",
                st.exit_code,
                ago(st.finished_at.as_deref().unwrap_or(&c.created))
            ),
        };
        let created = chrono::DateTime::parse_from_rfc3339(&c.created).ok();
        let mut command = format!("\"{}\"", rec.command.join(" "));
        if !a.no_trunc && command.chars().count() > 22 {
            let cut: String = command.chars().take(19).collect();
            command = format!("{cut}…\"");
        }
        docs.push(json!({
            "Id": c.id, "Names": [c.name], "Image": rec.image_name, "ImageID": rec.image,
            "Command": rec.command, "State": state,
            "Status": status, "ExitCode": st.exit_code, "Pid": st.pid,
            "Ports": rec.ports.iter().map(|p| json!({"host_ip": p.host_ip, "host_port": p.host_port,
                "container_port": p.container_port, "protocol": p.protocol})).collect::<Vec<_>>(),
            "Created": created.map(|t| t.timestamp()).unwrap_or(0),
            "CreatedAt": c.created, "Labels": rec.labels,
        }));
        rows.push(json!({
            "ID": if a.no_trunc { c.id.as_str() } else { short(&c.id) },
            "Image": rec.image_name,
            "Command": command,
            "CreatedAt": created.map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()).unwrap_or_default(),
            "RunningFor": format!("{} ago", ago(&c.created)),
            "Ports": ports_text(&rec.ports),
            "State": state,
            "Status": status,
            "Names": c.name,
            "Labels": rec.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            "Networks": network_names(&rec),
            "Mounts": "",
            "Size": "0B",
            "LocalVolumes": "0",
        }));
    }
    docs.reverse(); // newest first
    rows.reverse();
    if a.quiet {
        for r in &rows {
            writeln!(out, "{}", r["ID"].as_str().unwrap_or_default())?;
        }
        return Ok(());
    }
    if format == strata::format::Format::Json {
        writeln!(out, "{}", serde_json::to_string_pretty(&docs)?)?;
        return Ok(());
    }
    let table = |r: &serde_json::Value| {
        [
            "ID",
            "Image",
            "Command",
            "RunningFor",
            "Status",
            "Ports",
            "Names",
        ]
        .map(|k| r[k].as_str().unwrap_or_default().to_string())
        .to_vec()
    };
    let headers = if format == strata::format::Format::Table {
        &PS_HEADERS[..7]
    } else {
        PS_HEADERS
    };
    strata::format::write_rows(out, &format, &rows, headers, &table)?;
    Ok(())
}

/// Docker's `name=` filter: a regular expression searched in the name
/// (so a plain word is a substring match).
fn name_matches(pattern: &str, name: &str) -> bool {
    match regex::Regex::new(pattern) {
        Ok(re) => re.is_match(name),
        Err(_) => name.contains(pattern),
    }
}

/// `wait --condition` (podman's): `stopped`/`exited` (the default) prints
/// the exit code; `running`, `paused` and `removed` wait for that state
/// and print -1, as podman does.
fn wait_for(
    engine: &Engine,
    what: &str,
    condition: &str,
    every: std::time::Duration,
) -> Result<String> {
    let id = engine.find(what)?.id;
    match condition {
        "stopped" | "exited" => return Ok(engine.wait(&id, None)?.unwrap_or(0).to_string()),
        "running" | "paused" | "removed" => {}
        other => {
            bail!("invalid condition {other:?}: want stopped, exited, running, paused or removed")
        }
    }
    loop {
        let reached = match condition {
            "removed" => engine.find(&id).is_err(),
            _ => {
                let st = engine.refresh(&id)?;
                let running = st.status == Status::Running;
                let paused = running && engine.is_paused(&id);
                if condition == "paused" {
                    paused
                } else {
                    running && !paused
                }
            }
        };
        if reached {
            return Ok("-1".into());
        }
        std::thread::sleep(every);
    }
}

/// `inspect`: containers, then images, by name or id (`kind` narrows it
/// to one). As Docker: with `--format` one rendering per object, else a
/// JSON array of what was found; an object not found is an error on
/// stderr and exit 1, after the others are shown.
fn inspect(
    engine: &Engine,
    names: &[String],
    format: Option<&str>,
    kind: Option<&str>,
    out: &mut impl Write,
) -> Result<i32> {
    let template = match format.map(strata::format::Format::parse) {
        Some(strata::format::Format::Template { text, .. }) => {
            Some(strata::format::Template::new(&text)?)
        }
        _ => None,
    };
    if let Some(k) = kind {
        anyhow::ensure!(
            k == "container" || k == "image",
            "invalid --type {k:?}: want container or image"
        );
    }
    let mut found = Vec::new();
    let mut missing = 0;
    for n in names {
        let container = (kind != Some("image"))
            .then(|| inspect_container(engine, n).ok())
            .flatten();
        let doc = match container {
            Some(v) => Some(v),
            None if kind != Some("container") => engine
                .store
                .resolve(n)
                .ok()
                .and_then(|id| engine.store.inspect(&id).ok()),
            None => None,
        };
        match doc {
            Some(d) => found.push(d),
            None => {
                eprintln!("Error: No such object: {n}");
                missing += 1;
            }
        }
    }
    match &template {
        Some(t) => {
            for d in &found {
                writeln!(out, "{}", t.render(d)?)?;
            }
        }
        None => writeln!(out, "{}", serde_json::to_string_pretty(&found)?)?,
    }
    Ok(if missing > 0 { 1 } else { 0 })
}

/// `inspect` of one container, Docker's main fields.
pub fn inspect_container(engine: &Engine, what: &str) -> Result<serde_json::Value> {
    let c = engine.find(what)?;
    let rec = engine.dir(&c.id).record_view()?;
    let st = engine.refresh(&c.id)?;
    let paused = st.status == Status::Running && engine.is_paused(&c.id);
    Ok(json!({
        "Id": c.id,
        "Name": c.name,
        "Created": c.created,
        "Path": rec.command.first(),
        "Args": rec.command.get(1..).unwrap_or(&[]),
        "State": {
            "Status": if paused { "paused".to_string() } else { format!("{:?}", st.status).to_lowercase() },
            "Running": st.status == Status::Running,
            "Paused": paused,
            "Restarting": st.status == Status::Restarting,
            "Pid": st.pid,
            "ExitCode": st.exit_code,
            "StartedAt": st.started_at,
            "FinishedAt": st.finished_at,
            "Error": st.error.clone().unwrap_or_default(),
            "Health": st.health,
        },
        "RestartCount": st.restart_count,
        "Image": rec.image,
        "ImageName": rec.image_name,
        "LogPath": engine.dir(&c.id).log(),
        "HostConfig": {
            "NetworkMode": if rec.network == "bridge" { "default" } else { rec.network.as_str() },
            "RestartPolicy": {"Name": if rec.restart.name.is_empty() { "no" } else { rec.restart.name.as_str() }, "MaximumRetryCount": rec.restart.max_retries},
            "AutoRemove": rec.auto_remove,
            "ExtraHosts": rec.extra_hosts,
            "Dns": rec.dns.servers,
            "DnsSearch": rec.dns.search,
            "DnsOptions": rec.dns.options,
            "PortBindings": ports_text(&rec.ports),
            "CgroupParent": rec.spec.linux.cgroup_parent(),
        },
        "Config": {
            "Hostname": rec.spec.hostname,
            "Env": rec.spec.process.env,
            "Cmd": rec.command,
            "WorkingDir": rec.spec.process.cwd,
            "User": rec.spec.process.user,
            "Tty": rec.tty,
            "OpenStdin": rec.interactive,
            "Labels": rec.labels,
            "StopSignal": rec.stop_signal,
            "StopTimeout": rec.stop_timeout,
            "Healthcheck": rec.healthcheck,
            "ExposedPorts": rec.exposed.iter().map(|p| (p.clone(), json!({}))).collect::<serde_json::Map<_, _>>(),
        },
        "NetworkSettings": network_settings(&rec, &st),
        "Mounts": rec.spec.mounts.iter().filter(|x| x["type"] == "bind").collect::<Vec<_>>(),
        "GraphDriver": {"Name": "overlay", "Data": {"MergedDir": engine.dir(&c.id).rootfs()}},
    }))
}

/// `healthcheck run`: podman's verb; prints `healthy`/`unhealthy` and
/// exits 0/1 (125 for a container without a healthcheck or not running).
pub fn healthcheck_run(engine: &Engine, what: &str) -> Result<i32> {
    let c = engine.find(what)?;
    let st = engine.refresh(&c.id)?;
    let dir = engine.dir(&c.id);
    let rec = dir.record()?;
    if rec.healthcheck.is_none() {
        bail!("container {} has no defined healthcheck", c.name);
    }
    if st.status != Status::Running {
        bail!("container {} is not running", c.name);
    }
    let before = st.health.map(|h| h.status);
    let (code, _) = strata::containers::health::probe_now(
        &dir,
        &rec,
        engine.health_command(&c.id),
        st.started_at.as_deref(),
    )?;
    let status = dir.state()?.health.map(|h| h.status).unwrap_or_default();
    if before.as_deref() != Some(status.as_str()) {
        engine.event(&format!("health_status: {status}"), &c.id, &[]);
    }
    println!("{status}");
    Ok(if code == 0 { 0 } else { 1 })
}

/// The networks a container is on, as `ps` shows them.
fn network_names<S>(rec: &strata::containers::record::Record<S>) -> String {
    let eps = rec.endpoints();
    if eps.is_empty() {
        return rec.network.clone();
    }
    eps.iter()
        .map(|e| e.network.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Docker's `NetworkSettings`: the default bridge's address at the top,
/// and one entry per network (its address while the container runs).
fn network_settings<S>(
    rec: &strata::containers::record::Record<S>,
    st: &strata::containers::record::State,
) -> serde_json::Value {
    let mut nets = serde_json::Map::new();
    let mode = [rec.network.as_str()];
    let eps = rec.endpoints();
    let names: Vec<&str> = if eps.is_empty() {
        mode.to_vec()
    } else {
        eps.iter().map(|e| e.network.as_str()).collect()
    };
    for name in names {
        let ep = eps.iter().find(|e| e.network == name);
        let w = st.networks.iter().find(|w| w.network == name);
        nets.insert(
            name.to_string(),
            json!({
                "Aliases": ep.map(|e| e.aliases.clone()).unwrap_or_default(),
                "NetworkID": w.map(|w| w.network_id.as_str()).unwrap_or_default(),
                "EndpointID": w.map(|_| rec.id.as_str()).unwrap_or_default(),
                "Gateway": w.map(|w| w.gateway.as_str()).unwrap_or_default(),
                "IPAddress": w.map(|w| w.ip.as_str()).unwrap_or_default(),
                "IPPrefixLen": w.map(|w| w.prefix).unwrap_or_default(),
                "MacAddress": w.map(|w| w.mac.as_str()).unwrap_or_default(),
            }),
        );
    }
    let bridge = st.networks.iter().find(|w| w.network == "bridge");
    json!({
        "IPAddress": bridge.map(|w| w.ip.as_str()).or(if st.networks.is_empty() { st.ip.as_deref() } else { None }).unwrap_or_default(),
        "IPPrefixLen": bridge.map(|w| w.prefix).unwrap_or_default(),
        "Gateway": bridge.map(|w| w.gateway.as_str()).unwrap_or_default(),
        "MacAddress": bridge.map(|w| w.mac.as_str()).unwrap_or_default(),
        "Ports": rec.ports,
        "Networks": nets,
    })
}

/// `exec`: a process in a running container through the runtime library.
pub fn exec(engine: &Engine, a: &ExecArgs) -> Result<i32> {
    let c = engine.find(&a.container)?;
    let st = engine.refresh(&c.id)?;
    if st.status != Status::Running {
        bail!("container {} is not running", c.name);
    }
    if engine.is_paused(&c.id) {
        bail!(
            "container {} is paused, unpause the container before exec",
            c.name
        );
    }
    let rec = engine.dir(&c.id).record()?;
    let mut process = rec.spec["process"].clone();
    process["args"] = json!(a.command);
    process["terminal"] = json!(a.tty);
    if let Some(w) = &a.workdir {
        process["cwd"] = json!(w);
    }
    if let Some(u) = &a.user {
        let user = strata::containers::users::resolve(&engine.dir(&c.id).rootfs(), u)?;
        process["user"] =
            json!({"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids});
    }
    if let Some(env) = process["env"].as_array_mut() {
        for e in &a.env {
            let e = expand_env(e);
            let key = e.split('=').next().unwrap_or("").to_string();
            env.retain(|x| x.as_str().and_then(|s| s.split('=').next()) != Some(key.as_str()));
            env.push(json!(e));
        }
    }
    let process = serde_json::from_value(process).context("exec process")?;
    if !a.interactive && !a.tty {
        // No stdin for the process, as Docker without -i.
        if let Ok(null) = std::fs::File::open("/dev/null") {
            let _ = nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0);
        }
    }
    let opts = strata_runtime::container::exec::ExecOptions {
        id: c.id.clone(),
        process,
        console_socket: None,
        pid_file: None,
        detach: a.detach,
        preserve_fds: 0,
        ignore_paused: false,
        sub_cgroups: Vec::new(),
    };
    match strata_runtime::container::exec::exec(&engine.runtime_root(), &opts) {
        Ok(code) => Ok(code),
        Err(e) => {
            let msg = e.to_string();
            let code = strata::containers::monitor::failure_code(&msg);
            eprintln!("Error: {msg}");
            Ok(code)
        }
    }
}

/// `top`: the container's processes (pid, user, command), ps style.
pub fn top(engine: &Engine, what: &str, out: &mut impl Write) -> Result<()> {
    let c = engine.find(what)?;
    let st = engine.refresh(&c.id)?;
    if st.status != Status::Running {
        bail!("container {} is not running", c.name);
    }
    let pids = pid_namespace_members(st.pid).unwrap_or_else(|| vec![st.pid]);
    writeln!(out, "{:<10}{:<10}{:<10}CMD", "UID", "PID", "PPID")?;
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |k: &str| {
            status
                .lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("?")
                .to_string()
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                b.split(|x| *x == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        writeln!(
            out,
            "{:<10}{:<10}{:<10}{}",
            field("Uid:"),
            pid,
            field("PPid:"),
            cmd
        )?;
    }
    Ok(())
}

/// Every process in the init's pid namespace, from the host's /proc.
fn pid_namespace_members(init: i32) -> Option<Vec<i32>> {
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).ok()?;
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|p: &i32| {
            std::fs::read_link(format!("/proc/{p}/ns/pid"))
                .ok()
                .as_ref()
                == Some(&ns)
        })
        .collect();
    pids.sort();
    Some(pids)
}

/// `strata attach`: the container's output from now on, our input to its
/// stdin (when it was made with `-i`), signals passed on; its exit code,
/// or 0 after the detach keys.
pub fn attach(engine: &Engine, a: &AttachArgs) -> Result<i32> {
    use std::io::Read;
    use std::sync::{Arc, Mutex};
    use strata::containers::attach as proto;
    let keys = proto::parse_detach_keys(&a.detach_keys)?;
    let c = engine.find(&a.container)?;
    let st = engine.refresh(&c.id)?;
    if st.status != Status::Running {
        bail!(
            "you cannot attach to a stopped container {}, start it first",
            c.name
        );
    }
    let dir = engine.dir(&c.id);
    let rec = dir.record()?;
    let stream = proto::connect(dir.path())?;
    let writer = Arc::new(Mutex::new(stream.try_clone().context("attach socket")?));
    let fg = Foreground::prepare(rec.tty)?;
    let Foreground { raw, signals } = fg;
    if rec.tty
        && let Some((rows, cols)) = proto::terminal_size(&[0, 1])
        && let Ok(mut w) = writer.lock()
    {
        let _ = proto::write_frame(&mut *w, proto::RESIZE, &proto::resize_payload(rows, cols));
    }
    let detached = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ended_by = Arc::new(std::sync::atomic::AtomicI32::new(0));
    {
        let writer = writer.clone();
        let ended_by = ended_by.clone();
        let (pid, tty, proxy) = (st.pid, rec.tty, a.sig_proxy);
        let end = stream.try_clone().context("attach socket")?;
        std::thread::spawn(move || {
            use nix::sys::signal::Signal;
            while let Ok(sig) = signals.wait() {
                if sig == Signal::SIGWINCH {
                    if let (true, Some((r, c)), Ok(mut w)) =
                        (tty, proto::terminal_size(&[0, 1]), writer.lock())
                    {
                        let _ = proto::write_frame(
                            &mut *w,
                            proto::RESIZE,
                            &proto::resize_payload(r, c),
                        );
                    }
                } else if proxy && !tty {
                    let _ = strata_runtime::signals::send(pid, sig as i32);
                } else {
                    // Not passed on: the signal ends the attach itself.
                    ended_by.store(sig as i32, std::sync::atomic::Ordering::SeqCst);
                    let _ = end.shutdown(std::net::Shutdown::Both);
                }
            }
        });
    }
    if rec.interactive && !a.no_stdin {
        let writer = writer.clone();
        let detached = detached.clone();
        let end = stream.try_clone().context("attach socket")?;
        let mut matcher = proto::DetachMatcher::new(if rec.tty { keys } else { Vec::new() });
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 32 << 10];
            let mut stdin = std::io::stdin();
            // At the end of our input the container's stdin stays open,
            // as Docker leaves it for the next attach.
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let (data, detach) = matcher.feed(&buf[..n]);
                if !data.is_empty() {
                    let Ok(mut w) = writer.lock() else { break };
                    if proto::write_frame(&mut *w, proto::STDIN, &data).is_err() {
                        break;
                    }
                }
                if detach {
                    detached.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = end.shutdown(std::net::Shutdown::Both);
                    break;
                }
            }
        });
    }
    let mut reader = std::io::BufReader::new(stream);
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    while let Ok(Some((kind, data))) = proto::read_frame(&mut reader) {
        let w: &mut dyn Write = if kind == proto::STDERR {
            &mut err
        } else {
            &mut out
        };
        if w.write_all(&data).and_then(|_| w.flush()).is_err() {
            break;
        }
    }
    drop(raw);
    if detached.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(0);
    }
    // A signal that ended the attach leaves the container running; else
    // the monitor closed us because the container is done.
    match ended_by.load(std::sync::atomic::Ordering::SeqCst) {
        0 => Ok(engine.wait(&c.id, None)?.unwrap_or(0)),
        sig => Ok(128 + sig),
    }
}

/// Create a container, pulling its image first as `--pull` says.
fn create(
    engine: &mut strata::containers::Engine,
    a: &CreateArgs,
    config: &strata::config::Config,
) -> Result<String> {
    let mut opts = create_options(a)?;
    if opts.spec.cgroup_parent.is_none() {
        opts.spec.cgroup_parent = config.cgroup_parent.clone().filter(|p| !p.is_empty());
    }
    if let Some(f) = &a.cidfile
        && f.exists()
    {
        bail!(
            "Container ID file found, make sure the other container isn't running or delete {}",
            f.display()
        );
    }
    let image = a.image();
    let present = engine.store.resolve(image).is_ok();
    match a.pull.as_str() {
        "always" => super::registry::pull_quietly(&mut engine.store, config, image, a.tls_verify)?,
        "missing" if !present => {
            super::registry::pull_quietly(&mut engine.store, config, image, a.tls_verify)
                .with_context(|| format!("{image}: image not known locally, and the pull failed"))?
        }
        "never" if !present => anyhow::bail!("{image}: image not known locally (--pull never)"),
        _ => {}
    }
    let id = engine.create(&opts)?;
    if let Some(f) = &a.cidfile {
        // The file appears whole, or not at all (and then no container).
        let tmp = f.with_extension("cidfile.tmp");
        let written = std::fs::write(&tmp, &id).and_then(|_| std::fs::rename(&tmp, f));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            let _ = engine.remove(&id, true, true);
            return Err(e).with_context(|| format!("write the container ID file {}", f.display()));
        }
    }
    Ok(id)
}

pub(crate) fn run(
    cmd: Cmd,
    mut engine: strata::containers::Engine,
    config: &strata::config::Config,
) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    // Several containers: go on after a failure, exit 1 as Docker does.
    let each = |names: &[String],
                f: &mut dyn FnMut(&str) -> Result<String>,
                out: &mut dyn Write|
     -> Result<i32> {
        let mut failed = 0;
        for n in names {
            match f(n) {
                Ok(s) => writeln!(out, "{s}")?,
                Err(e) => {
                    eprintln!("Error: {e:#}");
                    failed += 1;
                }
            }
        }
        if failed > 0 && failed == names.len() && names.len() == 1 {
            return Ok(125);
        }
        Ok(if failed > 0 { 1 } else { 0 })
    };
    match cmd {
        Cmd::ContainerMonitor {
            id,
            attach,
            detach_keys,
        } => {
            drop(out);
            Ok(strata::containers::monitor::main(
                &mut engine,
                &id,
                attach,
                &detach_keys,
            ))
        }
        Cmd::Create(a) => {
            let id = create(&mut engine, &a, config)?;
            writeln!(out, "{id}")?;
            Ok(0)
        }
        Cmd::Run(a) => {
            let id = create(&mut engine, &a, config)?;
            let fg = match (!a.detach).then(|| Foreground::prepare(a.tty)) {
                Some(Err(e)) => {
                    let _ = engine.remove(&id, true, true);
                    return Err(e);
                }
                Some(Ok(fg)) => Some(fg),
                None => None,
            };
            let keys = if a.tty && a.interactive {
                a.detach_keys.as_str()
            } else {
                ""
            };
            let monitor = match engine.start_with(&id, !a.detach, keys) {
                Ok(m) => m,
                Err(e) => {
                    // As Docker: a run whose command cannot start leaves
                    // the container created, with the error and 125/126/127
                    // in its state, unless --rm asked for it to go.
                    if a.rm {
                        let _ = engine.remove(&id, true, true);
                    }
                    return Err(e);
                }
            };
            if a.detach {
                writeln!(out, "{id}")?;
                return Ok(0);
            }
            drop(out);
            match fg {
                Some(fg) => attach_wait(&engine, &id, monitor, fg),
                None => Ok(0),
            }
        }
        Cmd::Start {
            attach,
            detach_keys,
            containers,
        } => {
            if attach {
                let [c] = containers.as_slice() else {
                    anyhow::bail!("start --attach takes one container");
                };
                let id = engine.find(c)?.id;
                let rec = engine.dir(&id).record()?;
                let keys = if rec.tty && rec.interactive {
                    detach_keys.as_str()
                } else {
                    ""
                };
                strata::containers::attach::parse_detach_keys(keys)?;
                let fg = Foreground::prepare(rec.tty)?;
                let m = engine.start_with(&id, true, keys)?;
                drop(out);
                return attach_wait(&engine, &id, m, fg);
            }
            each(
                &containers,
                &mut |c| {
                    engine.start(c, false)?;
                    Ok(c.to_string())
                },
                &mut out,
            )
        }
        Cmd::Stop { time, containers } => each(
            &containers,
            &mut |c| {
                engine.stop(c, time)?;
                Ok(c.to_string())
            },
            &mut out,
        ),
        Cmd::Restart { time, containers } => each(
            &containers,
            &mut |c| {
                engine.stop(c, time)?;
                engine.start(c, false)?;
                Ok(c.to_string())
            },
            &mut out,
        ),
        Cmd::Pause(n) | Cmd::Container(ContainerCmd::Pause(n)) => each(
            &n.containers,
            &mut |c| engine.set_paused(c, true).map(|_| c.to_string()),
            &mut out,
        ),
        Cmd::Unpause(n) | Cmd::Container(ContainerCmd::Unpause(n)) => each(
            &n.containers,
            &mut |c| engine.set_paused(c, false).map(|_| c.to_string()),
            &mut out,
        ),
        Cmd::Kill { signal, containers } => each(
            &containers,
            &mut |c| {
                engine.kill(c, &signal)?;
                Ok(c.to_string())
            },
            &mut out,
        ),
        Cmd::Rm {
            force,
            volumes,
            containers,
        } => each(
            &containers,
            &mut |c| {
                engine.remove(c, force, volumes)?;
                Ok(c.to_string())
            },
            &mut out,
        ),
        Cmd::Wait {
            containers,
            condition,
            interval,
        } => {
            let every = std::time::Duration::from_millis(interval);
            each(
                &containers,
                &mut |c| wait_for(&engine, c, &condition, every),
                &mut out,
            )
        }
        Cmd::Stats(a) | Cmd::Container(ContainerCmd::Stats(a)) => stats(&engine, &a, &mut out),
        Cmd::Update(a) | Cmd::Container(ContainerCmd::Update(a)) => {
            let args = a.runtime_args()?;
            each(
                &a.containers,
                &mut |c| engine.update(c, &args).map(|_| c.to_string()),
                &mut out,
            )
        }
        Cmd::Ps(a) | Cmd::Container(ContainerCmd::Ls(a)) => {
            ps(&engine, &a, &mut out)?;
            Ok(0)
        }
        Cmd::Logs(a) => {
            let c = engine.find(&a.container)?;
            let tail = match a.tail.as_deref() {
                None | Some("all") => None,
                Some(n) => Some(
                    n.parse::<usize>()
                        .map_err(|_| anyhow::anyhow!("invalid --tail {n:?}"))?,
                ),
            };
            let now = chrono::Utc::now();
            let at = |t: &Option<String>| {
                t.as_deref()
                    .map(|t| strata::containers::logs::parse_time(t, now))
                    .transpose()
            };
            let window = strata::containers::logs::Window {
                since: at(&a.since)?,
                until: at(&a.until)?,
            };
            drop(out);
            let dir = engine.dir(&c.id);
            if dir.record().is_ok_and(|r| r.log.driver == "none") {
                bail!("configured logging driver does not support reading");
            }
            let done = || {
                engine
                    .refresh(&c.id)
                    .map(|s| s.status != strata::containers::record::Status::Running)
                    .unwrap_or(true)
            };
            strata::containers::logs::print(
                &dir.log(),
                tail,
                a.timestamps,
                a.follow,
                window,
                &done,
            )?;
            Ok(0)
        }
        Cmd::Attach(a) => {
            drop(out);
            attach(&engine, &a)
        }
        Cmd::Exec(a) => {
            drop(out);
            exec(&engine, &a)
        }
        Cmd::Inspect {
            names,
            format,
            kind,
        } => inspect(
            &engine,
            &names,
            format.as_deref(),
            kind.as_deref(),
            &mut out,
        ),
        Cmd::Container(ContainerCmd::Inspect { containers, format }) => inspect(
            &engine,
            &containers,
            format.as_deref(),
            Some("container"),
            &mut out,
        ),
        Cmd::Commit(a) => {
            let id = super::images::commit(&mut engine, &a)?;
            writeln!(out, "{id}")?;
            Ok(0)
        }
        Cmd::Diff { container } => {
            for l in engine.diff(&container)? {
                writeln!(out, "{l}")?;
            }
            Ok(0)
        }
        Cmd::Export { output, container } => {
            let dest = output.unwrap_or_else(|| PathBuf::from("-"));
            if dest == std::path::Path::new("-") && nix::unistd::isatty(1).unwrap_or(false) {
                anyhow::bail!(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                );
            }
            drop(out);
            engine.export(&container, &dest)?;
            Ok(0)
        }
        Cmd::Cp {
            archive,
            source,
            destination,
            ..
        } => {
            engine.cp(&source, &destination, archive)?;
            Ok(0)
        }
        Cmd::Rename {
            container,
            new_name,
        }
        | Cmd::Container(ContainerCmd::Rename {
            container,
            new_name,
        }) => {
            engine.rename(&container, &new_name)?;
            Ok(0)
        }
        Cmd::Top { container } => {
            top(&engine, &container, &mut out)?;
            Ok(0)
        }
        Cmd::Port { container } => {
            let c = engine.find(&container)?;
            for p in engine.dir(&c.id).record()?.ports {
                writeln!(
                    out,
                    "{}/{} -> {}:{}",
                    p.container_port,
                    p.protocol,
                    p.host_addr(),
                    p.host_port
                )?;
            }
            Ok(0)
        }
        Cmd::Container(ContainerCmd::Prune) => {
            for c in engine.store.containers()? {
                if engine.refresh(&c.id)?.status != strata::containers::record::Status::Running {
                    engine.remove(&c.id, false, false)?;
                    writeln!(out, "{}", c.id)?;
                }
            }
            Ok(0)
        }
        _ => unreachable!("image commands are handled by run"),
    }
}
