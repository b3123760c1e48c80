//! `commit` and `history`.

use std::io::Write;

use anyhow::{Context, Result};
use serde_json::json;
use strata::containers::Engine;
use strata::containers::changes::CommitOptions;
use strata::images::{human_age, human_size};
use strata_imagestore::Store;

use super::{Cmd, ImageCmd};

#[derive(clap::Args)]
pub struct CommitArgs {
    /// Dockerfile instructions to apply to the config (CMD, ENV, ...).
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Commit message (the history comment).
    #[arg(short, long, default_value = "")]
    pub message: String,
    /// Author.
    #[arg(short, long, default_value = "")]
    pub author: String,
    /// Pause the container while committing (the default, as Docker's).
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
    /// oci or docker.
    #[arg(long, default_value = "oci")]
    pub format: String,
    pub container: String,
    pub repository: Option<String>,
}

pub fn commit(engine: &mut Engine, a: &CommitArgs) -> Result<String> {
    let row = engine.find(&a.container)?;
    let rec = engine.dir(&row.id).record()?;
    let o = CommitOptions {
        name: a.repository.clone(),
        changes: a.change.clone(),
        message: a.message.clone(),
        author: a.author.clone(),
        pause: a.pause,
        format: a.format.parse()?,
        created_by: rec.command.join(" "),
    };
    Ok(engine.commit(&a.container, &o)?.to_string())
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    /// Do not truncate the output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only the image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print sizes and dates in a human way (the default).
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub human: bool,
    /// `table` (default), `json` (one object per line) or a Go template.
    #[arg(long, default_value = "table")]
    pub format: String,
    pub image: String,
}

