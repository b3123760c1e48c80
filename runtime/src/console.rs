//! Terminals: the pty of a `terminal: true` process, its master handed to
//! the caller over `--console-socket` with SCM_RIGHTS (as runc does).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nix::sys::stat::Mode;

use crate::error::{Context, Error, Result};

/// Connect to the caller's console socket.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = UnixStream::connect(path)
        .ctx(|| format!("connect to console socket {}", path.display()))?;
    Ok(OwnedFd::from(s))
}

/// A connected pair for a foreground `run`/`exec` that proxies the
/// terminal itself: one end goes to the container as its console socket.
pub fn proxy_pair() -> Result<(OwnedFd, OwnedFd)> {
    nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "console socketpair".into())
}

/// Send `fd` over `socket`, with the pty name as payload.
pub fn send_fd(socket: RawFd, fd: RawFd, name: &str) -> Result<()> {
    let iov = [IoSlice::new(name.as_bytes())];
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::empty(), None)
        .ctx(|| "send pty master over console socket".into())?;
    Ok(())
}

/// Open a pty in the current mount namespace (the container's /dev/ptmx),
/// send its master over `socket`, and make the slave our controlling
/// terminal and stdio. The caller must be a session leader. The slave is
/// given to `uid`; its group stays the one devpts gives it (the mount's
/// `gid=` option, tty's 5 in the default config), as with runc.
/// `size` (the process's `consoleSize`) is set before the program runs;
/// with `sane`, ONLCR is cleared too (see [`clear_onlcr`]).
pub fn setup_pty(socket: RawFd, uid: u32, size: Option<(u16, u16)>, sane: bool) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .ctx(|| "open /dev/ptmx".into())?;
    grantpt(&master).ctx(|| "grantpt".into())?;
    unlockpt(&master).ctx(|| "unlockpt".into())?;
    let name = ptsname_r(&master).ctx(|| "ptsname".into())?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {name}"))?;
    // SAFETY: open returned a fresh fd.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if uid != 0 {
        let _ = nix::unistd::fchown(slave.as_raw_fd(), Some(uid.into()), None);
    }
    if sane {
        clear_onlcr(&slave)?;
    }
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the winsize we pass, on the pty we own.
        let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        nix::errno::Errno::result(rc).ctx(|| "set the console size".into())?;
    }
    send_fd(socket, master.as_raw_fd(), &name)?;
    // SAFETY: TIOCSCTTY on an fd we own, argument 0 (do not steal).
    let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    nix::errno::Errno::result(rc).ctx(|| "make pty the controlling terminal".into())?;
    for target in 0..=2 {
        nix::unistd::dup2(slave.as_raw_fd(), target).ctx(|| "dup pty to stdio".into())?;
    }
    Ok(())
}

/// Receive one fd sent with SCM_RIGHTS (used by `run`/`exec` in the
/// foreground, which proxy the terminal themselves).
pub fn recv_fd(socket: RawFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ctx(|| "receive pty master".into())?;
    for c in msg.cmsgs().map_err(|e| Error::Sys {
        context: "read control message".into(),
        source: e,
    })? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel just installed this fd for us.
            return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    Err(Error::Container(
        "console socket message carried no fd".into(),
    ))
}

/// A process's `consoleSize` as (rows, cols).
pub fn size_of(p: &oci_spec::runtime::Process) -> Option<(u16, u16)> {
    p.console_size()
        .as_ref()
        .map(|b| (b.height() as u16, b.width() as u16))
}

/// For the foreground `run`/`exec` that proxies the pty itself: clear
/// ONLCR, as runc does on a console it receives, so a program's "\n"
/// reaches the caller as written (a console socket's owner decides that
/// for itself).
pub fn clear_onlcr(master: &OwnedFd) -> Result<()> {
    let mut t = nix::sys::termios::tcgetattr(master).ctx(|| "read pty settings".into())?;
    t.output_flags.remove(nix::sys::termios::OutputFlags::ONLCR);
    nix::sys::termios::tcsetattr(master, nix::sys::termios::SetArg::TCSANOW, &t)
        .ctx(|| "clear ONLCR on the pty".into())
}
