//! Networks: `none` (a namespace with only loopback up), `host` (no
//! namespace), and `bridge`. Every non-host container gets a namespace of
//! its own, pinned by a bind mount so it outlives processes, with `lo`
//! brought up by us. Bridge wiring is ours too, over rtnetlink (see
//! [`super::netlink`]): the `strata0` bridge with the subnet's gateway
//! address, a veth pair per container whose inner end is made inside the
//! namespace as `eth0`, its address from a lease directory laid out as
//! CNI host-local's, and a default route. Outbound NAT is one masquerade
//! rule. Published ports (`-p`) go through the standard CNI `portmap`
//! plugin from Debian's containernetworking-plugins: its DNAT, hairpin
//! and localhost handling is the field's tested code, and it runs only
//! for containers that publish.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use serde_json::{Value, json};

use super::netlink::{self, Netlink};
use super::record::Port;

pub const CNI_PATH: &str = "/usr/lib/cni";
pub const BRIDGE: &str = "strata0";
pub const SUBNET: &str = "10.89.0.0/24";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 1);
const PREFIX: u8 = 24;

/// The bridge's address leases: host-wide, whatever the store.
pub fn ipam_dir() -> PathBuf {
    PathBuf::from("/run/strata/ipam")
}

/// Make a new network namespace pinned at `path`.
pub fn create_netns(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let target = path.to_path_buf();
    // A thread of our own enters a new namespace and pins it; the
    // namespace is per thread, so the rest of the process is untouched.
    let res = std::thread::spawn(move || -> nix::Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        loopback_up()?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    })
    .join()
    .map_err(|_| anyhow::anyhow!("netns thread panicked"))?;
    if let Err(e) = res {
        let _ = std::fs::remove_file(path);
        bail!("create network namespace {}: {e}", path.display());
    }
    Ok(())
}

/// Bring `lo` up in the current thread's network namespace (what the CNI
/// loopback plugin does, without an exec).
fn loopback_up() -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value for it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the ifreq we own, on our socket.
    nix::errno::Errno::result(unsafe {
        libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req)
    })?;
    // SAFETY: the flags member of the union is the one SIOCGIFFLAGS set.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we pass, on our socket.
    nix::errno::Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

pub fn remove_netns(path: &Path) {
    let _ = umount2(path, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}

fn conf(name: &str, plugin: Value) -> Value {
    let mut p = plugin;
    p["cniVersion"] = json!("1.0.0");
    p["name"] = json!(name);
    p
}

fn portmap_conf(ports: &[Port]) -> Value {
    let maps: Vec<Value> = ports
        .iter()
        .map(|p| {
            json!({"hostPort": p.host_port, "containerPort": p.container_port,
                   "protocol": p.protocol, "hostIP": p.host_ip})
        })
        .collect();
    conf(
        "strata",
        json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true,
               "runtimeConfig": {"portMappings": maps}}),
    )
}

/// Run one plugin; returns its result (ADD) or nothing (DEL).
fn plugin(
    cmd: &str,
    id: &str,
    netns: &Path,
    ifname: &str,
    mut config: Value,
    prev: Option<&Value>,
) -> Result<Value> {
    let ty = config["type"].as_str().unwrap_or_default().to_string();
    if let Some(p) = prev {
        config["prevResult"] = p.clone();
    }
    let mut child = Command::new(Path::new(CNI_PATH).join(&ty))
        .env_clear()
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", CNI_PATH)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!("run CNI plugin {ty} (Debian package containernetworking-plugins)")
        })?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(config.to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    if !out.status.success() {
        let msg = v["msg"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
        let details = v["details"].as_str().unwrap_or("");
        bail!(
            "network ({ty} {cmd}): {msg}{}{details}",
            if details.is_empty() { "" } else { ": " }
        );
    }
    Ok(v)
}

/// Wire the namespace for bridge: an address on the strata bridge and
/// the published ports. Returns the container's IP. On failure, whatever
/// was set up is taken down again (the veth goes with the namespace,
/// which the caller removes).
pub fn setup(
    id: &str,
    netns: &Path,
    bridge: bool,
    ports: &[Port],
    ipam_dir: &Path,
) -> Result<Option<String>> {
    // lo is already up (create_netns).
    if !bridge {
        return Ok(None);
    }
    ensure_masquerade()?;
    let mut nl = Netlink::open()?;
    let br = ensure_bridge(&mut nl)?;
    let ip = allocate(ipam_dir, id)?;
    if let Err(e) = wire(&mut nl, br, id, netns, ip) {
        release(ipam_dir, id);
        return Err(e);
    }
    if !ports.is_empty() {
        // portmap reads the container's address from the previous
        // result, as a CNI runtime would chain it.
        let prev = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": netns}],
            "ips": [{"address": format!("{ip}/{PREFIX}"), "gateway": GATEWAY.to_string(),
                     "interface": 0}],
        });
        if let Err(e) = plugin("ADD", id, netns, "eth0", portmap_conf(ports), Some(&prev)) {
            release(ipam_dir, id);
            return Err(e);
        }
    }
    Ok(Some(ip.to_string()))
}

