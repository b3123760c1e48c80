//! The five capability sets of `process.capabilities`.

use std::collections::HashSet;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::LinuxCapabilities;

use crate::error::{Error, Result};

fn to_caps(set: &Option<oci_spec::runtime::Capabilities>) -> CapsHashSet {
    let mut out = HashSet::new();
    for cap in set.iter().flatten() {
        // oci-spec's names serialise as "CAP_CHOWN"; caps parses the same.
        let name = serde_json::to_value(cap)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        match Capability::from_str(&name) {
            Ok(c) => {
                out.insert(c);
            }
            Err(_) => {
                tracing::warn!("capability {name} is unknown to this kernel interface; skipped")
            }
        }
    }
    out
}

/// Drop from the bounding set everything the spec does not list. Needs
/// CAP_SETPCAP, so it runs before the user switch.
pub fn drop_bounding(spec_caps: Option<&LinuxCapabilities>) -> Result<()> {
    let keep = spec_caps.map(|c| to_caps(c.bounding())).unwrap_or_default();
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| Error::Container(format!("drop bounding {cap}: {e}")))?;
        }
    }
    Ok(())
}

/// Set effective, permitted, inheritable and ambient sets (after the user
/// switch, with keep-caps on).
pub fn apply(spec_caps: Option<&LinuxCapabilities>) -> Result<()> {
    let (eff, perm, inh, amb) = match spec_caps {
        Some(c) => (
            to_caps(c.effective()),
            to_caps(c.permitted()),
            to_caps(c.inheritable()),
            to_caps(c.ambient()),
        ),
        None => Default::default(),
    };
    // Each capset must leave effective within permitted, and inheritable
    // may only grow from permitted: shrink effective first, permitted last.
    caps::set(None, CapSet::Effective, &eff)
        .map_err(|e| Error::Container(format!("set effective caps: {e}")))?;
    caps::set(None, CapSet::Inheritable, &inh)
        .map_err(|e| Error::Container(format!("set inheritable caps: {e}")))?;
    caps::set(None, CapSet::Permitted, &perm)
        .map_err(|e| Error::Container(format!("set permitted caps: {e}")))?;
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| Error::Container(format!("clear ambient caps: {e}")))?;
    for cap in amb {
        // The kernel only lets a capability be ambient if it is permitted
        // and inheritable; runc's default spec lists ambient caps without
        // inheritable ones, so like runc we skip those instead of failing.
        if !(inh.contains(&cap) && perm.contains(&cap)) {
            tracing::debug!("ambient {cap} skipped: not in inheritable and permitted");
            continue;
        }
        caps::raise(None, CapSet::Ambient, cap)
            .map_err(|e| Error::Container(format!("raise ambient {cap}: {e}")))?;
    }
    Ok(())
}
