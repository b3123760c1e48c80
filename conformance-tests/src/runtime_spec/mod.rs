//! Our own runtime-spec conformance suite: one check per item of the OCI
//! runtime-spec (config fields of process, root, mounts, hooks, linux.*,
//! and the lifecycle operations), each verified from inside the container
//! where the item is visible there, and from the host where only the host
//! can see it (hooks, state). Runs against any runc-compatible runtime and
//! prints a TAP report.
//!
//! Every check gets a fresh bundle: a copy of one busybox rootfs and a base
//! config written here (not by any runtime's `spec`), so that the three
//! runtimes get the same input.

mod checks;
mod console;

pub use checks::all as checks;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long one runtime command may take before the check fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Set on every runtime command; no container may see it (process.env).
pub const LEAK_VAR: &str = "SPEC_CONFORMANCE_HOST_ONLY";

/// A runc-compatible runtime: the argv that starts it.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub name: String,
    argv: Vec<String>,
}

impl Runtime {
    pub fn new(name: &str, program: &Path) -> Runtime {
        Runtime {
            name: name.to_string(),
            argv: vec![program.display().to_string()],
        }
    }

    /// Debian's crun 1.8 refuses hybrid cgroup hosts outright ("cgroups in
    /// hybrid mode not supported"), even with `--cgroup-manager=disabled`.
    /// To measure it at all, each crun command runs in a private mount
    /// namespace without /sys/fs/cgroup/unified, where the host looks like
    /// a cgroup v1 host.
    pub fn crun(program: &Path) -> Runtime {
        let mut rt = Runtime::new("crun", program);
        if hybrid_cgroups() {
            rt.argv = vec![
                "unshare".into(),
                "-m".into(),
                "--propagation".into(),
                "private".into(),
                "sh".into(),
                "-c".into(),
                "umount /sys/fs/cgroup/unified && exec \"$0\" \"$@\"".into(),
                program.display().to_string(),
            ];
        }
        rt
    }

    /// `name` looked up on PATH, if there.
    pub fn on_path(name: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }

    fn command(&self, root: &Path) -> Command {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]).arg("--root").arg(root);
        cmd.env(LEAK_VAR, "1");
        cmd
    }
}

/// Whether this host has the hybrid layout (v1 controllers plus a v2 tree
/// at /sys/fs/cgroup/unified).
pub fn hybrid_cgroups() -> bool {
    Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists()
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(String),
    /// The host lacks what the item needs; the reason names it.
    Skip(String),
}

impl Outcome {
    /// Pass when `ok`, else a failure with `why`.
    pub fn check(ok: bool, why: impl Into<String>) -> Outcome {
        if ok {
            Outcome::Pass
        } else {
            Outcome::Fail(why.into())
        }
    }
}

/// Stop a check early with a failure: `return Err(fail(..))` reads well in
/// the checks, and `?` works on the case's commands.
pub type Step<T> = Result<T, Outcome>;

pub fn fail(why: impl Into<String>) -> Outcome {
    Outcome::Fail(why.into())
}

/// One runtime-spec item and how it is verified.
pub struct Check {
    /// The spec's name for the item, e.g. `process.cwd`.
    pub item: &'static str,
    /// What is verified, in a few words.
    pub what: &'static str,
    pub run: fn(&mut Case) -> Outcome,
}

/// The ambient inputs of every case.
pub struct Suite {
    template: tempfile::TempDir,
    pub host_ns: Vec<(String, String)>,
}

impl Suite {
    /// Makes the busybox rootfs every case copies.
    pub fn new() -> anyhow::Result<Suite> {
        let template = tempfile::Builder::new()
            .prefix("spec-conformance-")
            .tempdir()?;
        let st = Command::new("bash")
            .arg(crate::workspace_dir().join("scripts/make-busybox-rootfs.sh"))
            .arg(template.path().join("rootfs"))
            .status()?;
        anyhow::ensure!(st.success(), "make-busybox-rootfs.sh failed");
        let mut host_ns = Vec::new();
        for ns in ["pid", "net", "ipc", "uts", "mnt", "cgroup", "user"] {
            let link = std::fs::read_link(format!("/proc/self/ns/{ns}"))?;
            host_ns.push((ns.to_string(), link.display().to_string()));
        }
        Ok(Suite { template, host_ns })
    }

    /// Runs every check against `rt`.
    pub fn run(&self, rt: &Runtime, only: Option<&str>) -> Report {
        let mut results = Vec::new();
        for (n, check) in checks().iter().enumerate() {
            if only.is_some_and(|o| !check.item.contains(o)) {
                continue;
            }
            let outcome = match Case::new(self, rt, n) {
                Ok(mut case) => (check.run)(&mut case),
                Err(e) => Outcome::Fail(format!("bundle setup: {e:#}")),
            };
            results.push(Result_ {
                item: check.item,
                what: check.what,
                outcome,
            });
        }
        Report {
            runtime: rt.name.clone(),
            results,
        }
    }
}

