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
