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
//! - [`pasta`]: the rootless engine's network, through `pasta`.

pub mod bridge;
pub mod dns;
pub mod netlink;
pub mod netns;
pub mod networks;
pub mod pasta;
pub mod ports;

pub use bridge::{BRIDGE, SUBNET, ipam_dir};
pub use netns::{create_netns, netns_path, remove_netns};
pub use ports::{
    CNI_PATH, check_available, check_port_free, free_host_port, parse_expose, parse_publish,
    release_ports, reserve_ports,
};
