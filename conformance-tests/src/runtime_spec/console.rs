//! The receiving end of `--console-socket`: accepts the runtime's
//! connection, takes the pty master it sends (SCM_RIGHTS) and reads what
//! the container writes to its terminal.

use std::io::{IoSliceMut, Read as _};
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// A listening console socket; `output` gives what the terminal showed.
pub struct ConsoleSocket {
    rx: mpsc::Receiver<Result<String, String>>,
}

impl ConsoleSocket {
    pub fn listen(path: &Path) -> std::io::Result<ConsoleSocket> {
        let listener = UnixListener::bind(path)?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(receive(&listener));
        });
        Ok(ConsoleSocket { rx })
    }

    /// The terminal's output up to the container's exit, or why not.
    pub fn output(&self, limit: Duration) -> Result<String, String> {
        self.rx
            .recv_timeout(limit)
            .map_err(|_| "no pty master arrived on the console socket".to_string())?
    }
}

fn receive(listener: &UnixListener) -> Result<String, String> {
    use std::os::fd::AsRawFd as _;
    let (conn, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .map_err(|e| format!("recvmsg: {e}"))?;
    let mut master = None;
    for c in msg.cmsgs().map_err(|e| format!("cmsgs: {e}"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just gave us this descriptor; we own it.
                master.get_or_insert_with(|| unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let master = master.ok_or("the console socket message carried no fd")?;
    let mut file = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            // EIO: every slave end is closed, the container is gone.
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}
