//! Harness for running strata-runtime under real peers: containerd (with
//! `ctr`) and podman, each started on private sockets and directories.

pub mod runtime_spec;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The built `strata-runtime` (scripts/test.sh builds it first).
pub fn runtime_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("STRATA_RUNTIME") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test> or target/<profile>/<bin>, beside
    // target/<profile>/strata-runtime.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("target dir");
    let beside = dir.join("strata-runtime");
    let bin = if beside.exists() {
        beside
    } else {
        dir.parent()
            .map(|d| d.join("strata-runtime"))
            .expect("target dir")
    };
    assert!(
        bin.exists(),
        "{} missing: run `cargo build --workspace --bins` first",
        bin.display()
    );
    bin
}

/// The built `strata` CLI, beside strata-runtime.
pub fn strata_bin() -> PathBuf {
    runtime_bin().with_file_name("strata")
}

pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A busybox rootfs from Debian's busybox-static.
pub fn busybox_rootfs(dir: &Path) {
    let st = Command::new("bash")
        .arg(workspace_dir().join("scripts/make-busybox-rootfs.sh"))
        .arg(dir)
        .status()
        .expect("run make-busybox-rootfs.sh");
    assert!(st.success(), "make-busybox-rootfs.sh failed");
}

/// A busybox rootfs made under `dir` and packed as `dir/rootfs.tar`
/// (what `import` takes); the tar's path.
pub fn busybox_tar(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    busybox_rootfs(&rootfs);
    let tar = dir.join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(st.success(), "tar of the busybox rootfs failed");
    tar
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A containerd daemon of our own: its own config, root, state and socket.
pub struct Containerd {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub namespace: String,
    child: std::process::Child,
}

impl Containerd {
    /// Without the CRI plugin (the tests drive containerd with ctr).
    pub fn start(namespace: &str) -> Containerd {
        Self::start_with(
            namespace,
            "[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable = true\n",
        )
    }

    /// With `plugins`: TOML tables after our root, state and sockets
    /// (a `version` line in it is dropped: ours says 2).
    pub fn start_with(namespace: &str, plugins: &str) -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("strata-ctd-")
            .tempdir()
            .unwrap();
        let socket = dir.path().join("containerd.sock");
        let plugins: String = plugins
            .lines()
            .filter(|l| !l.trim_start().starts_with("version"))
            .map(|l| format!("{l}\n"))
            .collect();
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{1}\"\n\
             [ttrpc]\n  address = \"{1}.ttrpc\"\n{plugins}",
            dir.path().display(),
            socket.display()
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd (Debian package) must be installed");
        let c = Containerd {
            dir,
            socket,
            namespace: namespace.to_string(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args);
        c.stdin(Stdio::null());
        c
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args).output().unwrap()
    }

    /// Status of a task as `ctr task ls` shows it.
    pub fn task_status(&self, id: &str) -> Option<String> {
        let out = text(&self.ctr(&["task", "ls"]).stdout);
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .map(str::to_owned)
    }

    pub fn wait_task(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let st = self.task_status(id);
            if st.as_deref() == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} is {st:?}, wanted {want}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let tasks = text(&self.ctr(&["task", "ls", "-q"]).stdout);
        for t in tasks.lines() {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", t]);
            std::thread::sleep(Duration::from_millis(100));
            let _ = self.ctr(&["task", "rm", "-f", t]);
        }
        let containers = text(&self.ctr(&["container", "ls", "-q"]).stdout);
        for c in containers.lines() {
            let _ = self.ctr(&["container", "rm", c]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Shims outlive the daemon; end ours.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg("--")
            .arg(format!("-namespace {} ", self.namespace))
            .status();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path())
            .stderr(Stdio::null())
            .status();
    }
}

/// podman with its own storage, run root and containers.conf, using
/// strata-runtime as its OCI runtime.
pub struct Podman {
    pub dir: tempfile::TempDir,
    pub runtime: PathBuf,
}