/// One check's result (the name avoids clashing with std's Result).
#[derive(Debug, Clone)]
pub struct Result_ {
    pub item: &'static str,
    pub what: &'static str,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub runtime: String,
    pub results: Vec<Result_>,
}

impl Report {
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.outcome)).count()
    }
    pub fn passed(&self) -> usize {
        self.count(|o| *o == Outcome::Pass)
    }
    pub fn failed(&self) -> Vec<&'static str> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Fail(_)))
            .map(|r| r.item)
            .collect()
    }
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skip(_)))
    }

    /// The TAP (version 13) report, failures with their diagnostics.
    pub fn tap(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "TAP version 13");
        let _ = writeln!(s, "# runtime: {}", self.runtime);
        let _ = writeln!(s, "1..{}", self.results.len());
        for (i, r) in self.results.iter().enumerate() {
            let n = i + 1;
            match &r.outcome {
                Outcome::Pass => {
                    let _ = writeln!(s, "ok {n} - {}: {}", r.item, r.what);
                }
                Outcome::Skip(why) => {
                    let _ = writeln!(s, "ok {n} - {}: {} # SKIP {why}", r.item, r.what);
                }
                Outcome::Fail(why) => {
                    let _ = writeln!(s, "not ok {n} - {}: {}", r.item, r.what);
                    for line in why.lines().take(12) {
                        let _ = writeln!(s, "# {line}");
                    }
                }
            }
        }
        let _ = writeln!(
            s,
            "# {}: pass {}, fail {}, skip {}",
            self.runtime,
            self.passed(),
            self.failed().len(),
            self.skipped()
        );
        s
    }
}

/// One check's bundle, state root and container id.
pub struct Case<'s> {
    pub suite: &'s Suite,
    pub rt: &'s Runtime,
    dir: tempfile::TempDir,
    pub id: String,
    pub config: Value,
    created: bool,
}

