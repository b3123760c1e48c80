//! The harness the `strata` end-to-end tests share: a store of its own
//! in a temp dir, the binary run against it, and a busybox image made
//! from Debian's busybox-static.

#![allow(dead_code)] // each test crate uses its own part of this

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_strata");

pub struct Strata {
    pub dir: tempfile::TempDir,
}

impl Strata {
    /// An empty store under a temp dir named with `prefix`.
    pub fn empty(prefix: &str) -> Strata {
        Strata {
            dir: tempfile::Builder::new().prefix(prefix).tempdir().unwrap(),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// `strata --root STORE ARGS`, stdin closed, registry credentials in
    /// the temp dir (never the user's).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(self.root()).args(args);
        c.env("DOCKER_CONFIG", self.dir.path().join("docker"));
        c.stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run and require success; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "strata {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A busybox rootfs (scripts/make-busybox-rootfs.sh) as a tarball,
    /// gzipped or not.
    pub fn busybox_tar(&self, gzip: bool) -> PathBuf {
        let rootfs = busybox_rootfs(self.dir.path());
        let tar = self
            .dir
            .path()
            .join(if gzip { "rootfs.tar.gz" } else { "rootfs.tar" });
        assert!(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg(if gzip { "-czf" } else { "-cf" })
                .arg(&tar)
                .arg(".")
                .status()
                .unwrap()
                .success()
        );
        tar
    }

    /// Import the busybox rootfs as the image `busybox` (from an
    /// uncompressed tarball, which stays at `rootfs.tar`); its id.
    pub fn import_busybox(&self) -> String {
        let tar = self.busybox_tar(false);
        self.ok(&["import", tar.to_str().unwrap(), "busybox"])
            .trim()
            .to_string()
    }
}

/// A busybox rootfs (scripts/make-busybox-rootfs.sh) at `dir/rootfs`.
pub fn busybox_rootfs(dir: &std::path::Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    assert!(
        Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../scripts/make-busybox-rootfs.sh"
            ))
            .arg(&rootfs)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    rootfs
}

/// A TCP port free on the host's loopback now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Debian's docker-registry (the CNCF distribution registry) on the
/// host's loopback, for as long as this lives.
pub struct Registry {
    /// Holds the registry's storage and config until it is dropped.
    pub _dir: tempfile::TempDir,
    pub addr: String,
    child: std::process::Child,
}

impl Registry {
    pub fn start(htpasswd: Option<(&str, &str)>) -> Registry {
        Self::start_with(htpasswd, None)
    }

    /// A registry that wants bearer tokens from `realm`, signed by the
    /// key of `cert` (PEM).
    pub fn start_token(realm: &str, cert: &std::path::Path) -> Registry {
        Self::start_full(None, None, Some((realm, cert)))
    }

    /// With `tls`: (cert, key) PEM paths for the registry's HTTPS.
    pub fn start_with(
        htpasswd: Option<(&str, &str)>,
        tls: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Registry {
        Self::start_full(htpasswd, tls, None)
    }

    fn start_full(
        htpasswd: Option<(&str, &str)>,
        tls: Option<(&std::path::Path, &std::path::Path)>,
        token: Option<(&str, &std::path::Path)>,
    ) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("strata-reg-")
            .tempdir()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut auth = String::new();
        if let Some((u, p)) = htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("htpasswd (apache2-utils)");
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        if let Some((realm, cert)) = token {
            auth = format!(
                "auth:\n  token:\n    realm: {realm}\n    service: strata-test-registry\n    issuer: strata-test-issuer\n    rootcertbundle: {}\n",
                cert.display()
            );
        }
        let tls = match tls {
            Some((c, k)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                c.display(),
                k.display()
            ),
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{tls}{auth}",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (Debian package) must be installed");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "registry did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Registry {
            _dir: dir,
            addr,
            child,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
