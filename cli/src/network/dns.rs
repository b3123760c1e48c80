//! Name resolution on user networks, as Docker's embedded DNS and
//! podman's aardvark-dns give it: a small DNS server per network, bound
//! to the network's gateway address on port 53, answering A queries for
//! the names and aliases of the containers on that network (and on the
//! other networks the asking container is on), and passing every other
//! query on to the container's `--dns` servers or the host's.
//!
//! There is no daemon. The records live in `/run/strata/dns/<bridge>/
//! records.json` (host-wide, as the bridge is; in a rootless user's run
//! dir, as that user's bridges are), changed under a file lock by the
//! command that wires or unwires a container. The first container
//! on a network starts its server (`strata-monitor --dns DIR ADDR`, or
//! the hidden `strata network-dns` verb); the server re-reads the
//! records when they change and leaves by itself, under the same lock,
//! once the last container has gone. A server killed or lost with a
//! crash is started again by the next container that registers.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use simple_dns::rdata::{A, RData};
use simple_dns::{CLASS, Packet, PacketFlag, QTYPE, RCODE, ResourceRecord, TYPE};

use crate::containers::record;

/// What Docker's embedded DNS gives its answers.
const TTL: u32 = 600;

/// One container's names on a network.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    /// Lower case: the container's name, its aliases, its short id.
    pub names: Vec<String>,
    pub ip: Ipv4Addr,
    /// The container's `--dns` servers (the host's when empty).
    #[serde(default)]
    pub upstream: Vec<String>,
}

pub fn root_dir() -> PathBuf {
    crate::paths::default_run_dir().join("dns")
}

pub fn dir(bridge: &str) -> PathBuf {
    root_dir().join(bridge)
}

fn lock(dir: &Path) -> Result<Flock<std::fs::File>> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .with_context(|| format!("open {}/lock", dir.display()))?;
    Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("lock {}/lock: {e}", dir.display()))
}

pub fn read_records(dir: &Path) -> Vec<Entry> {
    std::fs::read(dir.join("records.json"))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default()
}

fn write_records(dir: &Path, entries: &[Entry]) -> Result<()> {
    record::write_atomic(&dir.join("records.json"), &serde_json::to_vec(entries)?)
}

/// The server's pid, when it lives.
fn server_pid(dir: &Path) -> Option<i32> {
    record::live_pid_file(&dir.join("pid"))
}

