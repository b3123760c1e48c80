//! `network connect/disconnect` (also while the container runs) and what
//! `network rm` needs of the containers: who is on a network, and the
//! network taken down with nothing left behind.

use anyhow::{Context, Result, bail};

use super::Engine;
use super::record::{Endpoint, Status};
use crate::network::{self, bridge, dns, networks::Network};

impl Engine {
    /// The containers (ids) with `net` among their networks, and which of
    /// them run.
    pub fn network_users(&self, net: &Network) -> Result<(Vec<String>, Vec<String>)> {
        let (mut all, mut running) = (Vec::new(), Vec::new());
        for c in self.store.containers()? {
            let Ok(rec) = self.dir(&c.id).record() else {
                continue;
            };
            if !rec.endpoints().iter().any(|e| e.network == net.name) {
                continue;
            }
            if self
                .refresh(&c.id)
                .is_ok_and(|s| s.status == Status::Running)
            {
                running.push(c.id.clone());
            }
            all.push(c.id);
        }
        Ok((all, running))
    }

    /// `network rm`: refused while a running container is on it (Docker's
    /// rule and text); its DNS server, bridge, NAT rule, leases and record
    /// go.
    pub fn remove_network(&self, net: &Network) -> Result<()> {
        if net.is_built_in() {
            bail!(
                "{} is a pre-defined network and cannot be removed",
                net.name
            );
        }
        let (_, running) = self.network_users(net)?;
        if !running.is_empty() {
            bail!(
                "error while removing network: network {} id {} has active endpoints",
                net.name,
                net.id
            );
        }
        dns::remove(&net.bridge);
        if let Some(def) = net.def() {
            network::rootless_netns::on_existing_bridges(|| {
                bridge::take_down(&def);
                Ok(())
            })?;
            bridge::forget(&def);
        }
        self.networks().remove(net)?;
        network::rootless_netns::remove_if_unused();
        crate::events::record(
            &self.root,
            "network",
            "destroy",
            &net.id,
            &[("name", &net.name), ("type", &net.driver)],
        );
        Ok(())
    }

    /// `network connect`: the container joins `net` (at once when it
    /// runs: a new interface, `eth1`, ...), found there by its name and
    /// `aliases`.
    pub fn connect(
        &self,
        what: &str,
        net: &Network,
        aliases: &[String],
        ip: Option<&str>,
    ) -> Result<()> {
        let c = self.find(what)?;
        let dir = self.dir(&c.id);
        let st = self.refresh(&c.id)?;
        let _l = dir.lock()?;
        let mut rec = dir.record()?;
        refuse_host(&rec.network, net)?;
        if net.name == "none" || rec.network == "none" && !rec.endpoints().is_empty() {
            bail!(
                "container cannot be connected to multiple networks with one of the networks in private (none) mode"
            );
        }
        if rec.endpoints().iter().any(|e| e.network == net.name) {
            bail!(
                "endpoint with name {} already exists in network {}",
                rec.name,
                net.name
            );
        }
        if crate::rootless::mode().is_some() {
            let eps = rec.endpoints();
            let mixed = if net.name == "bridge" {
                eps.iter().any(|e| e.network != "bridge")
            } else {
                eps.iter().any(|e| e.network == "bridge")
            };
            if mixed {
                bail!(super::ROOTLESS_MIXED_NETWORKS);
            }
        }
        if net.name == "bridge" && (!aliases.is_empty() || ip.is_some()) {
            bail!("network-scoped alias is supported only for containers in user defined networks");
        }
        let ep = Endpoint {
            network: net.name.clone(),
            aliases: aliases.to_vec(),
            ip: ip.map(String::from),
            mac: None,
        };
        let mut endpoints = rec.endpoints();
        if st.status == Status::Running {
            let mut s = dir.state()?;
            let netns = network::netns_path(&self.run_dir, &c.id);
            let used: Vec<&str> = s.networks.iter().map(|w| w.ifname.as_str()).collect();
            let ifname = (0..10)
                .map(|i| format!("eth{i}"))
                .find(|n| !used.contains(&n.as_str()))
                .context("a container takes at most 10 networks")?;
            let w = self.wire(&rec, &netns, &ep, &ifname, s.networks.is_empty())?;
            if s.ip.is_none() {
                s.ip = Some(w.ip.clone());
            }
            s.networks.push(w);
            dir.save_state(&s)?;
        }
        if endpoints.is_empty() {
            rec.network = net.name.clone();
        }
        endpoints.push(ep);
        rec.endpoints = endpoints;
        dir.save_record(&rec)?;
        network_event(&self.root, "connect", net, &c.id);
        Ok(())
    }

    /// `network disconnect`: the container leaves `net` (its interface
    /// goes at once when it runs).
    pub fn disconnect(&self, what: &str, net: &Network) -> Result<()> {
        let c = self.find(what)?;
        let dir = self.dir(&c.id);
        let st = self.refresh(&c.id)?;
        let _l = dir.lock()?;
        let mut rec = dir.record()?;
        refuse_host(&rec.network, net)?;
        let mut endpoints = rec.endpoints();
        let Some(i) = endpoints.iter().position(|e| e.network == net.name) else {
            bail!(
                "container {} is not connected to network {}",
                c.id,
                net.name
            );
        };
        if st.status == Status::Running {
            let mut s = dir.state()?;
            if let Some(j) = s.networks.iter().position(|w| w.network == net.name) {
                let w = s.networks.remove(j);
                self.unwire(&c.id, &w, true);
                if s.ip.as_deref() == Some(w.ip.as_str()) {
                    s.ip = s.networks.first().map(|w| w.ip.clone());
                }
                dir.save_state(&s)?;
            }
        }
        endpoints.remove(i);
        rec.network = endpoints
            .first()
            .map(|e| e.network.clone())
            .unwrap_or_else(|| "none".into());
        rec.endpoints = endpoints;
        dir.save_record(&rec)?;
        network_event(&self.root, "disconnect", net, &c.id);
        Ok(())
    }
}

/// Docker's rule for both verbs: the host network is neither joined nor
/// left.
fn refuse_host(mode: &str, net: &Network) -> Result<()> {
    if mode == "host" || net.name == "host" {
        bail!("container cannot be disconnected from host network or connected to host network");
    }
    Ok(())
}

/// `network connect/disconnect` in the event log, with Docker's attributes.
fn network_event(root: &std::path::Path, action: &str, net: &Network, container: &str) {
    crate::events::record(
        root,
        "network",
        action,
        &net.id,
        &[
            ("container", container),
            ("name", &net.name),
            ("type", &net.driver),
        ],
    );
}
