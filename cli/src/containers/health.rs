//! Healthchecks, as Docker runs them: the image's HEALTHCHECK with the
//! `--health-*` flags laid over it, a probe run in the container every
//! interval by the monitor (or once by `strata healthcheck run`), and the
//! result kept in the container's state: `starting`, then `healthy` after
//! a passing probe, `unhealthy` after `retries` failing ones in a row
//! (failures inside the start period do not count). The last five
//! results are kept, as Docker's `State.Health.Log`.
//!
//! A probe is a process of its own, `strata-monitor --health ID` (or the
//! hidden `strata healthcheck-probe`): it execs the test in the container
//! in the foreground, its output and exit code are the probe's. Its
//! pid file lets a timed-out probe be killed with its helper.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::record::{Dir, Health, HealthConfig, HealthLog, Record};

const DEFAULT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
/// Docker keeps this much of a probe's output.
pub const MAX_OUTPUT: usize = 4096;
const KEEP_LOG: usize = 5;

/// The `--health-*` flags.
#[derive(Clone, Debug, Default)]
pub struct HealthFlags {
    pub cmd: Option<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub retries: Option<u32>,
    /// `--no-healthcheck`: none, the image's neither.
    pub none: bool,
}

impl HealthFlags {
    pub fn is_empty(&self) -> bool {
        self.cmd.is_none()
            && self.interval.is_none()
            && self.timeout.is_none()
            && self.start_period.is_none()
            && self.retries.is_none()
            && !self.none
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The image's healthcheck (`config.Healthcheck`) with the flags over it;
/// None when there is nothing to run.
pub fn merge(image: Option<HealthConfig>, f: &HealthFlags) -> Result<Option<HealthConfig>> {
    if f.none {
        if f.cmd.is_some() {
            bail!("--no-healthcheck conflicts with --health-* options");
        }
        return Ok(None);
    }
    for (name, d) in [
        ("--health-interval", f.interval),
        ("--health-timeout", f.timeout),
    ] {
        if d.is_some_and(|d| d < Duration::from_millis(1)) {
            bail!("{name} cannot be less than 1ms");
        }
    }
    let mut cfg = image.unwrap_or_default();
    if let Some(c) = &f.cmd {
        cfg.test = vec!["CMD-SHELL".into(), c.clone()];
    }
    if let Some(d) = f.interval {
        cfg.interval = nanos(d);
    }
    if let Some(d) = f.timeout {
        cfg.timeout = nanos(d);
    }
    if let Some(d) = f.start_period {
        cfg.start_period = nanos(d);
    }
    if let Some(r) = f.retries {
        cfg.retries = r;
    }
    Ok(command(&cfg).is_some().then_some(cfg))
}

/// The probe's argv: `CMD` as given, `CMD-SHELL` through `/bin/sh -c`.
pub fn command(cfg: &HealthConfig) -> Option<Vec<String>> {
    match cfg.test.split_first() {
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        Some((kind, [cmd])) if kind == "CMD-SHELL" => {
            Some(vec!["/bin/sh".into(), "-c".into(), cmd.clone()])
        }
        _ => None,
    }
}

fn duration(ns: i64) -> Duration {
    if ns <= 0 {
        DEFAULT
    } else {
        Duration::from_nanos(ns as u64)
    }
}

pub fn interval(cfg: &HealthConfig) -> Duration {
    duration(cfg.interval)
}

pub fn timeout(cfg: &HealthConfig) -> Duration {
    duration(cfg.timeout)
}

pub fn start_period(cfg: &HealthConfig) -> Duration {
    Duration::from_nanos(cfg.start_period.max(0) as u64)
}

pub fn retries(cfg: &HealthConfig) -> u32 {
    if cfg.retries == 0 {
        DEFAULT_RETRIES
    } else {
        cfg.retries
    }
}

/// Where a probe's helper writes the pid of the process it exec'd.
pub fn probe_pid_file(dir: &Dir) -> PathBuf {
    dir.path().join("health.pid")
}

/// The process a probe runs: the container's, with the probe's argv.
pub fn probe_process(rec: &Record) -> Result<serde_json::Value> {
    let cfg = rec
        .healthcheck
        .as_ref()
        .context("container has no healthcheck")?;
    let argv = command(cfg).context("container has no healthcheck")?;
    let mut p = rec.spec["process"].clone();
    p["args"] = serde_json::json!(argv);
    p["terminal"] = serde_json::json!(false);
    Ok(p)
}

/// The helper's main, `--health --root ROOT --run-dir DIR ID`: exec the
/// probe in the container in the foreground; its exit code (stdout and
/// stderr are the caller's pipe).
pub fn probe_main(root: &std::path::Path, run_dir: &std::path::Path, id: &str) -> i32 {
    let runtime = strata_runtime::state::Root::new(run_dir.join("runtime"));
    run_probe(&runtime, &Dir(root.join("containers").join(id)), id)
}

fn run_probe(runtime: &strata_runtime::state::Root, dir: &Dir, id: &str) -> i32 {
    let res = (|| -> Result<i32> {
        let rec = dir.record()?;
        let process = serde_json::from_value(probe_process(&rec)?).context("probe process")?;
        let opts = strata_runtime::container::exec::ExecOptions {
            id: id.to_string(),
            process,
            console_socket: None,
            pid_file: Some(probe_pid_file(dir)),
            detach: false,
            preserve_fds: 0,
            ignore_paused: false,
            sub_cgroups: Vec::new(),
        };
        strata_runtime::container::exec::exec(runtime, &opts).map_err(|e| anyhow::anyhow!("{e}"))
    })();
    match res {
        Ok(code) => code,
        Err(e) => {
            println!("{e:#}");
            // Docker's code for a probe that could not run.
            -1
        }
    }
}

/// Record one probe's result; the new status when it changed.
pub fn record(
    dir: &Dir,
    cfg: &HealthConfig,
    log: HealthLog,
    in_start_period: bool,
) -> Result<Option<String>> {
    let _l = dir.lock()?;
    let mut s = dir.state()?;
    let h = s.health.get_or_insert_with(|| Health {
        status: "starting".into(),
        ..Default::default()
    });
    let before = h.status.clone();
    if log.exit_code == 0 {
        h.status = "healthy".into();
        h.failing_streak = 0;
    } else if !(in_start_period && h.status == "starting") {
        h.failing_streak += 1;
        if h.failing_streak >= retries(cfg) {
            h.status = "unhealthy".into();
        }
    }
    h.log.push(log);
    if h.log.len() > KEEP_LOG {
        let drop = h.log.len() - KEEP_LOG;
        h.log.drain(..drop);
    }
    let after = h.status.clone();
    dir.save_state(&s)?;
    Ok((after != before).then_some(after))
}

/// Text of a probe's output as Docker keeps it: lossy UTF-8, cut short.
pub fn output_text(out: &[u8]) -> String {
    let cut = &out[..out.len().min(MAX_OUTPUT)];
    String::from_utf8_lossy(cut).into_owned()
}

/// The probe's helper command (given by the engine).
pub fn spawn_probe(
    mut cmd: std::process::Command,
    out: std::os::fd::OwnedFd,
) -> Result<std::process::Child> {
    let err = out.try_clone().context("dup the probe's pipe")?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(out))
        .stderr(std::process::Stdio::from(err));
    cmd.spawn().context("start a healthcheck probe")
}

/// Kill a probe that ran out of time: the process it exec'd and itself.
pub fn kill_probe(dir: &Dir, helper: i32) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if let Some(pid) = std::fs::read_to_string(probe_pid_file(dir))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
    {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    if helper > 0 {
        let _ = kill(Pid::from_raw(helper), Signal::SIGKILL);
    }
}

/// `strata healthcheck run`: one probe now, waited for (up to its
/// timeout), recorded as the monitor records its own. Exit code and
/// output.
pub fn probe_now(
    dir: &Dir,
    rec: &Record,
    cmd: std::process::Command,
    started_at: Option<&str>,
) -> Result<(i32, String)> {
    let cfg = rec
        .healthcheck
        .clone()
        .context("container has no healthcheck")?;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
    let start = super::record::now();
    let mut child = spawn_probe(cmd, w)?;
    let helper = child.id() as i32;
    let deadline = std::time::Instant::now() + timeout(&cfg);
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = Vec::new();
        let _ = std::fs::File::from(r).read_to_end(&mut buf);
        buf
    });
    let code = loop {
        if let Some(st) = child.try_wait()? {
            break st.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > deadline {
            kill_probe(dir, helper);
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().unwrap_or_default();
    let mut output = output_text(&out);
    if std::time::Instant::now() > deadline {
        output = format!(
            "Health check exceeded timeout ({}s)",
            timeout(&cfg).as_secs()
        );
    }
    let in_start = started_at
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .is_some_and(|t| {
            let ran = chrono::Utc::now().signed_duration_since(t);
            ran.to_std().unwrap_or_default() < start_period(&cfg)
        });
    record(
        dir,
        &cfg,
        HealthLog {
            start,
            end: super::record::now(),
            exit_code: code,
            output: output.clone(),
        },
        in_start,
    )?;
    Ok((code, output))
}

/// Docker's duration text (`30s`, `1m30s`, `500ms`) for flags: Go's
/// syntax, as HEALTHCHECK's options in a Dockerfile.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let ns = crate::build::steps::meta::go_duration(s.trim())
        .map_err(|_| anyhow::anyhow!("invalid duration {s:?}: want e.g. 30s, 1m30s, 500ms"))?;
    u64::try_from(ns)
        .map(Duration::from_nanos)
        .map_err(|_| anyhow::anyhow!("invalid duration {s:?}: must not be negative"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_over_the_image_and_durations() {
        let image = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 5_000_000_000,
            retries: 2,
            ..Default::default()
        };
        let m = merge(
            Some(image.clone()),
            &HealthFlags {
                cmd: Some("wget -q localhost".into()),
                timeout: Some(Duration::from_secs(3)),
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(m.test, ["CMD-SHELL", "wget -q localhost"]);
        assert_eq!(
            (interval(&m), timeout(&m), retries(&m)),
            (Duration::from_secs(5), Duration::from_secs(3), 2)
        );
        assert_eq!(command(&m).unwrap(), ["/bin/sh", "-c", "wget -q localhost"]);
        assert!(
            merge(
                Some(image.clone()),
                &HealthFlags {
                    none: true,
                    ..Default::default()
                }
            )
            .unwrap()
            .is_none()
        );
        let none = HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert!(
            merge(Some(none), &HealthFlags::default())
                .unwrap()
                .is_none()
        );
        assert_eq!(retries(&HealthConfig::default()), 3);
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "5", "5x", "s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn streaks_turn_healthy_and_unhealthy() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir(tmp.path().to_path_buf());
        dir.save_state(&Default::default()).unwrap();
        let cfg = HealthConfig {
            test: vec!["CMD".into(), "x".into()],
            retries: 2,
            ..Default::default()
        };
        let log = |code| HealthLog {
            exit_code: code,
            ..Default::default()
        };
        // A failure in the start period does not count.
        assert_eq!(record(&dir, &cfg, log(1), true).unwrap(), None);
        assert_eq!(dir.state().unwrap().health.unwrap().failing_streak, 0);
        assert_eq!(
            record(&dir, &cfg, log(0), true).unwrap().as_deref(),
            Some("healthy")
        );
        assert_eq!(record(&dir, &cfg, log(1), false).unwrap(), None);
        assert_eq!(
            record(&dir, &cfg, log(1), false).unwrap().as_deref(),
            Some("unhealthy")
        );
        for _ in 0..6 {
            record(&dir, &cfg, log(1), false).unwrap();
        }
        let h = dir.state().unwrap().health.unwrap();
        assert_eq!((h.failing_streak, h.log.len()), (8, 5));
        assert_eq!(
            record(&dir, &cfg, log(0), false).unwrap().as_deref(),
            Some("healthy")
        );
    }
}
