//! Container logs in Docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"RFC 3339 nanos"}`.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Line {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Splits a stream's bytes into lines and appends them to the log.
pub struct Writer {
    file: std::fs::File,
    partial: [Vec<u8>; 2],
}

impl Writer {
    pub fn open(path: &Path) -> Result<Writer> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open log {}", path.display()))?;
        Ok(Writer {
            file,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Bytes read from stream 0 (stdout) or 1 (stderr).
    pub fn write(&mut self, stream: usize, data: &[u8]) {
        self.partial[stream].extend_from_slice(data);
        while let Some(i) = self.partial[stream].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial[stream].drain(..=i).collect();
            self.emit(stream, &line);
        }
        // A line without an end is cut at 16 KiB, as Docker does.
        if self.partial[stream].len() >= 16 << 10 {
            let line = std::mem::take(&mut self.partial[stream]);
            self.emit(stream, &line);
        }
    }

    /// Write out what is left without a newline.
    pub fn flush(&mut self) {
        for s in 0..2 {
            if !self.partial[s].is_empty() {
                let line = std::mem::take(&mut self.partial[s]);
                self.emit(s, &line);
            }
        }
    }

    fn emit(&mut self, stream: usize, bytes: &[u8]) {
        let l = Line {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream: if stream == 0 { "stdout" } else { "stderr" }.into(),
            time: super::record::now(),
        };
        if let Ok(mut s) = serde_json::to_vec(&l) {
            s.push(b'\n');
            let _ = self.file.write_all(&s);
        }
    }
}

/// Print the log: the last `tail` lines (all when None), with timestamps
/// if asked; with `follow`, keep printing until `done()` says the
/// container has stopped and the file has no more.
pub fn print(
    path: &Path,
    tail: Option<usize>,
    timestamps: bool,
    follow: bool,
    done: &dyn Fn() -> bool,
) -> Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !follow => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
    };
    let mut reader = BufReader::new(file);
    let mut lines: Vec<String> = Vec::new();
    let mut s = String::new();
    while reader.read_line(&mut s)? > 0 {
        if s.ends_with('\n') {
            lines.push(std::mem::take(&mut s));
        } else {
            break;
        }
    }
    let skip = tail.map(|t| lines.len().saturating_sub(t)).unwrap_or(0);
    let out = std::io::stdout();
    let err = std::io::stderr();
    let show = |raw: &str| {
        let Ok(l) = serde_json::from_str::<Line>(raw) else {
            return;
        };
        let text = if timestamps {
            format!("{} {}", l.time, l.log)
        } else {
            l.log
        };
        if l.stream == "stderr" {
            let _ = err.lock().write_all(text.as_bytes());
        } else {
            let mut o = out.lock();
            let _ = o.write_all(text.as_bytes());
            let _ = o.flush();
        }
    };
    for l in &lines[skip..] {
        show(l);
    }
    if !follow {
        return Ok(());
    }
    // Re-read from where a partial line began.
    let pos = reader.stream_position()? - s.len() as u64;
    let mut reader = BufReader::new(reader.into_inner());
    reader.seek(SeekFrom::Start(pos))?;
    let mut s = String::new();
    loop {
        let stopped = done();
        loop {
            let n = reader.read_line(&mut s)?;
            if n == 0 || !s.ends_with('\n') {
                break;
            }
            show(&s);
            s.clear();
        }
        if stopped {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_and_json_shaped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ctr.log");
        let mut w = Writer::open(&p).unwrap();
        w.write(0, b"hel");
        w.write(0, b"lo\nwor");
        w.write(1, b"oops\n");
        w.flush();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<Line> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            (lines[0].log.as_str(), lines[0].stream.as_str()),
            ("hello\n", "stdout")
        );
        assert_eq!(
            (lines[1].log.as_str(), lines[1].stream.as_str()),
            ("oops\n", "stderr")
        );
        assert_eq!(lines[2].log, "wor");
        assert!(chrono::DateTime::parse_from_rfc3339(&lines[0].time).is_ok());
    }
}
