//! `update`: change a running (or paused) container's resources, from a
//! JSON file (`-r FILE`, `-r -` for stdin) or from runc's flags. Only what
//! was asked is written to the cgroup; the container's stored config gets
//! the merged result, so later reads see it.

use std::path::PathBuf;

use clap::Args;
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources, LinuxResourcesBuilder,
};

use crate::error::{Context, Error, Result};
use crate::state::Root;

#[derive(Args, Debug, Clone, Default)]
pub struct UpdateArgs {
    pub id: String,
    /// Resources as JSON (runtime-spec `linux.resources`); `-` for stdin.
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Block IO weight (10-1000).
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period (microseconds).
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota (microseconds; -1 for none).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", visible_alias = "cpu-shares")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period (microseconds).
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime (microseconds).
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to run on (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes (0-3, 0,1).
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Kernel memory limit: deprecated by the kernel, accepted and ignored
    /// with a warning, as runc does.
    #[arg(long = "kernel-memory")]
    pub kernel_memory: Option<String>,
    /// Kernel TCP memory limit (ignored like --kernel-memory).
    #[arg(long = "kernel-memory-tcp")]
    pub kernel_memory_tcp: Option<String>,
    /// Memory limit (bytes, or with a unit: 512m, 1g; -1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for none).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of pids (0 or -1 for none).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema.
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema.
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
}

/// A byte count as runc takes it: digits with an optional unit (b, k, m,
/// g, t, p; `kb`/`kib` alike, any case), or -1 for no limit.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let bad = || {
        Error::InvalidSpec(format!(
            "invalid size {s:?}: a number of bytes, or 512m, 1g"
        ))
    };
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    let v = num * mult;
    if !v.is_finite() || v > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as i64)
}

impl UpdateArgs {
    fn any_flag(&self) -> bool {
        self.blkio_weight.is_some()
            || self.cpu_period.is_some()
            || self.cpu_quota.is_some()
            || self.cpu_share.is_some()
            || self.cpu_rt_period.is_some()
            || self.cpu_rt_runtime.is_some()
            || self.cpuset_cpus.is_some()
            || self.cpuset_mems.is_some()
            || self.memory.is_some()
            || self.memory_reservation.is_some()
            || self.memory_swap.is_some()
            || self.pids_limit.is_some()
    }

    /// The resources the flags ask for.
    pub fn flag_resources(&self) -> Result<LinuxResources> {
        if self.l3_cache_schema.is_some() || self.mem_bw_schema.is_some() {
            return Err(Error::InvalidSpec(
                "Intel RDT (--l3-cache-schema, --mem-bw-schema) is not enabled on this host (no resctrl)".into(),
            ));
        }
        if self.kernel_memory.is_some() || self.kernel_memory_tcp.is_some() {
            tracing::warn!("kernel memory settings are ignored and will be removed");
        }
        let mut b = LinuxResourcesBuilder::default();
        if self.cpu_period.is_some()
            || self.cpu_quota.is_some()
            || self.cpu_share.is_some()
            || self.cpu_rt_period.is_some()
            || self.cpu_rt_runtime.is_some()
            || self.cpuset_cpus.is_some()
            || self.cpuset_mems.is_some()
        {
            let mut cpu = LinuxCpu::default();
            cpu.set_period(self.cpu_period);
            cpu.set_quota(self.cpu_quota);
            cpu.set_shares(self.cpu_share);
            cpu.set_realtime_period(self.cpu_rt_period);
            cpu.set_realtime_runtime(self.cpu_rt_runtime);
            cpu.set_cpus(self.cpuset_cpus.clone());
            cpu.set_mems(self.cpuset_mems.clone());
            b = b.cpu(cpu);
        }
        if self.memory.is_some() || self.memory_reservation.is_some() || self.memory_swap.is_some()
        {
            let mut m = LinuxMemory::default();
            m.set_limit(self.memory.as_deref().map(parse_bytes).transpose()?);
            m.set_reservation(
                self.memory_reservation
                    .as_deref()
                    .map(parse_bytes)
                    .transpose()?,
            );
            m.set_swap(self.memory_swap.as_deref().map(parse_bytes).transpose()?);
            b = b.memory(m);
        }
        if let Some(p) = self.pids_limit {
            let mut pids = LinuxPids::default();
            // runc: 0 or less is no limit.
            pids.set_limit(if p <= 0 { -1 } else { p });
            b = b.pids(pids);
        }
        if let Some(w) = self.blkio_weight {
            let mut io = LinuxBlockIo::default();
            io.set_weight(Some(w));
            b = b.block_io(io);
        }
        b.build()
            .map_err(|e| Error::InvalidSpec(format!("resources: {e}")))
    }
}

