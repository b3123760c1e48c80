//! Pull, push and login against Debian's docker-registry (the CNCF
//! distribution registry) started here on 127.0.0.1, plain and with
//! htpasswd basic auth; interop with skopeo both ways.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_strata");

struct Registry {
    /// Holds the registry's storage and config until it is dropped.
    _dir: tempfile::TempDir,
    addr: String,
    child: Child,
}

impl Registry {
    fn start(htpasswd: Option<(&str, &str)>) -> Registry {
        Self::start_with(htpasswd, None)
    }

    /// With `tls`: (cert, key) PEM paths for the registry's HTTPS.
    fn start_with(htpasswd: Option<(&str, &str)>, tls: Option<(&Path, &Path)>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("strata-reg-")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
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
        let tls = match tls {
            Some((c, k)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                c.display(),
                k.display()
            ),
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{tls}{auth}",
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
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "registry did not start");
            std::thread::sleep(Duration::from_millis(50));
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

struct Strata {
    dir: tempfile::TempDir,
}

impl Strata {
    fn new() -> Strata {
        Strata {
            dir: tempfile::Builder::new()
                .prefix("strata-regcli-")
                .tempdir()
                .unwrap(),
        }
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root")
            .arg(self.dir.path().join("store"))
            .args(args);
        c.env("DOCKER_CONFIG", self.dir.path().join("docker"));
        c.stdin(Stdio::null());
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "strata {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn busybox(&self) -> String {
        let rootfs = self.dir.path().join("rootfs");
        assert!(
            Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../scripts/make-busybox-rootfs.sh"
                ))
                .arg(&rootfs)
                .status()
                .unwrap()
                .success()
        );
        let tar = self.dir.path().join("rootfs.tar.gz");
        assert!(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-czf")
                .arg(&tar)
                .arg(".")
                .status()
                .unwrap()
                .success()
        );
        self.ok(&["import", tar.to_str().unwrap(), "busybox"])
            .trim()
            .to_string()
    }
    fn inspect(&self, name: &str) -> Value {
        serde_json::from_str::<Value>(&self.ok(&["image", "inspect", name])).unwrap()[0].clone()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn push_then_pull_round_trip_read_by_skopeo() {
    let reg = Registry::start(None);
    let a = Strata::new();
    let id = a.busybox();
    let dest = format!("{}/lib/busybox:1", reg.addr);
    let out = a.ok(&["push", "busybox", &dest]);
    assert!(out.starts_with(&format!("Pushed {dest}: sha256:")), "{out}");
    // skopeo sees what we pushed.
    let o = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo inspect: {}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    // Pushing again finds every blob there already.
    a.ok(&["push", "busybox", &dest]);
    // A fresh store pulls it back: same image id, name as pulled.
    let b = Strata::new();
    let out = b.ok(&["pull", "-q", &dest]);
    assert_eq!(out.trim(), id);
    assert_eq!(b.inspect(&dest)["RepoTags"][0], dest);
    // By digest too.
    let digest = v["Digest"].as_str().unwrap();
    let c = Strata::new();
    c.ok(&["pull", "-q", &format!("{}/lib/busybox@{digest}", reg.addr)]);
    assert!(c.ok(&["system", "check"]).contains("consistent"));
}

#[test]
fn pull_what_skopeo_pushed() {
    let reg = Registry::start(None);
    let a = Strata::new();
    a.busybox();
    let archive = a.dir.path().join("bb.tar");
    a.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        "busybox",
    ]);
    let dest = format!("{}/skopeo/busybox:latest", reg.addr);
    let o = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!(
            "oci-archive:{}:localhost/busybox:latest",
            archive.display()
        ))
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo copy: {}", stderr(&o));
    let b = Strata::new();
    b.ok(&["pull", &dest]);
    assert_eq!(b.inspect(&dest)["RootFS"], a.inspect("busybox")["RootFS"]);
}

#[test]
fn unknown_image_is_a_clear_error() {
    let reg = Registry::start(None);
    let s = Strata::new();
    let o = s.run(&["pull", &format!("{}/no/such:1", reg.addr)]);
    assert_eq!(o.status.code(), Some(125));
    let e = stderr(&o);
    assert!(
        e.contains("not found") && e.contains("manifest unknown"),
        "{e}"
    );
    assert!(!e.contains("envelope"), "internal detail leaked: {e}");
}

#[test]
fn basic_auth_login_push_pull_logout() {
    let reg = Registry::start(Some(("alice", "s3cret")));
    let s = Strata::new();
    s.busybox();
    let dest = format!("{}/alice/busybox:1", reg.addr);
    let o = s.run(&["push", "busybox", &dest]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("unauthorized"), "{}", stderr(&o));
    let o = s.run(&["login", "-u", "alice", "-p", "wrong", &reg.addr]);
    assert!(!o.status.success(), "login with a wrong password must fail");
    assert!(stderr(&o).contains("unauthorized"), "{}", stderr(&o));
    assert!(
        !s.dir.path().join("docker/config.json").exists(),
        "nothing stored after a failed login"
    );
    let o = s
        .cmd(&["login", "-u", "alice", "--password-stdin", &reg.addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"s3cret\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(o.status.success(), "login: {}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Login Succeeded"));
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(s.dir.path().join("docker/config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["auths"][&reg.addr]["auth"], "YWxpY2U6czNjcmV0"); // base64("alice:s3cret")
    s.ok(&["push", "busybox", &dest]);
    let fresh = Strata::new();
    // Existing Docker logins work: same config.json, another store.
    let mut c = fresh.cmd(&["pull", "-q", &dest]);
    c.env("DOCKER_CONFIG", s.dir.path().join("docker"));
    let o = c.output().unwrap();
    assert!(o.status.success(), "pull with stored creds: {}", stderr(&o));
    assert!(
        s.ok(&["logout", &reg.addr])
            .contains("Removed login credentials")
    );
    let o = fresh.run(&["pull", &dest]);
    assert!(stderr(&o).contains("unauthorized"), "{}", stderr(&o));
}

/// A CA and a server certificate for 127.0.0.1, made with openssl.
fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "openssl {args:?}: {}", stderr(&o));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=strata test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

#[test]
fn tls_registry_with_a_ca_from_certs_d() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let reg = Registry::start_with(
        None,
        Some((
            &certs.path().join("server.crt"),
            &certs.path().join("server.key"),
        )),
    );
    let s = Strata::new();
    s.busybox();
    let dest = format!("{}/tls/busybox:1", reg.addr);
    // Without the CA: a clear TLS error, not a fallback to plain HTTP.
    let o = s.run(&["push", "busybox", &dest]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("TLS failure") && stderr(&o).contains("certs.d"),
        "{}",
        stderr(&o)
    );
    // The CA in certs.d/HOST/ca.crt (Docker's layout): verified HTTPS.
    let certs_d = s.dir.path().join("certs.d");
    std::fs::create_dir_all(certs_d.join(&reg.addr)).unwrap();
    std::fs::copy(
        certs.path().join("ca.crt"),
        certs_d.join(&reg.addr).join("ca.crt"),
    )
    .unwrap();
    s.ok(&[
        "push",
        "--cert-dir",
        certs_d.to_str().unwrap(),
        "busybox",
        &dest,
    ]);
    let b = Strata::new();
    b.ok(&["pull", "--cert-dir", certs_d.to_str().unwrap(), "-q", &dest]);
    // --tls-verify=false: no CA needed.
    let c = Strata::new();
    c.ok(&["pull", "--tls-verify=false", "-q", &dest]);
}
