//! The per-container monitor: a re-exec of `strata` in its own session
//! that starts the container through the runtime library and stays as
//! its parent (a subreaper), copying its output into the json-file log
//! (and to an attached CLI), and recording its exit. Detached containers
//! outlive the CLI that started them; the monitor tidies up after them,
//! including `--rm`.
//!
//! File descriptors from the CLI: 0 is the container's stdin (the CLI's
//! with `-i`, else /dev/null); 3 the ready pipe, where the monitor writes
//! `ok` or `err <code> <message>` once the container runs or has failed;
//! 4 and 5, with `--attach`, the attached CLI's stdout and stderr (only
//! then: otherwise those numbers belong to whatever we opened, such as
//! the database).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use super::Engine;
use super::logs;
use super::record::{self, Status};

const READY_FD: RawFd = 3;
const ATTACH_OUT: RawFd = 4;
const ATTACH_ERR: RawFd = 5;

fn fd_open(fd: RawFd) -> bool {
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_ok()
}

/// Exit code for a start failure, Docker's way: 127 not found, 126 not
/// executable, 125 anything else.
pub fn failure_code(msg: &str) -> i32 {
    if msg.contains("executable file not found") || msg.contains("no such file or directory") {
        127
    } else if msg.contains("permission denied") {
        126
    } else {
        125
    }
}

/// The monitor's main. Never returns on success paths' end: exits with
/// the container's status.
pub fn main(engine: &Engine, id: &str, attach: bool) -> i32 {
    // Only a pipe is the ready pipe (never write into a file we opened).
    let is_pipe =
        nix::sys::stat::fstat(READY_FD).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO);
    // SAFETY: fd 3 is a pipe the CLI gave us for this purpose.
    let mut ready = is_pipe.then(|| unsafe { std::fs::File::from_raw_fd(READY_FD) });
    match run(engine, id, &mut ready, attach) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            if let Some(r) = ready.as_mut() {
                let _ = writeln!(r, "err {} {}", failure_code(&msg), msg.replace('\n', " "));
            }
            125
        }
    }
}

fn dev_null() -> Result<OwnedFd> {
    Ok(OwnedFd::from(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .context("open /dev/null")?,
    ))
}

