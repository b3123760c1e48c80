//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup
//! is a transient scope unit that systemd makes and owns, asked for over
//! systemd's D-Bus API (StartTransientUnit on the manager, as runc and
//! crun do), with the resources systemd knows as unit properties. The
//! scope is delegated, so the runtime still writes the rest (and the same
//! values again) to the cgroup files itself.
//!
//! As root we talk to the manager on its private socket, as systemctl and
//! go-systemd do: no bus daemon is needed ([`super::dbus_wire`]).

use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use super::dbus_wire::{Arg, Connection, Value};
use crate::error::{Error, Result};

const PRIVATE_SOCKET: &str = "/run/systemd/private";
const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a scope may take to appear or go.
const JOB_TIMEOUT: Duration = Duration::from_secs(10);

/// Is systemd the init here (runc's check: /run/systemd/system exists)?
pub fn running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The scope unit and its slice for a container cgroup path made by
/// [`super::path_for`] (`/a.slice/a-b.slice/prefix-name.scope`).
pub fn unit_of(cgroup_path: &Path) -> Result<(String, String)> {
    let unit = cgroup_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".scope"))
        .ok_or_else(|| {
            Error::InvalidSpec(format!(
                "with --systemd-cgroup the cgroup must be a scope unit (slice:prefix:name), not {}",
                cgroup_path.display()
            ))
        })?;
    let slice = cgroup_path
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "-.slice".into());
    Ok((unit, slice))
}

fn connect() -> Result<Connection> {
    if !running() {
        return Err(Error::Cgroup(
            "systemd is not running on this host (no /run/systemd/system): --systemd-cgroup cannot be used".into(),
        ));
    }
    Connection::open(PRIVATE_SOCKET, CALL_TIMEOUT)
        .map_err(|e| Error::Cgroup(format!("connect to systemd at {PRIVATE_SOCKET}: {e}")))
}

/// Calls a manager method; the inner Err is systemd's "name: message".
fn call(c: &mut Connection, method: &str, args: &[Arg]) -> Result<std::result::Result<(), String>> {
    c.call(DEST, PATH, MANAGER, method, args)
        .map_err(|e| Error::Cgroup(format!("systemd {method}: {e}")))
}

type Prop = (String, Value);

fn prop(name: &str, value: Value) -> Prop {
    (name.to_string(), value)
}

/// cpu shares to cgroup v2's cpu.weight by the mapping crun, runc 1.3
/// and libcgroups use (which the cgroup files get too): a quadratic in
/// log2(shares) through (2, 1), (1024, 100) and (262144, 10000).
fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            10f64.powf(exponent).ceil() as u64
        }
    }
}

/// The unit properties for `resources` (what systemd knows of them); the
/// rest is written to the cgroup files by the caller.
pub fn properties(resources: Option<&LinuxResources>, v2: bool) -> Vec<Prop> {
    let mut props = Vec::new();
    let Some(r) = resources else {
        return props;
    };
    if let Some(limit) = r
        .memory()
        .as_ref()
        .and_then(|m| m.limit())
        .filter(|l| *l > 0)
    {
        props.push(prop(
            if v2 { "MemoryMax" } else { "MemoryLimit" },
            Value::U64(limit as u64),
        ));
    }
    if let Some(max) = r.pids().as_ref().map(|p| p.limit()).filter(|l| *l > 0) {
        props.push(prop("TasksMax", Value::U64(max as u64)));
    }
    if let Some(cpu) = r.cpu() {
        if let Some(shares) = cpu.shares().filter(|s| *s > 0) {
            if v2 {
                props.push(prop("CPUWeight", Value::U64(shares_to_weight(shares))));
            } else {
                props.push(prop("CPUShares", Value::U64(shares)));
            }
        }
        if let (Some(quota), Some(period)) = (cpu.quota().filter(|q| *q > 0), cpu.period())
            && period > 0
        {
            // systemd counts in 10 ms steps: rounded up, as runc does.
            let per_sec = (quota as u64 * 1_000_000).div_ceil(period);
            props.push(prop(
                "CPUQuotaPerSecUSec",
                Value::U64(per_sec.div_ceil(10_000) * 10_000),
            ));
        }
    }
    props
}

