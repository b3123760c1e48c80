//! The monitor's attach socket: how `strata attach` reaches a running
//! container's stdio after the CLI that started it is gone.
//!
//! The monitor listens on `attach.sock` in the container's directory (a
//! Unix stream socket, reached through `/proc/self/fd/N/` so the path
//! stays under the 108-byte `sun_path` limit however deep `--root` is).
//! Both directions carry frames: one kind byte, a big-endian u32 length,
//! then the payload.
//!
//! - monitor to client: [`STDOUT`] and [`STDERR`] output, as it arrives
//!   (no history: like `docker attach`, only what comes after).
//! - client to monitor: [`STDIN`] bytes for the container's stdin (the
//!   pty with `-t`, else the pipe the monitor holds for `-i`), and
//!   [`RESIZE`] (rows, cols as two big-endian u16) for a `-t` container.
//!
//! The monitor closes every client once the container has exited and its
//! output is drained; the client then reads the exit code from the state.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use anyhow::{Context, Result};

pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const STDIN: u8 = 0;
pub const RESIZE: u8 = 3;

/// Largest frame either side accepts; bigger ones are a protocol error.
const MAX_FRAME: usize = 1 << 20;

const SOCKET: &str = "attach.sock";

/// `dir/attach.sock` as a short path: through an O_PATH fd on `dir`.
/// The fd must stay open while the path is used.
fn short_path(dir: &Path) -> Result<(OwnedFd, String)> {
    let raw = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("open {}", dir.display()))?;
    // SAFETY: open just returned this fd; the OwnedFd takes it over.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    let path = format!("/proc/self/fd/{}/{SOCKET}", fd.as_raw_fd());
    Ok((fd, path))
}

/// The monitor's listener (non-blocking), replacing a stale socket.
pub fn listen(dir: &Path) -> Result<UnixListener> {
    let _ = std::fs::remove_file(dir.join(SOCKET));
    let (_fd, path) = short_path(dir)?;
    let l = UnixListener::bind(&path).context("bind the attach socket")?;
    l.set_nonblocking(true).context("attach socket")?;
    Ok(l)
}

/// Remove the socket once the container has exited.
pub fn unlink(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(SOCKET));
}

/// A client's connection to a running container's monitor.
pub fn connect(dir: &Path) -> Result<UnixStream> {
    let (_fd, path) = short_path(dir)?;
    UnixStream::connect(&path).context("connect to the container's monitor")
}

/// Write one frame.
pub fn write_frame(w: &mut impl Write, kind: u8, data: &[u8]) -> std::io::Result<()> {
    let mut head = [0u8; 5];
    head[0] = kind;
    head[1..].copy_from_slice(&(data.len() as u32).to_be_bytes());
    w.write_all(&head)?;
    w.write_all(data)
}

/// Read one frame; None at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("attach frame of {len} bytes"),
        ));
    }
    let mut data = vec![0u8; len];
    r.read_exact(&mut data)?;
    Ok(Some((head[0], data)))
}

/// Frames a client sent, parsed from bytes as they arrive (the monitor
/// reads clients without blocking).
#[derive(Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
}

impl FrameBuffer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, or None until more bytes come; Err on a
    /// frame too large to be real.
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, String> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(format!("attach frame of {len} bytes"));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let data = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((kind, data)))
    }
}

