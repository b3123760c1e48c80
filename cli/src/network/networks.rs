//! User-defined networks: one JSON file each in `ROOT/networks/`,
//! written to a temp file and renamed, after a host-wide claim on the
//! subnet and the bridge name (`/run/strata/subnets/`, made with O_EXCL,
//! so two stores never pick the same one). Docker's `bridge`, `host`
//! and `none` are built in, never stored.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::bridge::{self, NetDef};

/// The networks every engine has.
pub const BUILT_IN: [&str; 3] = ["bridge", "host", "none"];

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub created: String,
    pub subnet: String,
    pub gateway: String,
    pub internal: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The Linux bridge.
    pub bridge: String,
    /// Containers find each other by name through a DNS server on the
    /// gateway (user networks; Docker's default bridge has none).
    pub dns: bool,
}

impl Network {
    /// Docker's `bridge`, `host` and `none`.
    pub fn built_in(name: &str) -> Option<Network> {
        use sha2::Digest;
        let id = hex::encode(sha2::Sha256::digest(format!("strata network {name}")));
        let (driver, subnet, gateway, bridge) = match name {
            "bridge" => (
                "bridge",
                bridge::SUBNET.to_string(),
                bridge::GATEWAY.to_string(),
                bridge::BRIDGE.to_string(),
            ),
            "host" => ("host", String::new(), String::new(), String::new()),
            "none" => ("null", String::new(), String::new(), String::new()),
            _ => return None,
        };
        Some(Network {
            id,
            name: name.to_string(),
            driver: driver.to_string(),
            created: String::new(),
            subnet,
            gateway,
            internal: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            bridge,
            dns: false,
        })
    }

    pub fn is_built_in(&self) -> bool {
        BUILT_IN.contains(&self.name.as_str())
    }

    /// What the wiring needs; None for `host` and `none`.
    pub fn def(&self) -> Option<NetDef> {
        if self.name == "bridge" {
            return Some(NetDef::default_bridge());
        }
        let (net, prefix) = bridge::parse_cidr(&self.subnet).ok()?;
        Some(NetDef {
            key: self.bridge.clone(),
            bridge: self.bridge.clone(),
            net,
            prefix,
            gateway: self.gateway.parse().ok()?,
            internal: self.internal,
        })
    }
}

/// What `network create` asks for.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub disable_dns: bool,
}

pub struct Networks {
    dir: PathBuf,
}

fn claims_dir() -> PathBuf {
    crate::paths::default_run_dir().join("subnets")
}

/// Does any user network (of any store sharing this state dir) live?
pub fn any_claimed() -> bool {
    std::fs::read_dir(claims_dir()).is_ok_and(|mut d| d.next().is_some())
}

impl Networks {
    pub fn new(root: &Path) -> Networks {
        Networks {
            dir: root.join("networks"),
        }
    }

    fn file(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// The stored networks, by name.
    pub fn list(&self) -> Result<Vec<Network>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("read {}", self.dir.display())),
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let data = std::fs::read(&p).with_context(|| format!("read {}", p.display()))?;
            let n: Network =
                serde_json::from_slice(&data).with_context(|| format!("parse {}", p.display()))?;
            out.push(n);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The built-in ones, then the stored ones.
    pub fn all(&self) -> Result<Vec<Network>> {
        let mut v: Vec<Network> = BUILT_IN
            .iter()
            .filter_map(|n| Network::built_in(n))
            .collect();
        v.extend(self.list()?);
        Ok(v)
    }

