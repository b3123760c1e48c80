//! The rootless engine, end to end: a login user with subordinate id
//! ranges (made here, as Debian's useradd makes them) runs strata through
//! `runuser`, with its own XDG dirs in a temp dir. What is checked:
//! the id mapping and file owners inside, the owners on the host, the
//! container verbs, a killed pause process, and the clear refusals.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{BIN, err, free_port, out};

const USER: &str = "strata-rl";
const UNRANGED: &str = "strata-rl-none";

/// `id -u NAME`, making the user when missing (with `ranges`, Debian's
/// useradd gives it a subordinate range; without, it is taken away).
fn user(name: &str, ranges: bool) -> (u32, u32) {
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id").args([flag, name]).output().ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        let _ = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", name])
            .status();
    }
    let has = |f: &str| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(&format!("{name}:")))
    };
    if ranges && !(has("/etc/subuid") && has("/etc/subgid")) {
        assert!(
            Command::new("usermod")
                .args([
                    "--add-subuids",
                    "400000-465535",
                    "--add-subgids",
                    "400000-465535",
                    name
                ])
                .status()
                .unwrap()
                .success()
        );
    }
    if !ranges {
        for f in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let kept: String = text
                .lines()
                .filter(|l| !l.starts_with(&format!("{name}:")))
                .map(|l| format!("{l}\n"))
                .collect();
            if kept != text {
                std::fs::write(f, kept).unwrap();
            }
        }
    }
    (id("-u").unwrap(), id("-g").unwrap())
}

/// One rootless user's strata: binaries copied where the user may run
/// them, XDG dirs of its own (so a pause process and store per test).
struct Rootless {
    user: &'static str,
    uid: u32,
    dir: tempfile::TempDir,
}

impl Rootless {
    fn new(user_name: &'static str, ranges: bool) -> Rootless {
        let (uid, gid) = user(user_name, ranges);
        let dir = tempfile::Builder::new()
            .prefix("strata-rootless")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for b in ["strata", "strata-monitor"] {
            let from = Path::new(BIN).with_file_name(b);
            std::fs::copy(&from, bin.join(b)).unwrap();
        }
        for d in ["data", "run"] {
            let p = dir.path().join(d);
            std::fs::create_dir(&p).unwrap();
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        Rootless {
            user: user_name,
            uid,
            dir,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", self.user, "--"])
            .arg(self.strata())
            .args(args)
            .stdin(Stdio::null());
        self.user_env(&mut c);
        c
    }

    /// The strata binary the user runs.
    fn strata(&self) -> PathBuf {
        self.dir.path().join("bin/strata")
    }

    /// The user's XDG dirs for `c`, which runs strata as the user from
    /// outside its namespace.
    fn user_env<'a>(&self, c: &'a mut Command) -> &'a mut Command {
        c.env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env_remove("_STRATA_ROOTLESS")
    }

