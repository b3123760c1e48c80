//! Containers, daemonless: `create` turns an image and run options into
//! a writable overlay and an OCI bundle under `containers/<id>/`; `start`
//! hands the container to a monitor process (see [`monitor`]); every
//! other verb reads and repairs state from disk. A state whose monitor
//! and container are gone (SIGKILL, reboot) is noticed and finished off
//! here, never trusted.

pub mod attach;
pub mod changes;
pub mod connect;
pub mod devices;
pub mod health;
pub mod logs;
pub mod monitor;

pub mod record;
pub mod seccomp;
pub mod spec;
pub mod stats;
pub mod users;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, umount2};
use serde_json::{Value, json};
use strata_imagestore::Store;
use strata_imagestore::containers::ContainerRow;

use crate::network::{self, bridge, dns, networks::Networks};
use record::{Dir, DnsConfig, Endpoint, Port, Record, State, Status, Wired};

/// Everything `create` needs beyond the spec options.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    pub image: String,
    pub name: Option<String>,
    pub auto_remove: bool,
    /// none | host | bridge | a user network's name or id.
    pub network: String,
    /// `--network-alias`, `--ip`, `--mac-address` (on `network`).
    pub aliases: Vec<String>,
    pub ip: Option<String>,
    pub mac: Option<String>,
    /// `--add-host NAME:IP`.
    pub extra_hosts: Vec<String>,
    pub dns: DnsConfig,
    /// `-p`; a host port of 0 is given a free one at create.
    pub ports: Vec<Port>,
    /// `-P`: every exposed port on a free host port.
    pub publish_all: bool,
    /// `--expose` as (port, protocol), added to the image's ExposedPorts.
    pub expose: Vec<(u16, String)>,
    pub labels: Vec<String>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<u32>,
    /// `-v SRC:DST[:ro]` and `--mount` already parsed into (src, dst, ro,
    /// kind) where kind is bind | volume | tmpfs.
    pub volumes: Vec<(String, String, bool, String)>,
    pub spec: spec::Options,
    /// Run flags applied to the built spec.
    pub tuning: spec::Tuning,
    pub restart: record::RestartPolicy,
    pub health: health::HealthFlags,
    pub log: logs::LogConfig,
}

/// A started container's network namespace and interfaces.
pub struct NetState {
    pub netns: PathBuf,
    /// The first network's address.
    pub ip: Option<String>,
    pub wired: Vec<Wired>,
}

/// Rootless, the default network is pasta's, not a bridge: a container is
/// on it or on user networks, not both.
pub const ROOTLESS_MIXED_NETWORKS: &str = "rootless: the default network cannot be joined together with user networks (pasta gives it, not a bridge): use user networks only";

/// The lean monitor binary's name.
pub const MONITOR_BIN: &str = "strata-monitor";

/// A helper process's command: the lean monitor binary beside `exe` in
/// its `flag` mode, else the hidden `verb` of `exe` (strata itself, where
/// the lean binary is not installed beside it).
pub(crate) fn helper_command(exe: &Path, flag: &str, verb: &str) -> std::process::Command {
    let lean = exe.with_file_name(MONITOR_BIN);
    let (program, mode) = if lean.is_file() {
        (lean.as_path(), flag)
    } else {
        (exe, verb)
    };
    let mut cmd = std::process::Command::new(program);
    cmd.arg(mode);
    cmd
}

/// The DNS server's command (`--dns` / `network-dns`).
fn dns_command(exe: &Path, dir: &Path, listen: std::net::Ipv4Addr) -> std::process::Command {
    let mut cmd = helper_command(exe, "--dns", "network-dns");
    cmd.arg(dir).arg(listen.to_string());
    idle_allocator(&mut cmd);
    cmd
}

/// glibc's allocator for a process that mostly waits (a monitor, a DNS
/// server): without the per-thread cache, the chunks its setup freed go
/// back to the heap, where `malloc_trim` can return them; that roughly
/// halves an idle monitor's private memory. Tunables the user set stay,
/// before ours.
fn idle_allocator(cmd: &mut std::process::Command) {
    const OURS: &str = "glibc.malloc.tcache_count=0";
    let tunables = match std::env::var("GLIBC_TUNABLES") {
        Ok(t) if !t.is_empty() => format!("{t}:{OURS}"),
        _ => OURS.to_string(),
    };
    cmd.env("GLIBC_TUNABLES", tunables);
}

pub struct Engine {
    pub root: PathBuf,
    pub run_dir: PathBuf,
    pub store: Store,
    /// The `strata` binary, for the monitor re-exec.
    pub exe: PathBuf,
}

impl Engine {
    pub fn new(root: PathBuf, store: Store, default_root: bool) -> Engine {
        let run_dir = if default_root {
            crate::paths::default_run_dir()
        } else {
            root.join("run")
        };
        Engine::with_run_dir(root, store, run_dir)
    }

