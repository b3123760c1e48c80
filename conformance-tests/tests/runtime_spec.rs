//! Our runtime-spec conformance suite (`strata_conformance_tests::runtime_spec`)
//! run against strata-runtime, which must pass every check, and measured
//! against runc and crun (their TAP reports and counts are printed and
//! written to target/spec-conformance/, not asserted beyond the items any
//! runtime passes). A deliberately broken runtime shows the checks fail.

use std::path::{Path, PathBuf};

use strata_conformance_tests::runtime_spec::{Outcome, Report, Runtime, Suite};

fn report_dir() -> PathBuf {
    let dir = strata_conformance_tests::workspace_dir().join("target/spec-conformance");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn keep(report: &Report) {
    let path = report_dir().join(format!("{}.tap", report.runtime));
    std::fs::write(&path, report.tap()).unwrap();
    println!(
        "# {:<16} pass {:>3}, fail {:>3}, skip {:>3} ({})",
        report.runtime,
        report.passed(),
        report.failed().len(),
        report.skipped(),
        path.display()
    );
}

#[test]
fn strata_passes_every_check_and_the_peers_are_measured() {
    let suite = Suite::new().unwrap();
    let strata = Runtime::new("strata-runtime", &strata_conformance_tests::runtime_bin());
    let ours = suite.run(&strata, None);
    keep(&ours);
    print!("{}", ours.tap());
    assert!(
        ours.results.len() >= 75,
        "the suite lost checks: {}",
        ours.results.len()
    );
    assert!(
        ours.failed().is_empty(),
        "strata-runtime fails {:?}\n{}",
        ours.failed(),
        ours.tap()
    );
    // A skip is a host that lacks the item, never a pass: none expected
    // on this host (the reasons name what is missing).
    let skips: Vec<_> = ours
        .results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Skip(why) => Some(format!("{}: {why}", r.item)),
            _ => None,
        })
        .collect();
    assert!(skips.is_empty(), "skipped here: {skips:?}");

    // The peers, side by side. Items every OCI runtime has had since 1.0
    // must pass for them too, or the suite (not the peer) is wrong.
    let core = [
        "process.args",
        "process.env",
        "process.cwd",
        "process.user.uid",
        "root.readonly",
        "linux.namespaces.pid",
        "linux.maskedPaths",
        "linux.resources.pids",
    ];
    for (name, make) in [
        ("runc", Runtime::new as fn(&str, &Path) -> Runtime),
        ("crun", |_: &str, p: &Path| Runtime::crun(p)),
    ] {
        let Some(bin) = Runtime::on_path(name) else {
            panic!("{name} is not installed (scripts/install-deps.sh installs it)");
        };
        let report = suite.run(&make(name, &bin), None);
        keep(&report);
        let failed = report.failed();
        for item in core {
            assert!(
                !failed.contains(&item),
                "{name} fails the core item {item}: the check is suspect\n{}",
                report.tap()
            );
        }
    }
    // No runtime reached the host's /dev/null through its stdio (crun
    // 1.8.1 chowns its stdio for a user-namespace container: the harness
    // gives it a file of its own).
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata("/dev/null").unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (0, 0),
        "the host's /dev/null changed owner"
    );
}

/// A runtime that drops parts of every config before strata-runtime sees
/// it: the checks for those parts must fail, and the rest still pass.
#[test]
fn a_runtime_that_ignores_fields_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("forgetful-runtime");
    std::fs::write(
        &wrapper,
        format!(
            r#"#!/bin/sh
# --root R <verb> [--bundle B] ... : forget rlimits, umask and hostname.
for a in "$@"; do
  if [ "$prev" = --bundle ]; then
    jq 'del(.process.rlimits, .process.user.umask, .hostname)' "$a/config.json" > "$a/config.forgot" &&
      mv "$a/config.forgot" "$a/config.json"
  fi
  prev=$a
done
exec {} "$@"
"#,
            strata_conformance_tests::runtime_bin().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let suite = Suite::new().unwrap();
    let forgetful = Runtime::new("forgetful", &wrapper);
    let mut failed = Vec::new();
    let mut passed = 0;
    for only in [
        "process.rlimits",
        "process.user.umask",
        "hostname",
        "process.cwd",
    ] {
        let report = suite.run(&forgetful, Some(only));
        failed.extend(report.failed().into_iter().map(|s| (s, report.tap())));
        passed += report.passed();
    }
    let items: Vec<&str> = failed.iter().map(|(i, _)| *i).collect();
    // umask: "the umask is set" fails; "0022 when unset" still passes.
    assert_eq!(
        items,
        ["process.rlimits", "process.user.umask", "hostname"],
        "{failed:?}"
    );
    assert_eq!(passed, 2, "{failed:?}");
}
