//! Pull, push and login against Debian's docker-registry (the CNCF
//! distribution registry) started here on 127.0.0.1, plain and with
//! htpasswd basic auth; interop with skopeo both ways.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{BIN, Registry, Strata};

impl Strata {
    fn new() -> Strata {
        Strata::empty("strata-regcli-")
    }
    fn busybox(&self) -> String {
        self.import_busybox()
    }
    fn inspect(&self, name: &str) -> Value {
        serde_json::from_str::<Value>(&self.ok(&["image", "inspect", name])).unwrap()[0].clone()
    }
}

use common::err as stderr;

/// `skopeo inspect` of an image on a plain-HTTP registry of ours.
fn skopeo_inspect(image: &str) -> std::process::Output {
    Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{image}"))
        .output()
        .unwrap()
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
    let o = skopeo_inspect(&dest);
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

/// Faults the proxy injects into blob GETs.
#[derive(Default)]
struct Faults {
    /// Answer this many blob GETs with 500 first.
    fail_500: usize,
    /// Cut the first blob GET's body after this many bytes.
    drop_after: Option<usize>,
    /// Flip a byte in every blob body.
    corrupt: bool,
    /// Send this many bytes of the first blob GET's body, then stall
    /// (keep the connection open, send nothing) for a minute.
    stall_after: Option<usize>,
    /// Request heads seen, for assertions.
    seen: Vec<String>,
}

/// A reverse proxy in front of a registry that injects faults. One
/// request per connection (it forces `Connection: close`).
struct FaultProxy {
    addr: String,
    faults: std::sync::Arc<std::sync::Mutex<Faults>>,
}

impl FaultProxy {
    fn start(upstream: &str, faults: Faults) -> FaultProxy {
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let faults = std::sync::Arc::new(std::sync::Mutex::new(faults));
        let (f, up) = (faults.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { continue };
                let (f, up) = (f.clone(), up.clone());
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if client.read(&mut b).unwrap_or(0) == 0 {
                            return;
                        }
                        // A TLS ClientHello (the client's HTTPS probe):
                        // hang up, as a plain-HTTP registry would.
                        if head.is_empty() && b[0] == 0x16 {
                            return;
                        }
                        head.push(b[0]);
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let is_blob_get = head.starts_with("GET ")
                        && head.lines().next().unwrap_or("").contains("/blobs/");
                    let (fail, drop_after, corrupt) = {
                        let mut g = f.lock().unwrap();
                        g.seen.push(head.clone());
                        let fail = is_blob_get && g.fail_500 > 0;
                        if fail {
                            g.fail_500 -= 1;
                        }
                        let drop_after = if is_blob_get && !fail {
                            g.drop_after
                        } else {
                            None
                        };
                        (fail, drop_after, is_blob_get && g.corrupt)
                    };
                    if fail {
                        let _ = client.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        return;
                    }
                    let mut req: String = head
                        .lines()
                        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                        .filter(|l| !l.is_empty())
                        .map(|l| format!("{l}\r\n"))
                        .collect();
                    req.push_str("Connection: close\r\n\r\n");
                    let Ok(mut server) = std::net::TcpStream::connect(&up) else {
                        return;
                    };
                    let _ = server.write_all(req.as_bytes());
                    // Forward any request body (uploads) as it comes.
                    let mut resp = Vec::new();
                    let _ = server.read_to_end(&mut resp);
                    let split = resp
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map(|p| p + 4)
                        .unwrap_or(resp.len());
                    let (h, body) = resp.split_at(split);
                    let mut body = body.to_vec();
                    if corrupt && body.len() > 100 {
                        body[100] ^= 0xff;
                    }
                    let _ = client.write_all(h);
                    // Cut only a body longer than the cut, once.
                    let cut = drop_after
                        .filter(|n| *n < body.len())
                        .filter(|_| f.lock().unwrap().drop_after.take().is_some());
                    let stall = if is_blob_get {
                        let mut g = f.lock().unwrap();
                        g.stall_after
                            .filter(|n| *n < body.len())
                            .and_then(|_| g.stall_after.take())
                    } else {
                        None
                    };
                    match (cut, stall) {
                        (Some(n), _) => {
                            let _ = client.write_all(&body[..n]);
                            let _ = client.shutdown(std::net::Shutdown::Both);
                        }
                        (None, Some(n)) => {
                            let _ = client.write_all(&body[..n]);
                            let _ = client.flush();
                            std::thread::sleep(std::time::Duration::from_secs(60));
                        }
                        _ => {
                            let _ = client.write_all(&body);
                        }
                    }
                });
            }
        });
        FaultProxy { addr, faults }
    }

    fn seen(&self) -> Vec<String> {
        self.faults.lock().unwrap().seen.clone()
    }
}

