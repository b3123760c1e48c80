//! runc-compatible logging. With `--log FILE --log-format json` every line is
//! `{"level":"error","msg":"...","time":"<RFC 3339>"}` (containerd's shim
//! shows the user the `msg` of the last error line); the text format is
//! logrus' `time="..." level=error msg="..."`. Without `--log` the lines
//! go to stderr, as runc's do. Built as a `tracing` layer.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Render one log record in the chosen format (no trailing newline).
pub fn render(format: LogFormat, level: &str, msg: &str, time: &str) -> String {
    match format {
        LogFormat::Json => {
            serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
        }
        LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}"),
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

struct FileLayer {
    file: Mutex<Box<dyn Write + Send>>,
    format: LogFormat,
    max: Level,
    /// Writing to stderr: errors are left to the binary, which prints
    /// the final one there plainly.
    stderr: bool,
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for FileLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let lvl = *event.metadata().level();
        if lvl > self.max || (self.stderr && lvl == Level::ERROR) {
            return;
        }
        // On stderr only our own lines: a library's notes (libcgroups on
        // each controller this host lacks) would bury the process's own
        // output; the log file keeps them.
        if self.stderr && !event.metadata().target().starts_with("strata_runtime") {
            return;
        }
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        // logrus' names: "warning", not "warn".
        let level = match *event.metadata().level() {
            Level::WARN => "warning".to_string(),
            l => l.as_str().to_ascii_lowercase(),
        };
        let msg = format!("{}{}", visitor.message, visitor.fields);
        let line = render(self.format, &level, &msg, &now_rfc3339());
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Install the global subscriber: log lines go to `log_path` (else stderr)
/// in the given format; with `debug` they include debug events, otherwise
/// warnings and errors only. The binary prints the final error itself,
/// once, so errors are not logged to stderr twice.
pub fn init(log_path: Option<&Path>, format: LogFormat, debug: bool) -> std::io::Result<()> {
    let max = if debug { Level::DEBUG } else { Level::WARN };
    let file: Box<dyn Write + Send> = match log_path {
        Some(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
        None => Box::new(std::io::stderr()),
    };
    let layer = Some(FileLayer {
        file: Mutex::new(file),
        format,
        max,
        stderr: log_path.is_none(),
    });
    let subscriber = tracing_subscriber::registry().with(layer);
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_matches_what_containerd_reads() {
        let line = render(
            LogFormat::Json,
            "error",
            "boom \"x\"",
            "2026-01-01T00:00:00Z",
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom \"x\"");
        assert_eq!(v["time"], "2026-01-01T00:00:00Z");
        assert_eq!(v.as_object().unwrap().len(), 3);
    }

    #[test]
    fn text_shape_is_logrus_like() {
        let line = render(LogFormat::Text, "error", "no \"such\"", "T");
        assert_eq!(line, r#"time="T" level=error msg="no \"such\"""#);
    }
}