/// `history`: newest first, the image id on the newest row only (as for
/// any image whose intermediate images are not kept), `<missing>` below.
pub fn history(store: &Store, a: &HistoryArgs, out: &mut impl Write) -> Result<()> {
    let id = store.resolve(&a.image)?;
    let config: serde_json::Value = serde_json::from_slice(&store.content.read(&id)?)?;
    let layers = store.layers(&id)?;
    // A layer's size is its blob's, as `docker history` shows.
    let sizes: Vec<u64> = layers.iter().map(|l| layer_size(store, &l.blob)).collect();
    let hist: Vec<serde_json::Value> = config["history"].as_array().cloned().unwrap_or_default();
    let mut li = 0;
    let mut rows = Vec::new();
    for h in &hist {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        let size = if empty {
            0
        } else {
            let s = sizes.get(li).copied().unwrap_or(0);
            li += 1;
            s
        };
        rows.push((h.clone(), size));
    }
    rows.reverse();
    let docs: Vec<serde_json::Value> = rows
        .iter()
        .enumerate()
        .map(|(i, (h, size))| {
            json!({
                "ID": if i == 0 { id.to_string() } else { "<missing>".into() },
                "CreatedAt": h["created"],
                "CreatedSince": human_age(h["created"].as_str()),
                "CreatedBy": h["created_by"],
                "Size": human_size(*size),
                "Comment": h["comment"].as_str().unwrap_or(""),
            })
        })
        .collect();
    if a.format == "json" {
        for v in &docs {
            writeln!(out, "{v}")?;
        }
        return Ok(());
    }
    let format = strata::format::Format::parse(&a.format);
    if let strata::format::Format::Template { .. } = &format {
        // Go templates over Docker's fields (`{{.CreatedBy}} {{.Size}}`).
        let headers: &[(&str, &str)] = &[
            ("ID", "IMAGE"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("CreatedBy", "CREATED BY"),
            ("Size", "SIZE"),
            ("Comment", "COMMENT"),
        ];
        // The id short, as the table shows it, unless --no-trunc.
        let mut docs = docs;
        if !a.no_trunc
            && let Some(first) = docs.first_mut()
        {
            first["ID"] = json!(id.short().to_string());
        }
        strata::format::write_rows(out, &format, &docs, headers, &|_| Vec::new())?;
        return Ok(());
    }
    if a.quiet {
        for (i, _) in rows.iter().enumerate() {
            writeln!(
                out,
                "{}",
                if i == 0 {
                    id.short().to_string()
                } else {
                    "<missing>".into()
                }
            )?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<12}   {:<15}   {:<45}   {:<9}   COMMENT",
        "IMAGE", "CREATED", "CREATED BY", "SIZE"
    )?;
    for (i, (h, size)) in rows.iter().enumerate() {
        let img = if i == 0 {
            if a.no_trunc {
                id.to_string()
            } else {
                id.short().to_string()
            }
        } else {
            "<missing>".to_string()
        };
        let by = h["created_by"].as_str().unwrap_or("").replace('\t', " ");
        let by = if a.no_trunc || by.chars().count() <= 45 {
            by
        } else {
            format!("{}…", by.chars().take(44).collect::<String>())
        };
        let created = if a.human {
            human_age(h["created"].as_str())
        } else {
            h["created"].as_str().unwrap_or("").to_string()
        };
        let size = if a.human {
            human_size(*size)
        } else {
            size.to_string()
        };
        writeln!(
            out,
            "{img:<12}   {created:<15}   {by:<45}   {size:<9}   {}",
            h["comment"].as_str().unwrap_or("")
        )?;
    }
    Ok(())
}

fn layer_size(store: &Store, blob: &strata_imagestore::Digest) -> u64 {
    store.content.size(blob).unwrap_or(0)
}

/// Run an image verb (the ones that need no container engine).
pub(crate) fn run(cmd: Cmd, store: &mut Store) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    let root = store.root().to_path_buf();
    let event = |action: &str, id: &str, name: &str| {
        strata::events::record(&root, "image", action, id, &[("name", name)]);
    };
    match cmd {
        Cmd::Import { tarball, name } => {
            let id = if tarball == "-" {
                store.import(std::io::stdin(), name.as_deref())?
            } else {
                let f = std::fs::File::open(&tarball).with_context(|| format!("open {tarball}"))?;
                store.import(f, name.as_deref())?
            };
            event("import", &id.to_string(), name.as_deref().unwrap_or(""));
            writeln!(out, "{id}")?;
        }
        Cmd::Load { input, quiet } => {
            let loaded = match input {
                Some(p) => store.load(&p)?,
                None => {
                    // From stdin: spool to the store's tmp, then load.
                    let tmp = store
                        .root()
                        .join("tmp")
                        .join(format!("stdin-{}.tar", std::process::id()));
                    let mut f = std::fs::File::create(&tmp).context("spool stdin")?;
                    std::io::copy(&mut std::io::stdin().lock(), &mut f).context("read stdin")?;
                    let r = store.load(&tmp);
                    let _ = std::fs::remove_file(&tmp);
                    r?
                }
            };
            for (id, names) in loaded {
                event("load", &id.to_string(), &names.join(","));
                if quiet {
                    writeln!(out, "{id}")?;
                } else if names.is_empty() {
                    writeln!(out, "Loaded image ID: {id}")?;
                } else {
                    for n in names {
                        writeln!(out, "Loaded image: {n}")?;
                    }
                }
            }
        }
        Cmd::Images(a) | Cmd::Image(ImageCmd::Ls(a)) => {
            strata::images::list(store, a.quiet, &a.format, &a.filter, &mut out)?
        }
        Cmd::Tag { source, target } | Cmd::Image(ImageCmd::Tag { source, target }) => {
            store.tag(&source, &target)?;
            let id = store.resolve(&target)?;
            event("tag", &id.to_string(), &target);
        }
        Cmd::Rmi { force, images } | Cmd::Image(ImageCmd::Rm { force, images }) => {
            rmi(store, &images, force, &mut out)?
        }
        Cmd::Image(ImageCmd::Inspect {
            images: names,
            format,
        }) => strata::images::inspect(store, &names, format.as_deref(), &mut out)?,
        Cmd::Image(ImageCmd::Prune) => {
            for id in store.prune(&|_| false)? {
                writeln!(out, "Deleted: {id}")?;
            }
        }
        Cmd::Image(ImageCmd::Mount { image }) => {
            let id = store.resolve(&image)?;
            writeln!(out, "{}", store.mount_image(&id)?.display())?;
        }
        Cmd::Image(ImageCmd::Unmount { image }) => {
            let id = store.resolve(&image)?;
            writeln!(out, "{}", store.unmount_image(&id)?.display())?;
        }
        Cmd::Save {
            output,
            format,
            images: names,
        } => {
            let format: strata_imagestore::archive::Format = format.parse()?;
            strata_imagestore::archive::save(store, &names, format, &output)?;
            for n in &names {
                if let Ok(id) = store.resolve(n) {
                    event("save", &id.to_string(), n);
                }
            }
        }
        Cmd::History(a) | Cmd::Image(ImageCmd::History(a)) => history(store, &a, &mut out)?,
        _ => unreachable!("not an image verb"),
    }
    Ok(0)
}

/// The events of an image removal, from the store's lines
/// ("Untagged: NAME", "Deleted: ID"); `what` is the image as named.
pub(crate) fn removal_events(root: &std::path::Path, what: &str, lines: &[String]) {
    for l in lines {
        if let Some(name) = l.strip_prefix("Untagged: ") {
            strata::events::record(root, "image", "untag", what, &[("name", name)]);
        } else if let Some(id) = l.strip_prefix("Deleted: ") {
            strata::events::record(root, "image", "delete", id, &[("name", what)]);
        }
    }
}

fn rmi(store: &mut Store, names: &[String], force: bool, out: &mut impl Write) -> Result<()> {
    let mut failed = None;
    for n in names {
        match store.remove(n, force, &|_| false) {
            Ok(lines) => {
                removal_events(store.root(), n, &lines);
                for l in lines {
                    writeln!(out, "{l}")?;
                }
            }
            Err(e) => {
                eprintln!("Error: {e}");
                failed = Some(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