/// Overlay the fields `new` sets onto `old` (what `update` stores).
fn merge(old: &LinuxResources, new: &LinuxResources) -> Result<LinuxResources> {
    let mut a = serde_json::to_value(old).map_err(|e| Error::Container(e.to_string()))?;
    let b = serde_json::to_value(new).map_err(|e| Error::Container(e.to_string()))?;
    fn overlay(a: &mut serde_json::Value, b: &serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    if v.is_null() {
                        continue;
                    }
                    match a.get_mut(k) {
                        Some(slot) if slot.is_object() && v.is_object() => overlay(slot, v),
                        _ => {
                            a.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (a, b) => *a = b.clone(),
        }
    }
    overlay(&mut a, &b);
    serde_json::from_value(a).map_err(|e| Error::Container(format!("merge resources: {e}")))
}

pub fn update(root: &Root, a: &UpdateArgs) -> Result<()> {
    let _lock = root.lock(&a.id)?;
    let mut st = root.load(&a.id)?;
    let res: LinuxResources = match &a.resources {
        Some(p) => {
            if a.any_flag() {
                return Err(Error::InvalidSpec(
                    "give the resources either with -r or with flags, not both".into(),
                ));
            }
            let data = if p == std::path::Path::new("-") {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                    .ctx(|| "read stdin".into())?;
                buf
            } else {
                std::fs::read(p).ctx(|| format!("read {}", p.display()))?
            };
            serde_json::from_slice(&data)
                .map_err(|e| Error::InvalidSpec(format!("resources: {e}")))?
        }
        None => a.flag_resources()?,
    };
    if matches!(st.status(&root.dir(&a.id)), crate::state::Status::Stopped) {
        return Err(Error::NotRunning);
    }
    let cg = st
        .cgroup()
        .ok_or_else(|| Error::Cgroup("container has no cgroup".into()))?;
    crate::cgroups::apply(&cg, &a.id, Some(&res))?;
    let mut linux = st.spec.linux().clone().unwrap_or_default();
    let merged = merge(&linux.resources().clone().unwrap_or_default(), &res)?;
    linux.set_resources(Some(merged));
    st.spec.set_linux(Some(linux));
    root.save(&st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_runc_takes_them() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("2kb").unwrap(), 2048);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1536);
        assert_eq!(parse_bytes("3MiB").unwrap(), 3 << 20);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        for bad in ["", "m", "12q", "-5", "1e999"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn merge_keeps_what_was_not_asked() {
        let old: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":100,"reservation":50},"pids":{"limit":10},"cpu":{"shares":2}}"#,
        )
        .unwrap();
        let new: LinuxResources =
            serde_json::from_str(r#"{"memory":{"limit":200},"cpu":{"quota":5000}}"#).unwrap();
        let m = merge(&old, &new).unwrap();
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["memory"]["limit"], 200);
        assert_eq!(v["memory"]["reservation"], 50);
        assert_eq!(v["pids"]["limit"], 10);
        assert_eq!(v["cpu"]["shares"], 2);
        assert_eq!(v["cpu"]["quota"], 5000);
    }
}