impl Podman {
    pub fn new() -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("strata-podman-")
            .tempdir()
            .unwrap();
        // The shipped example (strata as podman's runtime, cgroupfs, no
        // ulimits), pointed at the binary under test.
        let example = workspace_dir().join("examples/podman/containers.conf");
        let conf = std::fs::read_to_string(&example).unwrap();
        let runtime = runtime_bin();
        let installed = "\"/usr/local/bin/strata-runtime\"";
        assert!(conf.contains(installed), "{}", example.display());
        std::fs::write(
            dir.path().join("containers.conf"),
            conf.replace(installed, &format!("\"{}\"", runtime.display())),
        )
        .unwrap();
        Podman { dir, runtime }
    }

    /// The full podman command line (program first).
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let d = self.dir.path();
        let mut v: Vec<String> = vec!["podman".into()];
        for (flag, val) in [
            ("--root", d.join("root")),
            ("--runroot", d.join("runroot")),
            ("--tmpdir", d.join("tmp")),
            ("--storage-driver", "overlay".into()),
        ] {
            v.push(flag.into());
            v.push(val.display().to_string());
        }
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let argv = self.argv(args);
        let mut c = Command::new(&argv[0]);
        c.env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .args(&argv[1..]);
        c.stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Import a busybox rootfs as `localhost/busybox:test`.
    pub fn import_busybox(&self) -> &'static str {
        let tar = busybox_tar(self.dir.path());
        let out = self.run(&["import", tar.to_str().unwrap(), "localhost/busybox:test"]);
        assert!(out.status.success(), "podman import: {}", text(&out.stderr));
        "localhost/busybox:test"
    }
}

impl Default for Podman {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
        let _ = self.run(&["system", "reset", "-f"]);
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path())
            .stderr(Stdio::null())
            .status();
    }
}

/// Every path of a tree, described for comparison: type, mode, owner,
/// size and content hash of files, link targets, hard-link group, xattrs.
/// Directory sizes and all times are left out.
pub fn describe_tree(root: &Path) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut links: std::collections::HashMap<(u64, u64), String> = Default::default();
    fn walk(
        root: &Path,
        rel: &Path,
        out: &mut std::collections::BTreeMap<String, String>,
        links: &mut std::collections::HashMap<(u64, u64), String>,
    ) {
        let dir = root.join(rel);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let r = rel.join(&n);
            let p = root.join(&r);
            let m = std::fs::symlink_metadata(&p).unwrap();
            let key = r.display().to_string();
            let owner = format!("{}:{}", m.uid(), m.gid());
            let mode = m.mode() & 0o7777;
            let xattrs = xattr_list(&p);
            let desc = if m.is_dir() {
                format!("dir {mode:o} {owner}{xattrs}")
            } else if m.file_type().is_symlink() {
                format!(
                    "symlink -> {} {owner}",
                    std::fs::read_link(&p).unwrap().display()
                )
            } else if m.is_file() {
                let data = std::fs::read(&p).unwrap();
                let mut group = String::new();
                if m.nlink() > 1 {
                    let first = links
                        .entry((m.dev(), m.ino()))
                        .or_insert_with(|| key.clone());
                    group = format!(" link-group={first}");
                }
                format!(
                    "file {mode:o} {owner} {} {}{group}{xattrs}",
                    data.len(),
                    short_hash(&data)
                )
            } else {
                format!(
                    "special {:o} {mode:o} {owner} {}",
                    m.mode() & 0o170000,
                    m.rdev()
                )
            };
            out.insert(key, desc);
            if m.is_dir() {
                walk(root, &r, out, links);
            }
        }
    }
    walk(root, Path::new(""), &mut out, &mut links);
    out
}

fn short_hash(data: &[u8]) -> String {
    // FNV-1a, 64 bits: enough to tell contents apart in a test.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

fn xattr_list(p: &Path) -> String {
    let out = Command::new("getfattr")
        .args(["-h", "-d", "-m", "-", "--absolute-names"])
        .arg(p)
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) if !o.stdout.is_empty() => {
            let t = text(&o.stdout);
            let attrs: Vec<&str> = t
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .collect();
            if attrs.is_empty() {
                String::new()
            } else {
                format!(" xattrs[{}]", attrs.join(","))
            }
        }
        _ => String::new(),
    }
}
