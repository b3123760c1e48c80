//! `list` and `ps` output.

use std::io::Write;

use crate::container;
use crate::error::{Context, Error, Result};
use crate::state::Root;

pub fn list(root: &Root, format: &str, quiet: bool) -> Result<()> {
    let states = container::state::list(root)?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for s in &states {
            writeln!(out, "{}", s.id).ctx(|| "write stdout".into())?;
        }
        return Ok(());
    }
    match format {
        "json" => {
            let s = serde_json::to_string(&states).map_err(|e| Error::Container(e.to_string()))?;
            writeln!(out, "{s}").ctx(|| "write stdout".into())
        }
        "table" => {
            let rows: Vec<[String; 6]> = states
                .iter()
                .map(|s| {
                    [
                        s.id.clone(),
                        s.pid.to_string(),
                        s.status.to_string(),
                        s.bundle.display().to_string(),
                        s.created.clone(),
                        s.owner.clone(),
                    ]
                })
                .collect();
            let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let mut widths = header.clone().map(|h| h.len());
            for r in &rows {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.len());
                }
            }
            for r in std::iter::once(&header).chain(rows.iter()) {
                let line: Vec<String> = r
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                writeln!(out, "{}", line.join("   ").trim_end()).ctx(|| "write stdout".into())?;
            }
            Ok(())
        }
        other => Err(Error::Container(format!("invalid format option {other:?}"))),
    }
}

pub fn ps(root: &Root, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let st = root.load(id)?;
    let cg = st
        .cgroup()
        .ok_or_else(|| Error::Cgroup("container has no cgroup".into()))?;
    let pids = crate::cgroups::pids(&cg, id)?;
    let mut out = std::io::stdout().lock();
    if format == "json" {
        let s = serde_json::to_string(&pids).map_err(|e| Error::Container(e.to_string()))?;
        return writeln!(out, "{s}").ctx(|| "write stdout".into());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let output = std::process::Command::new("ps")
        .args(&args)
        .output()
        .ctx(|| "run ps".into())?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Ok(());
    };
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::Container("ps output has no PID column".into()))?;
    writeln!(out, "{header}").ctx(|| "write stdout".into())?;
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(out, "{line}").ctx(|| "write stdout".into())?;
        }
    }
    Ok(())
}