/// Makes the scope `unit` in `slice` around `pid` and waits until the
/// process is in it.
pub fn start(
    unit: &str,
    slice: &str,
    id: &str,
    pid: i32,
    resources: Option<&LinuxResources>,
    v2: bool,
) -> Result<()> {
    let mut c = connect()?;
    let mut props = vec![
        prop("Description", Value::Str(format!("strata container {id}"))),
        prop("Slice", Value::Str(slice.to_string())),
        prop("PIDs", Value::U32Array(vec![pid as u32])),
        prop("Delegate", Value::Bool(true)),
        prop("DefaultDependencies", Value::Bool(false)),
        prop("MemoryAccounting", Value::Bool(true)),
        prop("TasksAccounting", Value::Bool(true)),
        prop("CPUAccounting", Value::Bool(true)),
    ];
    props.extend(properties(resources, v2));
    let args = [
        Arg::Str(unit.to_string()),
        Arg::Str("replace".into()),
        Arg::Props(props),
        Arg::AuxUnits,
    ];
    call(&mut c, "StartTransientUnit", &args)?
        .map_err(|e| Error::Cgroup(format!("systemd refused scope {unit}: {e}")))?;
    // The job is done when systemd has moved the process into the scope.
    let deadline = Instant::now() + JOB_TIMEOUT;
    loop {
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if cg.lines().any(|l| l.ends_with(&format!("/{unit}"))) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Cgroup(format!(
                "systemd did not move {pid} into {unit} in {JOB_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Stops the scope (its processes are killed by systemd) and waits for
/// its cgroup to go; a unit systemd no longer knows is already gone.
pub fn stop(unit: &str, cgroup_dir: Option<&Path>) -> Result<()> {
    let mut c = connect()?;
    let args = [Arg::Str(unit.to_string()), Arg::Str("replace".into())];
    let unanswered = match call(&mut c, "StopUnit", &args) {
        Ok(Ok(())) => None,
        Ok(Err(e)) if e.starts_with("org.freedesktop.systemd1.NoSuchUnit") => return Ok(()),
        Ok(Err(e)) => return Err(Error::Cgroup(format!("systemd could not stop {unit}: {e}"))),
        // No answer in time (seen when the scope's last process had just
        // been killed and systemd was ending the scope by itself): the
        // scope's cgroup going is the answer that counts.
        Err(e) => Some(e),
    };
    let deadline = Instant::now() + JOB_TIMEOUT;
    while cgroup_dir.is_some_and(Path::exists) {
        if Instant::now() > deadline {
            return Err(match unanswered {
                Some(e) => e,
                None => Error::Cgroup(format!("scope {unit} did not stop")),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Some(e) = &unanswered {
        tracing::debug!("{e}; the scope {unit} has gone all the same");
        // The old connection may still carry the late reply.
        c = connect()?;
    }
    // A scope whose processes were killed is "failed": forget it, so the
    // name can be used again.
    let _ = call(&mut c, "ResetFailedUnit", &[Arg::Str(unit.to_string())]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_map_to_weights_as_the_cgroup_files_get_them() {
        assert_eq!(
            [0, 2, 512, 1024, 262_144].map(shares_to_weight),
            [0, 1, 59, 100, 10_000]
        );
    }

    #[test]
    fn unit_and_slice_from_the_path() {
        let (unit, slice) = unit_of(Path::new("/system.slice/k8s-abc.scope")).unwrap();
        assert_eq!(
            (unit.as_str(), slice.as_str()),
            ("k8s-abc.scope", "system.slice")
        );
        let (_, slice) = unit_of(Path::new("/a.slice/a-b.slice/x-y.scope")).unwrap();
        assert_eq!(slice, "a-b.slice");
        assert!(unit_of(Path::new("/strata-runtime/c1")).is_err());
    }

    #[test]
    fn resources_become_unit_properties() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 67108864}, "pids": {"limit": 20},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000}
        }))
        .unwrap();
        let names = |v2| {
            properties(Some(&r), v2)
                .into_iter()
                .map(|(n, v)| match v {
                    Value::U64(x) => format!("{n}={x}"),
                    other => format!("{n}={other:?}"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(true),
            [
                "MemoryMax=67108864",
                "TasksMax=20",
                "CPUWeight=59",
                "CPUQuotaPerSecUSec=500000"
            ]
        );
        assert_eq!(
            names(false),
            [
                "MemoryLimit=67108864",
                "TasksMax=20",
                "CPUShares=512",
                "CPUQuotaPerSecUSec=500000"
            ]
        );
    }

    #[test]
    fn connects_only_where_systemd_runs() {
        match connect() {
            Ok(_) => assert!(running()),
            Err(e) => {
                assert!(!running(), "systemd runs, yet: {e}");
                assert!(
                    e.to_string()
                        .contains("systemd is not running on this host"),
                    "{e}"
                );
            }
        }
    }
}