/// The size (rows, cols) of the first of `fds` that is a terminal.
pub fn terminal_size(fds: &[std::os::fd::RawFd]) -> Option<(u16, u16)> {
    for &fd in fds {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ fills the winsize we own; an fd that is not
        // a tty (or not open) fails and the next is tried.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

/// A resize frame's payload.
pub fn resize_payload(rows: u16, cols: u16) -> [u8; 4] {
    let r = rows.to_be_bytes();
    let c = cols.to_be_bytes();
    [r[0], r[1], c[0], c[1]]
}

/// (rows, cols) from a resize payload.
pub fn parse_resize(data: &[u8]) -> Option<(u16, u16)> {
    match data {
        [r0, r1, c0, c1] => Some((
            u16::from_be_bytes([*r0, *r1]),
            u16::from_be_bytes([*c0, *c1]),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_whole_and_in_pieces() {
        let mut wire = Vec::new();
        write_frame(&mut wire, STDIN, b"hello").unwrap();
        write_frame(&mut wire, RESIZE, &resize_payload(33, 120)).unwrap();
        let mut r = &wire[..];
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((STDIN, b"hello".to_vec()))
        );
        let (k, d) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((k, parse_resize(&d)), (RESIZE, Some((33, 120))));
        assert_eq!(read_frame(&mut r).unwrap(), None);
        // Byte by byte, as a non-blocking reader may see them.
        let mut fb = FrameBuffer::default();
        let mut got = Vec::new();
        for b in &wire {
            fb.push(std::slice::from_ref(b));
            while let Some(f) = fb.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (STDIN, b"hello".to_vec()));
    }

    #[test]
    fn oversized_and_truncated_frames_are_errors() {
        let mut fb = FrameBuffer::default();
        fb.push(&[STDIN, 0xff, 0xff, 0xff, 0xff]);
        assert!(fb.next_frame().is_err());
        let mut r: &[u8] = &[STDOUT, 0, 0, 0, 9, b'x'];
        assert!(read_frame(&mut r).is_err());
        assert_eq!(parse_resize(&[1, 2, 3]), None);
    }
}

/// `--detach-keys` as bytes: comma-separated `ctrl-X` or single
/// characters, Docker's format; empty turns detaching off.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>> {
    if spec.is_empty() {
        return Ok(Vec::new());
    }
    spec.split(',')
        .map(|k| {
            let bad = || {
                anyhow::anyhow!(
                    "invalid detach keys {spec:?}: {k:?} is not ctrl-X or one character"
                )
            };
            if let Some(c) = k.strip_prefix("ctrl-") {
                let [c] = c.as_bytes() else {
                    return Err(bad());
                };
                match c.to_ascii_lowercase() {
                    c @ b'a'..=b'z' => Ok(c - b'a' + 1),
                    b'@' => Ok(0),
                    c @ b'['..=b'_' => Ok(c - b'[' + 27),
                    _ => Err(bad()),
                }
            } else {
                match k.as_bytes() {
                    [c] if c.is_ascii() => Ok(*c),
                    _ => Err(bad()),
                }
            }
        })
        .collect()
}

/// Watches input for the detach sequence: bytes that might begin it are
/// held back until it is complete (detach) or broken (sent on).
pub struct DetachMatcher {
    keys: Vec<u8>,
    held: usize,
}

impl DetachMatcher {
    pub fn new(keys: Vec<u8>) -> DetachMatcher {
        DetachMatcher { keys, held: 0 }
    }

    /// The bytes to pass on, and whether the sequence completed.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.held]);
                self.held = 0;
                if b == self.keys[0] {
                    self.held = 1;
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod detach_tests {
    use super::*;

    #[test]
    fn detach_keys_parse_the_docker_way() {
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").unwrap(),
            vec![0x10, 0x11]
        );
        assert_eq!(
            parse_detach_keys("ctrl-@,ctrl-[,ctrl-_,a").unwrap(),
            vec![0, 27, 31, b'a']
        );
        assert_eq!(parse_detach_keys("").unwrap(), Vec::<u8>::new());
        for bad in ["ctrl-", "ctrl-pp", "ab", "ctrl-1"] {
            assert!(parse_detach_keys(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn detach_matcher_holds_a_partial_sequence_back() {
        let mut m = DetachMatcher::new(vec![0x10, 0x11]);
        assert_eq!(m.feed(b"ab\x10"), (b"ab".to_vec(), false));
        // Broken sequence: the held byte goes on with the next.
        assert_eq!(m.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(m.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(m.feed(b"\x11rest"), (Vec::new(), true));
    }
}