/// Add (or replace) `entry` and make sure the server runs; `server` is
/// the command that starts one (given DIR and the address to bind).
pub fn register(
    bridge: &str,
    listen: Ipv4Addr,
    entry: Entry,
    server: &dyn Fn(&Path, Ipv4Addr) -> std::process::Command,
) -> Result<()> {
    let dir = dir(bridge);
    let _l = lock(&dir)?;
    let mut entries = read_records(&dir);
    entries.retain(|e| e.id != entry.id || e.ip != entry.ip);
    entries.push(entry);
    write_records(&dir, &entries)?;
    if server_pid(&dir).is_some() {
        return Ok(());
    }
    let _ = std::fs::remove_file(dir.join("pid"));
    let log = std::fs::File::create(dir.join("server.log"))
        .with_context(|| format!("create {}/server.log", dir.display()))?;
    let mut cmd = server(&dir, listen);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    super::outliving(&mut cmd);
    let mut child = cmd.spawn().context("start the network's DNS server")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if server_pid(&dir) == Some(child.id() as i32) {
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            let why = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            bail!(
                "the DNS server for {bridge} on {listen}:53 exited ({st}): {}",
                why.trim()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the DNS server for {bridge} on {listen}:53 did not come up");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Drop `id`'s names (all of them, or those for `ip` only).
pub fn unregister(bridge: &str, id: &str, ip: Option<Ipv4Addr>) {
    let dir = dir(bridge);
    if !dir.exists() {
        return;
    }
    let Ok(_l) = lock(&dir) else { return };
    let mut entries = read_records(&dir);
    let before = entries.len();
    entries.retain(|e| e.id != id || ip.is_some_and(|ip| ip != e.ip));
    if entries.len() != before
        && let Err(e) = write_records(&dir, &entries)
    {
        tracing::warn!("{e:#}");
    }
}

/// Stop the network's server and forget its records (`network rm`).
pub fn remove(bridge: &str) {
    let dir = dir(bridge);
    if !dir.exists() {
        return;
    }
    if let Ok(_l) = lock(&dir) {
        if let Some(pid) = server_pid(&dir) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = std::fs::remove_file(dir.join("pid"));
        let _ = std::fs::remove_file(dir.join("records.json"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- the server ---------------------------------------------------------

/// The records as last read, and what they were read at.
struct View {
    dir: PathBuf,
    stamp: Option<(std::time::SystemTime, u64)>,
    entries: Vec<Entry>,
}

impl View {
    fn refresh(&mut self) {
        let stamp = std::fs::metadata(self.dir.join("records.json"))
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp != self.stamp || stamp.is_none() {
            self.entries = read_records(&self.dir);
            self.stamp = stamp;
        }
    }
}

/// The server's main: answer on `listen`:53 until no container is left.
pub fn serve(dir: &Path, listen: Ipv4Addr) -> Result<()> {
    let sock = UdpSocket::bind((listen, 53)).with_context(|| format!("bind {listen}:53/udp"))?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    let me = std::process::id() as i32;
    record::write_pid_file(&dir.join("pid"), me)?;
    let mut view = View {
        dir: dir.to_path_buf(),
        stamp: None,
        entries: Vec::new(),
    };
    let mut empty_since: Option<Instant> = None;
    let mut buf = vec![0u8; 4096];
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                view.refresh();
                match answer(&buf[..n], from, &view.entries, dir) {
                    Reply::Now(bytes) => {
                        let _ = sock.send_to(&bytes, from);
                    }
                    Reply::Forward(upstream) => {
                        let query = buf[..n].to_vec();
                        if let Ok(s) = sock.try_clone() {
                            std::thread::spawn(move || forward(&s, &query, from, &upstream));
                        }
                    }
                    Reply::Drop => {}
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("receive a DNS query"),
        }
        // Leave once nobody is left to ask (checked under the lock, so a
        // container registering now either is seen or starts a new one).
        view.refresh();
        if !view.entries.is_empty() {
            empty_since = None;
            continue;
        }
        let since = *empty_since.get_or_insert_with(Instant::now);
        if since.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("lock"));
        let Ok(f) = f else { return Ok(()) };
        if let Ok(_l) = Flock::lock(f, FlockArg::LockExclusiveNonblock)
            && read_records(dir).is_empty()
        {
            if server_pid(dir) == Some(me) {
                let _ = std::fs::remove_file(dir.join("pid"));
            }
            return Ok(());
        }
    }
}

enum Reply {
    Now(Vec<u8>),
    Forward(Vec<SocketAddr>),
    Drop,
}

/// The entries the asker at `from` may see: its network's, and those of
/// the other networks it is on.
fn visible(from: SocketAddr, entries: &[Entry], dir: &Path) -> Vec<Entry> {
    let mut out = entries.to_vec();
    let asker = match from.ip() {
        std::net::IpAddr::V4(ip) => entries.iter().find(|e| e.ip == ip).map(|e| e.id.clone()),
        _ => None,
    };
    let (Some(asker), Some(parent)) = (asker, dir.parent()) else {
        return out;
    };
    let Ok(rd) = std::fs::read_dir(parent) else {
        return out;
    };
    for d in rd.flatten() {
        if d.path() == dir {
            continue;
        }
        let other = read_records(&d.path());
        if other.iter().any(|e| e.id == asker) {
            out.extend(other);
        }
    }
    out
}

/// The host's resolvers (from /etc/resolv.conf). A rootless user's
/// server runs in the user's network namespace, which cannot reach the
/// host's loopback: resolvers there are reached through pasta's DNS
/// forwarder.
fn host_upstream() -> Vec<String> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if crate::rootless::mode().is_some() && super::pasta::loopback_resolvers_only(&conf) {
        return vec![super::pasta::DNS_FORWARD.to_string()];
    }
    conf.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next().map(String::from))?
        })
        .collect()
}

fn answer(query: &[u8], from: SocketAddr, entries: &[Entry], dir: &Path) -> Reply {
    let Ok(q) = Packet::parse(query) else {
        return Reply::Drop;
    };
    if q.has_flags(PacketFlag::RESPONSE) {
        return Reply::Drop;
    }
    let Some(question) = q.questions.first() else {
        return Reply::Drop;
    };
    let name = question
        .qname
        .to_string()
        .trim_end_matches('.')
        .to_lowercase();
    let seen = visible(from, entries, dir);
    // A name on the asker's own network is answered with its address
    // there; else with its address on another network they share.
    let matching = |among: &[Entry]| -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = among
            .iter()
            .filter(|e| e.names.contains(&name))
            .map(|e| e.ip)
            .collect();
        v.dedup();
        v
    };
    let mut ips = matching(entries);
    if ips.is_empty() {
        ips = matching(&seen);
    }
    let mut reply = Packet::new_reply(q.id());
    if q.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    reply.set_flags(PacketFlag::RECURSION_AVAILABLE);
    reply.questions.push(question.clone());
    if !ips.is_empty() {
        reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
        if question.qtype == QTYPE::TYPE(TYPE::A) || question.qtype == QTYPE::ANY {
            for ip in ips {
                reply.answers.push(ResourceRecord::new(
                    question.qname.clone(),
                    CLASS::IN,
                    TTL,
                    RData::A(A {
                        address: u32::from(ip),
                    }),
                ));
            }
        }
        // Other types of a known name: no data (NOERROR, no answers).
        return reply.build_bytes_vec().map_or(Reply::Drop, Reply::Now);
    }
    // Not ours: the asker's --dns servers, else the host's.
    let asker = match from.ip() {
        std::net::IpAddr::V4(ip) => seen.iter().find(|e| e.ip == ip),
        _ => None,
    };
    let upstream = asker
        .map(|e| e.upstream.clone())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(host_upstream);
    let addrs: Vec<SocketAddr> = upstream
        .iter()
        .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if addrs.is_empty() {
        *reply.rcode_mut() = RCODE::ServerFailure;
        return reply.build_bytes_vec().map_or(Reply::Drop, Reply::Now);
    }
    Reply::Forward(addrs)
}