fn run(
    engine: &Engine,
    id: &str,
    ready: &mut Option<std::fs::File>,
    attached: bool,
) -> Result<i32> {
    let dir = engine.dir(id);
    let rec = dir.record()?;
    strata_runtime::process::become_subreaper()?;
    // Blocked from the start, so a SIGWINCH the CLI forwards while the
    // container starts is kept for the pump's signalfd, not discarded.
    // (Only this one: the commands we spawn inherit the mask; the
    // container's init resets its own.)
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    winch.thread_block().context("block signals")?;
    let attach: [Option<std::fs::File>; 2] = [ATTACH_OUT, ATTACH_ERR].map(|fd| {
        // SAFETY: fds 4 and 5, when open, were passed to us by the CLI.
        (attached && fd_open(fd)).then(|| unsafe { std::fs::File::from_raw_fd(fd) })
    });
    let net = engine.prepare_start(&rec)?;
    // stdio: pipes for output (or a pty), the given stdin.
    let mut opts = strata_runtime::container::create::CreateOptions {
        id: id.to_string(),
        bundle: dir.path().to_path_buf(),
        ..Default::default()
    };
    let mut console_end = None;
    let mut pipes: Vec<OwnedFd> = Vec::new();
    let null = dev_null()?;
    if rec.tty {
        let (a, b) = strata_runtime::console::proxy_pair()?;
        opts.console_fd = Some(std::sync::Arc::new(a));
        console_end = Some(b);
    } else {
        let (or, ow) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
        let (er, ew) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
        nix::unistd::dup2(ow.as_raw_fd(), 1).context("dup2")?;
        nix::unistd::dup2(ew.as_raw_fd(), 2).context("dup2")?;
        pipes.push(or);
        pipes.push(er);
    }
    if !rec.interactive {
        nix::unistd::dup2(null.as_raw_fd(), 0).context("dup2")?;
    }
    let root = engine.runtime_root();
    let bundle = strata_runtime::spec::load_bundle(dir.path()).map_err(|e| anyhow::anyhow!("{e}"));
    let created = bundle.and_then(|b| {
        strata_runtime::container::create::create_from(&root, &opts, &b)
            .map_err(|e| anyhow::anyhow!("{e}"))
    });
    // Our own stdio goes back to /dev/null: only the container holds the
    // pipes' write ends now.
    for fd in [1, 2] {
        let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
    }
    opts.console_fd = None;
    let st = match created {
        Ok(st) => st,
        Err(e) => {
            engine.after_exit(&rec, net.as_ref(), None, Some(&e.to_string()));
            return Err(e);
        }
    };
    let pty = match console_end {
        Some(end) => Some(
            strata_runtime::console::recv_fd(end.as_raw_fd())
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        None => None,
    };
    // The terminal's size before the command runs, not after.
    if let Some(p) = &pty {
        resize(p);
    }
    if let Err(e) = strata_runtime::container::start::start(&root, id) {
        let _ = strata_runtime::container::delete::delete(&root, id, true);
        engine.after_exit(&rec, net.as_ref(), None, Some(&e.to_string()));
        return Err(anyhow::anyhow!("{e}"));
    }
    {
        let _l = dir.lock()?;
        let mut s = dir.state()?;
        s.status = Status::Running;
        s.pid = st.pid;
        s.pid_start = record::start_time(st.pid).unwrap_or(0);
        s.monitor_pid = std::process::id() as i32;
        s.monitor_start = record::start_time(s.monitor_pid).unwrap_or(0);
        s.started_at = Some(record::now());
        s.finished_at = None;
        s.exit_code = 0;
        s.boot_id = record::boot_id();
        s.ip = net.as_ref().and_then(|n| n.ip.clone());
        s.error = None;
        dir.save_state(&s)?;
    }
    if let Some(r) = ready.as_mut() {
        let _ = writeln!(r, "ok {}", st.pid);
    }
    *ready = None;
    let code = pump(
        st.pid,
        &dir.log(),
        pipes,
        pty,
        attach,
        rec.tty && rec.interactive,
    )?;
    engine.after_exit(&rec, net.as_ref(), Some(code), None);
    Ok(code)
}

/// The signals the pump reads from its signalfd.
fn pump_signals() -> SigSet {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.add(Signal::SIGWINCH);
    mask.add(Signal::SIGPIPE);
    mask
}

/// Copy output to the log (and the attached CLI) until the container has
/// exited and its output is drained. Returns the exit code.
fn pump(
    pid: i32,
    log: &std::path::Path,
    pipes: Vec<OwnedFd>,
    pty: Option<OwnedFd>,
    mut attach: [Option<std::fs::File>; 2],
    tty_input: bool,
) -> Result<i32> {
    let mask = pump_signals();
    mask.thread_block().context("block signals")?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;
    let mut writer = logs::Writer::open(log)?;
    // (fd, stream index) of what we read from.
    let mut sources: Vec<(OwnedFd, usize)> = pipes.into_iter().zip([0usize, 1]).collect();
    if let Some(p) = &pty {
        sources.push((p.try_clone().context("dup pty")?, 0));
    }
    let stdin = std::io::stdin();
    let mut stdin_open = tty_input;
    let mut code = None;
    let mut deadline = None;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if code.is_none() {
            code = reap(pid);
            if code.is_some() {
                // Output still in flight is drained for a moment; a
                // process that kept the pipe open does not hold us.
                deadline = Some(std::time::Instant::now() + std::time::Duration::from_secs(2));
            }
        }
        if let Some(c) = code
            && (sources.is_empty() || deadline.is_some_and(|d| std::time::Instant::now() > d))
        {
            writer.flush();
            return Ok(c);
        }
        let mut fds: Vec<PollFd> = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        for (f, _) in &sources {
            fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
        }
        let stdin_ix = if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            Some(fds.len() - 1)
        } else {
            None
        };
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let revents: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        if revents[0].contains(PollFlags::POLLIN) {
            while let Ok(Some(si)) = sfd.read_signal() {
                if si.ssi_signo == Signal::SIGWINCH as u32
                    && let Some(p) = &pty
                {
                    resize(p);
                }
            }
        }
        let mut closed = Vec::new();
        for (i, (f, stream)) in sources.iter().enumerate() {
            let ev = revents[i + 1];
            if ev.is_empty() {
                continue;
            }
            match nix::unistd::read(f.as_raw_fd(), &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => closed.push(i),
                Ok(n) => {
                    writer.write(*stream, &buf[..n]);
                    if let Some(a) = attach[*stream].as_mut()
                        && a.write_all(&buf[..n]).is_err()
                    {
                        attach[*stream] = None;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => closed.push(i),
            }
        }
        for i in closed.into_iter().rev() {
            sources.remove(i);
        }
        if let Some(ix) = stdin_ix
            && !revents[ix].is_empty()
        {
            match stdin.lock().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if let Some(p) = &pty {
                        let _ = nix::unistd::write(p, &buf[..n]);
                    }
                }
            }
        }
    }
}

/// Reap children; the container's status once it has exited.
fn reap(pid: i32) -> Option<i32> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(_) => return None,
            Ok(s) => {
                if s.pid() == Some(Pid::from_raw(pid)) {
                    return strata_runtime::signals::exit_code(s);
                }
            }
        }
    }
}

/// Give the pty the size of the attached terminal (our stdin).
fn resize(pty: &OwnedFd) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // The size of the terminal we were given: stdin with `-i`, else the
    // attached CLI's stdout (`-t` alone). Each fd may not be a tty (or not
    // be open), in which case the call fails and the next is tried.
    for fd in [0, ATTACH_OUT] {
        // SAFETY: TIOCGWINSZ fills the winsize we own.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 {
            // SAFETY: TIOCSWINSZ reads the winsize we pass.
            unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
            return;
        }
    }
}
