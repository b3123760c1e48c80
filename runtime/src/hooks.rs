//! OCI hooks: each gets the container state as JSON on stdin, runs with its
//! own args and env, and is killed when its timeout expires.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};

/// Run `hooks` in order; the first failure stops them and is returned
/// (prestart, createRuntime, createContainer, startContainer: the
/// runtime-spec makes such a failure fail the operation).
pub fn run(kind: &str, hooks: Option<&Vec<Hook>>, state: &serde_json::Value) -> Result<()> {
    for hook in hooks.into_iter().flatten() {
        run_one(kind, hook, state)?;
    }
    Ok(())
}

/// Run every one of `hooks` (poststart, poststop): a failure is logged as
/// a warning and the rest still run, as the runtime-spec says; the
/// lifecycle goes on. Returns the warnings.
pub fn run_all(kind: &str, hooks: Option<&Vec<Hook>>, state: &serde_json::Value) -> Vec<String> {
    let mut warnings = Vec::new();
    for hook in hooks.into_iter().flatten() {
        if let Err(e) = run_one(kind, hook, state) {
            tracing::warn!("{e}");
            warnings.push(e.to_string());
        }
    }
    warnings
}

/// "exit status 1", or a signal by its description ("signal: bad system
/// call (SIGSYS)"), as runc's error reads.
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => {
            // SAFETY: strsignal returns a static string (or NULL).
            let text = unsafe { libc::strsignal(sig) };
            let desc = if text.is_null() {
                format!("signal {sig}")
            } else {
                // SAFETY: non-NULL strsignal results are NUL-terminated.
                unsafe { std::ffi::CStr::from_ptr(text) }
                    .to_string_lossy()
                    .to_lowercase()
            };
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| sig.to_string());
            format!("signal: {desc} ({name})")
        }
        _ => status.to_string(),
    }
}

fn run_one(kind: &str, hook: &Hook, state: &serde_json::Value) -> Result<()> {
    let path = hook.path();
    let fail = |msg: String| {
        Error::Container(format!(
            "error running hook: {kind} hook {}: {msg}",
            path.display()
        ))
    };
    let mut cmd = Command::new(path);
    let args = hook.args().clone().unwrap_or_default();
    if let Some(arg0) = args.first() {
        use std::os::unix::process::CommandExt;
        cmd.arg0(arg0);
    }
    cmd.args(args.iter().skip(1));
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin; that is not an error.
        let _ = stdin.write_all(state.to_string().as_bytes());
    }
    let deadline = hook
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    loop {
        match child.try_wait().map_err(|e| fail(e.to_string()))? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                return Err(fail(format!(
                    "{}, stderr: {}",
                    describe(status),
                    err.trim()
                )));
            }
            None => {}
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail("timeout".into()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
