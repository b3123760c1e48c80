//! `commit` and `history`.

use std::io::Write;

use anyhow::Result;
use serde_json::json;
use strata::containers::Engine;
use strata::containers::changes::CommitOptions;
use strata::images::{human_age, human_size};
use strata_imagestore::Store;

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
    /// `table` (default) or `json` (one object per line).
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
    if a.format == "json" {
        for (i, (h, size)) in rows.iter().enumerate() {
            let v = json!({
                "ID": if i == 0 { id.to_string() } else { "<missing>".into() },
                "CreatedAt": h["created"],
                "CreatedSince": human_age(h["created"].as_str()),
                "CreatedBy": h["created_by"],
                "Size": human_size(*size),
                "Comment": h["comment"].as_str().unwrap_or(""),
            });
            writeln!(out, "{v}")?;
        }
        return Ok(());
    }
    if a.format != "table" {
        anyhow::bail!("unsupported --format {:?}: table or json", a.format);
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
