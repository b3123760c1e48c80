//! The few rtnetlink requests a bridged container needs, sent over a
//! synchronous NETLINK_ROUTE socket: create a bridge or a veth pair (its
//! peer made straight inside the container's namespace, with a given MAC
//! when asked), set a link up, delete a link, add an IPv4 address, add a
//! default route.
//!
//! Why not the CNI bridge plugin (used before) or an rtnetlink crate:
//! the plugin is an exec of a Go binary that execs host-local in turn,
//! about 18 ms of a 42 ms `run`; the crates of the field are async
//! (tokio) and their message builders change shape between releases,
//! for five fixed requests whose wire format is the kernel's stable ABI.
//! Each request asks for an ACK and its error comes back as an errno.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Socket(nix::errno::Errno),
    #[error("{what}: {errno}")]
    Request {
        what: String,
        errno: nix::errno::Errno,
    },
    #[error("{what}: malformed netlink reply")]
    Reply { what: String },
}

type Result<T> = std::result::Result<T, NetlinkError>;

const NLMSG_HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const NLA_F_NESTED: u16 = 0x8000;
const IFINFOMSG_LEN: usize = 16;

/// One request being built: header, fixed part, attributes.
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(ty: u16, flags: u16) -> Msg {
        let mut buf = vec![0u8; NLMSG_HDR];
        buf[4..6].copy_from_slice(&ty.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn align(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// struct ifinfomsg: family, type, index, flags, change.
    fn ifinfo(&mut self, index: i32, flags: u32, change: u32) {
        let mut m = [0u8; IFINFOMSG_LEN];
        m[0] = libc::AF_UNSPEC as u8;
        m[4..8].copy_from_slice(&index.to_ne_bytes());
        m[8..12].copy_from_slice(&flags.to_ne_bytes());
        m[12..16].copy_from_slice(&change.to_ne_bytes());
        self.buf.extend_from_slice(&m);
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        self.align();
        self.buf
            .extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.align();
    }

    fn attr_str(&mut self, ty: u16, s: &str) {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.attr(ty, &d);
    }

    fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_ne_bytes());
    }

    fn begin(&mut self, ty: u16) {
        self.align();
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    }

    fn end(&mut self) {
        if let Some(at) = self.nests.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self.align();
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        self.align();
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// A NETLINK_ROUTE socket in the calling thread's network namespace.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    pub fn open() -> Result<Netlink> {
        // SAFETY: socket(2) with constant arguments; the fd is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(NetlinkError::Socket(nix::errno::Errno::last()));
        }
        // SAFETY: socket just returned this fd; the OwnedFd takes it over.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Netlink { fd, seq: 0 })
    }

    /// Send one request and wait for its ACK.
    fn call(&mut self, what: &str, msg: Msg) -> Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let buf = msg.finish(seq);
        let err = |errno| NetlinkError::Request {
            what: what.to_string(),
            errno,
        };
        nix::sys::socket::send(
            self.fd.as_raw_fd(),
            &buf,
            nix::sys::socket::MsgFlags::empty(),
        )
        .map_err(err)?;
        let mut reply = vec![0u8; 8192];
        loop {
            let n = nix::sys::socket::recv(
                self.fd.as_raw_fd(),
                &mut reply,
                nix::sys::socket::MsgFlags::empty(),
            )
            .map_err(err)?;
            let mut at = 0;
            while at + NLMSG_HDR <= n {
                let len =
                    u32::from_ne_bytes([reply[at], reply[at + 1], reply[at + 2], reply[at + 3]])
                        as usize;
                let ty = u16::from_ne_bytes([reply[at + 4], reply[at + 5]]);
                let rseq = u32::from_ne_bytes([
                    reply[at + 8],
                    reply[at + 9],
                    reply[at + 10],
                    reply[at + 11],
                ]);
                if len < NLMSG_HDR || at + len > n {
                    return Err(NetlinkError::Reply {
                        what: what.to_string(),
                    });
                }
                if ty == NLMSG_ERROR && rseq == seq {
                    if len < NLMSG_HDR + 4 {
                        return Err(NetlinkError::Reply {
                            what: what.to_string(),
                        });
                    }
                    let code = i32::from_ne_bytes([
                        reply[at + 16],
                        reply[at + 17],
                        reply[at + 18],
                        reply[at + 19],
                    ]);
                    return match code {
                        0 => Ok(()),
                        c => Err(err(nix::errno::Errno::from_raw(-c))),
                    };
                }
                at += (len + 3) & !3;
            }
        }
    }

    /// A bridge named `name`, up; an existing one is fine.
    pub fn create_bridge(&mut self, name: &str) -> Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.ifinfo(0, libc::IFF_UP as u32, libc::IFF_UP as u32);
        m.attr_str(IFLA_IFNAME, name);
        m.begin(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "bridge");
        m.end();
        match self.call(&format!("create bridge {name}"), m) {
            Err(NetlinkError::Request {
                errno: nix::errno::Errno::EEXIST,
                ..
            }) => self.set_up(index(name).unwrap_or(0)),
            r => r,
        }
    }

    /// A veth pair: `host` here, up and enslaved to `master`, and `peer`
    /// created directly in the namespace open at `netns`, down (the
    /// kernel refuses to open a veth end before the pair is joined:
    /// ENOTCONN; it is brought up from inside), with `mac` when given.
    pub fn create_veth(
        &mut self,
        host: &str,
        master: u32,
        peer: &str,
        netns: RawFd,
        mac: Option<[u8; 6]>,
    ) -> Result<()> {
        let up = libc::IFF_UP as u32;
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.ifinfo(0, up, up);
        m.attr_str(IFLA_IFNAME, host);
        m.attr_u32(IFLA_MASTER, master);
        m.begin(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "veth");
        m.begin(IFLA_INFO_DATA);
        m.begin(VETH_INFO_PEER);
        m.ifinfo(0, 0, 0);
        m.attr_str(IFLA_IFNAME, peer);
        if let Some(mac) = mac {
            m.attr(IFLA_ADDRESS, &mac);
        }
        m.attr_u32(IFLA_NET_NS_FD, netns as u32);
        m.end();
        m.end();
        m.end();
        self.call(&format!("create veth {host}"), m)
    }

    pub fn set_up(&mut self, index: u32) -> Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, 0);
        let up = libc::IFF_UP as u32;
        m.ifinfo(index as i32, up, up);
        self.call("set link up", m)
    }

    /// Delete link `name` (a veth takes its peer with it); a link that is
    /// not there is fine.
    pub fn delete_link(&mut self, name: &str) -> Result<()> {
        let Some(ix) = index(name) else {
            return Ok(());
        };
        let mut m = Msg::new(RTM_DELLINK, 0);
        m.ifinfo(ix as i32, 0, 0);
        match self.call(&format!("delete link {name}"), m) {
            Err(NetlinkError::Request {
                errno: nix::errno::Errno::ENODEV,
                ..
            }) => Ok(()),
            r => r,
        }
    }

    /// `addr/prefix` on link `index`; already there is fine.
    pub fn add_addr(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<()> {
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        // struct ifaddrmsg: family, prefixlen, flags, scope, index.
        m.buf.push(libc::AF_INET as u8);
        m.buf.push(prefix);
        m.buf.push(0);
        m.buf.push(0);
        m.buf.extend_from_slice(&index.to_ne_bytes());
        m.attr(IFA_LOCAL, &addr.octets());
        m.attr(IFA_ADDRESS, &addr.octets());
        match self.call(&format!("add address {addr}/{prefix}"), m) {
            Err(NetlinkError::Request {
                errno: nix::errno::Errno::EEXIST,
                ..
            }) => Ok(()),
            r => r,
        }
    }

    /// The default route through `gateway` on link `index`.
    pub fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> Result<()> {
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol,
        // scope, type, flags.
        m.buf.extend_from_slice(&[
            libc::AF_INET as u8,
            0,
            0,
            0,
            libc::RT_TABLE_MAIN,
            libc::RTPROT_BOOT,
            libc::RT_SCOPE_UNIVERSE,
            libc::RTN_UNICAST,
        ]);
        m.buf.extend_from_slice(&0u32.to_ne_bytes());
        m.attr(RTA_GATEWAY, &gateway.octets());
        m.attr_u32(RTA_OIF, index);
        self.call(&format!("add default route via {gateway}"), m)
    }
}

