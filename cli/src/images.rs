//! Image verbs: output formatting on top of the image store.

use std::io::Write;

use anyhow::{Context, Result};
use serde_json::json;
use strata_imagestore::Store;
use strata_imagestore::reference::Reference;

use crate::filters::glob_match;
use crate::format::Format;

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

/// The `--filter` keys `images` takes.
const IMAGE_FILTERS: &[&str] = &["dangling", "label", "reference", "before", "since"];

/// The table headers of `images` for template fields (Docker's names).
const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("Size", "SIZE"),
    ("Digest", "DIGEST"),
    ("CreatedAt", "CREATED AT"),
    ("Containers", "CONTAINERS"),
];

/// `images`: Docker's table, `--format json`, or a Go template over
/// Docker's fields (one row per name, `<none>` for an unnamed image);
/// `--filter` dangling=, label=, reference= (a glob), before=, since=.
pub fn list(
    store: &Store,
    quiet: bool,
    format: &str,
    filter: &[String],
    out: &mut impl Write,
) -> Result<()> {
    let filters = crate::filters::Filters::parse(filter, IMAGE_FILTERS)?;
    let format = Format::parse(format);
    if let Format::Template { text, .. } = &format {
        crate::format::Template::new(text)?;
    }
    let mut images = store.images()?;
    let dangling = filters.bool_value("dangling")?;
    let created_of = |name: &str| -> Result<Option<String>> {
        let id = store
            .resolve(name)
            .with_context(|| format!("filter: no such image: {name}"))?;
        Ok(images_created(store, &id))
    };
    let mut before = None;
    if let Some(b) = filters.values("before").last() {
        before = created_of(b)?;
    }
    let mut since = None;
    if let Some(s) = filters.values("since").last() {
        since = created_of(s)?;
    }
    let wants_labels = filters.has("label");
    images.retain(|i| {
        let created = i.created.as_deref().unwrap_or("");
        dangling.is_none_or(|d| d == i.names.is_empty())
            && before.as_deref().is_none_or(|b| created < b)
            && since.as_deref().is_none_or(|s| created > s)
            && filters.any("reference", |pat| {
                i.names.iter().any(|n| reference_matches(pat, n))
            })
            && (!wants_labels || filters.labels_match(&image_labels(store, i)))
    });
    if quiet {
        for i in &images {
            writeln!(out, "{}", i.id.short())?;
        }
        return Ok(());
    }
    if format == Format::Json {
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
    let mut rows = Vec::new();
    for i in &images {
        let created_at = i
            .created
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|t| {
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%d %H:%M:%S +0000 UTC")
                    .to_string()
            })
            .unwrap_or_default();
        let row = |repo: String, tag: String| {
            json!({
                "Repository": repo, "Tag": tag, "ID": i.id.short(),
                "CreatedSince": human_age(i.created.as_deref()), "CreatedAt": created_at,
                "Size": human_size(i.size), "Digest": i.manifest.to_string(), "Containers": "N/A",
            })
        };
        if i.names.is_empty() {
            rows.push(row("<none>".into(), "<none>".into()));
        }
        for n in &i.names {
            // reference= picks names, not just images.
            if !filters.any("reference", |pat| reference_matches(pat, n)) {
                continue;
            }
            let r = Reference::parse(n).ok();
            let repo = r
                .as_ref()
                .map(|r| r.repository())
                .unwrap_or_else(|| n.clone());
            let tag = r.and_then(|r| r.tag).unwrap_or_else(|| "<none>".into());
            rows.push(row(repo, tag));
        }
    }
    let table = |r: &serde_json::Value| {
        ["Repository", "Tag", "ID", "CreatedSince", "Size"]
            .map(|k| r[k].as_str().unwrap_or_default().to_string())
            .to_vec()
    };
    let headers = if format == Format::Table {
        &IMAGE_HEADERS[..5]
    } else {
        IMAGE_HEADERS
    };
    crate::format::write_rows(out, &format, &rows, headers, &table)?;
    Ok(())
}

/// `reference=PATTERN`: a glob on the full name (`busybox:latest`) or on
/// the repository alone, as Docker matches (its familiar short form too).
fn reference_matches(pattern: &str, name: &str) -> bool {
    let Ok(r) = Reference::parse(name) else {
        return glob_match(pattern, name);
    };
    let repo = r.repository();
    let short = ["docker.io/library/", "localhost/"]
        .iter()
        .find_map(|p| repo.strip_prefix(p))
        .unwrap_or(&repo)
        .to_string();
    let with_tag = |repo: &str| match &r.tag {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    [
        repo.clone(),
        with_tag(&repo),
        short.clone(),
        with_tag(&short),
        name.to_string(),
    ]
    .iter()
    .any(|n| glob_match(pattern, n))
}

fn images_created(store: &Store, id: &strata_imagestore::digest::Digest) -> Option<String> {
    store
        .images()
        .ok()?
        .into_iter()
        .find(|i| &i.id == id)
        .and_then(|i| i.created)
}

fn image_labels(
    store: &Store,
    i: &strata_imagestore::metadata::ImageRow,
) -> std::collections::BTreeMap<String, String> {
    store
        .inspect(&i.id)
        .ok()
        .and_then(|doc| doc["Config"]["Labels"].as_object().cloned())
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// `image inspect`: a JSON array, or one template rendering per image.
pub fn inspect(
    store: &Store,
    names: &[String],
    format: Option<&str>,
    out: &mut impl Write,
) -> Result<()> {
    let template = match format.map(Format::parse) {
        Some(Format::Template { text, .. }) => Some(crate::format::Template::new(&text)?),
        _ => None,
    };
    let mut arr = Vec::new();
    for n in names {
        let id = store.resolve(n)?;
        arr.push(store.inspect(&id).with_context(|| format!("inspect {n}"))?);
    }
    match template {
        Some(t) => {
            for doc in &arr {
                writeln!(out, "{}", t.render(doc)?)?;
            }
        }
        None => writeln!(out, "{}", serde_json::to_string_pretty(&arr)?)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filter_matches_familiar_and_full_names() {
        assert!(reference_matches("app*", "localhost/app:1"));
        assert!(reference_matches("app:1", "localhost/app:1"));
        assert!(reference_matches("localhost/app:*", "localhost/app:1"));
        assert!(reference_matches(
            "busybox",
            "docker.io/library/busybox:latest"
        ));
        assert!(!reference_matches("app:2", "localhost/app:1"));
        assert!(!reference_matches("other*", "localhost/app:1"));
    }
}