/// Ask the upstream servers in turn; relay the first answer, or SERVFAIL.
fn forward(sock: &UdpSocket, query: &[u8], to: SocketAddr, upstream: &[SocketAddr]) {
    for up in upstream {
        let bind: SocketAddr = if up.is_ipv4() {
            "0.0.0.0:0".parse().expect("constant address")
        } else {
            "[::]:0".parse().expect("constant address")
        };
        let Ok(s) = UdpSocket::bind(bind) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.send_to(query, up).is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok((n, from)) = s.recv_from(&mut buf)
            && from == *up
        {
            let _ = sock.send_to(&buf[..n], to);
            return;
        }
    }
    if let Ok(q) = Packet::parse(query) {
        let mut reply = Packet::new_reply(q.id());
        reply.questions = q.questions.clone();
        *reply.rcode_mut() = RCODE::ServerFailure;
        if let Ok(b) = reply.build_bytes_vec() {
            let _ = sock.send_to(&b, to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::{Name, Question};

    fn query(name: &str, ty: TYPE) -> Vec<u8> {
        let mut p = Packet::new_query(7);
        p.set_flags(PacketFlag::RECURSION_DESIRED);
        p.questions.push(Question::new(
            Name::new_unchecked(name),
            ty.into(),
            simple_dns::QCLASS::CLASS(CLASS::IN),
            false,
        ));
        p.build_bytes_vec().unwrap()
    }

    #[test]
    fn names_on_the_network_are_answered_and_others_passed_on() {
        let tmp = tempfile::tempdir().unwrap();
        let net = tmp.path().join("sbr-a");
        let other = tmp.path().join("sbr-b");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        let web = Entry {
            id: "c1".into(),
            names: vec!["web".into(), "frontend".into()],
            ip: Ipv4Addr::new(10, 89, 1, 2),
            upstream: vec!["192.0.2.53".into()],
        };
        let db = Entry {
            id: "c2".into(),
            names: vec!["db".into()],
            ip: Ipv4Addr::new(10, 89, 2, 2),
            upstream: vec![],
        };
        // c1 is on the other network too: it sees db there.
        let c1_there = Entry {
            ip: Ipv4Addr::new(10, 89, 2, 3),
            ..web.clone()
        };
        write_records(&other, &[db.clone(), c1_there]).unwrap();
        let from_web: SocketAddr = "10.89.1.2:40000".parse().unwrap();
        let from_stranger: SocketAddr = "10.89.1.9:40000".parse().unwrap();
        let entries = vec![web.clone()];
        let ips = |r: Reply| match r {
            Reply::Now(b) => {
                let p = Packet::parse(&b).unwrap();
                assert_eq!(p.id(), 7);
                (
                    p.rcode(),
                    p.answers
                        .iter()
                        .map(|a| match &a.rdata {
                            RData::A(a) => Ipv4Addr::from(a.address),
                            _ => panic!("not A"),
                        })
                        .collect::<Vec<_>>(),
                )
            }
            _ => panic!("no reply"),
        };
        let (rc, got) = ips(answer(
            &query("Frontend.", TYPE::A),
            from_web,
            &entries,
            &net,
        ));
        assert_eq!((rc, got), (RCODE::NoError, vec![web.ip]));
        let (rc, got) = ips(answer(&query("db", TYPE::A), from_web, &entries, &net));
        assert_eq!((rc, got), (RCODE::NoError, vec![db.ip]));
        // A known name has no AAAA: no data, no error.
        let (rc, got) = ips(answer(&query("web", TYPE::AAAA), from_web, &entries, &net));
        assert_eq!((rc, got.len()), (RCODE::NoError, 0));
        // db is not on the stranger's networks: passed on upstream.
        match answer(&query("db", TYPE::A), from_stranger, &entries, &net) {
            Reply::Forward(_) | Reply::Now(_) => {}
            Reply::Drop => panic!("dropped"),
        }
        // The asker's own --dns servers take what is not ours.
        match answer(&query("example.org", TYPE::A), from_web, &entries, &net) {
            Reply::Forward(up) => assert_eq!(up, vec!["192.0.2.53:53".parse().unwrap()]),
            _ => panic!("not forwarded"),
        }
        // Garbage is dropped, not answered.
        assert!(matches!(
            answer(b"\x01\x02", from_web, &entries, &net),
            Reply::Drop
        ));
    }
}
