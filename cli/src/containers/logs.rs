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
    /// None with `--log-driver none`.
    file: Option<std::fs::File>,
    path: std::path::PathBuf,
    partial: [Vec<u8>; 2],
    opts: LogConfig,
    size: u64,
}

/// `--log-driver` and `--log-opt`, as Docker's json-file driver takes
/// them (k8s-file, podman's name, is the same here).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogConfig {
    /// json-file | k8s-file | none ("" is json-file).
    #[serde(default)]
    pub driver: String,
    /// `max-size`: rotate past this many bytes (0: never).
    #[serde(default)]
    pub max_size: u64,
    /// `max-file`: files kept, the current one included (at least 1).
    #[serde(default)]
    pub max_file: u32,
}

impl LogConfig {
    pub fn parse(driver: Option<&str>, opts: &[String]) -> Result<LogConfig> {
        let driver = driver.unwrap_or("json-file");
        if !["json-file", "k8s-file", "none"].contains(&driver) {
            anyhow::bail!(
                "logger: no log driver named '{driver}' is registered (json-file, k8s-file or none)"
            );
        }
        let mut c = LogConfig {
            driver: driver.to_string(),
            max_size: 0,
            max_file: 1,
        };
        for o in opts {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("invalid --log-opt {o:?}: want KEY=VALUE"))?;
            match k {
                "max-size" => {
                    c.max_size = crate::containers::spec::parse_bytes(v)
                        .ok()
                        .filter(|b| *b > 0)
                        .map(|b| b as u64)
                        .ok_or_else(|| anyhow::anyhow!("invalid --log-opt max-size={v}"))?
                }
                "max-file" => {
                    c.max_file = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        anyhow::anyhow!("invalid --log-opt max-file={v}: must be a positive number")
                    })?
                }
                _ => anyhow::bail!("unknown log opt '{k}' for {driver} log driver"),
            }
        }
        if c.max_file > 1 && c.max_size == 0 {
            anyhow::bail!("max-file cannot be set without max-size");
        }
        if driver == "none" && !opts.is_empty() {
            anyhow::bail!("the none log driver takes no options");
        }
        Ok(c)
    }
}

/// The log's rotated files, oldest first (`log.json.2`, `log.json.1`).
pub fn rotated(path: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for n in (1..100).rev() {
        let p = numbered(path, n);
        if p.exists() {
            v.push(p);
        }
    }
    v
}

fn numbered(path: &Path, n: u32) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    s.into()
}

impl Writer {
    pub fn open(path: &Path) -> Result<Writer> {
        Writer::with_config(path, LogConfig::default())
    }

    pub fn with_config(path: &Path, opts: LogConfig) -> Result<Writer> {
        let file = if opts.driver == "none" {
            None
        } else {
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("open log {}", path.display()))?,
            )
        };
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Ok(Writer {
            file,
            path: path.to_path_buf(),
            partial: [Vec::new(), Vec::new()],
            opts,
            size,
        })
    }

    /// Past max-size: the files move up one (the oldest goes) and a new
    /// one begins; with max-file 1 the one file starts over.
    fn rotate(&mut self) {
        let keep = self.opts.max_file.max(1);
        if keep > 1 {
            let _ = std::fs::remove_file(numbered(&self.path, keep - 1));
            for n in (1..keep - 1).rev() {
                let _ = std::fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1));
            }
            let _ = std::fs::rename(&self.path, numbered(&self.path, 1));
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path);
        match f {
            Ok(f) => self.file = Some(f),
            Err(e) => tracing::warn!("rotate {}: {e}", self.path.display()),
        }
        self.size = 0;
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
        if self.file.is_none() {
            return;
        }
        if let Ok(mut s) = serde_json::to_vec(&l) {
            s.push(b'\n');
            if self.opts.max_size > 0
                && self.size > 0
                && self.size + s.len() as u64 > self.opts.max_size
            {
                self.rotate();
            }
            if let Some(f) = self.file.as_mut()
                && f.write_all(&s).is_ok()
            {
                self.size += s.len() as u64;
            }
        }
    }
}

/// A time window on the log (`--since`, `--until`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

impl Window {
    fn admits(&self, time: &str) -> bool {
        let Ok(t) = chrono::DateTime::parse_from_rfc3339(time) else {
            return true;
        };
        let t = t.with_timezone(&chrono::Utc);
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }

