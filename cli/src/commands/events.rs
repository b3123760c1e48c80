//! `events` (and `system events`): the event log, filtered and formatted,
//! then followed until `--until` passes (or forever, as Docker's).

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};

use anyhow::{Context, Result};
use serde_json::Value;
use strata::events::{line, log_path, time_nanos};
use strata::filters::Filters;
use strata::format::{Format, Template};

#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// Events since a time: RFC 3339, Unix seconds, or a duration (10m).
    #[arg(long)]
    pub since: Option<String>,
    /// Events until a time (same forms); without it, follow.
    #[arg(long)]
    pub until: Option<String>,
    /// type=, event=, container=, image=, volume= (repeatable).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// json, or a Go template (`{{.Action}} {{.Actor.Attributes.name}}`).
    #[arg(long)]
    pub format: Option<String>,
}

fn wanted(f: &Filters, ev: &Value) -> bool {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let kind = s(&ev["Type"]);
    let id = s(&ev["Actor"]["ID"]);
    let name = s(&ev["Actor"]["Attributes"]["name"]);
    let image = s(&ev["Actor"]["Attributes"]["image"]);
    f.any("type", |v| v == kind)
        && f.any("event", |v| v == ev["Action"])
        && f.any("container", |v| {
            kind == "container" && (v == name || id.starts_with(v))
        })
        && f.any("image", |v| {
            (kind == "container" && v == image)
                || (kind == "image" && (v == name || id.starts_with(v)))
        })
        && f.any("volume", |v| kind == "volume" && v == id)
}

pub fn run(root: &std::path::Path, a: &EventsArgs) -> Result<i32> {
    let filters = Filters::parse(
        &a.filter,
        &["type", "event", "container", "image", "volume"],
    )?;
    let now = chrono::Utc::now();
    let at = |t: &Option<String>| -> Result<Option<i64>> {
        t.as_deref()
            .map(|t| {
                strata::containers::logs::parse_time(t, now)
                    .map(|t| t.timestamp_nanos_opt().unwrap_or(0))
            })
            .transpose()
    };
    let since = at(&a.since)?;
    let until = at(&a.until)?;
    let format = a.format.as_deref().map(Format::parse);
    let template = match &format {
        Some(Format::Template { text, .. }) => Some(Template::new(text)?),
        _ => None,
    };
    let mut out = std::io::stdout().lock();
    let mut show = |ev: &Value| -> Result<()> {
        let text = match (&template, &format) {
            (Some(t), _) => t.render(ev)?,
            (None, Some(Format::Json)) => serde_json::to_string(ev)?,
            _ => line(ev),
        };
        writeln!(out, "{text}")?;
        out.flush()?;
        Ok(())
    };
    let path = log_path(root);
    // Without --since (and following), only what happens from now on.
    let from = since.or(if until.is_none() {
        Some(now.timestamp_nanos_opt().unwrap_or(0))
    } else {
        None
    });
    let mut pos = 0u64;
    let mut partial = String::new();
    loop {
        if let Ok(f) = std::fs::File::open(&path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len < pos {
                // Trimmed (older half dropped): read the new file whole;
                // the time window keeps out what was shown.
                pos = 0;
                partial.clear();
            }
            let mut r = BufReader::new(f);
            r.seek(SeekFrom::Start(pos)).context("read the event log")?;
            loop {
                let n = r.read_line(&mut partial)?;
                if n == 0 || !partial.ends_with('\n') {
                    break;
                }
                pos += partial.len() as u64;
                if let Ok(ev) = serde_json::from_str::<Value>(&partial) {
                    let t = time_nanos(&ev);
                    if from.is_none_or(|s| t >= s)
                        && until.is_none_or(|u| t <= u)
                        && wanted(&filters, &ev)
                    {
                        show(&ev)?;
                    }
                }
                partial.clear();
            }
        }
        // An incomplete last line (being written) is read again next time.
        partial.clear();
        match until {
            Some(u) if chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) > u => return Ok(0),
            _ => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    }
}
