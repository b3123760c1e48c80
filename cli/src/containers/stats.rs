//! `stats`: each running container's CPU, memory, network, block I/O and
//! pids, from its cgroup (through the runtime library) and its network
//! namespace (`/proc/PID/net/dev`), as `docker stats` shows them.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};
use strata_runtime::container::events::Usage;

use super::Engine;
use super::record::Status;

/// One reading of one container.
#[derive(Clone, Debug)]
pub struct Sample {
    pub id: String,
    pub name: String,
    pub usage: Usage,
    pub net_rx: u64,
    pub net_tx: u64,
    pub at: Instant,
    /// How long it has run (zero when it does not run).
    pub running_for: Duration,
}

impl Sample {
    /// A reading of nothing used, at the container's start: against it
    /// a single reading gives the average since the start (what podman's
    /// `stats --no-stream` shows, without a sampling window to wait for).
    pub fn at_start(&self) -> Sample {
        Sample {
            id: self.id.clone(),
            name: self.name.clone(),
            usage: Usage::default(),
            net_rx: 0,
            net_tx: 0,
            at: self.at.checked_sub(self.running_for).unwrap_or(self.at),
            running_for: Duration::ZERO,
        }
    }
}

/// Bytes received and sent on the container's interfaces (lo aside).
fn net_io(pid: i32) -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) else {
        return (0, 0);
    };
    let mut rx = 0;
    let mut tx = 0;
    for line in text.lines().skip(2) {
        let Some((iface, rest)) = line.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        rx += f.first().copied().unwrap_or(0);
        tx += f.get(8).copied().unwrap_or(0);
    }
    (rx, tx)
}

impl Engine {
    /// A reading of container `id` (its usage is zero when it does not run).
    pub fn sample(&self, id: &str, name: &str) -> Result<Sample> {
        let st = self.refresh(id)?;
        let (usage, (net_rx, net_tx)) = if st.status == Status::Running {
            let u = strata_runtime::container::events::usage(&self.runtime_root(), id)
                .unwrap_or_default();
            (u, net_io(st.pid))
        } else {
            (Usage::default(), (0, 0))
        };
        let running_for = st
            .started_at
            .as_deref()
            .filter(|_| st.status == Status::Running)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .and_then(|t| chrono::Utc::now().signed_duration_since(t).to_std().ok())
            .unwrap_or_default();
        Ok(Sample {
            id: id.to_string(),
            name: name.to_string(),
            usage,
            net_rx,
            net_tx,
            at: Instant::now(),
            running_for,
        })
    }
}

/// Docker's binary sizes for memory (`1.5MiB`).
pub fn binary_size(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        return format!("{n}B");
    }
    // Go's %.4g: four significant digits, no trailing zeros.
    let int_digits = (v.log10().floor() as i32 + 1).max(1);
    let decimals = (4 - int_digits).max(0) as usize;
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    s + units[i]
}

/// The row `docker stats` prints for a container, from two readings
/// (CPU % is the CPU time used between them over the wall time).
pub fn row(before: &Sample, after: &Sample, host_memory: u64) -> Value {
    let wall = after
        .at
        .duration_since(before.at)
        .max(Duration::from_micros(1));
    let cpu = after.usage.cpu_ns.saturating_sub(before.usage.cpu_ns) as f64;
    let cpu_perc = cpu / wall.as_nanos() as f64 * 100.0;
    let used = after.usage.memory.saturating_sub(after.usage.cache);
    let limit = match after.usage.memory_limit {
        0 => host_memory,
        l if host_memory > 0 && l > host_memory => host_memory,
        l => l,
    };
    let mem_perc = if limit > 0 {
        used as f64 / limit as f64 * 100.0
    } else {
        0.0
    };
    let human = crate::images::human_size;
    json!({
        "ID": after.id.get(..12).unwrap_or(&after.id),
        "Container": after.id.get(..12).unwrap_or(&after.id),
        "Name": after.name,
        "CPUPerc": format!("{cpu_perc:.2}%"),
        "MemUsage": format!("{} / {}", binary_size(used), binary_size(limit)),
        "MemPerc": format!("{mem_perc:.2}%"),
        "NetIO": format!("{} / {}", human(after.net_rx), human(after.net_tx)),
        "BlockIO": format!("{} / {}", human(after.usage.block_read), human(after.usage.block_write)),
        "PIDs": after.usage.pids.to_string(),
    })
}

/// MemTotal of /proc/meminfo, bytes.
pub fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_rows_as_docker_prints() {
        assert_eq!(binary_size(512), "512B");
        assert_eq!(binary_size(1536), "1.5KiB");
        assert_eq!(binary_size(3 * 1024 * 1024 + 1024 * 300), "3.293MiB");
        assert_eq!(binary_size(24 * 1024 * 1024 * 1024), "24GiB");
        let t0 = Instant::now();
        let a = Sample {
            id: "0123456789abcdef".into(),
            name: "web".into(),
            usage: Usage {
                cpu_ns: 1_000_000,
                ..Usage::default()
            },
            net_rx: 0,
            net_tx: 0,
            at: t0,
            running_for: Duration::ZERO,
        };
        let b = Sample {
            usage: Usage {
                cpu_ns: 51_000_000,
                memory: 3 << 20,
                cache: 1 << 20,
                memory_limit: u64::MAX,
                pids: 2,
                block_read: 1000,
                block_write: 0,
            },
            net_rx: 1500,
            net_tx: 42,
            at: t0 + Duration::from_millis(100),
            running_for: Duration::ZERO,
            ..a.clone()
        };
        let r = row(&a, &b, 8 << 30);
        assert_eq!(r["CPUPerc"], "50.00%");
        assert_eq!(r["MemUsage"], "2MiB / 8GiB");
        assert_eq!(r["MemPerc"], "0.02%");
        assert_eq!(r["NetIO"], "1.5kB / 42B");
        assert_eq!(r["BlockIO"], "1kB / 0B");
        assert_eq!(r["PIDs"], "2");
        assert_eq!(r["ID"], "0123456789ab");
    }
}
