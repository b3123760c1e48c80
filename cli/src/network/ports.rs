//! Published ports (`-p`, `-P`, `--expose`): parsing, host-wide
//! reservations, and the DNAT itself through the standard CNI `portmap`
//! plugin from Debian's containernetworking-plugins (its DNAT, hairpin
//! and localhost handling is the field's tested code; it runs only for
//! containers that publish).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::containers::record::Port;

pub const CNI_PATH: &str = "/usr/lib/cni";

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

/// DNAT the published ports to `ip` in the namespace at `netns`.
pub fn publish(
    id: &str,
    netns: &Path,
    ip: std::net::Ipv4Addr,
    def: &super::bridge::NetDef,
    ifname: &str,
    ports: &[Port],
) -> Result<()> {
    if ports.is_empty() {
        return Ok(());
    }
    // portmap reads the container's address from the previous result,
    // as a CNI runtime would chain it.
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": ifname, "sandbox": netns}],
        "ips": [{"address": format!("{ip}/{}", def.prefix), "gateway": def.gateway.to_string(),
                 "interface": 0}],
    });
    plugin("ADD", id, netns, ifname, portmap_conf(ports), Some(&prev)).map(|_| ())
}

/// Undo [`publish`].
pub fn unpublish(id: &str, netns: &Path, ifname: &str, ports: &[Port]) {
    if !ports.is_empty()
        && let Err(e) = plugin("DEL", id, netns, ifname, portmap_conf(ports), None)
    {
        tracing::warn!("{e}");
    }
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
    let _ = crate::containers::record::random_bytes(&mut seed);
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