/// Push busybox straight to the registry; return (repo path, image id).
fn pushed_busybox(reg: &Registry) -> (Strata, String) {
    let s = Strata::new();
    let id = s.busybox();
    s.ok(&["push", "busybox", &format!("{}/fault/busybox:1", reg.addr)]);
    (s, id)
}

#[test]
fn pull_retries_server_errors() {
    let reg = Registry::start(None);
    let (_s, id) = pushed_busybox(&reg);
    let proxy = FaultProxy::start(
        &reg.addr,
        Faults {
            fail_500: 2,
            ..Default::default()
        },
    );
    let p = Strata::new();
    let out = p.ok(&["pull", "-q", &format!("{}/fault/busybox:1", proxy.addr)]);
    assert_eq!(out.trim(), id);
    let blob_gets = proxy
        .seen()
        .iter()
        .filter(|h| h.starts_with("GET ") && h.contains("/blobs/"))
        .count();
    assert!(
        blob_gets >= 3,
        "expected retried blob requests, saw {blob_gets}"
    );
}

#[test]
fn broken_download_resumes_with_range() {
    let reg = Registry::start(None);
    let (_s, id) = pushed_busybox(&reg);
    let proxy = FaultProxy::start(
        &reg.addr,
        Faults {
            drop_after: Some(300_000),
            ..Default::default()
        },
    );
    let p = Strata::new();
    let out = p.ok(&["pull", "-q", &format!("{}/fault/busybox:1", proxy.addr)]);
    assert_eq!(out.trim(), id);
    let resumed = proxy
        .seen()
        .iter()
        .any(|h| h.to_ascii_lowercase().contains("\r\nrange: bytes=300000-"));
    assert!(
        resumed,
        "no request resuming at byte 300000: {:?}",
        proxy.seen()
    );
    assert!(p.ok(&["system", "check"]).contains("consistent"));
}

#[test]
fn stalled_download_times_out_and_resumes() {
    let reg = Registry::start(None);
    let (s, id) = pushed_busybox(&reg);
    let proxy = FaultProxy::start(
        &reg.addr,
        Faults {
            stall_after: Some(200_000),
            ..Default::default()
        },
    );
    let cfg = s.dir.path().join("strata.toml");
    std::fs::write(&cfg, "read_timeout = 2\n").unwrap();
    let p = Strata::new();
    let started = std::time::Instant::now();
    let out = p.ok(&[
        "--config",
        cfg.to_str().unwrap(),
        "pull",
        "-q",
        &format!("{}/fault/busybox:1", proxy.addr),
    ]);
    assert_eq!(out.trim(), id);
    // The stall lasts a minute; only a timeout and a resume get past it.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(40),
        "pull waited out the stall: {:?}",
        started.elapsed()
    );
    let resumed = proxy
        .seen()
        .iter()
        .any(|h| h.to_ascii_lowercase().contains("\r\nrange: bytes=200000-"));
    assert!(
        resumed,
        "no request resuming at byte 200000: {:?}",
        proxy.seen()
    );
    assert!(p.ok(&["system", "check"]).contains("consistent"));
}

#[test]
fn corrupted_bytes_fail_cleanly_and_a_rerun_completes() {
    let reg = Registry::start(None);
    let (_s, id) = pushed_busybox(&reg);
    let bad = FaultProxy::start(
        &reg.addr,
        Faults {
            corrupt: true,
            ..Default::default()
        },
    );
    let p = Strata::new();
    let o = p.run(&["pull", &format!("{}/fault/busybox:1", bad.addr)]);
    assert_eq!(o.status.code(), Some(125));
    let e = stderr(&o);
    assert!(e.contains("digest") || e.contains("corrupt"), "{e}");
    assert!(
        p.ok(&["images", "-q"]).trim().is_empty(),
        "an image was registered from corrupt bytes"
    );
    assert!(p.ok(&["system", "check"]).contains("consistent"));
    // Nothing half-written stands in the way of a clean pull.
    let out = p.ok(&["pull", "-q", &format!("{}/fault/busybox:1", reg.addr)]);
    assert_eq!(out.trim(), id);
}

