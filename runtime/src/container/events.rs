//! `events`: a container's cgroup statistics in runc's JSON shape, once
//! (`--stats`) or every interval, with an `oom` event each time the
//! kernel's OOM killer strikes in the container's cgroup. One JSON object
//! a line; the stream ends when the container stops.

use std::io::Write;
use std::time::{Duration, Instant};

use libcgroups::common::CgroupManager;
use libcgroups::stats::{BlkioDeviceStat, MemoryData, Stats};
use serde_json::{Map, Value, json};

use crate::cgroups::{self, Cgroup};
use crate::error::{Error, Result};
use crate::state::{Root, Status};

/// How often the stream looks for OOM kills and for the container's exit.
const POLL: Duration = Duration::from_millis(100);

pub fn events(
    root: &Root,
    id: &str,
    interval: Duration,
    stats_only: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let st = root.load(id)?;
    let dir = root.dir(id);
    let running = |st: &crate::state::ContainerState| {
        matches!(st.status(&dir), Status::Running | Status::Paused)
    };
    if !running(&st) {
        return Err(Error::Container(format!(
            "container with id {id} is not running"
        )));
    }
    let cg = st
        .cgroup()
        .ok_or_else(|| Error::Cgroup("container has no cgroup".into()))?;
    let manager = cgroups::manager(&cg, id)?;
    let mut emit = |line: String| -> Result<()> {
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| Error::Io {
                context: "write event".into(),
                source: e,
            })
    };
    let stats = || -> Result<String> {
        let s = manager
            .stats()
            .map_err(|e| Error::Cgroup(format!("stats of {}: {e}", cg.path.display())))?;
        event("stats", id, Some(runc_stats(&s, &cg)))
    };
    if stats_only {
        return emit(stats()?);
    }
    let counter = cgroups::OomCounter::new(&cg);
    let mut ooms = counter.kills();
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next {
            emit(stats()?)?;
            next += interval;
        }
        let now = counter.kills();
        for _ in ooms..now {
            emit(event("oom", id, None)?)?;
        }
        ooms = ooms.max(now);
        if !running(&st) {
            return Ok(());
        }
        std::thread::sleep(POLL.min(next.saturating_duration_since(Instant::now())));
    }
}

/// runc's Event, in Go's field order (type, id, data): callers match the
/// line's start. serde_json keeps a struct's field order.
#[derive(serde::Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<RuncStats>,
}

/// libcontainer's types.Stats, in its field order.
#[derive(serde::Serialize)]
struct RuncStats {
    cpu: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpuset: Option<Value>,
    memory: Value,
    pids: Value,
    blkio: Value,
    hugetlb: Value,
    intel_rdt: Value,
    network_interfaces: Value,
}

/// One event line.
fn event(kind: &str, id: &str, data: Option<RuncStats>) -> Result<String> {
    serde_json::to_string(&Event { kind, id, data })
        .map_err(|e| Error::Container(format!("encode event: {e}")))
}