/// A link's index in the calling thread's namespace.
pub fn index(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_aligned_and_nests_sized() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE);
        m.ifinfo(0, 0, 0);
        m.attr_str(IFLA_IFNAME, "abcde"); // 4 + 6 bytes, padded to 12
        m.begin(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "veth"); // 4 + 5, padded to 12
        m.end();
        let buf = m.finish(7);
        assert_eq!(buf.len(), NLMSG_HDR + IFINFOMSG_LEN + 12 + 4 + 12);
        assert_eq!(
            u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize,
            buf.len()
        );
        assert_eq!(u32::from_ne_bytes(buf[8..12].try_into().unwrap()), 7);
        let nest = NLMSG_HDR + IFINFOMSG_LEN + 12;
        // The nest's length covers its header and the padded attribute.
        assert_eq!(u16::from_ne_bytes([buf[nest], buf[nest + 1]]), 4 + 12);
        assert_eq!(
            u16::from_ne_bytes([buf[nest + 2], buf[nest + 3]]),
            IFLA_LINKINFO | NLA_F_NESTED
        );
    }

    #[test]
    fn errors_come_back_as_errno() {
        // Setting up a link that does not exist: the kernel says ENODEV.
        let mut nl = Netlink::open().unwrap();
        let e = nl.set_up(0x7fff_fff0).unwrap_err();
        assert!(
            matches!(
                e,
                NetlinkError::Request {
                    errno: nix::errno::Errno::ENODEV,
                    ..
                }
            ),
            "{e}"
        );
        assert!(index("lo").is_some());
    }
}