/// base64url without padding, as JWT wants.
fn b64url(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// A token server: checks basic credentials and issues RS256 JWTs (signed
/// with openssl) granting what was asked in `scope`. Counts requests.
struct TokenServer {
    url: String,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// When each token was issued.
    issued: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
}

impl TokenServer {
    fn start(certs: &Path, user: &'static str, pass: &'static str) -> TokenServer {
        Self::start_ttl(certs, user, pass, 300)
    }

    /// Tokens that expire `ttl` seconds after they are issued.
    fn start_ttl(certs: &Path, user: &'static str, pass: &'static str, ttl: u64) -> TokenServer {
        use base64::Engine;
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let issued = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (count, certs, times) = (requests.clone(), certs.to_path_buf(), issued.clone());
        // DER of the signing certificate for the x5c header.
        let der = Command::new("openssl")
            .args(["x509", "-in"])
            .arg(certs.join("ca.crt"))
            .args(["-outform", "DER"])
            .output()
            .unwrap()
            .stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(&der);
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { continue };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if c.read(&mut b).unwrap_or(0) == 0 {
                        break;
                    }
                    head.push(b[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let authorized = head.lines().any(|l| {
                    l.to_ascii_lowercase().starts_with("authorization:") && l.ends_with(&want)
                });
                if !authorized {
                    let _ = c.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                }
                let target = head.split_whitespace().nth(1).unwrap_or("");
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
                let mut access = Vec::new();
                for kv in query.split('&') {
                    if let Some(v) = kv.strip_prefix("scope=") {
                        let v = v
                            .replace("%3A", ":")
                            .replace("%2C", ",")
                            .replace("%2F", "/");
                        let parts: Vec<&str> = v.split(':').collect();
                        if parts.len() == 3 {
                            access.push(serde_json::json!({"type": parts[0], "name": parts[1], "actions": parts[2].split(',').collect::<Vec<_>>()}));
                        }
                    }
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
                let claims = serde_json::json!({"iss": "strata-test-issuer", "sub": user, "aud": "strata-test-registry",
                    "exp": now + ttl, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", count.load(std::sync::atomic::Ordering::SeqCst)),
                    "access": access});
                let input = format!(
                    "{}.{}",
                    b64url(header.to_string().as_bytes()),
                    b64url(claims.to_string().as_bytes())
                );
                let mut sign = Command::new("openssl")
                    .args(["dgst", "-sha256", "-sign"])
                    .arg(certs.join("ca.key"))
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                sign.stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
                let sig = sign.wait_with_output().unwrap().stdout;
                let body = serde_json::json!({"token": format!("{input}.{}", b64url(&sig)), "expires_in": ttl}).to_string();
                times.lock().unwrap().push(Instant::now());
                let _ = c.write_all(
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                        .as_bytes(),
                );
            }
        });
        TokenServer {
            url,
            requests,
            issued,
        }
    }
}

#[test]
fn bearer_token_auth_through_a_token_server() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let tokens = TokenServer::start(certs.path(), "bob", "hunter2");
    let reg = Registry::start_token(&tokens.url, &certs.path().join("ca.crt"));
    let s = Strata::new();
    s.busybox();
    let dest = format!("{}/bob/busybox:1", reg.addr);
    // Anonymous: the token server refuses, the registry says unauthorized.
    let o = s.run(&["push", "busybox", &dest]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("unauthorized"), "{}", stderr(&o));
    s.ok(&["login", "-u", "bob", "-p", "hunter2", &reg.addr]);
    s.ok(&["push", "busybox", &dest]);
    let before = tokens.requests.load(std::sync::atomic::Ordering::SeqCst);
    let fresh = Strata::new();
    let mut c = fresh.cmd(&["pull", "-q", &dest]);
    c.env("DOCKER_CONFIG", s.dir.path().join("docker"));
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "pull with a bearer token: {}",
        stderr(&o)
    );
    // One token for the pull's scope, reused for every blob.
    let used = tokens.requests.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(
        (1..=2).contains(&used),
        "tokens fetched for one pull: {used}"
    );
}

