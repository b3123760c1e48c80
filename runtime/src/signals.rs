//! Signal names as runc accepts them, and the foreground wait loop of
//! `run` and `exec` (signals forwarded, an optional pty proxied).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::error::{Context, Error, Result};

/// Parse `9`, `KILL`, `SIGKILL`, `sigkill`, `RTMIN+3`, `SIGRTMAX-1`.
pub fn parse(s: &str) -> Result<i32> {
    let unknown = || Error::UnknownSignal(s.to_string());
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(unknown())
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().map_err(|_| unknown())?
        };
        let n = libc::SIGRTMIN() + off;
        return if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(unknown())
        };
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().map_err(|_| unknown())?
        };
        let n = libc::SIGRTMAX() + off;
        return if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(unknown())
        };
    }
    let full = format!("SIG{name}");
    Signal::iterator()
        .find(|sig| sig.as_str() == full)
        .map(|s| s as i32)
        .ok_or_else(unknown)
}

/// Send signal number `sig` to `pid`.
pub fn send(pid: i32, sig: i32) -> nix::Result<()> {
    // SAFETY: kill(2) with plain integers.
    nix::errno::Errno::result(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// Signals `run`/`exec` forward to the container (all catchable ones).
pub fn forwarded_set() -> SigSet {
    let mut set = SigSet::all();
    set.remove(Signal::SIGKILL);
    set.remove(Signal::SIGSTOP);
    set
}

/// Block every catchable signal (before forking: the child unblocks them
/// right before exec), so the wait loop can read them from a signalfd.
pub fn block_all() -> Result<SigSet> {
    let set = forwarded_set();
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&set),
        Some(&mut old),
    )
    .ctx(|| "block signals".into())?;
    Ok(old)
}

pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Wait for `pid` (our child, or reparented to us as subreaper), reaping
/// other children, forwarding signals, and copying between our stdio and
/// `pty` if given. Returns the exit code (128+signal when killed).
pub fn wait_forwarding(pid: i32, pty: Option<OwnedFd>) -> Result<i32> {
    let sfd = SignalFd::with_flags(
        &forwarded_set(),
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )
    .ctx(|| "signalfd".into())?;
    let stdin = std::io::stdin();
    let mut stdin_open = pty.is_some();
    let mut pty_open = pty.is_some();
    let _raw = pty.as_ref().and_then(|_| RawMode::enable(stdin.as_fd()));
    if let Some(p) = &pty {
        resize_like_stdin(p);
    }
    loop {
        if let Some(code) = reap(pid)? {
            if let Some(p) = &pty {
                drain(p);
            }
            return Ok(code);
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let (stdin_ix, pty_ix) = match &pty {
            Some(p) => {
                let mut si = None;
                if stdin_open {
                    fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
                    si = Some(fds.len() - 1);
                }
                let mut pi = None;
                if pty_open {
                    fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                    pi = Some(fds.len() - 1);
                }
                (si, pi)
            }
            None => (None, None),
        };
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                return Err(Error::Sys {
                    context: "poll".into(),
                    source: e,
                });
            }
        }
        let ready = |ix: Option<usize>| {
            ix.and_then(|i| fds[i].revents())
                .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP))
        };
        let sig_ready = ready(Some(0));
        let stdin_ready = ready(stdin_ix);
        let pty_ready = ready(pty_ix);
        drop(fds);
        if sig_ready {
            while let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGCHLD {
                    continue;
                }
                if sig == libc::SIGWINCH {
                    if let Some(p) = &pty {
                        resize_like_stdin(p);
                    }
                    continue;
                }
                let _ = send(pid, sig);
            }
        }
        if let Some(p) = &pty {
            if stdin_ready && !copy(stdin.as_fd(), p.as_fd()) {
                stdin_open = false;
            }
            if pty_ready && !copy(p.as_fd(), std::io::stdout().as_fd()) {
                pty_open = false;
            }
        }
    }
}

/// Reap every exited child; Some(code) once `pid` is among them.
fn reap(pid: i32) -> Result<Option<i32>> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(st) => {
                if st.pid().map(|p| p.as_raw()) == Some(pid)
                    && let Some(code) = exit_code(st)
                {
                    return Ok(Some(code));
                }
            }
            Err(nix::errno::Errno::ECHILD) => {
                return Err(Error::Container(format!(
                    "process {pid} is not our child any more"
                )));
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(Error::Sys {
                    context: "waitpid".into(),
                    source: e,
                });
            }
        }
    }
}

/// Copy what is available from `from` to `to`; false on EOF or error.
fn copy(from: BorrowedFd, to: BorrowedFd) -> bool {
    let mut buf = [0u8; 8192];
    match nix::unistd::read(from.as_raw_fd(), &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut off = 0;
            while off < n {
                match nix::unistd::write(to, &buf[off..n]) {
                    Ok(w) => off += w,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => return false,
                }
            }
            true
        }
    }
}

fn drain(pty: &OwnedFd) {
    let _ = nix::fcntl::fcntl(
        pty.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    while copy(pty.as_fd(), std::io::stdout().as_fd()) {}
}

fn resize_like_stdin(pty: &OwnedFd) {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read/write a winsize we own.
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Puts a terminal in raw mode and restores it on drop.
struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    fn enable(fd: BorrowedFd) -> Option<RawMode> {
        let saved = nix::sys::termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin().as_fd(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("SIGTERM").unwrap(), 15);
        assert_eq!(parse("sigusr1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        assert!(parse("NOPE").is_err());
        assert!(parse("0").is_err());
        assert!(parse("999").is_err());
    }
}
