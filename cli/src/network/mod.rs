//! Container networking: `none` (a namespace with only loopback up),
//! `host` (no namespace), Docker's default `bridge`, and user-defined
//! bridge networks whose containers find each other by name.
//!
//! - [`netns`]: the pinned network namespaces;
//! - [`netlink`]: the rtnetlink requests (bridges, veths, addresses, routes);
//! - [`bridge`]: wiring a container into a bridge network, address leases, NAT;
//! - [`networks`]: the user networks' records (`network create/ls/rm`);
//! - [`dns`]: the per-network DNS server that resolves container names;
//! - [`ports`]: published ports (`-p`), through the CNI `portmap` plugin;
//! - [`pasta`]: the rootless engine's network, through `pasta`;
//! - [`rootless_netns`]: the namespace a rootless user's bridges live in;
//! - [`port_proxy`]: a rootless user network's published ports.
//!
//! The network state every store shares (address leases, subnet claims,
//! DNS records, NAT markers, port claims) lives in the default run dir
//! ([`crate::paths::default_run_dir`]): `/run/strata` for root, as the
//! bridges are the host's; a rootless user's own run dir, as that user's
//! bridges live in the user's own namespace (see [`rootless_netns`]).

pub mod bridge;
pub mod dns;
pub mod netlink;
pub mod netns;
pub mod networks;
pub mod pasta;
pub mod port_proxy;
pub mod ports;
pub mod rootless_netns;

pub use bridge::{BRIDGE, SUBNET, ipam_dir};
pub use netns::{create_netns, netns_path, remove_netns};
pub use ports::{
    CNI_PATH, check_available, check_port_free, free_host_port, parse_expose, parse_publish,
    release_ports, reserve_ports,
};

/// Make `cmd` a process that outlives us (a DNS server, pasta, a port
/// proxy): it leaves our session and terminal, and keeps none of our
/// descriptors past stdio, or a monitor's ready pipe or an attached
/// CLI's output would never see EOF while it lives.
pub(crate) fn outliving(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid and close_range are async-signal-safe system calls,
    // made between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}
