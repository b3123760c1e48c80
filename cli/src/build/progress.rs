//! Build progress on stderr.
//!
//! - plain (CI logs, `--progress plain`, or `auto` off a terminal):
//!   BuildKit's plain shape, `#N [stage i/n] INSTRUCTION`, RUN output as
//!   `#N 0.123 line`, `#N CACHED`, `#N DONE 0.4s`, `#N ERROR: ...`;
//! - tty (`--progress tty`, or `auto` on a terminal): a live view redrawn
//!   in place ten times a second, as BuildKit's: a `[+] Building 2.1s
//!   (5/7)` header, a `=> [stage i/n] INSTRUCTION  1.2s` line per step and
//!   the last lines of each running step's output under it. Steps that
//!   finished before every running one scroll off as fixed lines, so the
//!   live part stays as short as what is running;
//! - quiet (`-q`): nothing but errors.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Output lines of a running step shown in the live view.
const TAIL: usize = 6;
/// Output lines of a failed step shown when it fails.
const ERROR_TAIL: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    Cached,
    Done,
    Failed,
}

struct Step {
    n: usize,
    title: String,
    started: Instant,
    took: Option<f64>,
    state: State,
    tail: VecDeque<String>,
}

/// What the tty view has put on the screen.
#[derive(Default)]
struct Screen {
    /// Steps already printed as fixed lines (by position in `steps`).
    fixed: usize,
    /// Lines of the live part, to move back over on the next draw.
    drawn: usize,
}

struct Inner {
    mode: Mode,
    out: Mutex<Box<dyn Write + Send>>,
    next: AtomicUsize,
    steps: Mutex<Vec<Step>>,
    screen: Mutex<Screen>,
    begun: Instant,
    stop: AtomicBool,
}

pub struct Progress {
    inner: Arc<Inner>,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Progress {
    pub fn new(mode: Mode, out: Box<dyn Write + Send>) -> Progress {
        let inner = Arc::new(Inner {
            mode,
            out: Mutex::new(out),
            next: AtomicUsize::new(1),
            steps: Mutex::new(Vec::new()),
            screen: Mutex::new(Screen::default()),
            begun: Instant::now(),
            stop: AtomicBool::new(false),
        });
        let ticker = (mode == Mode::Tty).then(|| {
            let i = inner.clone();
            std::thread::spawn(move || {
                while !i.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    i.draw(false, &[]);
                }
            })
        });
        Progress {
            inner,
            ticker: Mutex::new(ticker),
        }
    }

    fn line(&self, s: &str) {
        if self.inner.mode != Mode::Plain {
            return;
        }
        if let Ok(mut o) = self.inner.out.lock() {
            let _ = o.write_all(s.as_bytes());
            let _ = o.flush();
        }
    }

    fn set(&self, n: usize, state: State) {
        if let Ok(mut steps) = self.inner.steps.lock()
            && let Some(s) = steps.iter_mut().find(|s| s.n == n)
        {
            s.state = state;
            s.took = Some(s.started.elapsed().as_secs_f64());
        }
    }

    /// A new step; its number.
    pub fn step(&self, title: &str) -> usize {
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.inner.steps.lock() {
            s.push(Step {
                n,
                title: title.to_string(),
                started: Instant::now(),
                took: None,
                state: State::Running,
                tail: VecDeque::new(),
            });
            s.sort_by_key(|s| s.n);
        }
        self.line(&format!("#{n} {title}\n"));
        n
    }

    fn elapsed(&self, n: usize) -> f64 {
        self.inner
            .steps
            .lock()
            .ok()
            .and_then(|s| {
                s.iter()
                    .find(|s| s.n == n)
                    .map(|s| s.started.elapsed().as_secs_f64())
            })
            .unwrap_or(0.0)
    }

    pub fn cached(&self, n: usize) {
        self.set(n, State::Cached);
        self.line(&format!("#{n} CACHED\n"));
    }

    pub fn done(&self, n: usize) {
        self.line(&format!("#{n} DONE {:.1}s\n", self.elapsed(n)));
        self.set(n, State::Done);
    }

