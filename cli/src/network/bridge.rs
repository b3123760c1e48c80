//! Bridge wiring, ours over rtnetlink (see [`super::netlink`]): a Linux
//! bridge per network with the gateway address, a veth pair per
//! container and network whose inner end is made inside the container's
//! namespace (`eth0`, `eth1`, ...), its address from a lease directory
//! laid out as CNI host-local's, and, on the first network, the default
//! route. Outbound NAT is one masquerade rule per network; an
//! `--internal` network gets neither the rule nor a default route, so
//! its containers reach each other and its gateway (the DNS server) only.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::netlink::{self, Netlink};

/// The default bridge: Docker's `bridge` network.
pub const BRIDGE: &str = "strata0";
pub const SUBNET: &str = "10.89.0.0/24";
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 1);

/// The address leases of every bridge: host-wide (the user's, rootless),
/// whatever the store.
pub fn ipam_dir() -> PathBuf {
    crate::paths::default_run_dir().join("ipam")
}

/// What the wiring needs to know of one network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetDef {
    /// The lease directory's name under [`ipam_dir`].
    pub key: String,
    /// The Linux bridge.
    pub bridge: String,
    /// The subnet: its first address and prefix length.
    pub net: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub internal: bool,
}

impl NetDef {
    /// Docker's default `bridge` network (its lease directory keeps the
    /// name it had before user networks came).
    pub fn default_bridge() -> NetDef {
        NetDef {
            key: "strata".into(),
            bridge: BRIDGE.into(),
            net: Ipv4Addr::new(10, 89, 0, 0),
            prefix: 24,
            gateway: GATEWAY,
            internal: false,
        }
    }

    pub fn subnet(&self) -> String {
        format!("{}/{}", self.net, self.prefix)
    }

    fn mask(&self) -> u32 {
        mask(self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.net)
    }

    /// The addresses a container may take: not the network's, the
    /// broadcast or the gateway.
    fn assignable(&self, ip: Ipv4Addr) -> bool {
        let first = u32::from(self.net);
        let last = first | !self.mask();
        let n = u32::from(ip);
        self.contains(ip) && n != first && n != last && ip != self.gateway
    }

    fn leases(&self) -> PathBuf {
        ipam_dir().join(&self.key)
    }
}

pub fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

/// `a.b.c.d/n`, with the host bits cleared; `what` names it in errors.
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8)> {
    let bad = || anyhow::anyhow!("invalid CIDR address: {s}");
    let (a, p) = s.split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = a.parse().map_err(|_| bad())?;
    let prefix: u8 = p.parse().map_err(|_| bad())?;
    if !(8..=30).contains(&prefix) {
        bail!("invalid subnet {s}: the prefix must be between /8 and /30");
    }
    Ok((Ipv4Addr::from(u32::from(ip) & mask(prefix)), prefix))
}

/// Docker's MAC for an address: 02:42 and the address's four bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || anyhow::anyhow!("invalid MAC address: {s}");
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *m = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    // A multicast address cannot be a link's own.
    if mac[0] & 1 == 1 {
        return Err(bad());
    }
    Ok(mac)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One interface to wire into a container's namespace.
pub struct Attach<'a> {
    pub def: &'a NetDef,
    /// `eth0`, `eth1`, ... inside.
    pub ifname: &'a str,
    /// A fixed address (`--ip`), else the next free one.
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
    /// The container's default route goes through this network.
    pub default_route: bool,
}

/// What an attachment got.
#[derive(Clone, Debug)]
pub struct Attached {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
}

/// The host end of a container's veth for `ifname` (15 bytes at most).
pub fn host_ifname(id: &str, ifname: &str) -> String {
    let short = id.get(..11).unwrap_or(id);
    match ifname
        .strip_prefix("eth")
        .and_then(|n| n.parse::<u32>().ok())
    {
        Some(0) | None => format!("veth{short}"),
        Some(n) => format!("vet{}{short}", n % 10),
    }
}

/// Wire one network into the namespace at `netns`. On failure nothing
/// of it stays (address lease, veth).
pub fn attach(id: &str, netns: &Path, a: &Attach) -> Result<Attached> {
    if !a.def.internal {
        ensure_masquerade(a.def)?;
    }
    let mut nl = Netlink::open()?;
    let br = ensure_bridge(&mut nl, a.def)?;
    let ip = allocate(a.def, id, a.ifname, a.ip)?;
    let mac = a.mac.unwrap_or_else(|| mac_for(ip));
    let route = (a.default_route && !a.def.internal).then_some(a.def.gateway);
    if let Err(e) = wire(&mut nl, br, id, netns, a, ip, mac, route) {
        let _ = nl.delete_link(&host_ifname(id, a.ifname));
        release(a.def, id, Some(a.ifname));
        return Err(e);
    }
    Ok(Attached { ip, mac })
}

