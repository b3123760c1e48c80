//! Storage-wide verbs: `system df`, `system check`, `builder prune`.

use std::io::Write;

use anyhow::Result;
use strata::images;
use strata_imagestore::Store;

use super::{BuilderCmd, Cmd, SystemCmd};

/// Run a system verb.
pub(crate) fn run(cmd: Cmd, store: &mut Store) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    match cmd {
        Cmd::Builder(BuilderCmd::Prune { .. }) => {
            let (entries, blobs, snaps) = store.cache_prune(None)?;
            writeln!(
                out,
                "Deleted build cache objects: {entries} ({blobs} blobs, {snaps} snapshots)"
            )?;
        }
        Cmd::System(SystemCmd::Df) => {
            let (n, size, blobs, snaps) = store.df()?;
            writeln!(out, "TYPE        TOTAL   SIZE")?;
            writeln!(out, "Images      {n:<7} {}", images::human_size(size))?;
            writeln!(out, "Blobs       -       {}", images::human_size(blobs))?;
            writeln!(out, "Snapshots   {snaps:<7} -")?;
        }
        Cmd::System(SystemCmd::Check) => {
            let problems = store.check()?;
            if problems.is_empty() {
                writeln!(out, "store is consistent")?;
            } else {
                for p in &problems {
                    writeln!(out, "{p}")?;
                }
                anyhow::bail!("{} problem(s) found", problems.len());
            }
        }
        _ => unreachable!("not a system verb"),
    }
    Ok(0)
}