    pub fn note(&self, n: usize, msg: &str) {
        self.line(&format!("#{n} {msg}\n"));
        self.push_tail(n, msg);
    }

    pub fn error(&self, n: usize, msg: &str) {
        self.set(n, State::Failed);
        match self.inner.mode {
            Mode::Tty => {
                // The step's last output, then the error, above the view.
                let mut text = Vec::new();
                if let Ok(steps) = self.inner.steps.lock()
                    && let Some(s) = steps.iter().find(|s| s.n == n)
                {
                    text.push(format!("------\n > {}:", s.title));
                    let skip = s.tail.len().saturating_sub(ERROR_TAIL);
                    text.extend(s.tail.iter().skip(skip).map(|l| format!("{n} {l}")));
                    text.push("------".into());
                }
                text.push(format!("ERROR: {msg}"));
                self.inner.draw(false, &text);
            }
            // Errors show even when quiet.
            _ => {
                if let Ok(mut o) = self.inner.out.lock() {
                    let _ = writeln!(o, "#{n} ERROR: {msg}");
                }
            }
        }
    }

    fn push_tail(&self, n: usize, line: &str) {
        if let Ok(mut steps) = self.inner.steps.lock()
            && let Some(s) = steps.iter_mut().find(|s| s.n == n)
        {
            s.tail.push_back(line.to_string());
            while s.tail.len() > ERROR_TAIL {
                s.tail.pop_front();
            }
        }
    }

    /// A line a RUN step printed.
    pub fn output(&self, n: usize, text: &str) {
        let t = self.elapsed(n);
        let body = text.strip_suffix('\n').unwrap_or(text);
        self.line(&format!("#{n} {t:.3} {body}\n"));
        if self.inner.mode == Mode::Tty {
            self.push_tail(n, body);
        }
    }

    pub fn warn(&self, msg: &str) {
        let text = format!("[Warning] {msg}");
        match self.inner.mode {
            Mode::Tty => self.inner.draw(false, &[text]),
            _ => {
                if let Ok(mut o) = self.inner.out.lock() {
                    let _ = writeln!(o, "{text}");
                }
            }
        }
    }
}

impl Drop for Progress {
    /// The last frame: every step fixed, the header marked FINISHED.
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
        if self.inner.mode == Mode::Tty {
            self.inner.draw(true, &[]);
        }
    }
}

/// `s` cut to `width` characters.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    s.chars().take(width.saturating_sub(1)).collect::<String>() + "…"
}

/// A step's line: `=> [CACHED ]TITLE   1.2s`, the time at the right edge.
fn step_line(s: &Step, width: usize) -> String {
    let prefix = match s.state {
        State::Cached => "=> CACHED ",
        State::Failed => "=> ERROR ",
        _ => "=> ",
    };
    let t = s.took.unwrap_or_else(|| s.started.elapsed().as_secs_f64());
    let time = format!("{t:.1}s");
    let room = width.saturating_sub(time.len() + 1);
    let left = fit(&format!("{prefix}{}", s.title), room);
    let pad = room.saturating_sub(left.chars().count());
    format!("{left}{}{time}", " ".repeat(pad + 1))
}