/// Undo one [`attach`] of a container that runs on (the veth is taken
/// out; with the namespace gone it went already).
pub fn detach(id: &str, def: &NetDef, ifname: &str) {
    if let Ok(mut nl) = Netlink::open()
        && let Err(e) = nl.delete_link(&host_ifname(id, ifname))
    {
        tracing::warn!("{e}");
    }
    release(def, id, Some(ifname));
}

/// Give back every address `id` holds on `def`.
pub fn release_all(def: &NetDef, id: &str) {
    release(def, id, None);
}

/// The bridge with the gateway address, up, and forwarding on; its index.
fn ensure_bridge(nl: &mut Netlink, def: &NetDef) -> Result<u32> {
    nl.create_bridge(&def.bridge)?;
    let br =
        netlink::index(&def.bridge).with_context(|| format!("bridge {} vanished", def.bridge))?;
    nl.add_addr(br, def.gateway, def.prefix)?;
    let fwd = Path::new("/proc/sys/net/ipv4/ip_forward");
    if std::fs::read(fwd).is_ok_and(|v| v.first() != Some(&b'1')) {
        std::fs::write(fwd, "1").context("enable IPv4 forwarding")?;
    }
    Ok(br)
}

/// Make the bridge (for the DNS server to bind its gateway address
/// before any container is wired).
pub fn bring_up(def: &NetDef) -> Result<()> {
    let mut nl = Netlink::open()?;
    ensure_bridge(&mut nl, def).map(|_| ())
}

/// Take the bridge and its NAT rule away (`network rm`), where the
/// bridges are (see [`super::rootless_netns`]).
pub fn take_down(def: &NetDef) {
    if let Ok(mut nl) = Netlink::open()
        && let Err(e) = nl.delete_link(&def.bridge)
    {
        tracing::warn!("{e}");
    }
    remove_masquerade(def);
}

/// Forget the bridge's leases and NAT marker (`network rm`, after
/// [`take_down`]).
pub fn forget(def: &NetDef) {
    let _ = std::fs::remove_file(masquerade_marker(def));
    let _ = std::fs::remove_dir_all(def.leases());
}

/// The veth pair, the inner end's address and MAC, and the route.
#[allow(clippy::too_many_arguments)]
fn wire(
    nl: &mut Netlink,
    br: u32,
    id: &str,
    netns: &Path,
    a: &Attach,
    ip: Ipv4Addr,
    mac: [u8; 6],
    route: Option<Ipv4Addr>,
) -> Result<()> {
    let ns = std::fs::File::open(netns).with_context(|| format!("open {}", netns.display()))?;
    let host = host_ifname(id, a.ifname);
    nl.create_veth(&host, br, a.ifname, ns.as_raw_fd(), Some(mac))?;
    // Hairpin: a container reaches its own published port through the
    // bridge (what the CNI bridge plugin's hairpinMode sets).
    let hairpin = format!("/sys/class/net/{host}/brport/hairpin_mode");
    if let Err(e) = std::fs::write(&hairpin, "1") {
        tracing::warn!("{hairpin}: {e}");
    }
    let ifname = a.ifname.to_string();
    let prefix = a.def.prefix;
    // The namespace is per thread: a thread of our own enters it.
    std::thread::spawn(move || -> Result<()> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .context("enter the container's network namespace")?;
        let mut nl = Netlink::open()?;
        let ix = netlink::index(&ifname)
            .with_context(|| format!("{ifname} missing in the container"))?;
        nl.add_addr(ix, ip, prefix)?;
        nl.set_up(ix)?;
        if let Some(gw) = route {
            nl.add_default_route(ix, gw)?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("network thread panicked"))?
}

/// A free address of the subnet for `id` (or the one asked for), taken
/// with O_EXCL (two starts at once never share one), searching on from
/// the last one given out.
fn allocate(def: &NetDef, id: &str, ifname: &str, want: Option<Ipv4Addr>) -> Result<Ipv4Addr> {
    let dir = def.leases();
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let take = |ip: Ipv4Addr| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(ip.to_string()))
            .and_then(|mut f| f.write_all(format!("{id}\r\n{ifname}").as_bytes()))
    };
    if let Some(ip) = want {
        if !def.assignable(ip) {
            bail!(
                "no configured subnet contains the IP address {ip} (or it is the gateway's): {}",
                def.subnet()
            );
        }
        return match take(ip) {
            Ok(()) => Ok(ip),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("Address already in use: {ip}")
            }
            Err(e) => Err(e).with_context(|| format!("lease {ip}")),
        };
    }
    let last_file = dir.join("last_reserved_ip.0");
    let first = u32::from(def.net);
    let size = !def.mask();
    let last = std::fs::read_to_string(&last_file)
        .ok()
        .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
        .filter(|ip| def.contains(*ip))
        .map(|ip| u32::from(ip) - first)
        .unwrap_or(1);
    for step in 1..=size {
        let ip = Ipv4Addr::from(first + (last + step) % (size + 1));
        if !def.assignable(ip) {
            continue;
        }
        match take(ip) {
            Ok(()) => {
                let _ = std::fs::write(&last_file, ip.to_string());
                return Ok(ip);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("lease {ip}")),
        }
    }
    bail!("network: no free address left in {}", def.subnet())
}