#[test]
fn expired_token_is_renewed_during_a_pull() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    // Tokens live one second; the registry allows its usual clock-skew
    // leeway, the client drops them from its cache on time.
    let tokens = TokenServer::start_ttl(certs.path(), "bob", "hunter2", 1);
    let reg = Registry::start_token(&tokens.url, &certs.path().join("ca.crt"));
    let s = Strata::new();
    let id = s.busybox();
    s.ok(&["login", "-u", "bob", "-p", "hunter2", &reg.addr]);
    s.ok(&[
        "push",
        "-q",
        "busybox",
        &format!("{}/bob/busybox:1", reg.addr),
    ]);
    // The first blob download stalls past the read timeout (3 s), so the
    // resumed request comes after the token expired.
    let proxy = FaultProxy::start(
        &reg.addr,
        Faults {
            stall_after: Some(200_000),
            ..Default::default()
        },
    );
    s.ok(&["login", "-u", "bob", "-p", "hunter2", &proxy.addr]);
    let cfg = s.dir.path().join("strata.toml");
    std::fs::write(&cfg, "read_timeout = 3\n").unwrap();
    let fresh = Strata::new();
    let mut c = fresh.cmd(&[
        "--config",
        cfg.to_str().unwrap(),
        "pull",
        "-q",
        &format!("{}/bob/busybox:1", proxy.addr),
    ]);
    c.env("DOCKER_CONFIG", s.dir.path().join("docker"));
    let started = Instant::now();
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "pull across token expiry: {}",
        stderr(&o)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id);
    // A token was issued again after the stall, for the resumed request
    // (with tokens that do not expire, one serves the whole pull).
    let during: Vec<Instant> = tokens
        .issued
        .lock()
        .unwrap()
        .iter()
        .filter(|t| **t > started)
        .cloned()
        .collect();
    let renewed = during
        .iter()
        .any(|t| t.duration_since(during[0]) >= Duration::from_millis(2900));
    assert!(renewed, "no token renewed after the stall: {during:?}");
    assert!(fresh.ok(&["system", "check"]).contains("consistent"));
}

