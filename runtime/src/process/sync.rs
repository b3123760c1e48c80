//! The parent <-> child protocol during create and exec: JSON messages over
//! a SOCK_SEQPACKET socketpair (message boundaries kept by the kernel).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, send, socketpair};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Msg {
    /// parent -> child: cgroups are set, go on.
    Go,
    /// child -> parent: I unshared a user namespace, write my id maps.
    UsernsReady,
    /// parent -> child: maps written.
    MapsWritten,
    /// child -> parent: the host pid of the container process.
    Pid(i32),
    /// init -> parent: mounts are done; run prestart/createRuntime hooks.
    MountsDone,
    /// parent -> init: hooks done.
    HooksDone,
    /// init -> parent: set up, about to wait for `start` (or exec).
    Ready,
    /// child -> parent: the seccomp notify fd rides along (SCM_RIGHTS),
    /// for the agent at listenerPath.
    SeccompFd,
    /// child -> parent: setup failed.
    Error(String),
}

pub struct SyncSocket(pub OwnedFd);

const MAX_MSG: usize = 64 * 1024;

pub fn pair() -> Result<(SyncSocket, SyncSocket)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "create sync socketpair".into())?;
    Ok((SyncSocket(a), SyncSocket(b)))
}

impl SyncSocket {
    pub fn raw(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }

    pub fn send(&self, msg: &Msg) -> Result<()> {
        let data = serde_json::to_vec(msg)
            .map_err(|e| Error::Container(format!("encode sync message: {e}")))?;
        send(self.0.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL)
            .ctx(|| "send sync message".into())?;
        Ok(())
    }

    /// Send `msg` by write(2): for the init after its seccomp filter is
    /// loaded, when a profile that allows the user's process (write, but
    /// not sendto) is all there is. SIGPIPE is still ignored here (Rust's
    /// startup does that; the init resets it just before exec), so a gone
    /// peer is an EPIPE error.
    pub fn send_plain(&self, msg: &Msg) -> Result<()> {
        let data = serde_json::to_vec(msg)
            .map_err(|e| Error::Container(format!("encode sync message: {e}")))?;
        nix::unistd::write(&self.0, &data).ctx(|| "send sync message".into())?;
        Ok(())
    }

    /// Send `msg` with `fd` attached (SCM_RIGHTS).
    pub fn send_fd(&self, msg: &Msg, fd: std::os::fd::RawFd) -> Result<()> {
        let data = serde_json::to_vec(msg)
            .map_err(|e| Error::Container(format!("encode sync message: {e}")))?;
        let iov = [std::io::IoSlice::new(&data)];
        let fds = [fd];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        nix::sys::socket::sendmsg::<()>(
            self.0.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .ctx(|| "send sync message with fd".into())?;
        Ok(())
    }

    /// The next message; None when the other side has closed.
    pub fn recv(&self) -> Result<Option<Msg>> {
        Ok(self.recv_with_fd()?.map(|(m, _)| m))
    }

    /// The next message and the fd sent with it, if any.
    pub fn recv_with_fd(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MSG];
        let mut reset = false;
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let (n, fd) = loop {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            match nix::sys::socket::recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                // The peer exited with a message of ours unread (a Go it
                // never waited for). The kernel says so once, ahead of
                // what the peer sent before it went (its Error): read on.
                Err(nix::errno::Errno::ECONNRESET) if !reset => reset = true,
                Err(nix::errno::Errno::ECONNRESET) => break (0, None),
                Err(e) => return Err(e).ctx(|| "receive sync message".into()),
                Ok(msg) => {
                    let mut fd = None;
                    for c in msg.cmsgs().into_iter().flatten() {
                        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                            for f in fds {
                                // SAFETY: the kernel just installed this fd
                                // for us; the first is kept, others closed.
                                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                                if fd.is_none() {
                                    fd = Some(owned);
                                }
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(|m| Some((m, fd)))
            .map_err(|e| Error::Container(format!("bad sync message: {e}")))
    }

    /// Wait for exactly `want`; an Error message or EOF becomes an error.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(Msg::Error(e)) => Err(Error::Container(e)),
            Some(other) => Err(Error::Container(format!(
                "sync: expected {want:?}, got {other:?}"
            ))),
            None => Err(Error::SyncClosed(format!("{want:?}"))),
        }
    }
}