/// Go's duration syntax as runc's `--interval` takes it: "5s", "100ms",
/// "1.5s", "1m30s".
pub fn parse_interval(s: &str) -> Result<Duration> {
    let bad = || {
        Error::Container(format!(
            "invalid value {s:?} for flag -interval: parse error"
        ))
    };
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[u..];
    }
    if total <= 0.0 || !total.is_finite() {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// libcgroups' statistics in the field names and omissions of runc's
/// `events` (libcontainer's types.Stats): zero counters runc leaves out
/// are left out here too.
fn runc_stats(s: &Stats, cg: &Cgroup) -> RuncStats {
    let cpu = &s.cpu;
    let mut throttling = Map::new();
    for (k, v) in [
        ("periods", cpu.throttling.periods),
        ("throttled_periods", cpu.throttling.throttled_periods),
        ("throttled_time", cpu.throttling.throttled_time),
    ] {
        if v != 0 {
            throttling.insert(k.into(), v.into());
        }
    }
    let mut memory = Map::new();
    memory.insert("usage".into(), memory_data(&s.memory.memory, true));
    memory.insert("swap".into(), memory_data(&s.memory.memswap, true));
    memory.insert("kernel".into(), memory_data(&s.memory.kernel, true));
    memory.insert("kernelTCP".into(), memory_data(&s.memory.kernel_tcp, false));
    if s.memory.cache != 0 {
        memory.insert("cache".into(), s.memory.cache.into());
    }
    let mut raw: Vec<(&String, &u64)> = s.memory.stats.iter().collect();
    raw.sort();
    memory.insert(
        "raw".into(),
        Value::Object(
            raw.into_iter()
                .map(|(k, v)| (k.clone(), (*v).into()))
                .collect(),
        ),
    );
    let mut pids = Map::new();
    pids.insert("current".into(), s.pids.current.into());
    if s.pids.limit != 0 {
        pids.insert("limit".into(), s.pids.limit.into());
    }
    let mut blkio = Map::new();
    for (k, v) in [
        ("io_service_bytes_recursive", &s.blkio.service_bytes),
        ("io_serviced_recursive", &s.blkio.serviced),
        ("io_queue_recursive", &s.blkio.queued),
        ("io_service_time_recursive", &s.blkio.service_time),
        ("io_wait_time_recursive", &s.blkio.wait_time),
        ("io_merged_recursive", &s.blkio.merged),
        ("io_time_recursive", &s.blkio.time),
        ("sectors_recursive", &s.blkio.sectors),
    ] {
        if !v.is_empty() {
            blkio.insert(k.into(), v.iter().map(blkio_entry).collect());
        }
    }
    let mut hugetlb: Vec<_> = s.hugetlb.iter().collect();
    hugetlb.sort_by(|a, b| a.0.cmp(b.0));
    let hugetlb: Map<String, Value> = hugetlb
        .into_iter()
        .map(|(size, h)| {
            let mut m = Map::new();
            if h.usage != 0 {
                m.insert("usage".into(), h.usage.into());
            }
            if h.max_usage != 0 {
                m.insert("max".into(), h.max_usage.into());
            }
            m.insert("failcnt".into(), h.fail_count.into());
            (size.clone(), Value::Object(m))
        })
        .collect();
    RuncStats {
        cpu: json!({
            "usage": {
                "total": cpu.usage.usage_total,
                "percpu": cpu.usage.per_core_usage_total,
                "percpu_kernel": cpu.usage.per_core_usage_kernel,
                "percpu_user": cpu.usage.per_core_usage_user,
                "kernel": cpu.usage.usage_kernel,
                "user": cpu.usage.usage_user,
            },
            "throttling": throttling,
        }),
        cpuset: cgroups::cpuset_stats(cg),
        memory: Value::Object(memory),
        pids: Value::Object(pids),
        blkio: Value::Object(blkio),
        hugetlb: Value::Object(hugetlb),
        intel_rdt: json!({}),
        network_interfaces: Value::Null,
    }
}

/// runc's MemoryData: usage and max left out when zero (and, for
/// kernelTCP, always), failcnt and limit always there.
fn memory_data(m: &MemoryData, with_usage: bool) -> Value {
    let mut o = Map::new();
    o.insert("limit".into(), m.limit.into());
    if with_usage && m.usage != 0 {
        o.insert("usage".into(), m.usage.into());
    }
    if with_usage && m.max_usage != 0 {
        o.insert("max".into(), m.max_usage.into());
    }
    o.insert("failcnt".into(), m.fail_count.into());
    Value::Object(o)
}

fn blkio_entry(e: &BlkioDeviceStat) -> Value {
    json!({
        "major": e.major,
        "minor": e.minor,
        "op": e.op_type.clone().unwrap_or_default(),
        "value": e.value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_in_go_syntax() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_interval("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_interval("1m30s").unwrap(), Duration::from_secs(90));
        for bad in ["", "bogus", "5", "5x", "-1s", "0s", "s"] {
            let e = parse_interval(bad).unwrap_err().to_string();
            assert!(e.contains("parse error"), "{bad}: {e}");
        }
    }

    #[test]
    fn memory_data_omits_what_runc_omits() {
        let m = MemoryData {
            usage: 0,
            max_usage: 7,
            fail_count: 0,
            limit: 9,
        };
        assert_eq!(
            memory_data(&m, true),
            json!({"limit": 9, "max": 7, "failcnt": 0})
        );
        assert_eq!(memory_data(&m, false), json!({"limit": 9, "failcnt": 0}));
    }
}

fn read_u64(p: &std::path::Path) -> Option<u64> {
    let t = std::fs::read_to_string(p).ok()?;
    let t = t.trim();
    if t == "max" {
        return Some(0);
    }
    t.parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat): the value of `key`.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// The page cache's names in memory.stat, in the order they are taken:
/// cgroup v2 calls it "file", v1 "cache" (or total_cache).
const CACHE_KEYS: [&str; 5] = [
    "total_inactive_file",
    "inactive_file",
    "file",
    "total_cache",
    "cache",
];

/// The page cache in a memory.stat, by the first name the kernel uses.
fn page_cache(stat: &str) -> u64 {
    CACHE_KEYS.iter().find_map(|k| keyed(stat, k)).unwrap_or(0)
}

/// The v1 hierarchy mounted with `controller`, from mountinfo.
fn v1_mount(mountinfo: &str, controller: &str) -> Option<std::path::PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let mut post = post.split_whitespace();
        if post.next()? != "cgroup" {
            return None;
        }
        let opts = post.nth(1)?;
        opts.split(',')
            .any(|o| o == controller)
            .then(|| pre.split_whitespace().nth(4).map(std::path::PathBuf::from))?
    })
}