#[test]
fn mirrors_from_strata_toml_serve_docker_io_names() {
    // The mirror holds library/busybox; docker.io itself is unreachable here.
    let mirror = Registry::start(None);
    let s = Strata::new();
    let id = s.busybox();
    s.ok(&[
        "push",
        "busybox",
        &format!("{}/library/busybox:latest", mirror.addr),
    ]);
    // A dead mirror first: it is skipped.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let cfg = s.dir.path().join("strata.toml");
    std::fs::write(
        &cfg,
        format!(
            "[mirrors]\n\"docker.io\" = [\"{dead}\", \"{}\"]\n",
            mirror.addr
        ),
    )
    .unwrap();
    let p = Strata::new();
    let out = p.ok(&["--config", cfg.to_str().unwrap(), "pull", "-q", "busybox"]);
    assert_eq!(out.trim(), id);
    assert_eq!(
        p.inspect("busybox")["RepoTags"][0],
        "docker.io/library/busybox:latest"
    );
    // A config with unknown keys is refused clearly.
    std::fs::write(&cfg, "mirror = 1\n").unwrap();
    let o = p.run(&["--config", cfg.to_str().unwrap(), "images"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("bad config"), "{}", stderr(&o));
}

#[test]
fn pull_progress_plain_in_logs_and_bars_on_a_terminal() {
    let reg = Registry::start(None);
    let s = Strata::new();
    s.busybox();
    let dest = format!("{}/progress/busybox:1", reg.addr);
    s.ok(&["push", "busybox", &dest]);
    // Not a terminal: one line per event.
    let p = Strata::new();
    let o = p.run(&["pull", &dest]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("Copying config") && e.contains("Copying blob "),
        "{e}"
    );
    assert!(
        e.lines()
            .any(|l| l.starts_with("Copying blob ") && l.contains(" done (")),
        "{e}"
    );
    assert!(e.contains("Writing manifest"), "{e}");
    // A terminal (script(1)): bars, and the same result.
    let t = Strata::new();
    let line = format!(
        "DOCKER_CONFIG={} {BIN} --root {} pull {dest}",
        t.dir.path().join("docker").display(),
        t.dir.path().join("store").display()
    );
    let o = Command::new("script")
        .args(["-qefc", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("blob ") && out.contains('='),
        "no progress bar drawn: {out}"
    );
    assert!(t.ok(&["images", "-q"]).trim().len() == 12);
}

#[test]
fn push_to_another_repository_mounts_blobs() {
    let reg = Registry::start(None);
    let s = Strata::new();
    s.busybox();
    // Progress goes to stderr as plain lines when it is not a terminal.
    let o = s.run(&["push", "busybox", &format!("{}/team-a/busybox:1", reg.addr)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("Copying blob ") && e.contains(" done ("), "{e}");
    assert!(
        e.contains("Copying config ") && e.contains("Writing manifest"),
        "{e}"
    );
    let log = || std::fs::read_to_string(reg._dir.path().join("log")).unwrap();
    let puts = |l: &str| {
        l.lines()
            .filter(|x| x.contains("http.request.method=PUT") && x.contains("/blobs/uploads/"))
            .count()
    };
    let before = puts(&log());
    assert!(
        before >= 2,
        "first push uploads layer and config: {}",
        log()
    );
    let o = s.run(&["push", "busybox", &format!("{}/team-b/busybox:1", reg.addr)]);
    assert!(
        stderr(&o).contains("skipped: mounted from team-a/busybox"),
        "{}",
        stderr(&o)
    );
    // -q: nothing on stderr but the result on stdout.
    let o = s.run(&[
        "push",
        "-q",
        "busybox",
        &format!("{}/team-b/busybox:1", reg.addr),
    ]);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    let l = log();
    let mounts = l
        .lines()
        .filter(|x| {
            x.contains("\"POST /v2/team-b/busybox/blobs/uploads/?mount=")
                && x.contains("from=team-a%2Fbusybox")
        })
        .filter(|x| x.contains("\" 201 "))
        .count();
    assert_eq!(mounts, 2, "layer and config mounted from team-a");
    assert_eq!(puts(&l), before, "the second push uploaded blob data");
    let o = skopeo_inspect(&format!("{}/team-b/busybox:1", reg.addr));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn large_blobs_go_up_in_chunks_and_podman_pulls_the_result() {
    let reg = Registry::start(None);
    let s = Strata::new();
    s.busybox();
    let cfg = s.dir.path().join("strata.toml");
    std::fs::write(&cfg, "chunked_upload_above = 100000\n").unwrap();
    let dest = format!("{}/chunked/busybox:1", reg.addr);
    s.ok(&["--config", cfg.to_str().unwrap(), "push", "busybox", &dest]);
    let log = std::fs::read_to_string(reg._dir.path().join("log")).unwrap();
    assert!(
        log.contains("\"PATCH /v2/chunked/busybox/blobs/uploads/"),
        "no chunked upload: {log}"
    );
    // podman reads what strata pushed.
    let pm = |args: &[&str]| {
        Command::new("podman")
            .arg("--root")
            .arg(s.dir.path().join("podman"))
            .arg("--runroot")
            .arg(s.dir.path().join("podman-run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = pm(&["pull", "--tls-verify=false", &dest]);
    assert!(o.status.success(), "podman pull: {}", stderr(&o));
    let _ = pm(&["system", "reset", "-f"]);
}

#[test]
fn credentials_from_a_docker_credential_helper() {
    let reg = Registry::start(Some(("carol", "pw-from-helper")));
    let s = Strata::new();
    s.busybox();
    // A helper on PATH, named in credHelpers for this registry.
    let bin = s.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-strata-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread host\n[ \"$1\" = get ] && [ \"$host\" = \"{}\" ] && echo '{{\"ServerURL\":\"'$host'\",\"Username\":\"carol\",\"Secret\":\"pw-from-helper\"}}' && exit 0\necho 'credentials not found in native keychain'; exit 1\n",
            reg.addr
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(s.dir.path().join("docker")).unwrap();
    std::fs::write(
        s.dir.path().join("docker/config.json"),
        format!("{{\"credHelpers\": {{\"{}\": \"strata-test\"}}}}", reg.addr),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = s
        .cmd(&["push", "busybox", &format!("{}/carol/busybox:1", reg.addr)])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "push with helper credentials: {}",
        stderr(&o)
    );
}

#[test]
fn run_pulls_a_missing_image_through_the_registry_client() {
    let reg = Registry::start(None);
    let s = Strata::new();
    s.busybox();
    let dest = format!("{}/apps/busybox:1", reg.addr);
    s.ok(&["push", "-q", "busybox", &dest]);
    let fresh = Strata::new();
    // --pull never refuses an image that is not here.
    let o = fresh.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--pull",
        "never",
        &dest,
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("not known locally"), "{}", stderr(&o));
    // missing (the default): pulled, then run.
    let out = fresh.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &dest,
        "echo",
        "pulled and ran",
    ]);
    assert_eq!(out, "pulled and ran\n");
    assert!(fresh.ok(&["images"]).contains("apps/busybox"));
    // always: pulls again even though it is here.
    let log = || std::fs::read_to_string(reg._dir.path().join("log")).unwrap();
    let manifests = |l: &str| l.matches("GET /v2/apps/busybox/manifests/1").count();
    let before = manifests(&log());
    fresh.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--pull",
        "always",
        &dest,
        "true",
    ]);
    assert!(manifests(&log()) > before);
}

#[test]
fn second_pull_fetches_no_blobs() {
    let reg = Registry::start(None);
    let s = Strata::new();
    s.busybox();
    let dest = format!("{}/again/busybox:1", reg.addr);
    s.ok(&["push", "busybox", &dest]);
    let p = Strata::new();
    p.ok(&["pull", "-q", &dest]);
    let log = || std::fs::read_to_string(reg._dir.path().join("log")).unwrap();
    let blob_gets = |l: &str| {
        l.lines()
            .filter(|x| x.contains("\"GET /v2/again/busybox/blobs/"))
            .count()
    };
    let before = blob_gets(&log());
    assert!(before >= 2, "first pull fetched layer and config");
    p.ok(&["pull", "-q", &dest]);
    assert_eq!(
        blob_gets(&log()),
        before,
        "layers already present were fetched again"
    );
}

/// A network namespace of the test's own, with a non-loopback address on
/// its `lo`, so a registry there is "remote" by Docker's rule.
struct Netns {
    name: String,
}

impl Netns {
    fn new(addr: &str) -> Netns {
        let name = format!("strata-reg-{}", std::process::id());
        let ip = |args: &[&str]| {
            let o = Command::new("ip").args(args).output().expect("iproute2");
            assert!(o.status.success(), "ip {args:?}: {}", stderr(&o));
        };
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ip(&["-n", &ns.name, "addr", "add", addr, "dev", "lo"]);
        ns
    }
    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn insecure_registries_from_strata_toml_speak_plain_http() {
    let ns = Netns::new("10.254.77.1/32");
    let reg_addr = "10.254.77.1:5000";
    let dir = tempfile::Builder::new()
        .prefix("strata-insecure-")
        .tempdir()
        .unwrap();
    std::fs::write(
        dir.path().join("config.yml"),
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {reg_addr}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = ns
        .cmd("docker-registry")
        .arg("serve")
        .arg(dir.path().join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _kill = Kill(&mut child);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ns
        .cmd("bash")
        .args([
            "-c",
            &format!("exec 3<>/dev/tcp/{}", reg_addr.replace(':', "/")),
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < deadline, "registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = Strata::new();
    let id = s.busybox();
    let strata = |cfg: Option<&Path>, args: &[&str]| {
        let mut c = ns.cmd(BIN);
        c.arg("--root").arg(s.dir.path().join("store"));
        if let Some(cfg) = cfg {
            c.arg("--config").arg(cfg);
        } else {
            c.arg("--config").arg(s.dir.path().join("none.toml"));
        }
        c.args(args)
            .env("DOCKER_CONFIG", s.dir.path().join("docker"));
        c.stdin(Stdio::null()).output().unwrap()
    };
    let dest = format!("{reg_addr}/lan/busybox:1");
    // Not local by Docker's rule: HTTPS is required and fails.
    let o = strata(None, &["push", "-q", "busybox", &dest]);
    assert!(!o.status.success());
    assert_eq!(o.status.code(), Some(125));
    let e = stderr(&o);
    assert!(
        e.contains(reg_addr) && e.contains("insecure_registries"),
        "{e}"
    );
    // Listed as insecure: plain HTTP both ways.
    let cfg = s.dir.path().join("strata.toml");
    std::fs::write(&cfg, format!("insecure_registries = [\"{reg_addr}\"]\n")).unwrap();
    let o = strata(Some(&cfg), &["push", "-q", "busybox", &dest]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = strata(Some(&cfg), &["rmi", "busybox"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = strata(Some(&cfg), &["pull", "-q", &dest]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id);
}

/// examples/ci/pipeline.sh against a registry of ours: it publishes an
/// image that skopeo sees, a clean store runs it, and a failing test step
/// fails the pipeline with that step's status before anything is pushed.
#[test]
fn ci_pipeline_example_publishes_and_deploys() {
    let reg = Registry::start(None);
    let work = tempfile::tempdir().unwrap();
    let pipeline = |build_id: &str, test_cmd: Option<&str>| {
        let mut c = Command::new("bash");
        c.arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/ci/pipeline.sh"
        ))
        .env("STRATA", BIN)
        .env("REGISTRY", &reg.addr)
        .env("BUILD_ID", build_id)
        .env("WORK", work.path().join(build_id))
        .env("DOCKER_CONFIG", work.path().join("docker"))
        .stdin(Stdio::null());
        if let Some(t) = test_cmd {
            c.env("TEST_CMD", t);
        }
        c.output().unwrap()
    };
    let o = pipeline("b1", None);
    let log = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{log}{}", stderr(&o));
    let image = format!("{}/ci/hello:b1", reg.addr);
    assert!(
        log.contains(&format!("pipeline: ok ({image}, image sha256:")),
        "{log}"
    );
    let seen = skopeo_inspect(&image);
    assert!(seen.status.success(), "skopeo: {}", stderr(&seen));
    assert!(work.path().join("b1/hello.tar").metadata().unwrap().len() > 1 << 20);
    // A failing test step: its exit status, and no publish.
    let o = pipeline("b2", Some("echo failing; exit 3"));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let log = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        log.contains("failing") && !log.contains("--- publish"),
        "{log}"
    );
    let missing = skopeo_inspect(&format!("{}/ci/hello:b2", reg.addr));
    assert!(!missing.status.success());
}

/// `build --cache-to type=registry` from one store, `--cache-from` in a
/// fresh one (the CI runner case): the second build runs no step. The
/// cache is an OCI manifest the registry and skopeo take as any other.
#[test]
fn build_cache_shared_through_the_registry() {
    let reg = Registry::start(None);
    let a = Strata::new();
    a.busybox();
    let base = format!("{}/lib/base:1", reg.addr);
    a.ok(&["push", "busybox", &base]);
    let ctx = a.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base}\nCOPY a.txt /a.txt\nRUN cat /proc/sys/kernel/random/uuid > /stamp\nCMD [\"cat\", \"/stamp\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(ctx.join("a.txt"), "one").unwrap();
    let cache = format!("{}/lib/app:buildcache", reg.addr);
    let build = |s: &Strata, extra: &[&str]| {
        let mut args = vec!["build", "--progress", "plain", "-t", "app"];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        let o = s.run(&args);
        assert!(o.status.success(), "build: {}", stderr(&o));
        stderr(&o)
    };
    let first = build(&a, &["--cache-to", &format!("type=registry,ref={cache}")]);
    assert!(first.contains("exporting cache"), "{first}");
    let made = a.ok(&["run", "--rm", "app"]);
    // The registry holds it as an OCI manifest with our config type.
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{cache}"))
        .output()
        .unwrap();
    assert!(raw.status.success(), "{}", stderr(&raw));
    let m: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.strata.build.cache.config.v1+json"
    );
    assert_eq!(m["layers"].as_array().unwrap().len(), 2);
    // A fresh store: the base is pulled, both layer steps come from the
    // registry's cache, and the image has the first store's layers.
    let b = Strata::new();
    let hit = build(&b, &["--cache-from", &format!("type=registry,ref={cache}")]);
    assert_eq!(hit.matches("CACHED").count(), 2, "{hit}");
    assert_eq!(b.ok(&["run", "--rm", "app"]), made);
    assert!(b.ok(&["system", "check"]).contains("consistent"));
    // A cache ref that is not there: a warning, and the steps run.
    let c = Strata::new();
    let miss = build(
        &c,
        &["--cache-from", &format!("{}/lib/nope:cache", reg.addr)],
    );
    assert!(miss.contains("[Warning] importing cache"), "{miss}");
    assert_eq!(miss.matches("CACHED").count(), 0, "{miss}");
    // An image that is not a cache is refused as one, by name.
    let d = Strata::new();
    let wrong = build(&d, &["--cache-from", &base]);
    assert!(wrong.contains("not a strata build cache"), "{wrong}");
}
