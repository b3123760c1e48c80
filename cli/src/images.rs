//! Image verbs: output formatting on top of the image store.

use std::io::Write;

use anyhow::{Context, Result};
use serde_json::json;
use strata_imagestore::Store;
use strata_imagestore::reference::Reference;

/// Human size as docker prints it (1000-based, 3 significant digits).
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{:.3}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[i]
    }
}

pub fn human_age(created: Option<&str>) -> String {
    let Some(t) = created.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()) else {
        return "N/A".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    let (n, unit) = match secs {
        s if s < 60 => (s, "second"),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86400 => (s / 3600, "hour"),
        s if s < 86400 * 30 => (s / 86400, "day"),
        s if s < 86400 * 365 => (s / (86400 * 30), "month"),
        s => (s / (86400 * 365), "year"),
    };
    if secs < 2 {
        "Less than a second ago".into()
    } else {
        format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
    }
}

pub fn list(store: &Store, quiet: bool, format: &str, out: &mut impl Write) -> Result<()> {
    let images = store.images()?;
    if quiet {
        for i in &images {
            writeln!(out, "{}", i.id.short())?;
        }
        return Ok(());
    }
    if format == "json" {
        let arr: Vec<serde_json::Value> = images
            .iter()
            .map(|i| {
                let created = i
                    .created
                    .as_deref()
                    .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                    .map(|t| t.timestamp())
                    .unwrap_or(0);
                json!({"Id": i.id.hex(), "Names": i.names, "Digest": i.manifest.to_string(), "Size": i.size, "Created": created})
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&arr)?)?;
        return Ok(());
    }
    anyhow::ensure!(
        format == "table",
        "unknown --format {format:?} (want table or json)"
    );
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    for i in &images {
        let age = human_age(i.created.as_deref());
        let size = human_size(i.size);
        if i.names.is_empty() {
            rows.push([
                "<none>".into(),
                "<none>".into(),
                i.id.short().into(),
                age.clone(),
                size.clone(),
            ]);
        }
        for n in &i.names {
            let r = Reference::parse(n).ok();
            let repo = r
                .as_ref()
                .map(|r| r.repository())
                .unwrap_or_else(|| n.clone());
            let tag = r.and_then(|r| r.tag).unwrap_or_else(|| "<none>".into());
            rows.push([repo, tag, i.id.short().into(), age.clone(), size.clone()]);
        }
    }
    let mut w = [0usize; 5];
    for r in &rows {
        for (k, c) in r.iter().enumerate() {
            w[k] = w[k].max(c.len());
        }
    }
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(k, c)| format!("{c:<width$}", width = w[k]))
            .collect();
        writeln!(out, "{}", line.join("   ").trim_end())?;
    }
    Ok(())
}

pub fn inspect(store: &Store, names: &[String], out: &mut impl Write) -> Result<()> {
    let mut arr = Vec::new();
    for n in names {
        let id = store.resolve(n)?;
        arr.push(store.inspect(&id).with_context(|| format!("inspect {n}"))?);
    }
    writeln!(out, "{}", serde_json::to_string_pretty(&arr)?)?;
    Ok(())
}
