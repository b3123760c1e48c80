//! Helpers for the runtime's integration tests: busybox bundles made from
//! Debian's busybox-static, and a driver for the strata-runtime binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_strata-runtime");

/// A bundle in a temp dir plus a private state root.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: Value,
}

pub fn busybox_rootfs(dir: &Path) {
    let bb = Path::new("/bin/busybox");
    assert!(
        bb.exists(),
        "busybox-static must be installed (scripts/install-deps.sh)"
    );
    let st = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/make-busybox-rootfs.sh"
        ))
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
}

impl Bundle {
    /// A bundle whose process runs `sh -c script`, stdio not a terminal.
    pub fn new(script: &str) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("strata-rt-")
            .tempdir()
            .unwrap();
        busybox_rootfs(&dir.path().join("rootfs"));
        let out = Command::new(BIN)
            .arg("spec")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(["sh", "-c", script]);
        // The rootfs is writable in tests unless a test says otherwise.
        config["root"]["readonly"] = json!(false);
        let root = dir.path().join("state");
        let b = Bundle { dir, root, config };
        b.save();
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.path().join("rootfs")
    }

    pub fn save(&self) {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// `strata-runtime --root <state> ARGS...` with the bundle as cwd.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root")
            .arg(&self.root)
            .args(args)
            .current_dir(self.path());
        c.stdin(Stdio::null());
        c
    }

    pub fn rt(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Adds a cgroup namespace (which `spec` gives on cgroup v2 hosts
    /// only, as runc's does), unless there is one.
    pub fn with_cgroupns(&mut self) {
        let ns = self.config["linux"]["namespaces"].as_array_mut().unwrap();
        if !ns.iter().any(|n| n["type"] == "cgroup") {
            ns.push(json!({"type": "cgroup"}));
        }
    }

    /// `run -d ID`, stdio to /dev/null; the container must start.
    pub fn run_detached(&self, id: &str) {
        let st = self
            .cmd(&["run", "-d", "--bundle", self.path().to_str().unwrap(), id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "run -d {id}");
    }

    /// `run ID` in the foreground; returns the output.
    pub fn run(&self, id: &str) -> Output {
        self.rt(&["run", "--bundle", self.path().to_str().unwrap(), id])
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.rt(&["state", id]);
        assert!(
            out.status.success(),
            "state {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    pub fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The container may not exist yet (a `run` still creating it).
            let out = self.rt(&["state", id]);
            let s = serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v["status"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned());
            if s == want {
                return;
            }
            assert!(Instant::now() < deadline, "{id} stayed {s}, wanted {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `create ID`. The container inherits the caller's stdio (as with
    /// runc), so it gets files, not the pipes `output()` would wait on:
    /// `<bundle>/ID.out` and `<bundle>/ID.err`.
    pub fn create(&self, id: &str) {
        let st = self.create_status(id, &[]);
        assert!(st.success(), "create: {}", self.file(&format!("{id}.err")));
    }

    pub fn create_status(&self, id: &str, extra: &[&str]) -> std::process::ExitStatus {
        let out = std::fs::File::create(self.path().join(format!("{id}.out"))).unwrap();
        let err = std::fs::File::create(self.path().join(format!("{id}.err"))).unwrap();
        let mut args = vec!["create", "--bundle", self.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(id);
        self.cmd(&args).stdout(out).stderr(err).status().unwrap()
    }

    pub fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap_or_default()
    }

    /// Poll until the file in the bundle has `want` in it.
    pub fn wait_file(&self, name: &str, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.file(name);
            if s.contains(want) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never contained {want:?}: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.rt(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        // Leave nothing running behind a failed test.
        if let Ok(rd) = std::fs::read_dir(&self.root) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.rt(&["delete", "--force", &id]);
            }
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run a script in a fresh container; assert success; return stdout.
pub fn run_ok(b: &Bundle, id: &str) -> String {
    let out = b.run(id);
    assert!(
        out.status.success(),
        "run failed ({:?}): {}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// No cgroup directory named for this container remains in any hierarchy.
pub fn assert_no_cgroup(id: &str) {
    for ctrl in ["memory", "pids", "cpu", "devices", "freezer"] {
        let p = Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join("strata-runtime")
            .join(id);
        assert!(!p.exists(), "cgroup left behind: {}", p.display());
    }
    let p = Path::new("/sys/fs/cgroup/strata-runtime").join(id);
    assert!(!p.exists(), "cgroup left behind: {}", p.display());
}
