//! spec-conformance: our runtime-spec conformance checks against one or
//! more runc-compatible runtimes, a TAP report for each and a side-by-side
//! summary.
//!
//!   spec-conformance                       strata-runtime, runc and crun
//!   spec-conformance --runtime runc        one of them
//!   spec-conformance --runtime mine=/path  any runc-compatible binary

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Parser;
use strata_conformance_tests::runtime_spec::{Runtime, Suite};

#[derive(Parser)]
#[command(about = "OCI runtime-spec conformance checks, as TAP")]
struct Args {
    /// strata, runc, crun, or NAME=PATH; repeatable (default: all three).
    #[arg(long = "runtime")]
    runtimes: Vec<String>,
    /// Only the checks whose item contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Write each runtime's TAP report to DIR/NAME.tap as well.
    #[arg(long)]
    tap_dir: Option<PathBuf>,
}

fn runtime(spec: &str) -> anyhow::Result<Runtime> {
    if let Some((name, path)) = spec.split_once('=') {
        // The checks run the runtime from each case's bundle directory.
        let path = std::path::absolute(path).with_context(|| format!("runtime path {path}"))?;
        return Ok(Runtime::new(name, &path));
    }
    match spec {
        "strata" | "strata-runtime" => Ok(Runtime::new(
            "strata-runtime",
            &strata_conformance_tests::runtime_bin(),
        )),
        "crun" => Ok(Runtime::crun(
            &Runtime::on_path("crun").context("crun is not on PATH")?,
        )),
        other => match Runtime::on_path(other) {
            Some(p) => Ok(Runtime::new(other, &p)),
            None => bail!("unknown runtime {other:?}: give NAME=PATH"),
        },
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let names = if args.runtimes.is_empty() {
        vec!["strata".to_string(), "runc".into(), "crun".into()]
    } else {
        args.runtimes.clone()
    };
    let runtimes = names
        .iter()
        .map(|n| runtime(n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let suite = Suite::new()?;
    let mut reports = Vec::new();
    for rt in &runtimes {
        let report = suite.run(rt, args.only.as_deref());
        print!("{}", report.tap());
        if let Some(dir) = &args.tap_dir {
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join(format!("{}.tap", rt.name)), report.tap())?;
        }
        reports.push(report);
    }
    println!("# summary: runtime pass fail skip");
    for r in &reports {
        println!(
            "# {:<16} {:>4} {:>4} {:>4}",
            r.runtime,
            r.passed(),
            r.failed().len(),
            r.skipped()
        );
    }
    if reports.iter().any(|r| !r.failed().is_empty()) {
        std::process::exit(1);
    }
    Ok(())
}