impl Inner {
    /// Redraw the tty view: `above` first as fixed lines, then steps that
    /// have become fixed, then the live part. `last`: fix everything.
    fn draw(&self, last: bool, above: &[String]) {
        let width = crate::containers::attach::terminal_size(&[2])
            .map(|(_, c)| c as usize)
            .filter(|c| *c >= 20)
            .unwrap_or(80);
        let Ok(steps) = self.steps.lock() else { return };
        let Ok(mut screen) = self.screen.lock() else {
            return;
        };
        let mut frame = String::new();
        if screen.drawn > 0 {
            // Back to the top of the live part.
            frame.push_str(&format!("\x1b[{}F", screen.drawn));
        }
        let put = |frame: &mut String, l: &str| {
            frame.push_str("\x1b[2K");
            frame.push_str(l);
            frame.push('\n');
        };
        for l in above {
            for part in l.lines() {
                put(&mut frame, &fit(part, width));
            }
        }
        // Steps finished before every running one no longer change.
        while screen.fixed < steps.len() && (last || steps[screen.fixed].state != State::Running) {
            put(&mut frame, &step_line(&steps[screen.fixed], width));
            screen.fixed += 1;
        }
        let finished = steps.iter().filter(|s| s.state != State::Running).count();
        let mut live = vec![format!(
            "[+] Building {:.1}s ({finished}/{}){}",
            self.begun.elapsed().as_secs_f64(),
            steps.len(),
            if last { " FINISHED" } else { "" }
        )];
        for s in &steps[screen.fixed..] {
            live.push(step_line(s, width));
            if s.state == State::Running {
                let skip = s.tail.len().saturating_sub(TAIL);
                for l in s.tail.iter().skip(skip) {
                    live.push(fit(&format!("=> => # {l}"), width));
                }
            }
        }
        for l in &live {
            put(&mut frame, l);
        }
        frame.push_str("\x1b[J");
        screen.drawn = live.len();
        if last {
            // The header stays as the last line; nothing is redrawn.
            screen.drawn = 0;
        }
        if let Ok(mut o) = self.out.lock() {
            let _ = o.write_all(frame.as_bytes());
            let _ = o.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn text(b: &Buf) -> String {
        String::from_utf8_lossy(&b.0.lock().unwrap()).into_owned()
    }

    #[test]
    fn plain_lines() {
        let b = Buf::default();
        let p = Progress::new(Mode::Plain, Box::new(b.clone()));
        let n = p.step("[1/2] RUN echo hi");
        p.output(n, "hi\n");
        p.done(n);
        let m = p.step("[2/2] COPY a b");
        p.cached(m);
        drop(p);
        let t = text(&b);
        assert!(t.starts_with("#1 [1/2] RUN echo hi\n#1 0.0"), "{t}");
        assert!(
            t.contains(" hi\n#1 DONE 0.0s\n#2 [2/2] COPY a b\n#2 CACHED\n"),
            "{t}"
        );
        assert!(!t.contains('\x1b'));
    }

    #[test]
    fn tty_view_redraws_in_place_and_ends_finished() {
        let b = Buf::default();
        let p = Progress::new(Mode::Tty, Box::new(b.clone()));
        let one = p.step("[a 1/1] RUN long");
        let two = p.step("[b 1/1] RUN short");
        p.output(one, "working");
        p.done(two);
        std::thread::sleep(Duration::from_millis(250));
        let mid = text(&b);
        // The running step and its output are live; the finished one
        // waits under it (it is not before every running step).
        assert!(mid.contains("=> => # working"), "{mid:?}");
        assert!(mid.contains("[+] Building"), "{mid:?}");
        assert!(
            mid.contains("\x1b[3F") || mid.contains("\x1b[4F"),
            "{mid:?}"
        );
        p.cached(one);
        p.warn("careful");
        drop(p);
        let t = text(&b);
        assert!(t.contains("[Warning] careful"), "{t:?}");
        assert!(t.contains("=> CACHED [a 1/1] RUN long"), "{t:?}");
        let tail = t.rsplit("\x1b[2K").next().unwrap();
        assert!(tail.contains("(2/2) FINISHED"), "{tail:?}");
    }

    #[test]
    fn tty_failure_shows_the_step_output() {
        let b = Buf::default();
        let p = Progress::new(Mode::Tty, Box::new(b.clone()));
        let n = p.step("[1/1] RUN make");
        p.output(n, "cc: error: no input files");
        p.error(
            n,
            "process \"make\" did not complete successfully: exit code: 2",
        );
        drop(p);
        let t = text(&b);
        assert!(t.contains(" > [1/1] RUN make:"), "{t:?}");
        assert!(t.contains("1 cc: error: no input files"), "{t:?}");
        assert!(t.contains("ERROR: process \"make\""), "{t:?}");
        assert!(t.contains("=> ERROR [1/1] RUN make"), "{t:?}");
    }
}