/// Give back the addresses leased to `id` (on `ifname` only, when given).
fn release(def: &NetDef, id: &str, ifname: Option<&str>) {
    let Ok(dir) = std::fs::read_dir(def.leases()) else {
        return;
    };
    for e in dir.flatten() {
        if e.file_name().to_string_lossy().parse::<Ipv4Addr>().is_err() {
            continue;
        }
        let owner = std::fs::read_to_string(e.path()).unwrap_or_default();
        let mut lines = owner.lines().map(str::trim);
        if lines.next() != Some(id) {
            continue;
        }
        // Leases from before user networks name no interface: eth0.
        let leased_on = lines.next().unwrap_or("eth0");
        if ifname.is_none_or(|i| i == leased_on) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn masquerade_marker(def: &NetDef) -> PathBuf {
    if def.bridge == BRIDGE {
        crate::paths::default_run_dir().join("masquerade")
    } else {
        crate::paths::default_run_dir().join(format!("masquerade-{}", def.bridge))
    }
}

fn iptables_nat(op: &str, def: &NetDef) -> std::io::Result<std::process::ExitStatus> {
    let subnet = def.subnet();
    Command::new("iptables")
        .args(["-w", "-t", "nat", op, "POSTROUTING"])
        .args(["-s", &subnet, "!", "-o", &def.bridge, "-j", "MASQUERADE"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

/// Outbound NAT for the network's subnet: one MASQUERADE rule, added
/// once per boot (the marker lives on /run, a tmpfs, like the rule).
fn ensure_masquerade(def: &NetDef) -> Result<()> {
    let marker = masquerade_marker(def);
    if marker.exists() {
        return Ok(());
    }
    let present = iptables_nat("-C", def).is_ok_and(|s| s.success());
    if !present {
        let st = iptables_nat("-A", def).context("run iptables")?;
        if !st.success() {
            bail!(
                "network: could not add the masquerade rule for {}",
                def.subnet()
            );
        }
    }
    if let Some(d) = marker.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    let _ = std::fs::write(marker, def.subnet());
    Ok(())
}

/// Take the masquerade rule away (every copy of it).
fn remove_masquerade(def: &NetDef) {
    while iptables_nat("-C", def).is_ok_and(|s| s.success()) {
        if !iptables_nat("-D", def).is_ok_and(|s| s.success()) {
            break;
        }
    }
    let _ = std::fs::remove_file(masquerade_marker(def));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_macs_and_interface_names() {
        assert_eq!(
            parse_cidr("10.20.30.40/16").unwrap(),
            (Ipv4Addr::new(10, 20, 0, 0), 16)
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "x/24",
            "10.0.0.0/31",
            "10.0.0/24",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
        assert_eq!(
            format_mac(&mac_for(Ipv4Addr::new(10, 89, 1, 2))),
            "02:42:0a:59:01:02"
        );
        assert_eq!(parse_mac("02:42:ac:11:00:09").unwrap()[5], 9);
        for bad in ["02:42:ac:11:00", "01:00:00:00:00:01", "zz:42:ac:11:00:09"] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
        let id = "0123456789abcdef";
        assert_eq!(host_ifname(id, "eth0"), "veth0123456789a");
        assert_eq!(host_ifname(id, "eth2"), "vet20123456789a");
        assert!(host_ifname(id, "eth2").len() <= 15);
        let d = NetDef {
            key: "k".into(),
            bridge: "b".into(),
            net: Ipv4Addr::new(192, 168, 7, 0),
            prefix: 29,
            gateway: Ipv4Addr::new(192, 168, 7, 1),
            internal: false,
        };
        let ok: Vec<u8> = (0..=9)
            .filter(|h| d.assignable(Ipv4Addr::new(192, 168, 7, *h)))
            .collect();
        assert_eq!(ok, vec![2, 3, 4, 5, 6]);
    }
}
