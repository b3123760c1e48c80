//! Pull progress: per-layer bars when stderr is a terminal, plain one-line
//! events otherwise (CI logs), nothing when quiet.

use std::io::{IsTerminal, Read, Write};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Bars on a terminal, plain lines otherwise.
    #[default]
    Auto,
    Quiet,
}

pub enum Progress {
    Quiet,
    Plain,
    Bars(MultiProgress),
}

impl Progress {
    pub fn new(mode: Mode) -> Progress {
        match mode {
            Mode::Quiet => Progress::Quiet,
            Mode::Auto if std::io::stderr().is_terminal() => Progress::Bars(MultiProgress::new()),
            Mode::Auto => Progress::Plain,
        }
    }

    pub fn event(&self, msg: &str) {
        match self {
            Progress::Quiet => {}
            Progress::Plain => {
                let _ = writeln!(std::io::stderr(), "{msg}");
            }
            Progress::Bars(m) => {
                let _ = m.println(msg);
            }
        }
    }

    /// Report the bytes of one blob as they are read.
    pub fn wrap(
        &self,
        what: String,
        size: Option<u64>,
        inner: Box<dyn Read + Send>,
    ) -> Box<dyn Read + Send> {
        match self {
            Progress::Quiet => inner,
            Progress::Plain => {
                self.event(&format!("Copying {what}"));
                Box::new(Counted {
                    inner,
                    what,
                    size,
                    done: 0,
                    bar: None,
                    finished: false,
                })
            }
            Progress::Bars(m) => {
                let bar = m.add(ProgressBar::new(size.unwrap_or(0)));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_message(what.clone());
                Box::new(Counted {
                    inner,
                    what,
                    size,
                    done: 0,
                    bar: Some(bar),
                    finished: false,
                })
            }
        }
    }
}

struct Counted {
    inner: Box<dyn Read + Send>,
    what: String,
    size: Option<u64>,
    done: u64,
    bar: Option<ProgressBar>,
    finished: bool,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if let Some(b) = &self.bar {
            b.set_position(self.done);
        }
        if n == 0 && !self.finished {
            self.finished = true;
            match &self.bar {
                Some(b) => b.finish(),
                None => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "Copying {} done ({} bytes)",
                        self.what,
                        self.done
                    );
                }
            }
        }
        let _ = self.size;
        Ok(n)
    }
}