    /// `ARGS` (a mount, say) run as root in the user's mount namespace.
    fn in_mount_ns(&self, args: &[&str]) {
        let pause = self.pause_pid().expect("a pause process").to_string();
        let st = Command::new("nsenter")
            .args(["-m", "-t", &pause])
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "nsenter {args:?}");
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "strata {args:?} as {}: {}",
            self.user,
            err(&o)
        );
        out(&o)
    }

    /// `run -d --name NAME --network none ARGS`, required to succeed.
    fn run_detached(&self, name: &str, args: &[&str]) -> String {
        self.ok(&[&["run", "-d", "--name", name, "--network", "none"], args].concat())
    }

    /// `run --rm --network none ARGS`, required to succeed; stdout.
    fn run_none(&self, args: &[&str]) -> String {
        self.ok(&[&["run", "--rm", "--network", "none"], args].concat())
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("data/strata")
    }

    fn pause_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join("run/strata/pause.pid"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// A tarball the user can read: a busybox rootfs, files of three
    /// owners under /data, and a device node (which rootless skips).
    fn image_tar(&self) -> PathBuf {
        let rootfs = common::busybox_rootfs(self.dir.path());
        std::fs::create_dir_all(rootfs.join("data")).unwrap();
        for (name, owner) in [("app", 1000), ("www", 33), ("nobody", 65534)] {
            let p = rootfs.join("data").join(name);
            std::fs::write(&p, name).unwrap();
            std::os::unix::fs::chown(&p, Some(owner), Some(owner)).unwrap();
        }
        std::fs::create_dir_all(rootfs.join("dev")).unwrap();
        assert!(
            Command::new("mknod")
                .arg(rootfs.join("dev/sda"))
                .args(["b", "8", "0"])
                .status()
                .unwrap()
                .success()
        );
        let tar = self.dir.path().join("image.tar");
        assert!(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .args(["--numeric-owner", "-cf"])
                .arg(&tar)
                .arg(".")
                .status()
                .unwrap()
                .success()
        );
        std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
        tar
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        let _ = self
            .cmd(&["rm", "-f", "web"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // The user's processes that outlive a pause process: pastas
        // (the user networks' uplink) and port proxies.
        let mut pids: Vec<i32> = self.pause_pid().into_iter().collect();
        for d in ["pasta", "port-proxy"] {
            for f in std::fs::read_dir(self.dir.path().join("run/strata").join(d))
                .into_iter()
                .flatten()
                .flatten()
            {
                let text = std::fs::read_to_string(f.path()).unwrap_or_default();
                pids.extend(
                    text.split_whitespace()
                        .next()
                        .and_then(|p| p.parse::<i32>().ok()),
                );
            }
        }
        for pid in pids.into_iter().filter(|p| *p > 1) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// `GET /` on the host's loopback; the body.
fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    for _ in 0..50 {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = c.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut buf = String::new();
            let _ = c.read_to_string(&mut buf);
            if let Some((_, body)) = buf.split_once("\r\n\r\n") {
                return body.to_string();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("nothing answered on 127.0.0.1:{port}");
}

/// A network namespace with a web server, wired to the host by a veth
/// pair (10.203.77.0/24), removed when dropped. One at a time: tests
/// that run at once take turns.
struct OuterNet {
    server: std::process::Child,
    _turn: std::sync::MutexGuard<'static, ()>,
}

static OUTER_NET: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl OuterNet {
    const NS: &'static str = "strata-rl-outer";
    const ADDR: &'static str = "10.203.77.2";

    fn start(www: &Path) -> OuterNet {
        let turn = OUTER_NET.lock().unwrap_or_else(|e| e.into_inner());
        let ip = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        let _ = Command::new("ip").args(["netns", "del", Self::NS]).status();
        let _ = Command::new("ip")
            .args(["link", "del", "rlouter0"])
            .status();
        ip(&["netns", "add", Self::NS]);
        ip(&[
            "link",
            "add",
            "rlouter0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            Self::NS,
        ]);
        ip(&["addr", "add", "10.203.77.1/24", "dev", "rlouter0"]);
        ip(&["link", "set", "rlouter0", "up"]);
        let inside = |args: &[&str]| {
            let mut a = vec!["netns", "exec", Self::NS, "ip"];
            a.extend_from_slice(args);
            ip(&a);
        };
        inside(&["addr", "add", &format!("{}/24", Self::ADDR), "dev", "eth0"]);
        inside(&["link", "set", "eth0", "up"]);
        inside(&["link", "set", "lo", "up"]);
        let server = Command::new("ip")
            .args(["netns", "exec", Self::NS, "busybox", "httpd", "-f", "-p"])
            .arg(format!("{}:8080", Self::ADDR))
            .arg("-h")
            .arg(www)
            .spawn()
            .unwrap();
        for _ in 0..50 {
            let up = Command::new("ip")
                .args(["netns", "exec", Self::NS, "sh", "-c"])
                .arg("grep -q ':1F90 ' /proc/net/tcp")
                .status()
                .is_ok_and(|s| s.success());
            if up {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        OuterNet {
            server,
            _turn: turn,
        }
    }

    /// `wget -qO- URL` from inside the namespace: what another machine
    /// on the host's network would get.
    fn fetch(url: &str) -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", Self::NS, "busybox", "wget", "-qO-", url])
            .output()
            .unwrap();
        assert!(o.status.success(), "wget {url} from outside: {}", err(&o));
        out(&o)
    }
}

impl Drop for OuterNet {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip").args(["netns", "del", Self::NS]).status();
        let _ = Command::new("ip")
            .args(["link", "del", "rlouter0"])
            .status();
    }
}

/// The host's default gateway (pasta gives the container the same).
fn host_gateway() -> String {
    let o = Command::new("ip")
        .args(["-4", "route", "show", "default"])
        .output()
        .unwrap();
    out(&o)
        .split_whitespace()
        .skip_while(|w| *w != "via")
        .nth(1)
        .expect("a default route")
        .to_string()
}

/// A DNS server on the host's 127.0.0.1:53 that answers one name with
/// one address, until dropped.
struct Resolver {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Resolver {
    fn start(name: &'static str, addr: [u8; 4]) -> Resolver {
        use simple_dns::rdata::{A, RData};
        use simple_dns::{CLASS, Packet, ResourceRecord};
        let sock = std::net::UdpSocket::bind("127.0.0.1:53")
            .expect("127.0.0.1:53 free for the test resolver");
        sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
            .unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Packet::parse(&buf[..n]) else {
                    continue;
                };
                let mut reply = Packet::new_reply(q.id());
                for question in &q.questions {
                    reply.questions.push(question.clone());
                    if question.qname.to_string() == name
                        && question.qtype == simple_dns::QTYPE::TYPE(simple_dns::TYPE::A)
                    {
                        reply.answers.push(ResourceRecord::new(
                            question.qname.clone(),
                            CLASS::IN,
                            60,
                            RData::A(A {
                                address: u32::from(std::net::Ipv4Addr::from(addr)),
                            }),
                        ));
                    }
                }
                if let Ok(b) = reply.build_bytes_vec() {
                    let _ = sock.send_to(&b, from);
                }
            }
        });
        Resolver {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn subordinate_start(user: &str) -> u32 {
    std::fs::read_to_string("/etc/subuid")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{user}:")))
        .and_then(|r| r.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap()
}

#[test]
fn a_plain_user_runs_containers_with_mapped_owners() {
    let rl = Rootless::new(USER, true);
    let start = subordinate_start(USER);
    let tar = rl.image_tar();
    let tar = tar.to_str().unwrap();
    rl.ok(&["import", tar, "app"]);

    // Inside: root is the user, 1.. the range, and the files keep the
    // owners the image gave them.
    let inside = rl.run_none(&[
        "app",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; ls -ln /data; test -e /dev/sda || echo no-sda",
    ]);
    let lines: Vec<&str> = inside.lines().collect();
    assert_eq!(lines[0], "0", "{inside}");
    let map: Vec<Vec<&str>> = lines[1..3]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        map,
        [
            vec!["0", &rl.uid.to_string()[..], "1"],
            vec!["1", &start.to_string()[..], "65536"]
        ]
    );
    let owner = |name: &str| -> String {
        inside
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .map(|l| l.split_whitespace().nth(2).unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert_eq!(owner("app"), "1000", "{inside}");
    assert_eq!(owner("www"), "33", "{inside}");
    assert_eq!(owner("nobody"), "65534", "{inside}");
    assert!(
        inside.contains("no-sda"),
        "device nodes are skipped: {inside}"
    );

    // On the host: the store is the user's, the layer's files the
    // subordinate ids.
    assert_eq!(std::fs::metadata(rl.store()).unwrap().uid(), rl.uid);
    let found = Command::new("find")
        .arg(rl.store().join("snapshots"))
        .args(["-path", "*/data/app"])
        .output()
        .unwrap();
    let app = out(&found);
    let app = app.lines().next().expect("the unpacked /data/app");
    assert_eq!(std::fs::metadata(app).unwrap().uid(), start + 999);

    // The container verbs.
    rl.run_detached("web", &["app", "sh", "-c", "echo up; exec sleep 300"]);
    assert!(rl.ok(&["ps"]).contains("web"));
    assert_eq!(rl.ok(&["exec", "web", "id", "-u"]).trim(), "0");
    assert_eq!(rl.ok(&["logs", "web"]), "up\n");
    assert!(
        rl.ok(&[
            "run",
            "--rm",
            "--network",
            "host",
            "app",
            "cat",
            "/proc/net/dev"
        ])
        .contains("lo:"),
        "--network host"
    );
    rl.ok(&["stop", "-t", "1", "web"]);
    assert_eq!(
        rl.ok(&["inspect", "--format", "{{.State.Status}}", "web"])
            .trim(),
        "exited"
    );
    rl.ok(&["rm", "web"]);

    // The default network is pasta's: a port published on the host's
    // loopback reaches the container; the container reaches a server on
    // the host through its gateway; nothing stays after rm.
    let tun = std::path::Path::new("/dev/net/tun");
    // Debian's udev makes /dev/net/tun 0666; a static /dev (this kind of
    // host) may have it 0600, and pasta runs as the user.
    std::fs::set_permissions(tun, std::fs::Permissions::from_mode(0o20666)).unwrap();
    let host_port = free_port();
    rl.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("127.0.0.1:{host_port}:80"),
        "app",
        "sh",
        "-c",
        "mkdir -p /www && echo hello-rootless > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    assert_eq!(http_get(host_port).trim(), "hello-rootless");
    let served = rl.dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    std::fs::write(served.join("index.html"), "from-host\n").unwrap();
    let outside = free_port();
    let mut server = Command::new("busybox")
        .args(["httpd", "-f", "-p", &format!("127.0.0.1:{outside}"), "-h"])
        .arg(&served)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let got = rl.ok(&[
        "run",
        "--rm",
        "app",
        "sh",
        "-c",
        &format!("wget -qO- http://$(ip route | awk '/default/{{print $3}}'):{outside}/"),
    ]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(got, "from-host\n");
    // Outbound to a server in a network namespace of the test's own,
    // reached by the host's routes (pasta connects from the host).
    let outer = OuterNet::start(&served);
    let got = rl.ok(&[
        "run",
        "--rm",
        "app",
        "wget",
        "-qO-",
        &format!("http://{}:8080/", OuterNet::ADDR),
    ]);
    drop(outer);
    assert_eq!(got, "from-host\n");
    // DNS through the rootless network: a resolver of the test's on
    // the host's 127.0.0.1:53, named with --dns by the gateway address
    // (pasta carries the gateway to the host's loopback).
    let gateway = host_gateway();
    let resolver = Resolver::start("svc.rootless.test", [10, 1, 2, 3]);
    let got = rl.ok(&[
        "run",
        "--rm",
        "--dns",
        &gateway,
        "app",
        "sh",
        "-c",
        "cat /etc/resolv.conf; nslookup svc.rootless.test",
    ]);
    assert!(got.contains(&format!("nameserver {gateway}")), "{got}");
    assert!(got.contains("10.1.2.3"), "{got}");
    // A host whose resolver sits on its loopback (as systemd-resolved's
    // 127.0.0.53): made so inside the user's mount namespace only, by
    // a bind over /etc/resolv.conf. The container asks pasta's forwarder,
    // which asks the host's resolver: no --dns needed.
    let loopback_conf = rl.dir.path().join("resolv-loopback.conf");
    std::fs::write(&loopback_conf, "nameserver 127.0.0.1\n").unwrap();
    rl.in_mount_ns(&[
        "mount",
        "--bind",
        loopback_conf.to_str().unwrap(),
        "/etc/resolv.conf",
    ]);
    let got = rl.run(&[
        "run",
        "--rm",
        "app",
        "sh",
        "-c",
        "cat /etc/resolv.conf; nslookup svc.rootless.test",
    ]);
    rl.in_mount_ns(&["umount", "/etc/resolv.conf"]);
    drop(resolver);
    let text = out(&got);
    assert!(
        text.contains("nameserver 169.254.1.1"),
        "{text}{}",
        err(&got)
    );
    assert!(text.contains("10.1.2.3"), "{text}{}", err(&got));
    rl.ok(&["rm", "-f", "web"]);
    let pastas = std::fs::read_dir(rl.dir.path().join("run/strata/pasta"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(pastas, 0, "no pasta left after rm");
    // Below net.ipv4.ip_unprivileged_port_start: refused, nothing made.
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse::<u16>()
        .unwrap();
    if low > 1 {
        let o = rl.run(&[
            "run",
            "-d",
            "--name",
            "low",
            "-p",
            &format!("{}:80", low - 1),
            "app",
            "true",
        ]);
        assert_eq!(o.status.code(), Some(125), "{}", err(&o));
        assert!(
            err(&o).contains("ip_unprivileged_port_start"),
            "{}",
            err(&o)
        );
        rl.run(&["rm", "-f", "low"]);
    }
    // `info` tells the mode and the mapping.
    let info = rl.ok(&["info"]);
    assert!(info.contains("Rootless: true"), "{info}");
    assert!(
        info.contains(&format!("UID Map: 0:{}:1 1:{start}:65536", rl.uid)),
        "{info}"
    );
    assert!(info.contains("Network Backend: pasta"), "{info}");

    // Limits need a delegated cgroup; there is none here: one clear
    // error, no container left.
    let o = rl.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--memory",
        "64m",
        "app",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("delegated"), "{}", err(&o));
    assert_eq!(rl.ok(&["ps", "-aq"]), "");

    // A killed pause process is made again; the store works on.
    let pause = rl.pause_pid().expect("a pause process");
    // The lean binary holds the namespaces, not a copy of the CLI.
    let cmdline = std::fs::read(format!("/proc/{pause}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("strata-monitor\0--pause"),
        "{}",
        String::from_utf8_lossy(&cmdline)
    );
    let kill_pause = |pid: i32| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // With a container running, the namespace lives on in its monitor:
    // the next command joins it (exec reaches the container) and leaves
    // a new pause process there.
    rl.run_detached("web", &["app", "sleep", "300"]);
    let user_ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    let before = user_ns(pause);
    kill_pause(pause);
    assert_eq!(rl.ok(&["exec", "web", "cat", "/data/app"]), "app");
    let again = rl.pause_pid().expect("a new pause process");
    assert_ne!(again, pause);
    assert_eq!(user_ns(again), before, "the same namespace, held again");
    rl.ok(&["rm", "-f", "web"]);
    // The same for a container of another store (--root): its monitor
    // is found though the default store has none running.
    let other = rl.dir.path().join("data/other-store");
    let other = other.to_str().unwrap();
    rl.ok(&["--root", other, "import", tar, "app"]);
    rl.ok(&[
        "--root",
        other,
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "none",
        "app",
        "sleep",
        "300",
    ]);
    kill_pause(again);
    assert_eq!(
        rl.ok(&["--root", other, "exec", "web", "cat", "/data/app"]),
        "app"
    );
    let again = rl.pause_pid().expect("a new pause process");
    assert_eq!(user_ns(again), before, "the same namespace, held again");
    rl.ok(&["--root", other, "rm", "-f", "web"]);
    // With nothing running, a new namespace is made; the store works on.
    kill_pause(again);
    assert!(rl.ok(&["images"]).contains("app"));
    let third = rl.pause_pid().expect("a pause process");
    assert_ne!(user_ns(third), before, "a namespace made anew");
    assert_eq!(
        rl.run_none(&["app", "stat", "-c", "%u", "/data/www"])
            .trim(),
        "33"
    );
}

#[test]
fn a_user_without_ranges_gets_one_id_and_a_warning() {
    let rl = Rootless::new(UNRANGED, false);
    let bare = rl.dir.path().join("bare.tar");
    // A busybox image whose files are all root's: that one id is enough.
    let tar = rl.image_tar();
    let o = rl.run(&["import", tar.to_str().unwrap(), "app"]);
    assert!(
        err(&o).contains("no subordinate ids"),
        "the warning: {}",
        err(&o)
    );
    // Files of other owners cannot be unpacked with a single id: the
    // import fails, naming the file, and leaves no image behind.
    assert!(!o.status.success());
    assert!(err(&o).contains("data/"), "{}", err(&o));
    assert_eq!(rl.ok(&["images", "-q"]), "");
    // Without the other owners it imports and runs, as root inside.
    let rootfs = rl.dir.path().join("rootfs");
    std::fs::remove_dir_all(rootfs.join("data")).unwrap();
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .args(["--numeric-owner", "--exclude=./dev/sda", "-cf"])
            .arg(&bare)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    std::fs::set_permissions(&bare, std::fs::Permissions::from_mode(0o644)).unwrap();
    rl.ok(&["import", bare.to_str().unwrap(), "app"]);
    let inside = rl.run_none(&["app", "cat", "/proc/self/uid_map"]);
    let map: Vec<&str> = inside.split_whitespace().collect();
    assert_eq!(map, ["0", &rl.uid.to_string()[..], "1"]);
}

#[test]
fn a_missing_newuidmap_or_an_unusable_tun_is_one_clear_error_each() {
    let rl = Rootless::new(USER, true);
    // No newuidmap (the uidmap package missing: in a mount namespace of
    // the test's own, /dev/null is bound over it): the first command
    // says so, and no pause process or namespace is made.
    let o = rl
        .user_env(
            Command::new("unshare")
                .args(["-m", "--", "sh", "-c"])
                .arg("mount --bind /dev/null /usr/bin/newuidmap && exec runuser -u \"$0\" -- \"$1\" images")
                .arg(USER)
                .arg(rl.strata()),
        )
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        err(&o).contains("newuidmap not found") && err(&o).contains("uidmap package"),
        "{}",
        err(&o)
    );
    assert_eq!(rl.pause_pid(), None, "no pause process made");
    // With it, the same command works.
    let tar = rl.image_tar();
    rl.ok(&["import", tar.to_str().unwrap(), "app"]);

    // A /dev/net/tun the user may not open (a 0600 file bound over it in
    // the user's mount namespace only): the default network is refused
    // with the reason and the way out, no container is left, and
    // --network none still runs.
    let fake = rl.dir.path().join("tun-0600");
    std::fs::write(&fake, "").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o600)).unwrap();
    rl.in_mount_ns(&["mount", "--bind", fake.to_str().unwrap(), "/dev/net/tun"]);
    let o = rl.run(&["run", "--rm", "app", "true"]);
    let listed = rl.ok(&["ps", "-aq"]);
    let none = rl.run(&["run", "--rm", "--network", "none", "app", "echo", "ok"]);
    rl.in_mount_ns(&["umount", "/dev/net/tun"]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(
        err(&o).contains("/dev/net/tun") && err(&o).contains("--network none"),
        "{}",
        err(&o)
    );
    assert_eq!(listed, "", "no container left");
    assert_eq!(out(&none), "ok\n", "{}", err(&none));
}

/// A cgroup v2 subtree delegated to `uid` as systemd's Delegate=yes
/// does (the directory and its cgroup.procs, cgroup.subtree_control and
/// cgroup.threads the user's), with a `session` child for the user's
/// commands; removed when dropped.
struct Delegated {
    dir: PathBuf,
}

impl Delegated {
    const V2: &'static str = "/sys/fs/cgroup/unified";

    fn new(uid: u32) -> Delegated {
        let dir = Path::new(Self::V2).join(format!("strata-rl-deleg-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        for f in [
            "",
            "cgroup.procs",
            "cgroup.subtree_control",
            "cgroup.threads",
        ] {
            std::os::unix::fs::chown(dir.join(f), Some(uid), None).unwrap();
        }
        let session = dir.join("session");
        std::fs::create_dir(&session).unwrap();
        for f in ["", "cgroup.procs", "cgroup.threads"] {
            std::os::unix::fs::chown(session.join(f), Some(uid), None).unwrap();
        }
        Delegated { dir }
    }

    /// `strata ARGS` as the user, started in the subtree's `session`
    /// (a user's processes must be inside its delegation to move
    /// containers into it), with the runtime told to use the v2 mount
    /// (this host is hybrid).
    fn run(&self, rl: &Rootless, args: &[&str]) -> Output {
        rl.user_env(
            Command::new("sh")
                .arg("-c")
                .arg("echo $$ > \"$0\" && u=$1 b=$2 && shift 2 && exec runuser -u \"$u\" -- \"$b\" \"$@\"")
                .arg(self.dir.join("session/cgroup.procs"))
                .arg(rl.user)
                .arg(rl.strata())
                .args(args)
                .env("STRATA_CGROUP2_ROOT", Self::V2)
                .stdin(Stdio::null()),
        )
        .output()
        .unwrap()
    }

    /// `--cgroup-parent` for it.
    fn parent(&self) -> String {
        format!("/{}", self.dir.file_name().unwrap().to_string_lossy())
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        // Children first; a cgroup goes once its processes have.
        for _ in 0..50 {
            let kids: Vec<PathBuf> = std::fs::read_dir(&self.dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            for k in &kids {
                let _ = std::fs::remove_dir(k);
            }
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

#[test]
fn containers_go_into_a_delegated_cgroup_v2_subtree() {
    let rl = Rootless::new(USER, true);
    let tar = rl.image_tar();
    rl.ok(&["import", tar.to_str().unwrap(), "app"]);
    // The pause process is made outside the delegation; the user's
    // commands below start inside it.
    let _ = rl.pause_pid().expect("a pause process");
    let cg = Delegated::new(rl.uid);
    let parent = cg.parent();
    // `run -d` (with `how` before the verb and after it), the container's
    // v2 cgroup checked from the host, then removed with it.
    let placed = |before: &[&str], after: &[&str]| {
        let args = [
            before,
            &["run", "-d", "--name", "cg", "--network", "none"],
            after,
            &["app", "sleep", "300"],
        ]
        .concat();
        let o = cg.run(&rl, &args);
        assert!(o.status.success(), "{}", err(&o));
        let id = out(&o).trim().to_string();
        let pid = rl.ok(&["inspect", "--format", "{{.State.Pid}}", "cg"]);
        let host_view = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
        assert!(
            host_view.contains(&format!("0::{parent}/{id}\n")),
            "the container's v2 cgroup is in the delegated subtree: {host_view}"
        );
        assert_eq!(
            rl.ok(&["inspect", "--format", "{{.HostConfig.CgroupParent}}", "cg"])
                .trim(),
            parent
        );
        rl.ok(&["rm", "-f", "cg"]);
        assert!(
            !cg.dir.join(&id).exists(),
            "the container's cgroup goes with it"
        );
    };
    placed(&[], &["--cgroup-parent", &parent]);
    // The same parent from strata.toml, as a user sets it once.
    let conf = rl.dir.path().join("strata.toml");
    std::fs::write(&conf, format!("cgroup_parent = \"{parent}\"\n")).unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    placed(&["--config", conf.to_str().unwrap()], &[]);
    // A limit whose controller the delegation does not enable (here:
    // memory, which this hybrid host keeps on v1): one clear error
    // naming the controller and where to enable it; no container left.
    let o = cg.run(
        &rl,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--cgroup-parent",
            &parent,
            "--memory",
            "64m",
            "app",
            "true",
        ],
    );
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(
        err(&o).contains("memory controller is not enabled")
            && err(&o).contains("cgroup.subtree_control"),
        "{}",
        err(&o)
    );
    assert_eq!(rl.ok(&["ps", "-aq"]), "");
    let o = cg.run(
        &rl,
        &["run", "--rm", "--cgroup-parent", "/a/../b", "app", "true"],
    );
    assert!(err(&o).contains("invalid --cgroup-parent"), "{}", err(&o));
}

/// `/dev/net/tun` 0666 (Debian's udev mode; this host's static /dev has
/// 0600), as pasta runs as the user.
fn open_tun() {
    std::fs::set_permissions("/dev/net/tun", std::fs::Permissions::from_mode(0o20666)).unwrap();
}

/// The links and NAT rules of the user's network namespace (empty when
/// it is not there), seen from the user's mount namespace.
fn rootless_netns(rl: &Rootless) -> String {
    let Some(pause) = rl.pause_pid() else {
        return String::new();
    };
    let ns = rl.dir.path().join("run/strata/rootless-netns");
    let o = Command::new("nsenter")
        .args(["-m", "-t", &pause.to_string(), "--", "nsenter"])
        .arg(format!("--net={}", ns.display()))
        .args(["sh", "-c", "ip -o link; iptables -t nat -S POSTROUTING"])
        .output()
        .unwrap();
    out(&o)
}

#[test]
fn a_plain_user_runs_containers_on_user_networks() {
    let rl = Rootless::new(USER, true);
    let tar = rl.image_tar();
    rl.ok(&["import", tar.to_str().unwrap(), "app"]);
    open_tun();
    let serve = |body: &str| {
        format!("mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 80 -h /www")
    };

    // `sh -c SCRIPT` in a new container on rl-net; its output.
    let on_net = |script: &str| {
        rl.ok(&[
            "run",
            "--rm",
            "--network",
            "rl-net",
            "app",
            "sh",
            "-c",
            script,
        ])
    };
    // Two containers on a user network: one finds the other by name and
    // alias, over the bridge in the user's own network namespace.
    rl.ok(&["network", "create", "rl-net"]);
    let subnet = rl.ok(&[
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        "rl-net",
    ]);
    let prefix = subnet.trim().trim_end_matches(".0/24").to_string();
    assert!(prefix.starts_with("10.89."), "{subnet}");
    rl.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "rl-net",
        "--network-alias",
        "database",
        "app",
        "sh",
        "-c",
        &serve("from-db"),
    ]);
    let got = on_net("ip -4 -o addr show eth0; wget -qO- http://db/; wget -qO- http://database/");
    assert!(
        got.contains(&format!("inet {prefix}.")),
        "an address of the network's subnet: {got}"
    );
    assert!(got.ends_with("from-db\nfrom-db\n"), "{got}");
    let ns = rootless_netns(&rl);
    assert!(
        ns.contains("sbr-"),
        "the bridge is in the user's namespace: {ns}"
    );
    assert!(ns.contains("MASQUERADE"), "{ns}");
    let host_links = out(&Command::new("ip").args(["-o", "link"]).output().unwrap());
    assert!(
        !host_links.contains("sbr-"),
        "no bridge on the host: {host_links}"
    );

    // Outbound from the user network: a server in a network namespace
    // of the test's own (through the masquerade rule and pasta).
    let served = rl.dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    std::fs::write(served.join("index.html"), "from-outside\n").unwrap();
    let outer = OuterNet::start(&served);
    let got = rl.ok(&[
        "run",
        "--rm",
        "--network",
        "rl-net",
        "app",
        "wget",
        "-qO-",
        &format!("http://{}:8080/", OuterNet::ADDR),
    ]);
    assert_eq!(got, "from-outside\n");
    // The uplink killed: the next start gives the same namespace a new
    // one; db is still found, the outside still reached.
    let uplink = rl.dir.path().join("run/strata/pasta/rootless-netns.pid");
    let pid: i32 = std::fs::read_to_string(&uplink)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let got = on_net(&format!(
        "wget -qO- http://db/; wget -qO- http://{}:8080/",
        OuterNet::ADDR
    ));
    assert_eq!(got, "from-db\nfrom-outside\n");
    // A second network joined while db runs: db is found there too; the
    // default network (pasta's) is not a bridge to join.
    rl.ok(&["network", "create", "rl-net2"]);
    rl.ok(&["network", "connect", "rl-net2", "db"]);
    let got = rl.ok(&[
        "run",
        "--rm",
        "--network",
        "rl-net2",
        "app",
        "wget",
        "-qO-",
        "http://db/",
    ]);
    assert_eq!(got, "from-db\n");
    let o = rl.run(&["network", "connect", "bridge", "db"]);
    assert!(
        err(&o).contains("rootless: the default network"),
        "{}",
        err(&o)
    );
    rl.ok(&["network", "disconnect", "rl-net2", "db"]);
    rl.ok(&["network", "rm", "rl-net2"]);

    // Published ports: on a user network (the port proxy) and on the
    // default network (pasta), reached on the host's loopback and, from
    // the outer namespace, on the host's non-loopback address.
    let (p_user, p_default) = (free_port(), free_port());
    rl.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "rl-net",
        "-p",
        &format!("{p_user}:80"),
        "app",
        "sh",
        "-c",
        &serve("from-user-net"),
    ]);
    rl.ok(&[
        "run",
        "-d",
        "--name",
        "web2",
        "-p",
        &format!("{p_default}:80"),
        "app",
        "sh",
        "-c",
        &serve("from-pasta"),
    ]);
    assert_eq!(http_get(p_user), "from-user-net\n");
    assert_eq!(http_get(p_default), "from-pasta\n");
    assert_eq!(
        OuterNet::fetch(&format!("http://10.203.77.1:{p_user}/")),
        "from-user-net\n"
    );
    assert_eq!(
        OuterNet::fetch(&format!("http://10.203.77.1:{p_default}/")),
        "from-pasta\n"
    );
    drop(outer);
    // A port already taken: one clear error, the container not running.
    let o = rl.run(&[
        "run",
        "-d",
        "--name",
        "clash",
        "--network",
        "rl-net",
        "-p",
        &format!("{p_user}:80"),
        "app",
        "sleep",
        "30",
    ]);
    assert!(!o.status.success());
    assert!(err(&o).contains(&p_user.to_string()), "{}", err(&o));
    rl.run(&["rm", "-f", "clash"]);

    // Taken down: the proxy with its container; the network refused
    // while in use, then the bridge, the rule and the namespace go.
    rl.ok(&["rm", "-f", "web", "web2"]);
    let proxies = std::fs::read_dir(rl.dir.path().join("run/strata/port-proxy"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(proxies, 0, "no port proxy left after rm");
    assert!(std::net::TcpStream::connect(("127.0.0.1", p_user)).is_err());
    let o = rl.run(&["network", "rm", "rl-net"]);
    assert!(err(&o).contains("active endpoints"), "{}", err(&o));
    rl.ok(&["rm", "-f", "db"]);
    rl.ok(&["network", "rm", "rl-net"]);
    assert_eq!(
        rootless_netns(&rl),
        "",
        "the namespace goes with the last network"
    );
    let pastas = std::fs::read_dir(rl.dir.path().join("run/strata/pasta"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(pastas, 0, "no pasta left");
}

#[test]
fn a_plain_user_builds_commits_pushes_pulls_saves_and_loads() {
    let rl = Rootless::new(USER, true);
    let tar = rl.image_tar();
    rl.ok(&["import", tar.to_str().unwrap(), "busybox"]);
    // build: a RUN step (on pasta's network) that chowns to an id of
    // the subordinate range.
    let ctx = rl.dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo built > /built && touch /owned && chown 1234:1234 /owned\nCMD [\"cat\", \"/built\"]\n",
    )
    .unwrap();
    std::fs::set_permissions(&ctx, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        ctx.join("Dockerfile"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions("/dev/net/tun", std::fs::Permissions::from_mode(0o20666)).unwrap();
    rl.ok(&["build", "-q", "-t", "built", ctx.to_str().unwrap()]);
    assert_eq!(rl.run_none(&["built"]), "built\n");
    assert_eq!(
        rl.run_none(&["built", "stat", "-c", "%u:%g", "/owned"]),
        "1234:1234\n"
    );
    // commit a container's change.
    rl.ok(&[
        "run",
        "--name",
        "c",
        "--network",
        "none",
        "built",
        "sh",
        "-c",
        "echo kept > /kept",
    ]);
    rl.ok(&["commit", "c", "committed"]);
    rl.ok(&["rm", "c"]);
    assert_eq!(rl.run_none(&["committed", "cat", "/kept"]), "kept\n");
    // push, and pull back into an empty store (the same user's, after
    // rmi): owners survive the round trip.
    let reg = common::Registry::start(None);
    let dest = format!("{}/rl/built:1", reg.addr);
    rl.ok(&["push", "built", &dest]);
    rl.ok(&["rmi", "built"]);
    rl.ok(&["pull", "-q", &dest]);
    assert_eq!(
        rl.run_none(&[&dest, "stat", "-c", "%u:%g", "/owned"]),
        "1234:1234\n"
    );
    // save and load.
    let saved = rl.dir.path().join("data/saved.tar");
    rl.ok(&["save", "-o", saved.to_str().unwrap(), "committed"]);
    rl.ok(&["rmi", "committed"]);
    assert!(
        rl.ok(&["load", "-i", saved.to_str().unwrap()])
            .contains("committed")
    );
    assert_eq!(rl.run_none(&["committed", "cat", "/kept"]), "kept\n");
}

#[test]
fn the_same_inside_as_rootless_podman() {
    // Debian's podman, as the same user on the same image: the same id,
    // uid_map and file owners inside. (runc: crun 1.8 refuses this
    // host's hybrid cgroup layout.)
    let rl = Rootless::new(USER, true);
    let tar = rl.image_tar();
    let tar = tar.to_str().unwrap();
    rl.ok(&["import", tar, "app"]);
    let conf = rl.dir.path().join("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let podman = |args: &[&str]| -> Output {
        let d = rl.dir.path().join("data");
        Command::new("runuser")
            .args(["-u", USER, "--", "env"])
            .arg(format!("CONTAINERS_CONF={}", conf.display()))
            .arg(format!(
                "XDG_RUNTIME_DIR={}",
                rl.dir.path().join("run").display()
            ))
            .arg("podman")
            .arg("--root")
            .arg(d.join("podman-root"))
            .arg("--runroot")
            .arg(d.join("podman-run"))
            .args(["--storage-driver", "overlay"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = podman(&["import", tar, "localhost/app"]);
    assert!(o.status.success(), "podman import: {}", err(&o));
    let probe = "id; cat /proc/self/uid_map /proc/self/gid_map; ls -ln /data | sed 1d";
    let ours = rl.run_none(&["app", "sh", "-c", probe]);
    let o = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--runtime",
        "runc",
        "localhost/app",
        "sh",
        "-c",
        probe,
    ]);
    assert!(o.status.success(), "podman run: {}", err(&o));
    // The maps' column widths are the kernel's: compare the numbers.
    let norm = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(norm(&ours), norm(&out(&o)));
    let _ = podman(&["system", "reset", "-f"]);
    // podman's own pause process for this user, under our XDG dir.
    if let Some(pid) = std::fs::read_to_string(rl.dir.path().join("run/libpod/tmp/pause.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[test]
fn fuse_overlayfs_when_asked() {
    let rl = Rootless::new(USER, true);
    let tar = rl.image_tar();
    rl.ok(&["import", tar.to_str().unwrap(), "app"]);
    // Debian's udev makes /dev/fuse 0666; a static /dev may not.
    std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o20666)).unwrap();
    let fuse = [
        "--storage-opt",
        "overlay.mount_program=/usr/bin/fuse-overlayfs",
    ];
    let inside = rl.ok(&[
        &fuse[..],
        &[
            "run", "--rm", "--network", "none", "app", "sh", "-c",
            "grep ' / / ' /proc/self/mountinfo; echo written > /new; cat /new; stat -c %u /data/www",
        ],
    ]
    .concat());
    assert!(inside.contains(" - fuse.fuse-overlayfs "), "{inside}");
    assert!(inside.contains("written\n33\n"), "{inside}");
    assert!(
        rl.ok(&[&fuse[..], &["info"]].concat())
            .contains("Storage Driver: overlay (/usr/bin/fuse-overlayfs)")
    );
    // strata.toml's [storage] says the same.
    let conf = rl.dir.path().join("data/strata.toml");
    std::fs::write(
        &conf,
        "[storage]\nmount_program = \"/usr/bin/fuse-overlayfs\"\n",
    )
    .unwrap();
    let o = rl.ok(&[
        "--config",
        conf.to_str().unwrap(),
        "run",
        "--rm",
        "--network",
        "none",
        "app",
        "grep",
        " / / ",
        "/proc/self/mountinfo",
    ]);
    assert!(o.contains("fuse.fuse-overlayfs"), "{o}");
    // A /dev/fuse the user may not open: one clear error, no container.
    std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o20600)).unwrap();
    let o = rl.run(
        &[
            &fuse[..],
            &["run", "--rm", "--network", "none", "app", "true"],
        ]
        .concat(),
    );
    std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o20666)).unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        err(&o).contains("/dev/fuse must be open to this user"),
        "{}",
        err(&o)
    );
    assert_eq!(rl.ok(&["ps", "-aq"]), "");
    // Bad options: one clear error each.
    let o = rl.run(&["--storage-opt", "overlay.size=1G", "images"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("invalid --storage-opt"), "{}", err(&o));
    let o = rl.run(&[
        "--storage-opt",
        "overlay.mount_program=/nonexistent",
        "images",
    ]);
    assert!(err(&o).contains("/nonexistent not found"), "{}", err(&o));
}