/// The bridge with the gateway address, up, and forwarding on; its index.
fn ensure_bridge(nl: &mut Netlink) -> Result<u32> {
    nl.create_bridge(BRIDGE)?;
    let br = netlink::index(BRIDGE).with_context(|| format!("bridge {BRIDGE} vanished"))?;
    nl.add_addr(br, GATEWAY, PREFIX)?;
    let fwd = Path::new("/proc/sys/net/ipv4/ip_forward");
    if std::fs::read(fwd).is_ok_and(|v| v.first() != Some(&b'1')) {
        std::fs::write(fwd, "1").context("enable IPv4 forwarding")?;
    }
    Ok(br)
}

/// The veth pair (`eth0` inside), its address and the default route.
fn wire(nl: &mut Netlink, br: u32, id: &str, netns: &Path, ip: Ipv4Addr) -> Result<()> {
    let ns = std::fs::File::open(netns).with_context(|| format!("open {}", netns.display()))?;
    let host = format!("veth{}", id.get(..11).unwrap_or(id));
    nl.create_veth(&host, br, "eth0", ns.as_raw_fd())?;
    // Hairpin: a container reaches its own published port through the
    // bridge (what the CNI bridge plugin's hairpinMode sets).
    let hairpin = format!("/sys/class/net/{host}/brport/hairpin_mode");
    if let Err(e) = std::fs::write(&hairpin, "1") {
        tracing::warn!("{hairpin}: {e}");
    }
    // The namespace is per thread: a thread of our own enters it.
    std::thread::spawn(move || -> Result<()> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .context("enter the container's network namespace")?;
        let mut nl = Netlink::open()?;
        let eth0 = netlink::index("eth0").context("eth0 missing in the container")?;
        nl.add_addr(eth0, ip, PREFIX)?;
        nl.set_up(eth0)?;
        nl.add_default_route(eth0, GATEWAY)?;
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("network thread panicked"))?
}

/// The lease directory: host-local's layout (`<dir>/<network>/<ip>`
/// holding the container id), so leases from before carry over.
fn leases(ipam_dir: &Path) -> PathBuf {
    ipam_dir.join("strata")
}

/// A free address of the subnet for `id`, taken with O_EXCL (two starts
/// at once never share one), searching on from the last one given out.
fn allocate(ipam_dir: &Path, id: &str) -> Result<Ipv4Addr> {
    let dir = leases(ipam_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let last_file = dir.join("last_reserved_ip.0");
    let last = std::fs::read_to_string(&last_file)
        .ok()
        .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
        .map(|a| a.octets()[3])
        .unwrap_or(1);
    // Host numbers 2..=254 (.1 is the gateway, .255 broadcast).
    for step in 1..=253u16 {
        let host = 2 + ((u16::from(last) + step - 2) % 253) as u8;
        let [a, b, c, _] = GATEWAY.octets();
        let ip = Ipv4Addr::new(a, b, c, host);
        let lease = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(ip.to_string()));
        match lease {
            Ok(mut f) => {
                f.write_all(format!("{id}\r\neth0").as_bytes())
                    .with_context(|| format!("write the lease of {ip}"))?;
                let _ = std::fs::write(&last_file, ip.to_string());
                return Ok(ip);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("lease {ip}")),
        }
    }
    bail!("network: no free address left in {SUBNET}")
}