impl<'s> Case<'s> {
    fn new(suite: &'s Suite, rt: &'s Runtime, n: usize) -> anyhow::Result<Case<'s>> {
        let dir = tempfile::Builder::new().prefix("spec-case-").tempdir()?;
        // cp -a keeps the rootfs' symlinks and modes.
        let st = Command::new("cp")
            .arg("-a")
            .arg(suite.template.path().join("rootfs"))
            .arg(dir.path())
            .status()?;
        anyhow::ensure!(st.success(), "copy the rootfs");
        std::fs::create_dir(dir.path().join("host"))?;
        let id = format!("spec-{}-{n}-{}", rt.name, std::process::id());
        Ok(Case {
            suite,
            rt,
            dir,
            id,
            config: base_config(),
            created: false,
        })
    }

    pub fn bundle(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }

    /// A directory outside the rootfs: hook output, bind sources.
    pub fn host(&self) -> PathBuf {
        self.bundle().join("host")
    }

    fn state_root(&self) -> PathBuf {
        self.bundle().join("state")
    }

    /// The host's own namespace link (`net:[4026531840]`) for `ns`.
    pub fn host_ns(&self, ns: &str) -> &str {
        self.suite
            .host_ns
            .iter()
            .find(|(n, _)| n == ns)
            .map(|(_, l)| l.as_str())
            .unwrap_or("")
    }

    pub fn save(&self) -> Step<()> {
        let body = serde_json::to_vec_pretty(&self.config).map_err(|e| fail(e.to_string()))?;
        std::fs::write(self.bundle().join("config.json"), body)
            .map_err(|e| fail(format!("write config.json: {e}")))
    }

    /// The process runs `sh -c script`.
    pub fn script(&mut self, script: &str) {
        self.config["process"]["args"] = json!(["sh", "-c", script]);
    }

    /// Runs the runtime with `args` (after `--root`), stdin closed.
    pub fn runtime(&mut self, args: &[&str]) -> Step<Output> {
        let mut cmd = self.rt.command(&self.state_root());
        cmd.args(args).current_dir(self.bundle());
        if args.first().is_some_and(|a| *a == "create" || *a == "run") {
            self.created = true;
        }
        run_with_timeout(cmd, COMMAND_TIMEOUT)
            .map_err(|e| fail(format!("{} {}: {e}", self.rt.name, args.join(" "))))
    }

    /// `run` the container with the process `sh -c script`; passes when
    /// the script exits 0.
    pub fn inside(&mut self, script: &str) -> Outcome {
        self.script(script);
        match self.run_container() {
            Ok(out) if out.status.success() => Outcome::Pass,
            Ok(out) => Outcome::Fail(describe(&out)),
            Err(o) => o,
        }
    }

    /// `run --bundle . ID` with the current config.
    pub fn run_container(&mut self) -> Step<Output> {
        self.save()?;
        let bundle = self.bundle().display().to_string();
        let id = self.id.clone();
        self.runtime(&["run", "--bundle", &bundle, &id])
    }

    /// `create --bundle . ID`; fails the check when the runtime refuses.
    pub fn create(&mut self) -> Step<()> {
        let out = self.try_create()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(fail(format!("create: {}", describe(&out))))
        }
    }

    pub fn try_create(&mut self) -> Step<Output> {
        self.save()?;
        let bundle = self.bundle().display().to_string();
        let id = self.id.clone();
        self.runtime(&["create", "--bundle", &bundle, &id])
    }

    /// A lifecycle command on this container that must succeed.
    pub fn op(&mut self, verb: &str, extra: &[&str]) -> Step<Output> {
        let id = self.id.clone();
        let mut args = vec![verb];
        args.extend_from_slice(extra);
        args.push(&id);
        let out = self.runtime(&args)?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(fail(format!("{verb}: {}", describe(&out))))
        }
    }

    /// The container's state document.
    pub fn state(&mut self) -> Step<Value> {
        let out = self.op("state", &[])?;
        serde_json::from_slice(&out.stdout)
            .map_err(|e| fail(format!("state is not JSON ({e}): {}", describe(&out))))
    }

    /// Polls `state` until its status is `want`.
    pub fn wait_status(&mut self, want: &str, limit: Duration) -> Step<Value> {
        let start = Instant::now();
        loop {
            let st = self.state()?;
            if st["status"] == want {
                return Ok(st);
            }
            if start.elapsed() > limit {
                return Err(fail(format!(
                    "status stayed {} (want {want})",
                    st["status"]
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Reads a file the container or a hook wrote under host().
    pub fn host_file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.host().join(name)).ok()
    }

    /// Binds host() at /host in the container (read-write), so the process
    /// can leave evidence for the host side.
    pub fn bind_host_dir(&mut self) {
        let src = self.host().display().to_string();
        self.add_mount(json!({
            "destination": "/host", "type": "bind", "source": src,
            "options": ["rbind", "rw"]
        }));
    }

    pub fn add_mount(&mut self, m: Value) {
        if let Some(ms) = self.config["mounts"].as_array_mut() {
            ms.push(m);
        }
    }

    pub fn linux(&mut self) -> &mut Value {
        &mut self.config["linux"]
    }

    /// Drops namespace `kind` from linux.namespaces.
    pub fn drop_namespace(&mut self, kind: &str) {
        if let Some(ns) = self.config["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != kind);
        }
    }

    pub fn add_namespace(&mut self, ns: Value) {
        if let Some(list) = self.config["linux"]["namespaces"].as_array_mut() {
            list.push(ns);
        }
    }

    /// Drops the mount at `dest` from the config.
    pub fn drop_mount(&mut self, dest: &str) {
        if let Some(ms) = self.config["mounts"].as_array_mut() {
            ms.retain(|m| m["destination"] != dest);
        }
    }
}

impl Drop for Case<'_> {
    fn drop(&mut self) {
        if self.created {
            let mut cmd = self.rt.command(&self.state_root());
            cmd.args(["delete", "--force", &self.id]);
            let _ = run_with_timeout(cmd, COMMAND_TIMEOUT);
        }
    }
}

/// The exit status and the output of a runtime command, for a diagnostic.
pub fn describe(out: &Output) -> String {
    let mut s = format!("{}", out.status);
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let t = String::from_utf8_lossy(bytes);
        let t = t.trim();
        if !t.is_empty() {
            let _ = write!(s, "\n{name}: {t}");
        }
    }
    s
}

/// Runs `cmd` with a time limit (the whole process group is killed past
/// it). Output goes to files, not pipes: after `create` the container
/// holds the runtime's stdio open, and a pipe would never reach EOF.
/// Stdin is an empty file of our own, not the host's /dev/null: crun
/// 1.8.1 chowns its stdio to the container's root when the container has
/// a user namespace, which would hand the host's /dev/null to uid 200000.
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> std::io::Result<Output> {
    use std::io::{Read as _, Seek as _};
    use std::os::unix::process::CommandExt as _;
    let mut out = tempfile::tempfile()?;
    let mut err = tempfile::tempfile()?;
    cmd.stdin(tempfile::tempfile()?)
        .stdout(out.try_clone()?)
        .stderr(err.try_clone()?)
        .process_group(0);
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            // SAFETY: kill(2) on the process group we started.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
    });
    let status = child.wait();
    let _ = tx.send(());
    let status = status?;
    let read = |f: &mut std::fs::File| -> std::io::Result<Vec<u8>> {
        f.rewind()?;
        let mut v = Vec::new();
        f.read_to_end(&mut v)?;
        Ok(v)
    };
    Ok(Output {
        status,
        stdout: read(&mut out)?,
        stderr: read(&mut err)?,
    })
}

/// The base config: the usual runc-style container (pid, net, ipc, uts
/// and mount namespaces, the standard /proc, /dev and /sys mounts, masked
/// and read-only paths), root as uid 0 with a writable rootfs.
pub fn base_config() -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "spec",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}
