//! Build progress on stderr, BuildKit's plain shape: `#N [stage i/n]
//! INSTRUCTION`, RUN output as `#N 0.123 line`, `#N CACHED`, `#N DONE
//! 0.4s`, `#N ERROR: ...`. On a terminal (`--progress tty`, or `auto` on a
//! tty) step headers are bold and RUN output is dimmed; `-q` prints
//! nothing but errors.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Tty,
    Quiet,
}

impl Mode {
    /// `--progress` (auto, plain, tty) and `-q`.
    pub fn pick(progress: &str, quiet: bool) -> anyhow::Result<Mode> {
        if quiet {
            return Ok(Mode::Quiet);
        }
        match progress {
            "plain" => Ok(Mode::Plain),
            "tty" => Ok(Mode::Tty),
            "auto" => Ok(if nix::unistd::isatty(2).unwrap_or(false) {
                Mode::Tty
            } else {
                Mode::Plain
            }),
            "quiet" => Ok(Mode::Quiet),
            other => anyhow::bail!("invalid --progress {other:?}: auto, plain, tty or quiet"),
        }
    }
}

pub struct Progress {
    mode: Mode,
    out: Mutex<Box<dyn Write + Send>>,
    next: AtomicUsize,
    started: Mutex<Vec<(usize, Instant)>>,
}

impl Progress {
    pub fn new(mode: Mode, out: Box<dyn Write + Send>) -> Progress {
        Progress {
            mode,
            out: Mutex::new(out),
            next: AtomicUsize::new(1),
            started: Mutex::new(Vec::new()),
        }
    }

    fn line(&self, s: &str) {
        if self.mode == Mode::Quiet {
            return;
        }
        if let Ok(mut o) = self.out.lock() {
            let _ = o.write_all(s.as_bytes());
            let _ = o.flush();
        }
    }

    /// A new step; its number.
    pub fn step(&self, title: &str) -> usize {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.started.lock() {
            s.push((n, Instant::now()));
        }
        match self.mode {
            Mode::Tty => self.line(&format!("\x1b[1m#{n} {title}\x1b[0m\n")),
            _ => self.line(&format!("#{n} {title}\n")),
        }
        n
    }

    fn elapsed(&self, n: usize) -> f64 {
        self.started
            .lock()
            .ok()
            .and_then(|s| {
                s.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, t)| t.elapsed().as_secs_f64())
            })
            .unwrap_or(0.0)
    }

    pub fn cached(&self, n: usize) {
        self.line(&format!("#{n} CACHED\n"));
    }

    pub fn done(&self, n: usize) {
        self.line(&format!("#{n} DONE {:.1}s\n", self.elapsed(n)));
    }

    pub fn note(&self, n: usize, msg: &str) {
        self.line(&format!("#{n} {msg}\n"));
    }

    pub fn error(&self, n: usize, msg: &str) {
        // Errors show even when quiet.
        if let Ok(mut o) = self.out.lock() {
            let _ = writeln!(o, "#{n} ERROR: {msg}");
        }
    }

    /// A line a RUN step printed.
    pub fn output(&self, n: usize, text: &str) {
        let t = self.elapsed(n);
        let body = text.strip_suffix('\n').unwrap_or(text);
        match self.mode {
            Mode::Tty => self.line(&format!("\x1b[2m#{n} {t:.3} {body}\x1b[0m\n")),
            _ => self.line(&format!("#{n} {t:.3} {body}\n")),
        }
    }

    pub fn warn(&self, msg: &str) {
        if let Ok(mut o) = self.out.lock() {
            let _ = writeln!(o, "[Warning] {msg}");
        }
    }
}