/// The cgroup hierarchies' lines of our mountinfo, read once per
/// process: `stats` of many containers would read a mountinfo holding
/// every container's mounts once for each of them.
fn cgroup_mounts() -> &'static str {
    static LINES: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LINES.get_or_init(|| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" - cgroup "))
            .flat_map(|l| [l, "\n"])
            .collect()
    })
}

fn direct_usage(cg: &cgroups::Cgroup) -> Option<Usage> {
    let rel = cg.path.strip_prefix("/").unwrap_or(&cg.path);
    if let Some(dir) = cg.v2_dir() {
        let cpu = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
        let mem = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
        let (mut r, mut w) = (0, 0);
        for l in std::fs::read_to_string(dir.join("io.stat"))
            .unwrap_or_default()
            .lines()
        {
            for f in l.split_whitespace() {
                match f.split_once('=') {
                    Some(("rbytes", v)) => r += v.parse::<u64>().unwrap_or(0),
                    Some(("wbytes", v)) => w += v.parse::<u64>().unwrap_or(0),
                    _ => {}
                }
            }
        }
        return Some(Usage {
            cpu_ns: keyed(&cpu, "usage_usec")? * 1000,
            memory: read_u64(&dir.join("memory.current"))?,
            memory_limit: read_u64(&dir.join("memory.max")).unwrap_or(0),
            cache: page_cache(&mem),
            pids: read_u64(&dir.join("pids.current")).unwrap_or(0),
            block_read: r,
            block_write: w,
        });
    }
    let at = |c: &str| v1_mount(cgroup_mounts(), c).map(|m| m.join(rel));
    let (cpuacct, memory) = (at("cpuacct")?, at("memory")?);
    let mem = std::fs::read_to_string(memory.join("memory.stat")).ok()?;
    let (mut r, mut w) = (0, 0);
    if let Some(blkio) = at("blkio") {
        let text = std::fs::read_to_string(blkio.join("blkio.throttle.io_service_bytes_recursive"))
            .or_else(|_| std::fs::read_to_string(blkio.join("blkio.throttle.io_service_bytes")))
            .unwrap_or_default();
        for l in text.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if let [_, op, v] = f.as_slice() {
                let v = v.parse::<u64>().unwrap_or(0);
                match *op {
                    "Read" => r += v,
                    "Write" => w += v,
                    _ => {}
                }
            }
        }
    }
    Some(Usage {
        cpu_ns: read_u64(&cpuacct.join("cpuacct.usage"))?,
        memory: read_u64(&memory.join("memory.usage_in_bytes"))?,
        memory_limit: read_u64(&memory.join("memory.limit_in_bytes")).unwrap_or(0),
        cache: page_cache(&mem),
        pids: at("pids")
            .and_then(|p| read_u64(&p.join("pids.current")))
            .unwrap_or(0),
        block_read: r,
        block_write: w,
    })
}

