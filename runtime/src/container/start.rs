//! `start`: release a created container's init from the exec fifo.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;

use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::state::{self, EXEC_FIFO, Root, Status};

pub fn start(root: &Root, id: &str) -> Result<()> {
    let _lock = root.lock(id)?;
    let st = root.load(id)?;
    let dir = root.dir(id);
    match st.status(&dir) {
        Status::Created => {}
        Status::Stopped => return Err(Error::StartStopped),
        Status::Running | Status::Paused => return Err(Error::AlreadyRunning),
        Status::Creating => {
            return Err(Error::Container(
                "cannot start a container that is still being created".into(),
            ));
        }
    }
    let fifo = dir.join(EXEC_FIFO);
    let fd = nix::fcntl::open(
        &fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", fifo.display()))?;
    // SAFETY: fresh fd from open.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // The init opens the fifo for writing as soon as we hold the read end,
    // then writes one byte. Poll, checking the init is still there.
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(n) if n > 0 => {
                let mut b = [0u8; 1];
                match nix::unistd::read(fd.as_raw_fd(), &mut b) {
                    Ok(1) => break,
                    Ok(_) | Err(nix::errno::Errno::EAGAIN) if st.init_alive() => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    _ => return Err(Error::StartStopped),
                }
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {
                if !st.init_alive() {
                    return Err(Error::StartStopped);
                }
            }
            Err(e) => {
                return Err(Error::Sys {
                    context: "poll exec fifo".into(),
                    source: e,
                });
            }
        }
    }
    std::fs::remove_file(&fifo).ctx(|| format!("remove {}", fifo.display()))?;
    // The init keeps its end open through the startContainer hooks until
    // the exec closes it: poststart runs after the user's process is
    // executed (runtime-spec), never beside a startContainer hook.
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(n) if n > 0 => {
                let mut b = [0u8; 16];
                match nix::unistd::read(fd.as_raw_fd(), &mut b) {
                    Ok(0) => break,
                    Err(nix::errno::Errno::EAGAIN) | Ok(_) => {}
                    Err(_) => break,
                }
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {
                if !st.init_alive() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let hs = state::hook_state(&st, Status::Running);
    hooks::run_all(
        "poststart",
        st.spec
            .hooks()
            .as_ref()
            .and_then(|h| h.poststart().as_ref()),
        &hs,
    );
    Ok(())
}