/// Give back the address leased to `id`.
fn release(ipam_dir: &Path, id: &str) {
    let Ok(dir) = std::fs::read_dir(leases(ipam_dir)) else {
        return;
    };
    for e in dir.flatten() {
        if e.file_name().to_string_lossy().parse::<Ipv4Addr>().is_err() {
            continue;
        }
        let owner = std::fs::read_to_string(e.path()).unwrap_or_default();
        if owner.lines().next().map(str::trim) == Some(id) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Undo `setup`: the port mappings and the address (the veth goes with
/// the namespace, removed by the caller).
pub fn teardown(id: &str, netns: &Path, bridge: bool, ports: &[Port], ipam_dir: &Path) {
    if bridge {
        if !ports.is_empty()
            && let Err(e) = plugin("DEL", id, netns, "eth0", portmap_conf(ports), None)
        {
            tracing::warn!("{e}");
        }
        release(ipam_dir, id);
    }
}

/// Outbound NAT for the bridge's subnet: one MASQUERADE rule, added once
/// per boot (the marker lives on /run, a tmpfs, like the rule itself).
fn ensure_masquerade() -> Result<()> {
    let marker = Path::new("/run/strata/masquerade");
    if marker.exists() {
        return Ok(());
    }
    let rule = ["-s", SUBNET, "!", "-o", BRIDGE, "-j", "MASQUERADE"];
    let iptables = |op: &str| {
        Command::new("iptables")
            .args(["-w", "-t", "nat", op, "POSTROUTING"])
            .args(rule)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    };
    let present = iptables("-C").is_ok_and(|s| s.success());
    if !present {
        let st = iptables("-A").context("run iptables")?;
        if !st.success() {
            bail!("network: could not add the masquerade rule for {SUBNET}");
        }
    }
    if let Some(d) = marker.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    let _ = std::fs::write(marker, SUBNET);
    Ok(())
}

/// Host-wide port reservations: `<dir>/<proto>-<port>` holds the netns
/// path of the container that publishes it, created with O_EXCL so two
/// containers never get one port. A reservation whose netns is gone is
/// stale and taken over.
pub fn reserve_ports(dir: &Path, netns: &Path, ports: &[Port]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    for (i, p) in ports.iter().enumerate() {
        let f = dir.join(format!("{}-{}", p.protocol, p.host_port));
        let taken = |f: &Path| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(f)
                .and_then(|mut h| h.write_all(netns.as_os_str().as_encoded_bytes()))
                .is_err()
        };
        let mut busy = taken(&f);
        if busy {
            let owner = std::fs::read_to_string(&f).unwrap_or_default();
            if owner != netns.to_string_lossy() && !Path::new(&owner).exists() {
                let _ = std::fs::remove_file(&f);
                busy = taken(&f);
            } else if owner == netns.to_string_lossy() {
                busy = false;
            }
        }
        if busy || check_port_free(p).is_err() {
            if !busy {
                let _ = std::fs::remove_file(&f);
            }
            release_ports(dir, netns, &ports[..i]);
            return Err(allocated(p));
        }
    }
    Ok(())
}

/// Drop the reservations `netns` holds.
pub fn release_ports(dir: &Path, netns: &Path, ports: &[Port]) {
    for p in ports {
        let f = dir.join(format!("{}-{}", p.protocol, p.host_port));
        if std::fs::read_to_string(&f).is_ok_and(|o| o == netns.to_string_lossy()) {
            let _ = std::fs::remove_file(&f);
        }
    }
}

fn allocated(p: &Port) -> anyhow::Error {
    anyhow::anyhow!(
        "port is already allocated: {}:{}/{}",
        p.host_addr(),
        p.host_port,
        p.protocol
    )
}

/// Can `p` be published: not reserved by a live container, not bound by
/// a host process? (Checked at create, before anything is made.)
pub fn check_available(dir: &Path, p: &Port) -> Result<()> {
    let f = dir.join(format!("{}-{}", p.protocol, p.host_port));
    if std::fs::read_to_string(f).is_ok_and(|owner| Path::new(&owner).exists()) {
        return Err(allocated(p));
    }
    check_port_free(p)
}

/// Is a host port free to publish? (A bind test: a host process owns it.)
pub fn check_port_free(p: &Port) -> Result<()> {
    let addr = format!("{}:{}", p.host_addr(), p.host_port);
    let taken = if p.protocol == "udp" {
        std::net::UdpSocket::bind(&addr).is_err()
    } else {
        std::net::TcpListener::bind(&addr).is_err()
    };
    if taken {
        return Err(allocated(p));
    }
    Ok(())
}

/// `-p [ip:][hostPort[-end]:]containerPort[-end][/proto]`.
pub fn parse_publish(s: &str) -> Result<Vec<Port>> {
    let bad = || {
        anyhow::anyhow!("invalid publish spec {s:?}: want [ip:]hostPort:containerPort[/tcp|udp]")
    };
    let (spec, proto) = match s.rsplit_once('/') {
        Some((a, p)) if p == "tcp" || p == "udp" => (a, p.to_string()),
        Some(_) => return Err(bad()),
        None => (s, "tcp".to_string()),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [ip, h, c] => (*ip, *h, *c),
        _ => return Err(bad()),
    };
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(bad());
    }
    let range = |r: &str| -> Result<(u16, u16)> {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let a: u16 = a.parse().map_err(|_| bad())?;
        let b: u16 = b.parse().map_err(|_| bad())?;
        if a == 0 || b < a {
            return Err(bad());
        }
        Ok((a, b))
    };
    let (c0, c1) = range(ctr)?;
    // No host port: Docker's way, a free one is picked (0 until create).
    if host.is_empty() {
        return Ok((c0..=c1)
            .map(|c| Port {
                host_ip: ip.to_string(),
                host_port: 0,
                container_port: c,
                protocol: proto.clone(),
            })
            .collect());
    }
    let (h0, h1) = range(host)?;
    if h1 - h0 != c1 - c0 {
        return Err(bad());
    }
    Ok((0..=(c1 - c0))
        .map(|i| Port {
            host_ip: ip.to_string(),
            host_port: h0 + i,
            container_port: c0 + i,
            protocol: proto.clone(),
        })
        .collect())
}

/// `--expose` and ExposedPorts keys: `port[-end][/tcp|udp]`.
pub fn parse_expose(s: &str) -> Result<Vec<(u16, String)>> {
    let bad = || anyhow::anyhow!("invalid port {s:?}: want port[-end][/tcp|udp]");
    let (ports, proto) = match s.rsplit_once('/') {
        Some((a, p)) if p == "tcp" || p == "udp" => (a, p),
        Some(_) => return Err(bad()),
        None => (s, "tcp"),
    };
    let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if a == 0 || b < a {
        return Err(bad());
    }
    Ok((a..=b).map(|p| (p, proto.to_string())).collect())
}

/// A host port for `p` from the kernel's ephemeral range that no
/// container has reserved and nothing on the host is bound to.
pub fn free_host_port(dir: &Path, p: &Port) -> Result<u16> {
    let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .filter(|(lo, hi)| lo <= hi && *lo > 0)
        .unwrap_or((32768, 60999));
    let span = u32::from(hi - lo) + 1;
    // A random starting point (not a secret): a zero seed still works.
    let mut seed = [0u8; 4];
    let _ = super::record::random_bytes(&mut seed);
    let start = u32::from_ne_bytes(seed) % span;
    for i in 0..span.min(4096) {
        let port = lo + ((start + i) % span) as u16;
        let cand = Port {
            host_port: port,
            ..p.clone()
        };
        if check_available(dir, &cand).is_ok() && check_port_free(&cand).is_ok() {
            return Ok(port);
        }
    }
    bail!(
        "no free host port for {}/{} in {lo}-{hi}",
        p.container_port,
        p.protocol
    )
}

pub fn netns_path(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join("netns").join(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs() {
        let p = parse_publish("127.0.0.1:8080:80").unwrap();
        assert_eq!(
            p,
            vec![Port {
                host_ip: "127.0.0.1".into(),
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into()
            }]
        );
        let p = parse_publish("9000-9001:90-91/udp").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[1].host_port, p[1].container_port, p[1].protocol.as_str()),
            (9001, 91, "udp")
        );
        // No host port: one is picked at create (0 until then).
        assert_eq!(parse_publish("80").unwrap()[0].host_port, 0);
        assert_eq!(parse_publish("127.0.0.1::80").unwrap()[0].host_port, 0);
        assert_eq!(
            parse_expose("53/udp").unwrap(),
            vec![(53, "udp".to_string())]
        );
        assert_eq!(parse_expose("80-81").unwrap().len(), 2);
        for bad in ["0", "x", "80/sctp", "9-8"] {
            assert!(parse_expose(bad).is_err(), "{bad}");
        }
        for bad in ["x:80", "80:0", "1-3:1-2", "80/sctp", "a.b:1:2", "1:2:3:4"] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }
}