    /// By name, full id or unique id prefix (Docker's lookup).
    pub fn get(&self, key: &str) -> Result<Network> {
        let all = self.all()?;
        if let Some(n) = all.iter().find(|n| n.name == key || n.id == key) {
            return Ok(n.clone());
        }
        let by_prefix: Vec<&Network> = all
            .iter()
            .filter(|n| !key.is_empty() && n.id.starts_with(key))
            .collect();
        match by_prefix.as_slice() {
            [n] => Ok((*n).clone()),
            [] => bail!("network {key} not found"),
            _ => bail!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                by_prefix.len()
            ),
        }
    }

    pub fn create(&self, o: &CreateOptions) -> Result<Network> {
        check_name(&o.name)?;
        if BUILT_IN.contains(&o.name.as_str()) || self.list()?.iter().any(|n| n.name == o.name) {
            bail!("network with name {} already exists", o.name);
        }
        let id = crate::containers::record::new_id()?;
        let bridge_name = o
            .options
            .get("com.docker.network.bridge.name")
            .cloned()
            .unwrap_or_else(|| format!("sbr-{}", &id[..11]));
        if bridge_name.is_empty() || bridge_name.len() > 15 || bridge_name.contains('/') {
            bail!("invalid bridge name {bridge_name:?}: 1 to 15 bytes, no '/'");
        }
        let given = o.subnet.as_deref().map(bridge::parse_cidr).transpose()?;
        let gateway: Option<Ipv4Addr> = match &o.gateway {
            Some(g) => Some(
                g.parse()
                    .map_err(|_| anyhow::anyhow!("invalid gateway address: {g}"))?,
            ),
            None => None,
        };
        if o.gateway.is_some() && given.is_none() {
            bail!("a gateway needs a --subnet to belong to");
        }
        let mine = self.list()?;
        let claim = |net: Ipv4Addr, prefix: u8| -> Result<Option<PathBuf>> {
            let cand = (u32::from(net), bridge::mask(prefix));
            let overlaps = |s: &str| {
                bridge::parse_cidr(s).is_ok_and(|(n, p)| {
                    let m = cand.1 & bridge::mask(p);
                    (u32::from(n) & m) == (cand.0 & m)
                })
            };
            if overlaps(bridge::SUBNET)
                || mine.iter().any(|n| overlaps(&n.subnet))
                || host_subnets().iter().any(|s| overlaps(s))
            {
                return Ok(None);
            }
            claim_subnet(&format!("{net}/{prefix}"), &self.file(&id))
        };
        let (net, prefix, claimed) = match given {
            Some((net, prefix)) => match claim(net, prefix)? {
                Some(c) => (net, prefix, c),
                None => bail!("Pool overlaps with other one on this address space"),
            },
            None => {
                // Podman's pool: 10.89.1.0/24, 10.89.2.0/24, ...
                let mut got = None;
                for third in 1..=255u8 {
                    let net = Ipv4Addr::new(10, 89, third, 0);
                    if let Some(c) = claim(net, 24)? {
                        got = Some((net, 24, c));
                        break;
                    }
                }
                got.context("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")?
            }
        };
        let gateway = match gateway {
            Some(ip) => {
                if u32::from(ip) & bridge::mask(prefix) != u32::from(net) {
                    let _ = std::fs::remove_file(&claimed);
                    bail!("gateway {ip} is not in the subnet {net}/{prefix}");
                }
                ip
            }
            None => Ipv4Addr::from(u32::from(net) + 1),
        };
        let n = Network {
            id: id.clone(),
            name: o.name.clone(),
            driver: "bridge".into(),
            created: chrono::Utc::now().to_rfc3339(),
            subnet: format!("{net}/{prefix}"),
            gateway: gateway.to_string(),
            internal: o.internal,
            labels: o.labels.clone(),
            options: o.options.clone(),
            bridge: bridge_name,
            dns: !o.disable_dns,
        };
        let saved = (|| -> Result<()> {
            std::fs::create_dir_all(&self.dir)
                .with_context(|| format!("create {}", self.dir.display()))?;
            crate::containers::record::write_atomic(
                &self.file(&id),
                &serde_json::to_vec_pretty(&n)?,
            )
        })();
        if let Err(e) = saved {
            let _ = std::fs::remove_file(&claimed);
            return Err(e);
        }
        Ok(n)
    }

    /// Forget `n` (the caller has taken its bridge and DNS server down).
    pub fn remove(&self, n: &Network) -> Result<()> {
        let f = self.file(&n.id);
        std::fs::remove_file(&f).with_context(|| format!("remove {}", f.display()))?;
        release_subnet(&n.subnet, &f);
        Ok(())
    }
}

/// Docker's rule for network names.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        bail!("invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    Ok(())
}

/// The IPv4 subnets on the host's interfaces.
fn host_subnets() -> Vec<String> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let ip = a.address?.as_sockaddr_in()?.ip();
            let mask = a.netmask?.as_sockaddr_in()?.ip();
            let prefix = u32::from(mask).count_ones() as u8;
            (!ip.is_loopback()).then(|| {
                format!(
                    "{}/{prefix}",
                    Ipv4Addr::from(u32::from(ip) & bridge::mask(prefix))
                )
            })
        })
        .collect()
}

fn claim_file(subnet: &str) -> PathBuf {
    claims_dir().join(subnet.replace('/', "-"))
}

/// Claim `subnet` host-wide for the network whose file is `owner`: Some
/// with the claim's path, None when another live network has it. A
/// claim whose network file is gone is stale and taken over.
fn claim_subnet(subnet: &str, owner: &Path) -> Result<Option<PathBuf>> {
    let dir = claims_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let f = claim_file(subnet);
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&f)
        {
            Ok(mut h) => {
                h.write_all(owner.as_os_str().as_encoded_bytes())
                    .with_context(|| format!("write {}", f.display()))?;
                return Ok(Some(f));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(&f).unwrap_or_default();
                if holder.is_empty() || Path::new(&holder).exists() {
                    return Ok(None);
                }
                let _ = std::fs::remove_file(&f);
            }
            Err(e) => return Err(e).with_context(|| format!("claim {}", f.display())),
        }
    }
    Ok(None)
}

fn release_subnet(subnet: &str, owner: &Path) {
    let f = claim_file(subnet);
    if std::fs::read_to_string(&f).is_ok_and(|o| Path::new(&o) == owner) {
        let _ = std::fs::remove_file(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_and_names() {
        let b = Network::built_in("bridge").unwrap();
        assert_eq!(b.def().unwrap(), NetDef::default_bridge());
        assert!(Network::built_in("host").unwrap().def().is_none());
        assert_eq!(Network::built_in("none").unwrap().driver, "null");
        assert!(Network::built_in("x").is_none());
        assert!(check_name("my-net_1.a").is_ok());
        for bad in ["", "-x", "a b", "a/b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
