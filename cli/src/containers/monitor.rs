//! The per-container monitor: `strata-monitor` (or `strata
//! container-monitor` where that binary is not installed) in its own
//! session. It starts the container through the runtime library and
//! stays its parent (a subreaper), copying its output into the json-file
//! log (and to an attached CLI), and recording its exit. Detached containers
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

use std::time::{Duration, Instant};

use super::Engine;
use super::attach;
use super::health;
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
pub fn main(engine: &mut Engine, id: &str, attach: bool, detach_keys: &str) -> i32 {
    // Only a pipe is the ready pipe (never write into a file we opened).
    let is_pipe =
        nix::sys::stat::fstat(READY_FD).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO);
    // SAFETY: fd 3 is a pipe the CLI gave us for this purpose.
    let mut ready = is_pipe.then(|| unsafe { std::fs::File::from_raw_fd(READY_FD) });
    match run(engine, id, &mut ready, attach, detach_keys) {
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

/// Give back the main stack's pages below the current frame: setup (the
/// runtime, JSON, SQLite) went deep once, and an idle monitor would keep
/// those pages for its whole life. Deeper calls later fault in fresh
/// zeroed pages as they need them.
fn release_stack(smaps: &str) {
    let here = 0u8;
    let sp = std::hint::black_box(&here) as *const u8 as usize;
    let Some(bottom) = smaps
        .lines()
        .find(|l| l.ends_with("[stack]"))
        .and_then(|l| l.split('-').next())
        .and_then(|a| usize::from_str_radix(a, 16).ok())
    else {
        return;
    };
    // Keep 16 kB below us (our callees, a signal frame) untouched.
    let page = 4096;
    let end = (sp - 16 * 1024) & !(page - 1);
    if end <= bottom {
        return;
    }
    // SAFETY: [bottom, end) lies below every live frame of this, the
    // only, thread; MADV_DONTNEED on it only drops pages that nothing
    // reads before writing.
    unsafe {
        libc::madvise(
            bottom as *mut libc::c_void,
            end - bottom,
            libc::MADV_DONTNEED,
        )
    };
}

/// Drop from our mappings the pages of code and read-only data that
/// setup ran (megabytes of runtime, JSON and SQLite code, and the parts
/// of libc they use) and the wait does not: they stay in the page cache,
/// and the few the wait runs fault back in at once. Only read-only file
/// mappings without a page of their own are touched, so nothing written
/// (relocations) can be lost.
fn release_setup_code(smaps: &str) {
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            let perms = words.next().unwrap_or_default();
            let path = words.nth(3).unwrap_or_default();
            current = (path.starts_with('/') && !perms.contains('w')).then_some((start, end));
        } else if matches!(first, "Private_Dirty:" | "Anonymous:" | "Swap:")
            && words.next() != Some("0")
        {
            // Written pages (resident, copied or swapped out): keep all.
            current = None;
        } else if first == "VmFlags:"
            && let Some((start, end)) = current.take()
        {
            // SAFETY: a read-only private file mapping with no page of
            // its own (none dirty, copied or swapped): dropping its pages
            // only makes the next access read them from the file again.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
            // SAFETY: as above; a hint that later faults need no
            // neighbouring pages mapped with them.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_RANDOM) };
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
    engine: &mut Engine,
    id: &str,
    ready: &mut Option<std::fs::File>,
    attached: bool,
    detach_keys: &str,
) -> Result<i32> {
    let dir = engine.dir(id);
    let keys = attach::parse_detach_keys(detach_keys)?;
    let mut rec = dir.record()?;
    strata_runtime::process::become_subreaper()?;
    // Blocked from the start, so a SIGWINCH the CLI forwards while the
    // container starts is kept for the pump's signalfd, not discarded.
    // (Only this one: the commands we spawn inherit the mask; the
    // container's init resets its own.)
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    winch.thread_block().context("block signals")?;
    let mut attach: [Option<std::fs::File>; 2] = [ATTACH_OUT, ATTACH_ERR].map(|fd| {
        // SAFETY: fds 4 and 5, when open, were passed to us by the CLI.
        (attached && fd_open(fd)).then(|| unsafe { std::fs::File::from_raw_fd(fd) })
    });
    // The restart policy: restarts with back-off (100 ms, doubling to a
    // minute; back to 100 ms after a run of 10 s), until a `stop`.
    let mut restarts = 0u32;
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        let began = Instant::now();
        let cycle = Cycle {
            engine,
            rec: &rec,
            attach: std::mem::take(&mut attach),
            attached: attached && first,
            keys: keys.clone(),
            restarts,
        };
        let waited = cycle.start(ready).and_then(|running| {
            // Setup (spec, store queries, network) left caches and freed
            // heap behind: give them back before a wait that may last
            // for days. The spec is in the runtime's hands now; a
            // restart loads the record again.
            rec.spec = serde_json::Value::Null;
            engine.store.suspend();
            // One read of our mappings serves both releases.
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
            release_setup_code(&smaps);
            release_stack(&smaps);
            drop(smaps);
            // Last, as reading /proc above allocated.
            // SAFETY: malloc_trim only releases free heap pages.
            unsafe { libc::malloc_trim(0) };
            running.wait(ready)
        });
        let (code, net) = match waited {
            Ok(x) => x,
            // The first start's failure goes to the CLI; a restart's is
            // in the state (after_exit has recorded it).
            Err(e) if first => return Err(e),
            Err(_) => return Ok(125),
        };
        first = false;
        let stop = dir.state().map(|s| s.stop_requested).unwrap_or(true);
        if stop || !rec.restart.wants(code, restarts) {
            engine.after_exit(&rec, net.as_ref(), Some(code), None);
            return Ok(code);
        }
        engine.before_restart(&rec, net.as_ref(), code, restarts + 1);
        // A foreground CLI returns with this exit; the container goes on
        // restarting without it.
        if let Some(r) = ready.as_mut() {
            let _ = writeln!(r, "exited {code}");
        }
        *ready = None;
        if began.elapsed() >= Duration::from_secs(10) {
            backoff = Duration::from_millis(100);
        }
        if !sleep_unless_stopped(&dir, backoff) {
            engine.end_restarting(&rec);
            return Ok(code);
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
        restarts += 1;
        rec = dir.record()?;
    }
}

/// Wait `d` unless a `stop` comes first (false then).
fn sleep_unless_stopped(dir: &super::record::Dir, d: Duration) -> bool {
    let until = Instant::now() + d;
    loop {
        if dir.state().map(|s| s.stop_requested).unwrap_or(true) {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

/// One run of the container, from its network up to its exit.
struct Cycle<'a> {
    engine: &'a Engine,
    rec: &'a super::record::Record,
    attach: [Option<std::fs::File>; 2],
    attached: bool,
    keys: Vec<u8>,
    restarts: u32,
}

impl Cycle<'_> {
    /// Start the container: what its wait needs.
    fn start(self, ready: &mut Option<std::fs::File>) -> Result<Running> {
        let Cycle {
            engine,
            rec,
            attach,
            attached,
            keys,
            restarts,
        } = self;
        let id = rec.id.as_str();
        let dir = engine.dir(id);
        let net = engine.prepare_start(rec)?;
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
        // stdin: the attached CLI's own with `run -i` (fd 0 as given), the
        // pty with `-t`, else for `-i` a pipe we hold, which `strata attach`
        // writes into; /dev/null without `-i`.
        let mut stdin_w = None;
        if !rec.interactive {
            nix::unistd::dup2(null.as_raw_fd(), 0).context("dup2")?;
        } else if !rec.tty && !attached {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
            nix::unistd::dup2(r.as_raw_fd(), 0).context("dup2")?;
            stdin_w = Some(w);
        }
        let listener = match attach::listen(dir.path()) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!("no attach socket: {e:#}");
                None
            }
        };
        let root = engine.runtime_root();
        let bundle =
            strata_runtime::spec::load_bundle(dir.path()).map_err(|e| anyhow::anyhow!("{e}"));
        let created = bundle.and_then(|b| {
            strata_runtime::container::create::create_from(&root, &opts, &b)
                .map_err(|e| anyhow::anyhow!("{e}"))
        });
        // Our own stdio goes back to /dev/null: only the container holds the
        // pipes' write ends (and the stdin pipe's read end) now.
        if stdin_w.is_some() {
            let _ = nix::unistd::dup2(null.as_raw_fd(), 0);
        }
        for fd in [1, 2] {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
        opts.console_fd = None;
        let st = match created {
            Ok(st) => st,
            Err(e) => {
                engine.after_exit(rec, net.as_ref(), None, Some(&e.to_string()));
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
            engine.after_exit(rec, net.as_ref(), None, Some(&e.to_string()));
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
            s.networks = net.as_ref().map(|n| n.wired.clone()).unwrap_or_default();
            s.error = None;
            s.restart_count = restarts;
            s.health = rec.healthcheck.as_ref().map(|_| record::Health {
                status: "starting".into(),
                ..Default::default()
            });
            dir.save_state(&s)?;
        }
        // Logged here, before the container can exit (and the monitor log
        // its `die`), so that the log keeps the order of what happened.
        engine.event(if restarts > 0 { "restart" } else { "start" }, id, &[]);
        if let Some(r) = ready.as_mut() {
            let _ = writeln!(r, "ok {}", st.pid);
        }
        // An attached CLI keeps listening on the pipe for `detached`, and
        // with a restart policy for `exited N`.
        let tty_input = attached && rec.tty && rec.interactive;
        let keep = (tty_input && !keys.is_empty()) || !rec.restart.name.is_empty();
        let events = if keep { ready.take() } else { None };
        *ready = None;
        let prober = rec.healthcheck.clone().map(|cfg| Prober {
            next: Instant::now() + health::interval(&cfg),
            started: Instant::now(),
            cfg,
            running: None,
            dir: dir.clone(),
            cmd: engine.health_command(id),
            root: engine.root.clone(),
            id: id.to_string(),
            names: (rec.name.clone(), rec.image_name.clone()),
        });
        let pump = Pump {
            pid: st.pid,
            pty,
            attach,
            tty_input,
            detach: attach::DetachMatcher::new(keys),
            events,
            stdin_w,
            listener,
            clients: Vec::new(),
            pending_in: Vec::new(),
            prober,
        };
        Ok(Running {
            pump,
            net,
            pipes,
            dir,
            log: rec.log.clone(),
        })
    }
}

/// A started container, and what its monitor holds while it waits.
struct Running {
    pump: Pump,
    net: Option<super::NetState>,
    pipes: Vec<OwnedFd>,
    dir: super::record::Dir,
    log: super::logs::LogConfig,
}

impl Running {
    /// The exit code and the network to take down.
    fn wait(self, ready: &mut Option<std::fs::File>) -> Result<(i32, Option<super::NetState>)> {
        let (code, events) = self.pump.run(&self.dir.log(), &self.log, self.pipes)?;
        *ready = events;
        attach::unlink(self.dir.path());
        Ok((code, self.net))
    }
}

/// The healthcheck: a probe every interval, one at a time.
struct Prober {
    cfg: record::HealthConfig,
    next: Instant,
    started: Instant,
    running: Option<Probe>,
    dir: super::record::Dir,
    cmd: std::process::Command,
    root: std::path::PathBuf,
    id: String,
    /// Name and image, for the events.
    names: (String, String),
}

struct Probe {
    helper: i32,
    out: OwnedFd,
    buf: Vec<u8>,
    start: String,
    deadline: Instant,
    code: Option<i32>,
}

impl Prober {
    /// Start a probe when one is due.
    fn tick(&mut self) {
        if self.running.is_some() || Instant::now() < self.next {
            return;
        }
        let Ok((r, w)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
            return;
        };
        let mut cmd = std::process::Command::new(self.cmd.get_program());
        cmd.args(self.cmd.get_args());
        match health::spawn_probe(cmd, w) {
            Ok(child) => {
                set_nonblocking(&r);
                self.running = Some(Probe {
                    helper: child.id() as i32,
                    out: r,
                    buf: Vec::new(),
                    start: record::now(),
                    deadline: Instant::now() + health::timeout(&self.cfg),
                    code: None,
                });
            }
            Err(e) => tracing::warn!("{e:#}"),
        }
    }

    /// The running probe's helper, for the reaper.
    fn helper(&self) -> Option<i32> {
        self.running.as_ref().map(|p| p.helper)
    }

    /// Read what the probe wrote; finish it once its helper has exited
    /// (with the code the reaper saw) or its time is up.
    fn poll(&mut self, exited: Option<i32>) {
        let Some(p) = self.running.as_mut() else {
            return;
        };
        if exited.is_some() {
            p.code = exited;
        }
        let mut chunk = [0u8; 4096];
        while let Ok(n) = nix::unistd::read(p.out.as_raw_fd(), &mut chunk) {
            if n == 0 {
                break;
            }
            if p.buf.len() < health::MAX_OUTPUT {
                p.buf.extend_from_slice(&chunk[..n]);
            }
        }
        let timed_out = p.code.is_none() && Instant::now() > p.deadline;
        if p.code.is_none() && !timed_out {
            return;
        }
        if timed_out {
            health::kill_probe(&self.dir, p.helper);
        }
        let Some(p) = self.running.take() else { return };
        let output = if timed_out {
            format!(
                "Health check exceeded timeout ({}s)",
                health::timeout(&self.cfg).as_secs()
            )
        } else {
            health::output_text(&p.buf)
        };
        let log = record::HealthLog {
            start: p.start,
            end: record::now(),
            exit_code: if timed_out { -1 } else { p.code.unwrap_or(-1) },
            output,
        };
        let in_start = self.started.elapsed() < health::start_period(&self.cfg);
        match health::record(&self.dir, &self.cfg, log, in_start) {
            Ok(Some(status)) => crate::events::record(
                &self.root,
                "container",
                &format!("health_status: {status}"),
                &self.id,
                &[("name", &self.names.0), ("image", &self.names.1)],
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!("{e:#}"),
        }
        self.next = Instant::now() + health::interval(&self.cfg);
    }
}

/// The signals the pump reads from its signalfd.
fn pump_signals() -> SigSet {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.add(Signal::SIGWINCH);
    mask.add(Signal::SIGPIPE);
    mask
}

/// Input waiting for the container's stdin beyond this stops reading
/// more (the container is not reading its stdin).
const INPUT_BACKLOG: usize = 256 << 10;

/// The monitor's loop over the container's stdio.
struct Pump {
    pid: i32,
    /// The pty master with `-t` (output and input).
    pty: Option<OwnedFd>,
    /// The foreground CLI's stdout and stderr.
    attach: [Option<std::fs::File>; 2],
    /// Copy our fd 0 (the foreground CLI's terminal) into the pty.
    tty_input: bool,
    /// Watches that input for the detach keys.
    detach: attach::DetachMatcher,
    /// Where the foreground CLI hears that its user detached.
    events: Option<std::fs::File>,
    /// The write end of the container's stdin pipe (`-i` without `-t`,
    /// not started in the foreground).
    stdin_w: Option<OwnedFd>,
    listener: Option<std::os::unix::net::UnixListener>,
    clients: Vec<(std::os::unix::net::UnixStream, attach::FrameBuffer)>,
    /// Input read but not yet taken by the container.
    pending_in: Vec<u8>,
    prober: Option<Prober>,
}

impl Pump {
    /// Where input for the container goes.
    fn input_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.pty
            .as_ref()
            .or(self.stdin_w.as_ref())
            .map(|f| f.as_fd())
    }

    /// Copy output to the log (and attached clients) until the container
    /// has exited and its output is drained, running the healthcheck
    /// meanwhile. Returns the exit code and the CLI's event pipe.
    fn run(
        mut self,
        log: &std::path::Path,
        log_config: &logs::LogConfig,
        pipes: Vec<OwnedFd>,
    ) -> Result<(i32, Option<std::fs::File>)> {
        let mask = pump_signals();
        mask.thread_block().context("block signals")?;
        let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .context("signalfd")?;
        let mut writer = logs::Writer::with_config(log, log_config.clone())?;
        for fd in self.pty.iter().chain(self.stdin_w.iter()) {
            set_nonblocking(fd);
        }
        // (fd, stream index) of what we read from.
        let mut sources: Vec<(OwnedFd, usize)> = pipes.into_iter().zip([0usize, 1]).collect();
        if let Some(p) = &self.pty {
            sources.push((p.try_clone().context("dup pty")?, 0));
        }
        // SAFETY: fd 0 stays open for the monitor's life (the CLI's
        // stdin, a pipe, or /dev/null); read unbuffered, as the other fds.
        let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
        let mut code = None;
        let mut deadline = None;
        // A pipe's reads come in at most its 64 kB; a quarter of that
        // costs a few more reads under a flood and 48 kB less per idle
        // monitor.
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let (exited, probe_exit) =
                reap(self.pid, self.prober.as_ref().and_then(Prober::helper));
            if let Some(p) = self.prober.as_mut() {
                p.poll(probe_exit);
                if code.is_none() {
                    p.tick();
                }
            }
            if code.is_none() {
                code = exited;
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
                if let Some(p) = self.prober.as_mut()
                    && let Some(probe) = p.running.take()
                {
                    health::kill_probe(&p.dir, probe.helper);
                }
                return Ok((c, self.events.take()));
            }
            let take_input = self.pending_in.len() < INPUT_BACKLOG;
            let mut fds: Vec<PollFd> = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            for (f, _) in &sources {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
            let stdin_ix = (self.tty_input && take_input).then(|| {
                fds.push(PollFd::new(stdin, PollFlags::POLLIN));
                fds.len() - 1
            });
            let listen_ix = self.listener.as_ref().map(|l| {
                fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            let clients_ix = fds.len();
            if take_input {
                for (c, _) in &self.clients {
                    fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
                }
            }
            let out_ix = match self.input_fd() {
                Some(f) if !self.pending_in.is_empty() => {
                    fds.push(PollFd::new(f, PollFlags::POLLOUT));
                    Some(fds.len() - 1)
                }
                _ => None,
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
                        && let Some(p) = &self.pty
                    {
                        resize(p);
                    }
                }
            }
            let mut closed = Vec::new();
            for (i, (f, stream)) in sources.iter().enumerate() {
                if revents[i + 1].is_empty() {
                    continue;
                }
                match nix::unistd::read(f.as_raw_fd(), &mut buf) {
                    Ok(0) | Err(nix::errno::Errno::EIO) => closed.push(i),
                    Ok(n) => {
                        writer.write(*stream, &buf[..n]);
                        self.relay(*stream, &buf[..n]);
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
                match nix::unistd::read(0, &mut buf) {
                    Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                    Ok(0) | Err(_) => self.tty_input = false,
                    Ok(n) => {
                        let (data, detached) = self.detach.feed(&buf[..n]);
                        self.pending_in.extend_from_slice(&data);
                        if detached {
                            self.let_the_terminal_go();
                        }
                    }
                }
            }
            if take_input {
                self.read_clients(&revents[clients_ix..], &mut buf);
            }
            if listen_ix.is_some_and(|ix| !revents[ix].is_empty()) {
                self.accept();
            }
            if out_ix.is_some() || !self.pending_in.is_empty() {
                self.feed_input();
            }
        }
    }

    /// The foreground user typed the detach keys: stop reading and
    /// writing their terminal, tell their CLI, and run on as if detached.
    fn let_the_terminal_go(&mut self) {
        self.tty_input = false;
        self.attach = [None, None];
        if let Ok(null) = dev_null() {
            let _ = nix::unistd::dup2(null.as_raw_fd(), 0);
        }
        if let Some(mut e) = self.events.take() {
            let _ = writeln!(e, "detached");
        }
    }

    /// Output to the foreground CLI and every attached client; a client
    /// that cannot keep up for seconds is dropped, not waited for.
    fn relay(&mut self, stream: usize, data: &[u8]) {
        if let Some(a) = self.attach[stream].as_mut()
            && a.write_all(data).is_err()
        {
            self.attach[stream] = None;
        }
        let kind = if stream == 0 {
            attach::STDOUT
        } else {
            attach::STDERR
        };
        let mut frame = Vec::with_capacity(data.len() + 5);
        let _ = attach::write_frame(&mut frame, kind, data);
        self.clients.retain(|(c, _)| send_all(c, &frame));
    }

    fn accept(&mut self) {
        let Some(l) = &self.listener else { return };
        while let Ok((c, _)) = l.accept() {
            if c.set_nonblocking(true).is_ok() {
                self.clients.push((c, attach::FrameBuffer::default()));
            }
        }
    }

    /// Frames from clients whose sockets are readable (`revents` in the
    /// order of `self.clients`).
    fn read_clients(&mut self, revents: &[PollFlags], buf: &mut [u8]) {
        let mut gone = Vec::new();
        for (i, ev) in revents.iter().enumerate().take(self.clients.len()) {
            if ev.is_empty() {
                continue;
            }
            let (c, frames) = &mut self.clients[i];
            match c.read(buf) {
                Ok(0) => {
                    gone.push(i);
                    continue;
                }
                Ok(n) => frames.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => {
                    gone.push(i);
                    continue;
                }
            }
            loop {
                match frames.next_frame() {
                    Ok(Some((attach::STDIN, data))) => {
                        // Input for a container without stdin is dropped.
                        if self.pty.is_some() || self.stdin_w.is_some() {
                            self.pending_in.extend_from_slice(&data);
                        }
                    }
                    Ok(Some((attach::RESIZE, data))) => {
                        if let (Some(p), Some((rows, cols))) =
                            (&self.pty, attach::parse_resize(&data))
                        {
                            set_size(p, rows, cols);
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!("attach client: {e}");
                        gone.push(i);
                        break;
                    }
                }
            }
        }
        for i in gone.into_iter().rev() {
            self.clients.remove(i);
        }
    }

    /// Move pending input into the container's stdin, as much as it takes.
    fn feed_input(&mut self) {
        let Some(fd) = self.input_fd() else {
            self.pending_in.clear();
            return;
        };
        match nix::unistd::write(fd, &self.pending_in) {
            Ok(n) => {
                self.pending_in.drain(..n);
            }
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            // The container closed its stdin: nothing more can go in.
            Err(_) => self.pending_in.clear(),
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    if let Ok(fl) = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL) {
        let fl = OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK;
        let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(fl));
    }
}

/// Write all of `data` to a non-blocking client, waiting up to two
/// seconds for it to drain; false when the client is to be dropped.
fn send_all(c: &std::os::unix::net::UnixStream, mut data: &[u8]) -> bool {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !data.is_empty() {
        match (&*c).write(data) {
            Ok(0) => return false,
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() > give_up {
                    return false;
                }
                let mut p = [PollFd::new(c.as_fd(), PollFlags::POLLOUT)];
                let _ = poll(&mut p, PollTimeout::from(100u16));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Reap children (we are a subreaper: orphans of the container too);
/// the container's status once it has exited, and the probe helper's.
fn reap(pid: i32, probe: Option<i32>) -> (Option<i32>, Option<i32>) {
    let (mut container, mut helper) = (None, None);
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(_) => return (container, helper),
            Ok(s) => {
                if s.pid() == Some(Pid::from_raw(pid)) {
                    container = strata_runtime::signals::exit_code(s);
                } else if probe.is_some() && s.pid() == probe.map(Pid::from_raw) {
                    helper = strata_runtime::signals::exit_code(s);
                }
            }
        }
    }
}

/// Give the pty the size of the attached terminal (our stdin).
fn resize(pty: &OwnedFd) {
    // The size of the terminal we were given: stdin with `-i`, else the
    // attached CLI's stdout (`-t` alone).
    if let Some((rows, cols)) = attach::terminal_size(&[0, ATTACH_OUT]) {
        set_size(pty, rows, cols);
    }
}

/// Set the container's terminal size (the kernel signals its foreground
/// group with SIGWINCH).
fn set_size(pty: &OwnedFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads the winsize we pass, on the pty we own.
    unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}
