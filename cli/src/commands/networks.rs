//! `network create/ls/inspect/rm/prune/connect/disconnect`.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use strata::containers::Engine;
use strata::filters::Filters;
use strata::format::{Format, Template, write_docs, write_rows};
use strata::network::networks::{CreateOptions, Network};

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Create a bridge network whose containers find each other by name.
    Create {
        /// bridge (the only driver).
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// CIDR (default: the next free /24 of 10.89.0.0/16).
        #[arg(long)]
        subnet: Option<String>,
        /// The host's address on it (default: the subnet's first).
        #[arg(long)]
        gateway: Option<String>,
        /// No route out: containers reach each other only.
        #[arg(long)]
        internal: bool,
        #[arg(long)]
        label: Vec<String>,
        /// Driver options (com.docker.network.bridge.name=NAME).
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        /// No DNS server on it (podman's --disable-dns).
        #[arg(long = "disable-dns")]
        disable_dns: bool,
        /// Accepted for Docker scripts: every network can be attached to.
        #[arg(long)]
        attachable: bool,
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, default_value = "table")]
        format: String,
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// name=, id=, label=, driver=, type=custom|builtin, dangling= (repeatable).
        #[arg(short, long)]
        filter: Vec<String>,
    },
    /// Show networks as JSON, or through a Go template.
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks (not one a running container is on).
    #[command(alias = "remove")]
    Rm {
        /// Accepted for Docker scripts.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove the networks no container is on.
    Prune {
        /// Accepted for Docker scripts (nothing is asked).
        #[arg(short, long)]
        force: bool,
        /// label=, until= (repeatable).
        #[arg(long)]
        filter: Vec<String>,
    },
    /// Put a container on a network (at once when it runs).
    Connect {
        #[arg(long)]
        alias: Vec<String>,
        #[arg(long)]
        ip: Option<String>,
        network: String,
        container: String,
    },
    /// Take a container off a network.
    Disconnect {
        /// Accepted for Docker scripts.
        #[arg(short, long)]
        force: bool,
        network: String,
        container: String,
    },
}

fn key_values(args: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for a in args {
        let (k, v) = a.split_once('=').unwrap_or((a, ""));
        if k.is_empty() {
            bail!("invalid {what} {a:?}: want KEY=VALUE");
        }
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

/// Docker's `network inspect` document.
fn inspect(engine: &Engine, n: &Network) -> Result<Value> {
    let mut containers = serde_json::Map::new();
    let (users, _) = engine.network_users(n)?;
    for id in &users {
        let dir = engine.dir(id);
        let (Ok(rec), Ok(st)) = (dir.record(), dir.state()) else {
            continue;
        };
        let Some(w) = st.networks.iter().find(|w| w.network == n.name) else {
            continue;
        };
        containers.insert(
            id.clone(),
            json!({
                "Name": rec.name,
                "EndpointID": id,
                "MacAddress": w.mac,
                "IPv4Address": format!("{}/{}", w.ip, w.prefix),
                "IPv6Address": "",
            }),
        );
    }
    let config: Vec<Value> = if n.subnet.is_empty() {
        Vec::new()
    } else {
        vec![json!({"Subnet": n.subnet, "Gateway": n.gateway})]
    };
    let mut options = n.options.clone();
    if n.driver == "bridge" {
        options.insert("com.docker.network.bridge.name".into(), n.bridge.clone());
    }
    Ok(json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": n.labels,
        "DNSEnabled": n.dns,
    }))
}

/// Remove the user networks no container is on that `pick` chooses;
/// their names.
pub(crate) fn prune_unused(
    engine: &Engine,
    pick: &dyn Fn(&Network) -> bool,
) -> Result<Vec<String>> {
    let mut gone = Vec::new();
    for n in engine.networks().list()? {
        if pick(&n) && engine.network_users(&n)?.0.is_empty() {
            engine.remove_network(&n)?;
            gone.push(n.name);
        }
    }
    Ok(gone)
}