/// What `docker stats` shows of one container, from its cgroup.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    /// CPU time used, nanoseconds.
    pub cpu_ns: u64,
    pub memory: u64,
    /// The memory limit (0 or the kernel's "unlimited" when none).
    pub memory_limit: u64,
    /// Page cache, which Docker subtracts from the usage it shows.
    pub cache: u64,
    pub pids: u64,
    pub block_read: u64,
    pub block_write: u64,
}

/// A running container's cgroup usage: the few files `stats` shows read
/// directly (libcgroups' full `stats()` reads every controller's every
/// file, hugetlb's per page size too: 6 ms a container here), libcgroups
/// where one of them is missing.
pub fn usage(root: &Root, id: &str) -> Result<Usage> {
    let st = root.load(id)?;
    let cg = st
        .cgroup()
        .ok_or_else(|| Error::Cgroup("container has no cgroup".into()))?;
    if let Some(u) = direct_usage(&cg) {
        return Ok(u);
    }
    let s = cgroups::manager(&cg, id)?
        .stats()
        .map_err(|e| Error::Cgroup(format!("stats of {}: {e}", cg.path.display())))?;
    let io = |op: &str| -> u64 {
        s.blkio
            .service_bytes
            .iter()
            .filter(|d| {
                d.op_type
                    .as_deref()
                    .is_some_and(|o| o.eq_ignore_ascii_case(op))
            })
            .map(|d| d.value)
            .sum()
    };
    let cache = CACHE_KEYS
        .iter()
        .find_map(|k| s.memory.stats.get(*k).copied())
        .unwrap_or(s.memory.cache);
    Ok(Usage {
        cpu_ns: s.cpu.usage.usage_total,
        memory: s.memory.memory.usage,
        memory_limit: s.memory.memory.limit,
        cache,
        pids: s.pids.current,
        block_read: io("read"),
        block_write: io("write"),
    })
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn stat_files_and_mountinfo_are_read() {
        let stat = "cache 4096\ntotal_cache 8192\ntotal_inactive_file 1024\n";
        assert_eq!(keyed(stat, "cache"), Some(4096));
        assert_eq!(keyed(stat, "nosuch"), None);
        assert_eq!(page_cache(stat), 1024);
        assert_eq!(page_cache("file 77\nanon 5\n"), 77);
        let mi = "30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:11 - cgroup cgroup rw,memory\n\
                  31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw shared:12 - cgroup cgroup rw,cpu,cpuacct\n\
                  32 25 0:28 / /sys/fs/cgroup/unified rw shared:13 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            v1_mount(mi, "cpuacct"),
            Some(std::path::PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(
            v1_mount(mi, "memory"),
            Some(std::path::PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(v1_mount(mi, "pids"), None);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.max"), "max\n").unwrap();
        std::fs::write(dir.path().join("pids.current"), "7\n").unwrap();
        assert_eq!(read_u64(&dir.path().join("memory.max")), Some(0));
        assert_eq!(read_u64(&dir.path().join("pids.current")), Some(7));
    }
}