    fn ended(&self) -> bool {
        self.until.is_some_and(|u| chrono::Utc::now() > u)
    }
}

/// A time as Docker's `--since`/`--until` take it: RFC 3339 (also
/// without a zone, read as UTC), Unix seconds (`1700000000.5`), or a
/// duration before `now` (`10m`, `1h30m`, `42s`).
pub fn parse_time(
    s: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone as _;
    let bad = || {
        anyhow::anyhow!("invalid time {s:?}: want RFC 3339, Unix seconds, or a duration like 10m")
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Ok(chrono::Utc.from_utc_datetime(&t));
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, f) {
            return Ok(chrono::Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).ok_or_else(bad)?));
        }
    }
    if let Ok(secs) = s.parse::<f64>() {
        let whole = secs.trunc() as i64;
        let nanos = ((secs - secs.trunc()) * 1e9) as u32;
        return chrono::Utc
            .timestamp_opt(whole, nanos)
            .single()
            .ok_or_else(bad);
    }
    // Go's duration syntax: runs of NUMBER UNIT.
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next().unwrap_or('s'));
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(bad()),
        };
        any = true;
    }
    if !any || !num.is_empty() {
        return Err(bad());
    }
    Ok(now - chrono::Duration::milliseconds((total * 1000.0) as i64))
}

/// Print the log: the lines in `window`, the last `tail` of them (all
/// when None), with timestamps if asked; with `follow`, keep printing
/// until `done()` says the container has stopped and the file has no
/// more, or the window's end has passed.
pub fn print(
    path: &Path,
    tail: Option<usize>,
    timestamps: bool,
    follow: bool,
    window: Window,
    done: &dyn Fn() -> bool,
) -> Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !follow => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
    };
    let mut reader = BufReader::new(file);
    // Each line parsed once: kept if the window admits it, shown as is.
    let parse = |raw: &str| {
        serde_json::from_str::<Line>(raw)
            .ok()
            .filter(|l| window.admits(&l.time))
    };
    let mut lines: Vec<Line> = Vec::new();
    for old in rotated(path) {
        if let Ok(f) = std::fs::File::open(&old) {
            for raw in BufReader::new(f).lines().map_while(Result::ok) {
                lines.extend(parse(&raw));
            }
        }
    }
    let mut s = String::new();
    while reader.read_line(&mut s)? > 0 {
        if !s.ends_with('\n') {
            break;
        }
        lines.extend(parse(&s));
        s.clear();
    }
    let skip = tail.map(|t| lines.len().saturating_sub(t)).unwrap_or(0);
    let out = std::io::stdout();
    let err = std::io::stderr();
    let show = |l: &Line| {
        let text = if timestamps {
            format!("{} {}", l.time, l.log)
        } else {
            l.log.clone()
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
        let stopped = done() || window.ended();
        loop {
            let n = reader.read_line(&mut s)?;
            if n == 0 || !s.ends_with('\n') {
                break;
            }
            if let Some(l) = parse(&s) {
                show(&l);
            }
            s.clear();
        }
        if stopped {
            return Ok(());
        }
        // Rotated away (a new file at the path): go on with that one.
        use std::os::unix::fs::MetadataExt;
        let held = reader.get_ref().metadata().map(|m| m.ino()).ok();
        if let Ok(m) = std::fs::metadata(path)
            && Some(m.ino()) != held
            && let Ok(f) = std::fs::File::open(path)
        {
            reader = BufReader::new(f);
            s.clear();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_docker_takes_them() {
        use chrono::TimeZone as _;
        let now = chrono::Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap();
        let at = |s: &str| parse_time(s, now).unwrap().to_rfc3339();
        assert_eq!(at("2026-12-06T11:00:00Z"), "2026-12-06T11:00:00+00:00");
        assert_eq!(at("2026-12-06T11:00:00"), "2026-12-06T11:00:00+00:00");
        assert_eq!(at("2026-12-06"), "2026-12-06T00:00:00+00:00");
        assert_eq!(at("1700000000"), "2023-11-14T22:13:20+00:00");
        assert_eq!(at("10m"), "2026-12-06T11:50:00+00:00");
        assert_eq!(at("1h30m"), "2026-12-06T10:30:00+00:00");
        assert_eq!(at("1.5s"), "2026-12-06T11:59:58.500+00:00");
        for bad in ["", "yesterday", "10x", "m", "3h5"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }

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
