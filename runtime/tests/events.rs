//! `events`: runc's statistics document, a stream with OOM events that
//! ends with the container, and runc's errors.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// Every path to a scalar or array in `v` ("data.memory.usage.limit").
fn key_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                key_paths(v, &p, out);
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

/// Key paths without those runc (and we) leave out while their counter is
/// zero, which differ between two containers by chance: block I/O
/// entries, throttling, the page cache, and the usage/max of memory and
/// hugetlb counters.
fn settled(paths: BTreeSet<String>) -> BTreeSet<String> {
    paths
        .into_iter()
        .map(|p| {
            for group in ["data.blkio", "data.cpu.throttling"] {
                if p.starts_with(&format!("{group}.")) {
                    return group.to_string();
                }
            }
            p
        })
        .filter(|p| {
            let counted = p.starts_with("data.memory.") || p.starts_with("data.hugetlb.");
            p != "data.memory.cache"
                && !(counted
                    && !p.starts_with("data.memory.raw.")
                    && (p.ends_with(".usage") || p.ends_with(".max")))
        })
        .collect()
}

fn runc(root: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn events_stats_have_runcs_fields() {
    let b = Bundle::new("exec sleep 1000");
    b.create("ev-stats");
    b.ok(&["start", "ev-stats"]);
    let line = b.ok(&["events", "--stats", "ev-stats"]);
    // Go's field order, which callers match on: type, id, data; and
    // libcontainer's order inside data.
    assert!(
        line.starts_with("{\"type\":\"stats\",\"id\":\"ev-stats\",\"data\":{\"cpu\":"),
        "{line}"
    );
    let keys = [
        "\"cpu\":",
        "\"memory\":",
        "\"pids\":",
        "\"blkio\":",
        "\"hugetlb\":",
        "\"intel_rdt\":",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| line.find(k).unwrap_or(usize::MAX))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{line}");
    let ours: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ours["type"], "stats");
    assert_eq!(ours["id"], "ev-stats");
    assert_eq!(ours["data"]["pids"]["current"], 1, "{ours}");
    assert!(ours["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert!(ours["data"]["cpu"]["usage"]["total"].as_u64().unwrap() > 0);

    // runc's document for the same bundle has the same fields.
    let runc_root = b.path().join("runc-state");
    let bundle = b.path().to_str().unwrap();
    // Detached, its stdio is the container's: not our pipes.
    let started = Command::new("runc")
        .arg("--root")
        .arg(&runc_root)
        .args(["run", "-d", "--bundle", bundle, "ev-stats-runc"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(started.success(), "runc run -d");
    let out = runc(&runc_root, &["events", "--stats", "ev-stats-runc"]);
    let _ = runc(&runc_root, &["delete", "--force", "ev-stats-runc"]);
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (mut a, mut t) = (BTreeSet::new(), BTreeSet::new());
    key_paths(&ours, "", &mut a);
    key_paths(&theirs, "", &mut t);
    let (a, t) = (settled(a), settled(t));
    assert_eq!(
        a.symmetric_difference(&t).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "fields that differ from runc's"
    );
    b.ok(&["kill", "ev-stats", "KILL"]);
    b.wait_status("ev-stats", "stopped");
    b.ok(&["delete", "ev-stats"]);
}

#[test]
fn events_stream_stats_and_an_oom_until_the_container_stops() {
    // busybox sort holds its input in memory: 200 MB under a 32 MiB limit
    // without swap is an OOM kill.
    let mut b = Bundle::new("sleep 1; head -c 200000000 /dev/zero | sort > /dev/null; sleep 1");
    b.config["linux"]["resources"] = json!({"memory": {"limit": 33554432, "swap": 33554432}});
    b.save();
    b.create("ev-oom");
    b.ok(&["start", "ev-oom"]);
    let mut child = b
        .cmd(&["events", "--interval", "300ms", "ev-oom"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("events did not end with the container");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(status.success(), "{text}");
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().all(|e| e["id"] == "ev-oom"), "{text}");
    let count = |t: &str| events.iter().filter(|e| e["type"] == t).count();
    assert!(count("stats") >= 3, "a stats event every 300 ms: {text}");
    assert_eq!(count("oom"), 1, "{text}");
    assert_eq!(b.status("ev-oom"), "stopped");
    b.ok(&["delete", "ev-oom"]);
}

#[test]
fn events_errors_are_runcs() {
    let b = Bundle::new("true");
    let out = b.rt(&["events", "--stats", "ev-none"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    b.create("ev-done");
    b.ok(&["start", "ev-done"]);
    b.wait_status("ev-done", "stopped");
    let out = b.rt(&["events", "ev-done"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("container with id ev-done is not running"),
        "{}",
        stderr(&out)
    );
    let out = b.rt(&["events", "--interval", "bogus", "ev-done"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("parse error"), "{}", stderr(&out));
    b.ok(&["delete", "ev-done"]);
}
