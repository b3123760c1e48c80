//! The event log, daemonless as podman's file logger: every command that
//! changes a container, image or volume appends one JSON line (Docker's
//! event document) to `ROOT/events.log`; `strata events` reads it back and
//! follows it.
//!
//! A line is written with one `write(2)` on an `O_APPEND` file, so lines
//! of concurrent commands never interleave. Past 4 MiB the older half is
//! dropped (the newer half is copied to a temp file and renamed over).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Value, json};

const MAX_BYTES: u64 = 4 << 20;

pub fn log_path(root: &Path) -> PathBuf {
    root.join("events.log")
}

/// Docker's document for one event: `kind` container|image|volume,
/// `action` create|start|die|..., `id` and its attributes (name, image,
/// exitCode, ...).
pub fn document(
    kind: &str,
    action: &str,
    id: &str,
    attributes: &BTreeMap<String, String>,
) -> Value {
    let now = chrono::Utc::now();
    let nanos = now.timestamp_nanos_opt().unwrap_or(0);
    let mut doc = json!({
        "Type": kind,
        "Action": action,
        "Actor": {"ID": id, "Attributes": attributes},
        "scope": "local",
        "time": now.timestamp(),
        "timeNano": nanos,
    });
    // Docker's older top-level fields, which scripts still read.
    if kind == "container" || kind == "image" {
        doc["status"] = json!(action);
        doc["id"] = json!(id);
        if let Some(from) = attributes.get("image") {
            doc["from"] = json!(from);
        }
    }
    doc
}

/// Append one event. A failure to log is reported, never fatal to the
/// command that made the change.
pub fn record(root: &Path, kind: &str, action: &str, id: &str, attributes: &[(&str, &str)]) {
    let attrs: BTreeMap<String, String> = attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let doc = document(kind, action, id, &attrs);
    if let Err(e) = append(root, &doc) {
        tracing::warn!("event log: {e:#}");
    }
}

fn append(root: &Path, doc: &Value) -> Result<()> {
    let path = log_path(root);
    let mut line = serde_json::to_vec(doc)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    f.write_all(&line)
        .with_context(|| format!("write {}", path.display()))?;
    if f.metadata().map(|m| m.len()).unwrap_or(0) > MAX_BYTES {
        trim(&path)?;
    }
    Ok(())
}

/// Keep the newer half of the log, whole lines only.
fn trim(path: &Path) -> Result<()> {
    let data = std::fs::read(path)?;
    let half = data.len() / 2;
    let start = data[half..]
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| half + i + 1)
        .unwrap_or(data.len());
    let tmp = path.with_extension("log.tmp");
    std::fs::write(&tmp, &data[start..])?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The event's time in nanoseconds.
pub fn time_nanos(doc: &Value) -> i64 {
    doc["timeNano"]
        .as_i64()
        .unwrap_or_else(|| doc["time"].as_i64().unwrap_or(0) * 1_000_000_000)
}

/// Docker's one-line form:
/// `2024-01-01T10:00:00.000000000Z container start ID (image=x, name=y)`.
pub fn line(doc: &Value) -> String {
    let nanos = time_nanos(doc);
    let t = chrono::DateTime::from_timestamp(nanos / 1_000_000_000, (nanos % 1_000_000_000) as u32)
        .unwrap_or_default();
    let attrs: Vec<String> = doc["Actor"]["Attributes"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{} {} {} {} ({})",
        t.format("%Y-%m-%dT%H:%M:%S%.9fZ"),
        doc["Type"].as_str().unwrap_or_default(),
        doc["Action"].as_str().unwrap_or_default(),
        doc["Actor"]["ID"].as_str().unwrap_or_default(),
        attrs.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_append_read_back_and_trim() {
        let d = tempfile::tempdir().unwrap();
        record(
            d.path(),
            "container",
            "start",
            "abc",
            &[("name", "web"), ("image", "busybox")],
        );
        let text = std::fs::read_to_string(log_path(d.path())).unwrap();
        let doc: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(doc["Action"], "start");
        assert_eq!(doc["status"], "start");
        assert_eq!(doc["from"], "busybox");
        assert_eq!(doc["Actor"]["Attributes"]["name"], "web");
        let l = line(&doc);
        assert!(
            l.ends_with(" container start abc (image=busybox, name=web)"),
            "{l}"
        );
        // Past the cap the older half goes, and whole lines stay.
        let big = "x".repeat(1000);
        for _ in 0..5000 {
            record(d.path(), "volume", "create", &big, &[]);
        }
        let len = std::fs::metadata(log_path(d.path())).unwrap().len();
        assert!(len <= MAX_BYTES + 2000, "{len}");
        let text = std::fs::read_to_string(log_path(d.path())).unwrap();
        for l in text.lines() {
            let _: Value = serde_json::from_str(l).unwrap();
        }
    }
}