pub fn run(cmd: NetworkCmd, engine: &Engine) -> Result<i32> {
    let nets = engine.networks();
    let mut out = std::io::stdout().lock();
    match cmd {
        NetworkCmd::Create {
            driver,
            subnet,
            gateway,
            internal,
            label,
            opt,
            disable_dns,
            attachable: _,
            name,
        } => {
            if driver != "bridge" {
                bail!("plugin \"{driver}\" not found: only the bridge driver is supported");
            }
            let n = nets.create(&CreateOptions {
                name,
                subnet,
                gateway,
                internal,
                labels: key_values(&label, "label")?,
                options: key_values(&opt, "option")?,
                disable_dns,
            })?;
            strata::events::record(
                &engine.root,
                "network",
                "create",
                &n.id,
                &[("name", &n.name), ("type", &n.driver)],
            );
            writeln!(out, "{}", n.id)?;
            Ok(0)
        }
        NetworkCmd::Ls {
            quiet,
            format,
            no_trunc,
            filter,
        } => {
            let filters = Filters::parse(
                &filter,
                &["name", "id", "label", "driver", "type", "dangling"],
            )?;
            let format = Format::parse(&format);
            if let Format::Template { text, .. } = &format {
                Template::new(text)?;
            }
            let dangling = filters.bool_value("dangling")?;
            let mut rows = Vec::new();
            for n in nets.all()? {
                let kind = if n.is_built_in() { "builtin" } else { "custom" };
                let used = || engine.network_users(&n).is_ok_and(|(u, _)| !u.is_empty());
                let keep = filters.any("name", |v| n.name.contains(v))
                    && filters.any("id", |v| n.id.starts_with(v))
                    && filters.any("driver", |v| v == n.driver)
                    && filters.any("type", |v| v == kind)
                    && filters.labels_match(&n.labels)
                    && dangling.is_none_or(|d| !n.is_built_in() && d != used());
                if !keep {
                    continue;
                }
                let id = if no_trunc {
                    n.id.clone()
                } else {
                    n.id.get(..12).unwrap_or(&n.id).to_string()
                };
                rows.push(json!({
                    "ID": id,
                    "Name": n.name,
                    "Driver": n.driver,
                    "Scope": "local",
                    "IPv6": "false",
                    "Internal": n.internal.to_string(),
                    "Labels": n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                    "CreatedAt": n.created,
                }));
            }
            if quiet {
                for r in &rows {
                    writeln!(out, "{}", r["ID"].as_str().unwrap_or_default())?;
                }
                return Ok(0);
            }
            let headers: &[(&str, &str)] = &[
                ("ID", "NETWORK ID"),
                ("Name", "NAME"),
                ("Driver", "DRIVER"),
                ("Scope", "SCOPE"),
                ("IPv6", "IPV6"),
                ("Internal", "INTERNAL"),
                ("Labels", "LABELS"),
                ("CreatedAt", "CREATED AT"),
            ];
            let table = |r: &Value| {
                ["ID", "Name", "Driver", "Scope"]
                    .map(|k| r[k].as_str().unwrap_or_default().to_string())
                    .to_vec()
            };
            let headers = if format == Format::Table {
                &headers[..4]
            } else {
                headers
            };
            write_rows(&mut out, &format, &rows, headers, &table)?;
            Ok(0)
        }
        NetworkCmd::Inspect { format, networks } => {
            let mut docs = Vec::new();
            let mut missing = 0;
            for key in &networks {
                match nets.get(key).and_then(|n| inspect(engine, &n)) {
                    Ok(d) => docs.push(d),
                    Err(e) => {
                        eprintln!("Error: {e:#}");
                        missing += 1;
                    }
                }
            }
            write_docs(&mut out, format.as_deref(), &docs)?;
            Ok(if missing > 0 { 1 } else { 0 })
        }
        NetworkCmd::Rm { networks, .. } => {
            let mut failed = 0;
            for key in &networks {
                let r = nets
                    .get(key)
                    .map_err(|_| anyhow::anyhow!("No such network: {key}"))
                    .and_then(|n| engine.remove_network(&n));
                match r {
                    Ok(()) => writeln!(out, "{key}")?,
                    Err(e) => {
                        eprintln!("Error: {e:#}");
                        failed += 1;
                    }
                }
            }
            Ok(if failed > 0 { 1 } else { 0 })
        }
        NetworkCmd::Prune { filter, .. } => {
            let filters = Filters::parse(&filter, &["label", "until"])?;
            let until = match filters.values("until").first() {
                Some(u) => Some(strata::containers::logs::parse_time(u, chrono::Utc::now())?),
                None => None,
            };
            let gone = prune_unused(engine, &|n| {
                until.is_none_or(|t| {
                    chrono::DateTime::parse_from_rfc3339(&n.created)
                        .is_ok_and(|c| c.timestamp() < t.timestamp())
                }) && filters.labels_match(&n.labels)
            })?;
            if !gone.is_empty() {
                writeln!(out, "Deleted Networks:")?;
                for g in gone {
                    writeln!(out, "{g}")?;
                }
            }
            Ok(0)
        }
        NetworkCmd::Connect {
            alias,
            ip,
            network,
            container,
        } => {
            let n = nets.get(&network)?;
            engine.connect(&container, &n, &alias, ip.as_deref())?;
            Ok(0)
        }
        NetworkCmd::Disconnect {
            network, container, ..
        } => {
            let n = nets.get(&network)?;
            engine.disconnect(&container, &n)?;
            Ok(0)
        }
    }
}
