//! `volume create/ls/inspect/rm/prune`.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::json;
use strata::containers::Engine;
use strata::filters::Filters;
use strata::format::{Format, Template, write_docs, write_rows};
use strata::images::human_size;
use strata::volumes::{Meta, Volumes};

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume (a random name when none is given).
    Create {
        /// Accepted: the local driver is the only one.
        #[arg(short, long, default_value = "local")]
        driver: String,
        #[arg(long)]
        label: Vec<String>,
        /// Driver options: type=tmpfs|none, o=OPTIONS, device=PATH.
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        name: Option<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, default_value = "table")]
        format: String,
        /// dangling=, name=, label=, driver= (repeatable).
        #[arg(short, long)]
        filter: Vec<String>,
    },
    /// Show volumes as JSON, or through a Go template.
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes (not one a container uses).
    #[command(alias = "remove")]
    Rm {
        /// Accepted for Docker scripts: a volume in use is still refused.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove the volumes no container uses.
    Prune {
        /// Accepted for Docker scripts (nothing is asked).
        #[arg(short, long)]
        force: bool,
        /// All unused volumes, named ones too (the default here, as
        /// podman's and Docker 20.10's prune).
        #[arg(short, long)]
        all: bool,
        /// label= (repeatable).
        #[arg(long)]
        filter: Vec<String>,
    },
}

/// Which containers use each volume (by name), stopped ones too.
pub(crate) fn users(engine: &Engine) -> Result<BTreeMap<String, Vec<String>>> {
    let mut by_volume: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in engine.store.containers()? {
        let Ok(rec) = engine.dir(&c.id).record() else {
            continue;
        };
        for v in rec.volumes.iter().chain(&rec.named_volumes) {
            by_volume.entry(v.clone()).or_default().push(c.id.clone());
        }
    }
    Ok(by_volume)
}

/// Remove every volume no container uses and `keep` picks; the names
/// removed and the bytes they held.
pub(crate) fn prune_unused(
    engine: &Engine,
    pick: &dyn Fn(&Meta) -> bool,
) -> Result<(Vec<String>, u64)> {
    let vols = Volumes::new(&engine.root);
    let used = users(engine)?;
    let mut gone = Vec::new();
    let mut freed = 0;
    for name in vols.list()? {
        if used.contains_key(&name) || !pick(&vols.meta(&name)?) {
            continue;
        }
        let size = vols.size(&name);
        vols.remove(&name)?;
        strata::events::record(
            &engine.root,
            "volume",
            "destroy",
            &name,
            &[("driver", "local")],
        );
        freed += size;
        gone.push(name);
    }
    Ok((gone, freed))
}

fn key_values(args: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            bail!("invalid {what} {a:?}: want KEY=VALUE");
        };
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

pub fn run(cmd: VolumeCmd, engine: &Engine) -> Result<i32> {
    let vols = Volumes::new(&engine.root);
    let mut out = std::io::stdout().lock();
    match cmd {
        VolumeCmd::Create {
            driver,
            label,
            opt,
            name,
        } => {
            if driver != "local" {
                bail!("create: volume driver {driver:?} is not supported (only local)");
            }
            let labels = key_values(&label, "label")?;
            let options = key_values(&opt, "option")?;
            let name = match name {
                Some(n) => n,
                None => strata::containers::record::new_id()?,
            };
            let meta = Meta {
                created: chrono::Utc::now().to_rfc3339(),
                labels,
                options,
                anonymous: false,
            };
            let existed = vols.exists(&name);
            vols.create(&name, meta)?;
            if !existed {
                strata::events::record(
                    &engine.root,
                    "volume",
                    "create",
                    &name,
                    &[("driver", "local")],
                );
            }
            writeln!(out, "{name}")?;
            Ok(0)
        }
        VolumeCmd::Ls {
            quiet,
            format,
            filter,
        } => {
            let filters = Filters::parse(&filter, &["dangling", "name", "label", "driver"])?;
            let format = Format::parse(&format);
            if let Format::Template { text, .. } = &format {
                Template::new(text)?;
            }
            let used = users(engine)?;
            let dangling = filters.bool_value("dangling")?;
            let mut rows = Vec::new();
            for name in vols.list()? {
                let meta = vols.meta(&name)?;
                let keep = dangling.is_none_or(|d| d != used.contains_key(&name))
                    && filters.any("name", |v| name.contains(v))
                    && filters.any("driver", |v| v == "local")
                    && filters.labels_match(&meta.labels);
                if keep {
                    let mut doc = vols.inspect(&name)?;
                    doc["Labels"] = json!(
                        meta.labels
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                    doc["Links"] = json!(used.get(&name).map_or(0, Vec::len));
                    rows.push(doc);
                }
            }
            if quiet {
                for r in &rows {
                    writeln!(out, "{}", r["Name"].as_str().unwrap_or_default())?;
                }
                return Ok(0);
            }
            if format == Format::Json {
                let docs: Vec<_> = rows
                    .iter()
                    .map(|r| vols.inspect(r["Name"].as_str().unwrap_or_default()))
                    .collect::<Result<_>>()?;
                writeln!(out, "{}", serde_json::to_string_pretty(&docs)?)?;
                return Ok(0);
            }
            let headers: &[(&str, &str)] = &[
                ("Driver", "DRIVER"),
                ("Name", "VOLUME NAME"),
                ("Mountpoint", "MOUNTPOINT"),
                ("Labels", "LABELS"),
                ("Scope", "SCOPE"),
                ("Links", "LINKS"),
                ("CreatedAt", "CREATED"),
            ];
            let table = |r: &serde_json::Value| {
                ["Driver", "Name"]
                    .map(|k| r[k].as_str().unwrap_or_default().to_string())
                    .to_vec()
            };
            let headers = if format == Format::Table {
                &headers[..2]
            } else {
                headers
            };
            write_rows(&mut out, &format, &rows, headers, &table)?;
            Ok(0)
        }
        VolumeCmd::Inspect { format, names } => {
            let mut docs = Vec::new();
            let mut missing = 0;
            for n in &names {
                match vols.inspect(n) {
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
        VolumeCmd::Rm { names, .. } => {
            let used = users(engine)?;
            let mut failed = 0;
            for n in &names {
                let r = match used.get(n) {
                    Some(ids) => Err(anyhow::anyhow!(
                        "remove {n}: volume is in use - [{}]",
                        ids.join(", ")
                    )),
                    None => vols.remove(n).map(|_| {
                        strata::events::record(
                            &engine.root,
                            "volume",
                            "destroy",
                            n,
                            &[("driver", "local")],
                        )
                    }),
                };
                match r {
                    Ok(()) => writeln!(out, "{n}")?,
                    Err(e) => {
                        eprintln!("Error: {e:#}");
                        failed += 1;
                    }
                }
            }
            Ok(match failed {
                0 => 0,
                f if f == names.len() && names.len() == 1 => 125,
                _ => 1,
            })
        }
        VolumeCmd::Prune { filter, .. } => {
            let filters = Filters::parse(&filter, &["label"])?;
            let (gone, freed) = prune_unused(engine, &|m| filters.labels_match(&m.labels))?;
            writeln!(out, "Deleted Volumes:")?;
            for name in gone {
                writeln!(out, "{name}")?;
            }
            writeln!(out, "\nTotal reclaimed space: {}", human_size(freed))?;
            Ok(0)
        }
    }
}