    /// An engine whose run dir is given (the monitor is told its
    /// starter's).
    pub fn with_run_dir(root: PathBuf, store: Store, run_dir: PathBuf) -> Engine {
        Engine {
            root,
            run_dir,
            store,
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("strata")),
        }
    }

    /// The monitor program: `strata-monitor` beside us (a small binary
    /// without the registry client or the CLI), else our own hidden
    /// `container-monitor` verb.
    fn monitor_command(&self) -> std::process::Command {
        let lean = self.exe.with_file_name(MONITOR_BIN);
        let mut cmd;
        if lean.is_file() {
            cmd = std::process::Command::new(lean);
            cmd.arg("--root")
                .arg(&self.root)
                .arg("--run-dir")
                .arg(&self.run_dir);
        } else {
            cmd = std::process::Command::new(&self.exe);
            cmd.arg("--root").arg(&self.root).arg("container-monitor");
        }
        idle_allocator(&mut cmd);
        cmd
    }

    pub fn dir(&self, id: &str) -> Dir {
        container_dir(&self.root, id)
    }

    pub fn runtime_root(&self) -> strata_runtime::state::Root {
        strata_runtime::state::Root::new(self.run_dir.join("runtime"))
    }

    /// The host ports' claims: host-wide for root, the user's own run
    /// dir for a rootless engine.
    fn ports_dir(&self) -> PathBuf {
        crate::paths::default_run_dir().join("ports")
    }

    /// Log a container event (name and image as attributes, as Docker's).
    pub fn event(&self, action: &str, id: &str, extra: &[(&str, &str)]) {
        let (name, image) = self
            .dir(id)
            .record()
            .map(|r| (r.name, r.image_name))
            .unwrap_or_default();
        let mut attrs = vec![("name", name.as_str()), ("image", image.as_str())];
        attrs.extend_from_slice(extra);
        crate::events::record(&self.root, "container", action, id, &attrs);
    }

    /// A container by id, id prefix or name.
    pub fn find(&self, what: &str) -> Result<ContainerRow> {
        Ok(self.store.find_container(what)?)
    }

    /// `rename`: the store's name row (transactional, unique) first, then
    /// the container's record; a record that cannot be written puts the
    /// old name back.
    pub fn rename(&mut self, what: &str, new: &str) -> Result<()> {
        check_name(new)?;
        let c = self.find(what)?;
        if c.name == new {
            bail!("renaming a container with the same name as its current name");
        }
        let dir = self.dir(&c.id);
        let mut rec = dir.record()?;
        self.store.rename_container(&c.id, new)?;
        rec.name = new.to_string();
        if let Err(e) = dir.save_record(&rec) {
            let _ = self.store.rename_container(&c.id, &c.name);
            return Err(e);
        }
        self.event("rename", &c.id, &[("oldName", &c.name)]);
        Ok(())
    }

    // ---- create -------------------------------------------------------

    pub fn create(&mut self, o: &CreateOptions) -> Result<String> {
        let (mode, endpoints) = self.plan_endpoints(o)?;
        // `--pid/--ipc/--uts container:NAME`: that container's namespaces.
        let mut tuning = o.tuning.clone();
        for (kind, v) in [
            ("PID", &mut tuning.pid),
            ("IPC", &mut tuning.ipc),
            ("UTS", &mut tuning.uts),
        ] {
            if let Some(name) = v.as_deref().and_then(|x| x.strip_prefix("container:")) {
                let c = self.find(name)?;
                let st = self.refresh(&c.id)?;
                if st.status != Status::Running || st.pid <= 0 {
                    bail!("cannot join {kind} of a non running container: {name}");
                }
                *v = Some(format!("path:/proc/{}/ns", st.pid));
            }
        }
        let o = &CreateOptions {
            tuning,
            ..o.clone()
        };
        let image = self.store.resolve(&o.image)?;
        let config: Value = serde_json::from_slice(&self.store.content.read(&image)?)
            .context("parse image config")?;
        let id = record::new_id()?;
        let name = o.name.clone().unwrap_or_else(|| record::random_name(&id));
        check_name(&name)?;
        // Exposed ports: the image's ExposedPorts ("80/tcp") and --expose.
        let mut exposed: Vec<(u16, String)> = config["config"]["ExposedPorts"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .filter_map(|k| network::parse_expose(k).ok())
            .flatten()
            .collect();
        for e in &o.expose {
            if !exposed.contains(e) {
                exposed.push(e.clone());
            }
        }
        let mut ports = o.ports.clone();
        if o.publish_all {
            for (port, proto) in &exposed {
                if !ports
                    .iter()
                    .any(|p| p.container_port == *port && &p.protocol == proto)
                {
                    ports.push(Port {
                        host_ip: String::new(),
                        host_port: 0,
                        container_port: *port,
                        protocol: proto.clone(),
                    });
                }
            }
        }
        if crate::rootless::mode().is_some() {
            network::pasta::check_ports(&ports)?;
        }
        for p in &mut ports {
            if p.host_port == 0 {
                p.host_port = network::free_host_port(&self.ports_dir(), p)?;
            }
            network::check_available(&self.ports_dir(), p)?;
        }
        let o = &CreateOptions {
            ports,
            expose: exposed,
            network: mode,
            ..o.clone()
        };
        let created = record::now();
        let mut row = ContainerRow {
            id: id.clone(),
            name: name.clone(),
            image: image.clone(),
            created: created.clone(),
        };
        // A generated name that is taken: another from the id's next
        // bytes, then the short id itself (as unique as the id).
        let mut attempt = 1;
        let name = loop {
            match self.store.add_container(&row) {
                Ok(()) => break row.name,
                Err(strata_imagestore::Error::NameInUse(_)) if o.name.is_none() && attempt < 9 => {
                    row.name = match id.get(attempt * 8..) {
                        Some(rest) if attempt < 8 => record::random_name(rest),
                        _ => format!("strata_{}", &id[..12]),
                    };
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let dir = self.dir(&id);
        let made = self.make(&id, &name, &image, &config, o, &endpoints, &created);
        if let Err(e) = made {
            // Nothing half-made stays: mount, directory, row.
            let _ = umount2(&dir.rootfs(), MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir_all(dir.path());
            let _ = self.store.remove_container(&id);
            return Err(e);
        }
        self.event("create", &id, &[]);
        Ok(id)
    }

    /// The networks a new container goes on: `--network` checked, with
    /// its alias, address and MAC (Docker's errors for what only a user
    /// network takes). The mode's canonical name comes back too.
    fn plan_endpoints(&self, o: &CreateOptions) -> Result<(String, Vec<Endpoint>)> {
        let mode = if o.network.is_empty() {
            "bridge"
        } else {
            o.network.as_str()
        };
        if mode == "host" || mode == "none" {
            if o.mac.is_some() {
                bail!("conflicting options: mac-address and the network mode");
            }
            if !o.aliases.is_empty() || o.ip.is_some() {
                bail!("network-scoped aliases and addresses need a bridge network, not {mode}");
            }
            return Ok((mode.to_string(), Vec::new()));
        }
        let net = self.networks().get(mode)?;
        if net.name == "bridge" {
            if !o.aliases.is_empty() {
                bail!(
                    "network-scoped alias is supported only for containers in user defined networks"
                );
            }
            if o.ip.is_some() {
                bail!("user specified IP address is supported on user defined networks only");
            }
        }
        if let Some(ip) = &o.ip {
            let a: std::net::Ipv4Addr = ip
                .parse()
                .map_err(|_| anyhow::anyhow!("invalid IPv4 address: {ip}"))?;
            let def = net.def().context("network has no subnet")?;
            if !def.contains(a) {
                bail!("no configured subnet contains the IP address {ip}");
            }
        }
        if let Some(m) = &o.mac {
            bridge::parse_mac(m)?;
        }
        for h in &o.extra_hosts {
            parse_extra_host(h)?;
        }
        Ok((
            net.name.clone(),
            vec![Endpoint {
                network: net.name,
                aliases: o.aliases.clone(),
                ip: o.ip.clone(),
                mac: o.mac.clone(),
            }],
        ))
    }

    pub fn networks(&self) -> Networks {
        Networks::new(&self.root)
    }

    #[allow(clippy::too_many_arguments)]
    fn make(
        &mut self,
        id: &str,
        name: &str,
        image: &strata_imagestore::Digest,
        config: &Value,
        o: &CreateOptions,
        endpoints: &[Endpoint],
        created: &str,
    ) -> Result<()> {
        let dir = self.dir(id);
        for d in ["upper", "work", "merged"] {
            std::fs::create_dir_all(dir.path().join(d))
                .with_context(|| format!("create {}", dir.path().join(d).display()))?;
        }
        self.mount_rootfs(id, image)?;
        let hostname = o
            .spec
            .hostname
            .clone()
            .unwrap_or_else(|| id[..12].to_string());
        // Generated /etc files, bound over the image's.
        std::fs::write(dir.path().join("hostname"), format!("{hostname}\n"))?;
        write_hosts(&dir, &hostname, None, &o.extra_hosts, None)?;
        // On a user network the names come from its DNS server.
        let embedded = match endpoints.first() {
            Some(ep) => self
                .networks()
                .get(&ep.network)
                .ok()
                .filter(|n| n.dns)
                .and_then(|n| n.gateway.parse().ok()),
            None => None,
        };
        let mut resolv = resolv_conf(&o.network, &o.dns, embedded);
        // Rootless on the default network, on a host whose resolver sits
        // on its loopback: pasta's forwarder reaches it for the container.
        if crate::rootless::mode().is_some()
            && o.network == "bridge"
            && o.dns.servers.is_empty()
            && network::pasta::loopback_resolvers_only(
                &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            )
        {
            resolv = format!("nameserver {}\n{resolv}", network::pasta::DNS_FORWARD);
        }
        std::fs::write(dir.path().join("resolv.conf"), resolv)?;
        let mut so = o.spec.clone();
        if o.network != "host" {
            for f in ["hostname", "hosts", "resolv.conf"] {
                so.mounts
                    .push(json!({"destination": format!("/etc/{f}"), "type": "bind",
                    "source": dir.path().join(f), "options": ["rbind", "rprivate"]}));
            }
        }
        let mut volumes = Vec::new();
        let mut named_volumes = Vec::new();
        for (src, dst, ro, kind) in &o.volumes {
            so.mounts.push(self.volume_mount(
                src,
                dst,
                *ro,
                kind,
                &mut volumes,
                &mut named_volumes,
            )?);
        }
        // Image VOLUMEs not covered by -v become anonymous volumes.
        if let Some(vols) = config["config"]["Volumes"].as_object() {
            for dst in vols.keys() {
                if o.volumes.iter().any(|(_, d, _, _)| d == dst) {
                    continue;
                }
                so.mounts.push(self.volume_mount(
                    "",
                    dst,
                    false,
                    "volume",
                    &mut volumes,
                    &mut named_volumes,
                )?);
            }
        }
        let netns = (o.network != "host").then(|| network::netns_path(&self.run_dir, id));
        let (mut spec, command) = spec::build(
            config,
            &so,
            &dir.rootfs(),
            &hostname,
            &o.network,
            netns.as_deref(),
            &spec::cgroups_path(o.spec.cgroup_parent.as_deref(), id)?,
        )?;
        let rootfs = dir.rootfs();
        spec::tune(&mut spec, &o.tuning, &|g| users::group_id(&rootfs, g))?;
        record::write_atomic(
            &dir.path().join("config.json"),
            &serde_json::to_vec_pretty(&spec)?,
        )?;
        let mut labels = std::collections::BTreeMap::new();
        if let Some(l) = config["config"]["Labels"].as_object() {
            for (k, v) in l {
                labels.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
            }
        }
        for l in &o.labels {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            labels.insert(k.to_string(), v.to_string());
        }
        let stop_signal = o
            .stop_signal
            .clone()
            .or_else(|| config["config"]["StopSignal"].as_str().map(String::from))
            .unwrap_or_else(|| "SIGTERM".into());
        strata_runtime::signals::parse(&stop_signal)
            .map_err(|_| anyhow::anyhow!("invalid stop signal {stop_signal:?}"))?;
        let image_health = match config["config"].get("Healthcheck") {
            Some(h) if !h.is_null() => {
                Some(serde_json::from_value(h.clone()).context("image healthcheck")?)
            }
            _ => None,
        };
        let healthcheck = health::merge(image_health, &o.health)?;
        let rec = Record {
            id: id.to_string(),
            name: name.to_string(),
            image_name: o.image.clone(),
            image: image.to_string(),
            created: created.to_string(),
            command,
            tty: o.spec.tty,
            interactive: o.spec.interactive,
            auto_remove: o.auto_remove,
            network: o.network.clone(),
            endpoints: endpoints.to_vec(),
            extra_hosts: o.extra_hosts.clone(),
            dns: o.dns.clone(),
            ports: o.ports.clone(),
            exposed: o
                .expose
                .iter()
                .map(|(p, proto)| format!("{p}/{proto}"))
                .collect(),
            labels,
            stop_signal,
            stop_timeout: o.stop_timeout.unwrap_or(10),
            volumes,
            named_volumes,
            spec,
            restart: o.restart.clone(),
            log: o.log.clone(),
            healthcheck,
        };
        dir.save_record(&rec)?;
        dir.save_state(&State {
            boot_id: record::boot_id(),
            ..Default::default()
        })?;
        Ok(())
    }

    fn volume_mount(
        &self,
        src: &str,
        dst: &str,
        ro: bool,
        kind: &str,
        made: &mut Vec<String>,
        named: &mut Vec<String>,
    ) -> Result<Value> {
        if !dst.starts_with('/') {
            bail!("invalid mount target {dst:?}: must be an absolute path");
        }
        let mut opts = vec![json!("rbind"), json!("rprivate")];
        if ro {
            opts.push(json!("ro"));
        }
        match kind {
            "tmpfs" => Ok(
                json!({"destination": dst, "type": "tmpfs", "source": "tmpfs",
                                "options": ["nosuid", "nodev", "mode=1777"]}),
            ),
            "bind" => {
                let p = Path::new(src);
                if !p.is_absolute() || !p.exists() {
                    bail!("invalid bind mount source {src:?}: must be an existing absolute path");
                }
                Ok(json!({"destination": dst, "type": "bind", "source": src, "options": opts}))
            }
            _ => {
                let vols = crate::volumes::Volumes::new(&self.root);
                let meta = crate::volumes::Meta {
                    created: chrono::Utc::now().to_rfc3339(),
                    anonymous: src.is_empty(),
                    ..Default::default()
                };
                let name = if src.is_empty() {
                    let n = record::new_id()?;
                    vols.create(&n, meta)?;
                    made.push(n.clone());
                    n
                } else {
                    if !vols.exists(src) {
                        vols.create(src, meta)
                            .map_err(|e| anyhow::anyhow!("invalid volume {src:?}: {e:#}"))?;
                    }
                    named.push(src.to_string());
                    src.to_string()
                };
                vols.mount(&name, dst, ro)
            }
        }
    }

    /// The overlay: image snapshots below, the container's upper above.
    pub(crate) fn mount_rootfs(&self, id: &str, image: &strata_imagestore::Digest) -> Result<()> {
        let dir = self.dir(id);
        let target = dir.rootfs();
        if is_mountpoint(&target) {
            return Ok(());
        }
        let mut lower: Vec<PathBuf> = self.store.snapshot_dirs(image)?;
        lower.reverse();
        // overlayfs needs two lowers or an upper; an empty image gets an
        // empty lower of its own.
        if lower.is_empty() {
            let e = dir.path().join("empty");
            std::fs::create_dir_all(&e)?;
            lower.push(e);
        }
        let (upper, work) = (dir.path().join("upper"), dir.path().join("work"));
        strata_imagestore::mounts::mount_overlay(
            &lower,
            Some(strata_imagestore::mounts::Upper {
                upper: &upper,
                work: &work,
            }),
            &target,
        )
        .with_context(|| format!("mount container rootfs {}", target.display()))?;
        Ok(())
    }

    // ---- start (called by the monitor) ----------------------------------

    /// Before the runtime runs: the rootfs mounted, the network up.
    pub fn prepare_start(&self, rec: &Record) -> Result<Option<NetState>> {
        let image: strata_imagestore::Digest = rec.image.parse()?;
        let rootless = crate::rootless::mode().is_some();
        // Rootless, the default network is pasta's and user networks are
        // bridges in the user's own namespace (network::rootless_netns).
        let user_nets = rec.endpoints().iter().any(|e| e.network != "bridge");
        if rootless && rec.network != "host" {
            if user_nets && rec.endpoints().iter().any(|e| e.network == "bridge") {
                bail!(ROOTLESS_MIXED_NETWORKS);
            }
            network::pasta::check_ports(&rec.ports)?;
        }
        self.mount_rootfs(&rec.id, &image)?;
        if rec.network == "host" {
            return Ok(None);
        }
        let netns = network::netns_path(&self.run_dir, &rec.id);
        network::remove_netns(&netns);
        network::create_netns(&netns)?;
        if rootless && !user_nets {
            return self.prepare_rootless_net(rec, netns).map(Some);
        }
        if let Err(e) = network::reserve_ports(&self.ports_dir(), &netns, &rec.ports) {
            network::remove_netns(&netns);
            return Err(e);
        }
        let mut wired = Vec::new();
        let res = (|| -> Result<()> {
            for (i, ep) in rec.endpoints().iter().enumerate() {
                wired.push(self.wire(rec, &netns, ep, &format!("eth{i}"), i == 0)?);
            }
            if let Some(w) = wired.first()
                && let (Ok(ip), Some(def)) =
                    (w.ip.parse(), self.networks().get(&w.network_id)?.def())
            {
                if let Some(rl) = crate::rootless::mode() {
                    let ns = network::rootless_netns::path(&rl.run_dir);
                    network::port_proxy::start(
                        &self.exe,
                        &self.run_dir,
                        &rec.id,
                        &ns,
                        ip,
                        &rec.ports,
                    )?;
                } else {
                    network::ports::publish(&rec.id, &netns, ip, &def, &w.ifname, &rec.ports)?;
                }
            }
            let hostname = rec.spec["hostname"].as_str().unwrap_or_default();
            let first = wired.first();
            write_hosts(
                &self.dir(&rec.id),
                hostname,
                first.map(|w| w.ip.as_str()),
                &rec.extra_hosts,
                first.map(|w| w.gateway.as_str()),
            )
        })();
        if let Err(e) = res {
            network::port_proxy::stop(&self.run_dir, &rec.id);
            for w in &wired {
                self.unwire(&rec.id, w, true);
            }
            network::release_ports(&self.ports_dir(), &netns, &rec.ports);
            network::remove_netns(&netns);
            return Err(e);
        }
        Ok(Some(NetState {
            netns,
            ip: wired.first().map(|w| w.ip.clone()),
            wired,
        }))
    }

    /// The rootless network: pasta for the default network (none for
    /// `--network none`), the ports claimed in the user's run dir.
    fn prepare_rootless_net(&self, rec: &Record, netns: PathBuf) -> Result<NetState> {
        let res = (|| -> Result<()> {
            network::reserve_ports(&self.ports_dir(), &netns, &rec.ports)?;
            if !rec.endpoints().is_empty()
                && let Err(e) = network::pasta::start(&self.run_dir, &rec.id, &netns, &rec.ports)
            {
                network::release_ports(&self.ports_dir(), &netns, &rec.ports);
                return Err(e);
            }
            let hostname = rec.spec["hostname"].as_str().unwrap_or_default();
            write_hosts(&self.dir(&rec.id), hostname, None, &rec.extra_hosts, None)
        })();
        if let Err(e) = res {
            network::pasta::stop(&self.run_dir, &rec.id);
            network::remove_netns(&netns);
            return Err(e);
        }
        Ok(NetState {
            netns,
            ip: None,
            wired: Vec::new(),
        })
    }

    /// Put the container whose namespace is at `netns` on `ep`'s network
    /// as `ifname`, and its names into the network's DNS.
    fn wire(
        &self,
        rec: &Record,
        netns: &Path,
        ep: &Endpoint,
        ifname: &str,
        primary: bool,
    ) -> Result<Wired> {
        let net = self.networks().get(&ep.network)?;
        let def = net
            .def()
            .with_context(|| format!("network {} cannot be joined", net.name))?;
        let ip = match &ep.ip {
            Some(s) => Some(
                s.parse()
                    .map_err(|_| anyhow::anyhow!("invalid IPv4 address: {s}"))?,
            ),
            None => None,
        };
        let mac = ep.mac.as_deref().map(bridge::parse_mac).transpose()?;
        let mut names = vec![rec.name.to_lowercase(), rec.id[..12].to_string()];
        names.extend(ep.aliases.iter().map(|a| a.to_lowercase()));
        let exe = self.exe.clone();
        let id = rec.id.as_str();
        let def = &def;
        // Where the bridges are: the host's namespace, or rootless the
        // user's (the DNS server is started in there too).
        let got = network::rootless_netns::on_bridges(|| {
            let got = bridge::attach(
                id,
                netns,
                &bridge::Attach {
                    def,
                    ifname,
                    ip,
                    mac,
                    default_route: primary,
                },
            )?;
            if net.dns {
                let entry = dns::Entry {
                    id: id.to_string(),
                    names,
                    ip: got.ip,
                    upstream: rec.dns.servers.clone(),
                };
                if let Err(e) = dns::register(&def.bridge, def.gateway, entry, &|d, l| {
                    dns_command(&exe, d, l)
                }) {
                    bridge::detach(id, def, ifname);
                    return Err(e);
                }
            }
            Ok(got)
        })?;
        Ok(Wired {
            network: net.name.clone(),
            network_id: net.id.clone(),
            ifname: ifname.to_string(),
            ip: got.ip.to_string(),
            prefix: def.prefix,
            gateway: def.gateway.to_string(),
            mac: bridge::format_mac(&got.mac),
        })
    }

    /// Undo [`Engine::wire`]: the names, the address, and with the
    /// container still running its interface.
    fn unwire(&self, id: &str, w: &Wired, running: bool) {
        let Ok(net) = self.networks().get(&w.network_id) else {
            return;
        };
        let Some(def) = net.def() else { return };
        if net.dns {
            dns::unregister(&def.bridge, id, w.ip.parse().ok());
        }
        if running {
            let detached = network::rootless_netns::on_existing_bridges(|| {
                bridge::detach(id, &def, &w.ifname);
                Ok(())
            });
            if let Err(e) = detached {
                tracing::warn!("{e:#}");
            }
        } else {
            bridge::release_all(&def, id);
        }
    }

    /// A healthcheck probe's helper (`--health` / `healthcheck-probe`).
    pub fn health_command(&self, id: &str) -> std::process::Command {
        let mut cmd = helper_command(&self.exe, "--health", "healthcheck-probe");
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--run-dir")
            .arg(&self.run_dir)
            .arg(id);
        cmd
    }

    /// Take down the network of a container whose monitor is gone (or
    /// never wired it): names, leases and ports, from the record.
    fn unwire_all(&self, rec: &Record, netns: &Path) {
        if !rec.endpoints().is_empty() && netns.exists() {
            network::ports::unpublish(&rec.id, netns, "eth0", &rec.ports);
        }
        for ep in rec.endpoints() {
            let Ok(net) = self.networks().get(&ep.network) else {
                continue;
            };
            if let Some(def) = net.def() {
                if net.dns {
                    dns::unregister(&def.bridge, &rec.id, None);
                }
                bridge::release_all(&def, &rec.id);
            }
        }
    }

    /// After the container is gone: runtime state, network, and with
    /// `--rm` the container itself. `code` None means it never ran.
    pub fn after_exit(
        &self,
        rec: &Record,
        net: Option<&NetState>,
        code: Option<i32>,
        error: Option<&str>,
    ) {
        self.release(rec, net);
        if let Some(c) = code {
            self.event("die", &rec.id, &[("exitCode", &c.to_string())]);
        }
        let dir = self.dir(&rec.id);
        if let Ok(_l) = dir.lock()
            && let Ok(mut s) = dir.state()
        {
            s.status = match code {
                Some(_) => Status::Exited,
                None => s.status,
            };
            if code.is_none() && s.status == Status::Restarting {
                // Its monitor died between restarts: it stays exited.
                s.status = Status::Exited;
            } else if code.is_none() && s.status == Status::Running {
                // It ran unobserved: its status is lost. 255, as Docker
                // reports an exit it could not learn.
                s.status = Status::Exited;
                s.exit_code = 255;
            } else if let (None, Some(e)) = (code, error) {
                // It never started: Docker's code for why (127 not
                // found, 126 not executable, 125 anything else).
                s.exit_code = monitor::failure_code(e);
            }
            s.exit_code = code.unwrap_or(s.exit_code);
            s.finished_at = code.map(|_| record::now()).or(s.finished_at);
            s.error = error.map(String::from);
            s.pid = 0;
            s.monitor_pid = 0;
            s.networks.clear();
            s.stop_requested = false;
            let _ = dir.save_state(&s);
        }
        if rec.auto_remove && code.is_some() {
            // The monitor's own store handle: open a fresh one.
            // Docker's --rm takes the anonymous volumes along.
            if let Ok(mut store) = Store::open(&self.root) {
                self.event("destroy", &rec.id, &[]);
                let _ = remove_files(&self.root, &mut store, rec, true);
            }
        }
    }

    /// The container exited and its restart policy brings it back: all
    /// but the monitor goes, and `ps` shows it `Restarting`.
    pub fn before_restart(&self, rec: &Record, net: Option<&NetState>, code: i32, count: u32) {
        self.release(rec, net);
        self.event("die", &rec.id, &[("exitCode", &code.to_string())]);
        let dir = self.dir(&rec.id);
        if let Ok(_l) = dir.lock()
            && let Ok(mut s) = dir.state()
        {
            s.status = Status::Restarting;
            s.exit_code = code;
            s.finished_at = Some(record::now());
            s.pid = 0;
            s.networks.clear();
            s.restart_count = count;
            let _ = dir.save_state(&s);
        }
    }

    /// A `stop` came while the container waited to restart: it stays
    /// exited, with the code it last exited with.
    pub fn end_restarting(&self, rec: &Record) {
        let dir = self.dir(&rec.id);
        if let Ok(_l) = dir.lock()
            && let Ok(mut s) = dir.state()
        {
            s.status = Status::Exited;
            s.monitor_pid = 0;
            s.stop_requested = false;
            let _ = dir.save_state(&s);
        }
        if rec.auto_remove
            && let Ok(mut store) = Store::open(&self.root)
        {
            self.event("destroy", &rec.id, &[]);
            let _ = remove_files(&self.root, &mut store, rec, true);
        }
    }

    /// What a run holds besides its state: the runtime's container, the
    /// network, the mounted rootfs.
    fn release(&self, rec: &Record, net: Option<&NetState>) {
        let _ = strata_runtime::container::delete::delete(&self.runtime_root(), &rec.id, true);
        if crate::rootless::mode().is_some() {
            network::pasta::stop(&self.run_dir, &rec.id);
            network::port_proxy::stop(&self.run_dir, &rec.id);
        }
        match net {
            Some(n) => {
                if let Some(w) = n.wired.first() {
                    network::ports::unpublish(&rec.id, &n.netns, &w.ifname, &rec.ports);
                }
                for w in &n.wired {
                    self.unwire(&rec.id, w, false);
                }
                network::release_ports(&self.ports_dir(), &n.netns, &rec.ports);
                network::remove_netns(&n.netns);
            }
            None if rec.network != "host" => {
                let netns = network::netns_path(&self.run_dir, &rec.id);
                self.unwire_all(rec, &netns);
                network::release_ports(&self.ports_dir(), &netns, &rec.ports);
                network::remove_netns(&netns);
            }
            None => {}
        }
        let dir = self.dir(&rec.id);
        // As Docker: a stopped container's rootfs is not left mounted; start
        // mounts it again over the same upper dir.
        if let Err(e) = unmount_rootfs(&dir.rootfs()) {
            tracing::warn!("{e:#}");
        }
    }

    /// Start a created or exited container: spawn its monitor and wait
    /// until the container runs (or failed). `attach`: pass our stdout and
    /// stderr for a foreground run. Returns the monitor child.
    pub fn start(&mut self, id: &str, attach: bool) -> Result<Monitor> {
        self.start_with(id, attach, "")
    }

    /// `start`, and for a foreground `-it` the key sequence (Docker's
    /// `--detach-keys` format) after which the monitor lets our terminal
    /// go and the container runs on.
    pub fn start_with(&mut self, id: &str, attach: bool, detach_keys: &str) -> Result<Monitor> {
        let row = self.find(id)?;
        let id = row.id;
        let dir = self.dir(&id);
        let st = self.refresh(&id)?;
        if st.status == Status::Running {
            bail!("container {} is already running", row.name);
        }
        if st.status == Status::Restarting {
            bail!(
                "container {} is restarting: stop it before starting it",
                row.name
            );
        }
        // Close-on-exec: the monitor gets only the dup2'd copies.
        let (ready_r, ready_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
        let mut cmd = self.monitor_command();
        cmd.args(attach.then_some("--attach"))
            .args(
                (attach && !detach_keys.is_empty())
                    .then_some(["--detach-keys", detach_keys])
                    .into_iter()
                    .flatten(),
            )
            .arg(&id)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let rec = dir.record()?;
        // Only a foreground `-i` hands the monitor our stdin; a detached
        // container's input comes through `strata attach`.
        if !(rec.interactive && attach) {
            cmd.stdin(std::process::Stdio::null());
        }
        let ready_fd = std::os::fd::AsRawFd::as_raw_fd(&ready_w);
        let dup_cloexec = |fd| nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10));
        let out = attach.then(|| (dup_cloexec(1), dup_cloexec(2)));
        let fds = match out {
            Some((Ok(o), Ok(e))) => Some((o, e)),
            _ => None,
        };
        // SAFETY: between fork and exec only async-signal-safe calls:
        // sigprocmask, setsid, dup2 and fcntl on fds we own.
        unsafe {
            cmd.pre_exec(move || {
                // A foreground CLI blocks the signals it forwards; the
                // monitor starts with none blocked (exec keeps the mask).
                nix::sys::signal::SigSet::empty()
                    .thread_set_mask()
                    .map_err(std::io::Error::from)?;
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                nix::unistd::dup2(ready_fd, 3).map_err(std::io::Error::from)?;
                if let Some((o, e)) = fds {
                    nix::unistd::dup2(o, 4).map_err(std::io::Error::from)?;
                    nix::unistd::dup2(e, 5).map_err(std::io::Error::from)?;
                }
                Ok(())
            });
        }
        let child = cmd.spawn().context("start the container monitor")?;
        drop(ready_w);
        if let Some((o, e)) = fds {
            let _ = nix::unistd::close(o);
            let _ = nix::unistd::close(e);
        }
        let mut events = std::io::BufReader::new(std::fs::File::from(ready_r));
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut events, &mut line);
        let line = line.trim_end().to_string();
        if line.starts_with("ok") {
            return Ok(Monitor { child, events });
        }
        let mut child = child;
        let _ = child.wait();
        match line.strip_prefix("err ") {
            Some(rest) => {
                let (code, msg) = rest.split_once(' ').unwrap_or(("125", rest));
                Err(StartError {
                    code: code.parse().unwrap_or(125),
                    msg: msg.to_string(),
                }
                .into())
            }
            None => Err(StartError {
                code: 125,
                msg: "the container monitor died before the container started".into(),
            }
            .into()),
        }
    }

    // ---- state ------------------------------------------------------------

    /// The container's state, repaired if its monitor died or the host
    /// rebooted since it was written.
    pub fn refresh(&self, id: &str) -> Result<State> {
        let dir = self.dir(id);
        let st = dir.state()?;
        // The monitor writes the final state before it exits: once it is
        // gone, a state read again tells whether it finished the run
        // between our first read and its exit (then that is the truth).
        let settled = |st: &State| -> Result<Option<State>> {
            let now = dir.state()?;
            Ok((now.status != st.status || now.monitor_pid != st.monitor_pid).then_some(now))
        };
        if st.status == Status::Restarting {
            if record::alive(st.monitor_pid, st.monitor_start) {
                return Ok(st);
            }
            if let Some(now) = settled(&st)? {
                return Ok(now);
            }
            let rec = dir.record()?;
            self.after_exit(&rec, None, None, None);
            return dir.state();
        }
        if st.status != Status::Running {
            return Ok(st);
        }
        let rebooted = !st.boot_id.is_empty() && st.boot_id != record::boot_id();
        if !rebooted && record::alive(st.monitor_pid, st.monitor_start) {
            return Ok(st);
        }
        if !rebooted && let Some(now) = settled(&st)? {
            return Ok(now);
        }
        if !rebooted && record::alive(st.pid, st.pid_start) {
            // The monitor is gone but the container lives on: it runs,
            // without logs; stop/rm still work.
            return Ok(st);
        }
        // Both gone: finish what the monitor would have done.
        let rec = dir.record()?;
        self.after_exit(
            &rec,
            None,
            None,
            Some("the container monitor died; exit status unknown"),
        );
        let st = dir.state()?;
        if rebooted {
            // Mounts did not survive the reboot either.
            let _ = umount2(&dir.rootfs(), MntFlags::MNT_DETACH);
        }
        Ok(st)
    }

    /// `update`: new resource limits. A running container's cgroup gets
    /// them through the runtime (what was asked only); the record keeps
    /// the merged result either way, so a later start has them too.
    pub fn update(&self, what: &str, args: &strata_runtime::cli::update::UpdateArgs) -> Result<()> {
        let row = self.find(what)?;
        let dir = self.dir(&row.id);
        let asked = args.flag_resources()?;
        let st = self.refresh(&row.id)?;
        if st.status == Status::Running {
            let mut a = args.clone();
            a.id = row.id.clone();
            strata_runtime::cli::update::update(&self.runtime_root(), &a)
                .with_context(|| format!("update {}", row.name))?;
        }
        let _l = dir.lock()?;
        let asked = serde_json::to_value(&asked)?;
        let merge = |spec: &mut Value| {
            let res = &mut spec["linux"]["resources"];
            if res.is_null() {
                *res = json!({});
            }
            overlay(res, &asked);
        };
        // The bundle's config.json (what the next start gives the
        // runtime), then the record.
        let bundle = dir.path().join("config.json");
        let mut config: Value = serde_json::from_slice(
            &std::fs::read(&bundle).with_context(|| format!("read {}", bundle.display()))?,
        )?;
        merge(&mut config);
        record::write_atomic(&bundle, &serde_json::to_vec_pretty(&config)?)?;
        let mut rec = dir.record()?;
        merge(&mut rec.spec);
        dir.save_record(&rec)?;
        self.event("update", &row.id, &[]);
        Ok(())
    }

    /// Whether the container's cgroup is frozen (`pause`): the runtime's
    /// view, read from the freezer, so that nothing can disagree with it.
    pub fn is_paused(&self, id: &str) -> bool {
        let root = self.runtime_root();
        root.load(id)
            .map(|s| s.status(&root.dir(id)) == strata_runtime::state::Status::Paused)
            .unwrap_or(false)
    }

    /// `pause` (freeze every process of the container) or `unpause`.
    pub fn set_paused(&self, what: &str, paused: bool) -> Result<()> {
        let row = self.find(what)?;
        let st = self.refresh(&row.id)?;
        if st.status != Status::Running {
            bail!("container {} is not running", row.name);
        }
        match (paused, self.is_paused(&row.id)) {
            (true, true) => bail!("container {} is already paused", row.name),
            (false, false) => bail!("container {} is not paused", row.name),
            _ => {}
        }
        let verb = if paused { "pause" } else { "unpause" };
        strata_runtime::container::pause::set_paused(&self.runtime_root(), &row.id, paused)
            .with_context(|| format!("{verb} {}", row.name))?;
        self.event(verb, &row.id, &[]);
        Ok(())
    }

    /// Send a signal to the container's init.
    pub fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let row = self.find(id)?;
        let st = self.refresh(&row.id)?;
        if st.status != Status::Running {
            bail!(
                "cannot kill container {}: container {} is not running",
                row.name,
                row.id
            );
        }
        let sig = strata_runtime::signals::parse(signal)
            .map_err(|_| anyhow::anyhow!("invalid signal: {signal}"))?;
        strata_runtime::signals::send(st.pid, sig)
            .with_context(|| format!("signal container {}", row.name))?;
        self.event("kill", &row.id, &[("signal", &sig.to_string())]);
        // A paused container cannot act on the signal: thaw it after the
        // signal is queued, as Docker does (so stop and kill -9 work).
        if self.is_paused(&row.id) {
            strata_runtime::container::pause::set_paused(&self.runtime_root(), &row.id, false)
                .with_context(|| format!("unpause {} after the signal", row.name))?;
        }
        Ok(())
    }

    /// Wait until the container has exited; its exit code.
    pub fn wait(&self, id: &str, timeout: Option<std::time::Duration>) -> Result<Option<i32>> {
        let start = std::time::Instant::now();
        loop {
            let st = self.refresh(id)?;
            if st.status != Status::Running {
                return Ok(Some(st.exit_code));
            }
            if timeout.is_some_and(|t| start.elapsed() >= t) {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// `stop`: the stop signal, then SIGKILL after the timeout.
    pub fn stop(&self, what: &str, timeout: Option<u32>) -> Result<()> {
        let row = self.find(what)?;
        let rec = self.dir(&row.id).record()?;
        let st = self.refresh(&row.id)?;
        if !self.request_stop(&row.id, &st)? {
            return Ok(());
        }
        let t = timeout.unwrap_or(rec.stop_timeout);
        if st.status == Status::Running {
            let _ = self.kill(&row.id, &rec.stop_signal);
        }
        if self
            .wait_settled(&row.id, std::time::Duration::from_secs(t as u64))?
            .is_none()
        {
            let _ = self.kill(&row.id, "KILL");
            self.wait_settled(&row.id, std::time::Duration::from_secs(10))?;
        }
        self.event("stop", &row.id, &[]);
        Ok(())
    }

    /// Tell the monitor that the user ends this run: no restart follows.
    /// False when there is nothing to stop.
    fn request_stop(&self, id: &str, st: &State) -> Result<bool> {
        if !matches!(st.status, Status::Running | Status::Restarting) {
            return Ok(false);
        }
        let dir = self.dir(id);
        let _l = dir.lock()?;
        let mut s = dir.state()?;
        s.stop_requested = true;
        dir.save_state(&s)?;
        Ok(true)
    }

    /// Wait until neither running nor about to restart; the exit code.
    fn wait_settled(&self, id: &str, timeout: std::time::Duration) -> Result<Option<i32>> {
        let start = std::time::Instant::now();
        loop {
            let st = self.refresh(id)?;
            if !matches!(st.status, Status::Running | Status::Restarting) {
                return Ok(Some(st.exit_code));
            }
            if start.elapsed() >= timeout {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// `rm`: refuses a running container unless forced.
    pub fn remove(&mut self, what: &str, force: bool, volumes: bool) -> Result<String> {
        let row = self.find(what)?;
        let st = self.refresh(&row.id)?;
        if matches!(st.status, Status::Running | Status::Restarting) {
            if !force {
                bail!(
                    "cannot remove container {}: container is {}: stop the container before removing or force remove",
                    row.name,
                    if st.status == Status::Running {
                        "running"
                    } else {
                        "restarting"
                    }
                );
            }
            self.request_stop(&row.id, &st)?;
            if st.status == Status::Running {
                let _ = self.kill(&row.id, "KILL");
            }
            self.wait_settled(&row.id, std::time::Duration::from_secs(10))?;
        }
        let dir = self.dir(&row.id);
        let rec = match dir.record() {
            Ok(r) => r,
            Err(_) => {
                // A record never finished: drop what there is.
                let _ = umount2(&dir.rootfs(), MntFlags::MNT_DETACH);
                let _ = std::fs::remove_dir_all(dir.path());
                self.store.remove_container(&row.id)?;
                return Ok(row.id);
            }
        };
        self.event("destroy", &row.id, &[]);
        remove_files(&self.root, &mut self.store, &rec, volumes)?;
        Ok(row.id)
    }
}

/// A started container's monitor, as the CLI that started it sees it.
pub struct Monitor {
    pub child: std::process::Child,
    /// The rest of the ready pipe: an attached monitor writes `detached`
    /// when the user typed the detach keys; EOF when it exits.
    events: std::io::BufReader<std::fs::File>,
}

impl Monitor {
    /// Block until the user detached, the container exited to be
    /// restarted by its policy, or the monitor is gone.
    pub fn wait_event(&mut self) -> MonitorEvent {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut self.events, &mut line);
        match line.trim_end().split_once(' ') {
            _ if line.trim_end() == "detached" => MonitorEvent::Detached,
            Some(("exited", code)) => code
                .parse()
                .map_or(MonitorEvent::Gone, MonitorEvent::Exited),
            _ => MonitorEvent::Gone,
        }
    }
}

/// What a foreground CLI hears from the monitor.
#[derive(Debug, PartialEq, Eq)]
pub enum MonitorEvent {
    /// The user typed the detach keys.
    Detached,
    /// The container exited with this code; its restart policy brings it
    /// back without us.
    Exited(i32),
    /// The monitor exited (the container's end is in its state).
    Gone,
}

/// The error of a container that could not start, with Docker's exit code.
#[derive(Debug)]
pub struct StartError {
    pub code: i32,
    pub msg: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for StartError {}

/// `containers/<id>` under the store's root.
fn container_dir(root: &Path, id: &str) -> Dir {
    Dir(root.join("containers").join(id))
}

/// Unmount and delete a stopped container's files and its row (`root`
/// is the store's; the store handle is the caller's own).
fn remove_files(root: &Path, store: &mut Store, rec: &Record, volumes: bool) -> Result<()> {
    let dir = container_dir(root, &rec.id);
    match umount2(&dir.rootfs(), MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => bail!("unmount {}: {e}", dir.rootfs().display()),
    }
    std::fs::remove_dir_all(dir.path())
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        })
        .with_context(|| format!("remove {}", dir.path().display()))?;
    if volumes {
        let vols = crate::volumes::Volumes::new(root);
        for v in &rec.volumes {
            let _ = vols.remove(v);
        }
    }
    store.remove_container(&rec.id)?;
    Ok(())
}

/// Unmount a container's rootfs if it is mounted; lazily if something
/// still holds it.
fn unmount_rootfs(p: &Path) -> Result<()> {
    if !is_mountpoint(p) {
        return Ok(());
    }
    match umount2(p, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => umount2(p, MntFlags::MNT_DETACH)
            .with_context(|| format!("unmount {} (busy)", p.display())),
        Err(e) => Err(e).with_context(|| format!("unmount {}", p.display())),
    }
}

fn is_mountpoint(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(p), p.parent().map(std::fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}

/// `--add-host NAME:IP` (or `NAME=IP`; `host-gateway` is the address
/// of the host on the container's first network).
pub fn parse_extra_host(s: &str) -> Result<(&str, &str)> {
    let (name, ip) = s
        .split_once(':')
        .or_else(|| s.split_once('='))
        .ok_or_else(|| anyhow::anyhow!("bad format for add-host: {s:?}"))?;
    if name.is_empty() || (ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err()) {
        bail!("invalid IP address in add-host: {ip:?}");
    }
    Ok((name, ip))
}

fn write_hosts(
    dir: &Dir,
    hostname: &str,
    ip: Option<&str>,
    extra: &[String],
    gateway: Option<&str>,
) -> Result<()> {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for h in extra {
        if let Ok((name, addr)) = parse_extra_host(h) {
            let addr = if addr == "host-gateway" {
                gateway.unwrap_or("127.0.0.1")
            } else {
                addr
            };
            s.push_str(&format!("{addr}\t{name}\n"));
        }
    }
    if let Some(ip) = ip {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    } else {
        s.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    record::write_atomic(&dir.path().join("hosts"), s.as_bytes())
}

/// The container's resolv.conf: `--dns*` where given, else the host's
/// (loopback resolvers do not work from a namespace of its own, so they
/// are dropped there: Docker's rule). On a user network the nameserver
/// is its DNS server, `embedded`, which passes on what it does not know.
pub fn resolv_conf(network: &str, dns: &DnsConfig, embedded: Option<std::net::Ipv4Addr>) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if network == "host" && dns == &DnsConfig::default() {
        return host;
    }
    let (mut servers, mut search, mut options) = (Vec::new(), Vec::new(), Vec::new());
    for l in host.lines() {
        let mut w = l.split_whitespace();
        match w.next() {
            Some("nameserver") => {
                if let Some(a) = w.next()
                    && (network == "host"
                        || !a
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback()))
                {
                    servers.push(a.to_string());
                }
            }
            Some("search") | Some("domain") => search = w.map(String::from).collect(),
            Some("options") => options.extend(w.map(String::from)),
            _ => {}
        }
    }
    if !dns.servers.is_empty() {
        servers = dns.servers.clone();
    }
    if !dns.search.is_empty() {
        // `--dns-search .`: no search domains at all.
        search = dns.search.iter().filter(|d| *d != ".").cloned().collect();
    }
    if !dns.options.is_empty() {
        options = dns.options.clone();
    }
    if let Some(gw) = embedded {
        servers = vec![gw.to_string()];
        // Names are asked as given first (Docker's choice for its DNS).
        if !options.iter().any(|o| o.starts_with("ndots:")) {
            options.push("ndots:0".into());
        }
    }
    let mut out = String::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for sv in servers {
        out.push_str(&format!("nameserver {sv}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// Docker's rule for container names.
fn check_name(name: &str) -> Result<()> {
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        bail!("invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    Ok(())
}

/// Lay `b`'s fields over `a`'s, objects field by field.
fn overlay(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() {
                    continue;
                }
                overlay(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}
