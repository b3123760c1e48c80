//! End-to-end tests of the container verbs: they drive the `strata`
//! binary on a busybox image made here, each test in a store of its own.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{BIN, Strata, err, free_port, out};

impl Strata {
    /// A store with a `busybox` image imported from Debian's busybox-static.
    fn new() -> Strata {
        let s = Strata::empty("strata-ctr-");
        s.import_busybox();
        s
    }
    fn ps(&self) -> Vec<Value> {
        serde_json::from_str::<Value>(&self.ok(&["ps", "-a", "--format", "json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
    fn inspect(&self, name: &str) -> Value {
        serde_json::from_str::<Value>(&self.ok(&["inspect", name])).unwrap()[0].clone()
    }
    fn containers_dir_entries(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("store/containers"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
    /// Mounts under this store still present on the host.
    fn mounts(&self) -> usize {
        let root = self.dir.path().to_string_lossy().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&root))
            .count()
    }
}

impl Drop for Strata {
    fn drop(&mut self) {
        // Leave nothing running behind a failed test.
        for c in self.ps() {
            let _ = self.run(&["rm", "-f", c["Id"].as_str().unwrap_or("")]);
        }
    }
}

/// Load an image whose config carries `config` (Entrypoint, Cmd, Env,
/// WorkingDir, User, Volumes, ...) over the busybox rootfs, as an OCI
/// layout named `name`.
fn image_with_config(s: &Strata, name: &str, config: Value) -> String {
    use sha2::{Digest, Sha256};
    let lay = s
        .dir
        .path()
        .join(format!("layout-{}", name.replace([':', '/'], "_")));
    std::fs::create_dir_all(lay.join("blobs/sha256")).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let hex = format!("{:x}", Sha256::digest(data));
        std::fs::write(lay.join("blobs/sha256").join(&hex), data).unwrap();
        (format!("sha256:{hex}"), data.len())
    };
    let layer = std::fs::read(s.dir.path().join("rootfs.tar")).unwrap();
    let (ld, ls) = put(&layer);
    let cfg = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": [ld]}
    });
    let (cd, cs) = put(cfg.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}]
    });
    let (md, ms) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
        "annotations": {"org.opencontainers.image.ref.name": name}}]});
    std::fs::write(lay.join("index.json"), index.to_string()).unwrap();
    std::fs::write(lay.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    s.ok(&["load", "-i", lay.to_str().unwrap()]);
    name.to_string()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn foreground_output_and_docker_exit_codes() {
    let s = Strata::new();
    let o = s.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(out(&o), "out\n");
    assert_eq!(err(&o), "err\n");
    let o = s.run(&["run", "--rm", "--network", "none", "busybox", "nosuch"]);
    assert_eq!(o.status.code(), Some(127), "{}", err(&o));
    assert!(err(&o).contains("executable file not found"), "{}", err(&o));
    let o = s.run(&["run", "--rm", "--network", "none", "busybox", "/etc/passwd"]);
    assert_eq!(o.status.code(), Some(126), "{}", err(&o));
    // Killed by a signal: 128+n, relayed by the foreground CLI.
    let mut fg = s
        .cmd(&[
            "run",
            "--rm",
            "--name",
            "fg",
            "--network",
            "none",
            "busybox",
            "sleep",
            "30",
        ])
        .spawn()
        .unwrap();
    wait_for("fg running", || {
        s.ps().iter().any(|c| c["State"] == "running")
    });
    s.ok(&["kill", "fg"]);
    assert_eq!(fg.wait().unwrap().code(), Some(137));
    // Signals to the foreground CLI go to the container.
    let mut fg = s
        .cmd(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 5' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 6];
    fg.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first, b"ready\n");
    Command::new("kill")
        .args(["-TERM", &fg.id().to_string()])
        .status()
        .unwrap();
    let o = fg.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(5));
    assert_eq!(out(&o), "got TERM\n");
    // Every --rm container is gone, with its mounts.
    assert!(s.ps().is_empty());
    assert_eq!(s.containers_dir_entries(), 0);
    assert_eq!(s.mounts(), 0);
}

#[test]
fn detached_lifecycle_ps_logs_exec_stop_rm() {
    let s = Strata::new();
    let id = s.ok(&[
        "run",
        "-d",
        "--name",
        "app",
        "--network",
        "none",
        "--label",
        "tier=web",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; exec sleep 300",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    wait_for("logs", || s.ok(&["logs", "app"]).contains("one"));
    let ps = s.ps();
    assert_eq!(ps.len(), 1);
    let c = &ps[0];
    assert_eq!(c["Id"], id);
    assert_eq!(c["Names"][0], "app");
    assert_eq!(c["Image"], "busybox");
    assert_eq!(c["State"], "running");
    assert!(c["Status"].as_str().unwrap().starts_with("Up"));
    assert!(c["Created"].as_i64().unwrap() > 0);
    assert_eq!(c["Labels"]["tier"], "web");
    // json-file log lines, stderr separate.
    let log = s.inspect("app")["LogPath"].as_str().unwrap().to_string();
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["log"], "one\n");
    assert_eq!(lines[0]["stream"], "stdout");
    assert!(
        lines
            .iter()
            .any(|l| l["stream"] == "stderr" && l["log"] == "two\n")
    );
    let o = s.run(&["logs", "--tail", "1", "-t", "app"]);
    assert!(out(&o).is_empty() || out(&o).contains("one") || err(&o).contains("two"));
    // exec: env, workdir, user, exit code, not-found.
    let o = s.ok(&[
        "exec",
        "-e",
        "X=1",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "app",
        "sh",
        "-c",
        "echo $X; pwd; id -u",
    ]);
    assert_eq!(o, "1\n/tmp\n65534\n");
    assert_eq!(
        s.run(&["exec", "app", "sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    assert_eq!(s.run(&["exec", "app", "nosuch"]).status.code(), Some(127));
    assert!(s.ok(&["top", "app"]).contains("sleep 300"));
    // rm refuses a running container.
    let o = s.run(&["rm", "app"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("is running"), "{}", err(&o));
    s.ok(&["exec", "app", "sh", "-c", "echo kept > /kept"]);
    let merged = s.inspect("app")["GraphDriver"]["Data"]["MergedDir"]
        .as_str()
        .unwrap()
        .to_string();
    let mounted = |p: &str| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(p))
    };
    assert!(mounted(&merged), "the running container's rootfs");
    // sleep as PID 1 ignores SIGTERM: stop falls back to SIGKILL.
    let t = Instant::now();
    s.ok(&["stop", "-t", "1", "app"]);
    assert!(t.elapsed() < Duration::from_secs(8));
    assert!(
        !mounted(&merged),
        "a stopped container's rootfs is unmounted"
    );
    let c = &s.ps()[0];
    assert_eq!(c["State"], "exited");
    assert_eq!(c["ExitCode"], 137);
    assert_eq!(s.ok(&["wait", "app"]).trim(), "137");
    // Logs are kept after exit, and go with the container.
    assert!(s.ok(&["logs", "app"]).contains("one"));
    // start again, kill with a signal, restart.
    s.ok(&["start", "app"]);
    assert_eq!(s.ps()[0]["State"], "running");
    assert_eq!(s.ok(&["exec", "app", "cat", "/kept"]), "kept\n");
    s.ok(&["kill", "-s", "TERM", "app"]);
    s.ok(&["kill", "app"]);
    assert_eq!(s.ok(&["wait", "app"]).trim(), "137");
    s.ok(&["restart", "-t", "1", "app"]);
    assert_eq!(s.ps()[0]["State"], "running");
    s.ok(&["rm", "-f", "app"]);
    assert!(s.ps().is_empty());
    assert!(!Path::new(&log).exists());
    assert_eq!(s.mounts(), 0);
    // container prune removes stopped ones only.
    s.ok(&[
        "create",
        "--name",
        "c1",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    s.ok(&[
        "run",
        "-d",
        "--name",
        "c2",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    s.ok(&["container", "prune"]);
    let names: Vec<String> = s
        .ps()
        .iter()
        .map(|c| c["Names"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["c2"]);
}

#[test]
fn image_config_and_flags_become_the_spec() {
    let s = Strata::new();
    let env_file = s.dir.path().join("env");
    std::fs::write(&env_file, "# comment\nFROM_FILE=yes\n").unwrap();
    let o = s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-e",
        "A=1",
        "--env-file",
        env_file.to_str().unwrap(),
        "-w",
        "/srv/app",
        "-h",
        "box",
        "-u",
        "nobody:nogroup",
        "busybox",
        "sh",
        "-c",
        "echo $A $FROM_FILE $HOSTNAME; pwd; hostname; id -u; id -g",
    ]);
    assert_eq!(o, "1 yes box\n/srv/app\nbox\n65534\n65534\n");
    // --entrypoint replaces the command.
    let o = s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "echo",
        "busybox",
        "hi",
    ]);
    assert_eq!(o, "hi\n");
    // Docker's default capabilities: no SYS_ADMIN; --cap-drop / --cap-add.
    let caps = |extra: &[&str]| -> u64 {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "sh", "-c", "grep CapEff /proc/self/status"]);
        let o = s.ok(&args);
        u64::from_str_radix(o.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let default = caps(&[]);
    assert_eq!(default, 0xa80425fb, "Docker's default set");
    assert_eq!(caps(&["--cap-drop", "CHOWN"]) & 1, 0);
    assert_ne!(caps(&["--cap-add", "SYS_ADMIN"]) & (1 << 21), 0);
    // --privileged: every capability, no seccomp filter.
    let all = caps(&["--privileged"]);
    assert_eq!(all & default, default);
    assert_ne!(all & (1 << 21), 0, "CAP_SYS_ADMIN");
    assert_ne!(all & (1 << 12), 0, "CAP_NET_ADMIN");
    // Exactly the set we hold ourselves, the newest ones (CAP_BPF,
    // CAP_PERFMON, CAP_CHECKPOINT_RESTORE, bits 38 to 40) included.
    let ours = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(all, ours, "{all:x} vs {ours:x}");
    assert_eq!(all >> 37, 0xf, "CAP_AUDIT_READ..CAP_CHECKPOINT_RESTORE");
    s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--privileged",
        "busybox",
        "unshare",
        "-U",
        "true",
    ]);
    // --read-only root.
    let o = s.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--read-only",
        "busybox",
        "touch",
        "/x",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(err(&o).contains("Read-only"), "{}", err(&o));
    // Resources, seen through the container's own cgroup files.
    let o = s.ok(&[
        "run", "--rm", "--network", "none", "--memory", "64m", "--pids-limit", "50", "--cpus",
        "0.5", "busybox", "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    ]);
    assert_eq!(o, format!("{}\n50\n50000\n", 64 << 20));
    // The default seccomp policy refuses unshare; unconfined allows it.
    let o = s.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "unshare",
        "-U",
        "true",
    ]);
    assert_ne!(o.status.code(), Some(0));
    s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "unshare",
        "-U",
        "true",
    ]);
    // no-new-privileges.
    let o = s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "grep",
        "NoNewPrivs",
        "/proc/self/status",
    ]);
    assert!(o.contains("1"), "{o}");
    // --init: tini is PID 1 and runs the command.
    let o = s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--init",
        "busybox",
        "cat",
        "/proc/1/cmdline",
    ]);
    assert!(o.starts_with("/dev/init"), "{o:?}");
    // /proc paths are masked.
    let o = s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "cat",
        "/proc/timer_list",
    ]);
    assert!(o.is_empty());
}

#[test]
fn volumes_bind_named_and_readonly() {
    let s = Strata::new();
    let host = s.dir.path().join("share");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("in.txt"), "from host\n").unwrap();
    let bind = format!("{}:/data", host.display());
    let o = s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "cat /data/in.txt; echo back > /data/out.txt",
    ]);
    assert_eq!(o, "from host\n");
    assert_eq!(
        std::fs::read_to_string(host.join("out.txt")).unwrap(),
        "back\n"
    );
    let ro = format!("{}:/data:ro", host.display());
    let o = s.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &ro,
        "busybox",
        "touch",
        "/data/x",
    ]);
    assert_ne!(o.status.code(), Some(0));
    // A named volume outlives its containers.
    s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "cache:/c",
        "busybox",
        "sh",
        "-c",
        "echo kept > /c/f",
    ]);
    let o = s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--mount",
        "type=volume,source=cache,target=/c,readonly",
        "busybox",
        "cat",
        "/c/f",
    ]);
    assert_eq!(o, "kept\n");
    let o = s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--mount",
        "type=tmpfs,target=/t",
        "busybox",
        "sh",
        "-c",
        "grep ' /t ' /proc/mounts | cut -d' ' -f3",
    ]);
    assert_eq!(o, "tmpfs\n");
    // Bad specs are refused before anything is made.
    for bad in [
        vec!["-v", "/nonexistent/path:/x"],
        vec!["-v", "a:b:c:d"],
        vec!["--mount", "type=nfs,target=/x"],
    ] {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend(bad.iter());
        args.extend(["busybox", "true"]);
        let o = s.run(&args);
        assert_eq!(o.status.code(), Some(125), "{args:?}");
    }
    assert!(s.ps().is_empty());
    assert_eq!(s.containers_dir_entries(), 0);
}

#[test]
fn stdin_and_a_real_pty() {
    let s = Strata::new();
    // -i with a pipe.
    let mut c = s.cmd(&[
        "run",
        "-i",
        "--rm",
        "--network",
        "none",
        "busybox",
        "tr",
        "a-z",
        "A-Z",
    ]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(out(&o), "HELLO\n");
    // -it under script(1): a real terminal on our side, a pty inside.
    let store = s.dir.path().join("store");
    let inner = format!(
        "stty cols 91 rows 17; {BIN} --root {} run -it --rm --network none busybox sh -c 'tty; stty size; read x; echo got:$x'",
        store.display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    stdin.write_all(b"typed\r").unwrap();
    let mut text = String::new();
    let mut so = child.stdout.take().unwrap();
    let t = std::thread::spawn(move || {
        let _ = so.read_to_string(&mut text);
        text
    });
    let status = child.wait().unwrap();
    drop(stdin);
    let text = t.join().unwrap();
    assert!(status.success(), "{text}");
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("17 91"), "window size: {text}");
    assert!(text.contains("got:typed"), "{text}");
}

fn http_get(addr: &str) -> Option<String> {
    http_get_path(addr, "/")
}

fn http_get_path(addr: &str, path: &str) -> Option<String> {
    use std::io::Write;
    let mut c = std::net::TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    c.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    Some(s)
}

/// No NAT rule names the container (portmap's chains carry its id).
fn assert_no_nat_rules(id: &str) {
    let nat = Command::new("iptables")
        .args(["-w", "-t", "nat", "-S"])
        .output()
        .unwrap();
    assert!(
        !out(&nat).contains(&id[..12]),
        "NAT rules left: {}",
        out(&nat)
    );
}

#[test]
fn bridge_publish_and_container_to_container() {
    let s = Strata::new();
    let www = s.dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from httpd\n").unwrap();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let vol = format!("{}:/www:ro", www.display());
    s.ok(&[
        "run", "-d", "--name", "web", "-p", &publish, "-v", &vol, "busybox", "httpd", "-f", "-p",
        "80", "-h", "/www",
    ]);
    let addr = format!("127.0.0.1:{port}");
    wait_for("httpd through -p", || {
        http_get(&addr).is_some_and(|r| r.contains("hello from httpd"))
    });
    assert_eq!(
        s.ok(&["port", "web"]),
        format!("80/tcp -> 127.0.0.1:{port}\n")
    );
    let ip = s.inspect("web")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip.starts_with("10.89.0."), "{ip}");
    // Another container reaches it over the bridge, and has outbound routing.
    let o = s.ok(&[
        "run",
        "--rm",
        "busybox",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{ip}/"),
    ]);
    assert_eq!(o, "hello from httpd\n");
    let o = s.ok(&["run", "--rm", "busybox", "ip", "route"]);
    assert!(o.contains("default via 10.89.0.1"), "{o}");
    // Outbound NAT: one masquerade rule for the bridge's subnet.
    let masq = Command::new("iptables")
        .args([
            "-w",
            "-t",
            "nat",
            "-C",
            "POSTROUTING",
            "-s",
            "10.89.0.0/24",
            "!",
            "-o",
            "strata0",
            "-j",
            "MASQUERADE",
        ])
        .status()
        .unwrap();
    assert!(masq.success(), "no masquerade rule for the bridge");
    // The port is taken: a clear error, nothing made.
    let before = s.containers_dir_entries();
    let o = s.run(&["run", "--rm", "-p", &publish, "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("port is already allocated"), "{}", err(&o));
    assert_eq!(s.containers_dir_entries(), before);
    // --network host sees the host's interfaces; none only loopback.
    let o = s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert_eq!(o.lines().count(), 1, "{o}");
    assert!(o.contains("lo:") && o.contains("UP"), "{o}");
    let o = s.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert!(o.lines().count() > 1, "{o}");
    // After rm nothing of the network stays: no veth in the netns dir, no
    // NAT rule naming the container.
    let id = s.inspect("web")["Id"].as_str().unwrap().to_string();
    s.ok(&["rm", "-f", "web"]);
    assert!(http_get(&addr).is_none_or(|r| !r.contains("hello")));
    assert_no_nat_rules(&id);
    assert!(!s.dir.path().join("store/run/netns").join(&id).exists());
    // Its address went back to the pool.
    assert!(
        !Path::new("/run/strata/ipam/strata").join(&ip).exists(),
        "lease of {ip} kept"
    );
}

#[test]
fn monitor_or_container_sigkilled_ps_tells_the_truth() {
    let s = Strata::new();
    s.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    let state = |name: &str| -> Value {
        let id = s.inspect(name)["Id"].as_str().unwrap().to_string();
        serde_json::from_str(
            &std::fs::read_to_string(
                s.dir
                    .path()
                    .join("store/containers")
                    .join(id)
                    .join("state.json"),
            )
            .unwrap(),
        )
        .unwrap()
    };
    let st = state("a");
    let (monitor, pid) = (
        st["monitor_pid"].as_i64().unwrap(),
        st["pid"].as_i64().unwrap(),
    );
    // The monitor dies: the container keeps running, and ps says so.
    Command::new("kill")
        .args(["-9", &monitor.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.ps()[0]["State"], "running");
    // Then the container dies too: ps notices and cleans up.
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    wait_for("exited", || s.ps()[0]["State"] == "exited");
    assert_eq!(s.ps()[0]["ExitCode"], 255, "status unknown");
    assert!(
        s.inspect("a")["State"]["Error"]
            .as_str()
            .unwrap()
            .contains("monitor")
    );
    // It can be started again, and removed.
    s.ok(&["start", "a"]);
    assert_eq!(s.ps()[0]["State"], "running");
    s.ok(&["rm", "-f", "a"]);
    assert_eq!(s.mounts(), 0);
    // A state from another boot is stale whatever its pids say.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "b",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    let id = s.inspect("b")["Id"].as_str().unwrap().to_string();
    let p = s
        .dir
        .path()
        .join("store/containers")
        .join(&id)
        .join("state.json");
    let mut st: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let real = st.clone();
    st["boot_id"] = "00000000-0000-0000-0000-000000000000".into();
    std::fs::write(&p, st.to_string()).unwrap();
    assert_eq!(s.ps()[0]["State"], "exited");
    // (the real container is still there: kill it by its pid)
    let _ = Command::new("kill")
        .args(["-9", &real["pid"].to_string()])
        .stderr(Stdio::null())
        .status();
    // Its monitor, which a real reboot would have taken too, finishes
    // its clean-up in the container's directory before rm removes it.
    let monitor = format!("/proc/{}", real["monitor_pid"]);
    wait_for("the real monitor to exit", || !Path::new(&monitor).exists());
    s.ok(&["rm", "-f", "b"]);
}

#[test]
fn bad_input_is_one_clear_error_and_nothing_is_made() {
    let s = Strata::new();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "nosuchimage:1", "true"], "nosuchimage"),
        (
            vec!["run", "--pull", "never", "nosuchimage", "true"],
            "not known locally",
        ),
        (
            vec!["run", "--memory", "lots", "busybox", "true"],
            "invalid size",
        ),
        (vec!["run", "--cpus=-1", "busybox", "true"], "--cpus"),
        (
            vec!["run", "--no-such-flag", "busybox", "true"],
            "unexpected argument",
        ),
        (
            vec!["run", "-p", "x:80", "busybox", "true"],
            "invalid publish",
        ),
        (
            vec!["run", "--network", "weird", "busybox", "true"],
            "network weird not found",
        ),
        (
            vec!["run", "--cap-add", "FLY", "busybox", "true"],
            "unknown capability",
        ),
        (
            vec!["run", "--name", "bad name", "busybox", "true"],
            "invalid container name",
        ),
        (
            vec!["run", "-u", "nobody-here", "busybox", "true"],
            "unable to find user",
        ),
        (
            vec!["run", "--stop-signal", "SIGNOPE", "busybox", "true"],
            "stop signal",
        ),
        (vec!["rm", "nosuch"], "no such container"),
        (vec!["stop", "nosuch"], "no such container"),
        (vec!["logs", "nosuch"], "no such container"),
        (vec!["exec", "nosuch", "true"], "no such container"),
    ];
    for (args, want) in &cases {
        let o = s.run(args);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {}", err(&o));
        let e = err(&o);
        assert!(e.contains(want), "{args:?}: {e}");
        let errors = e
            .lines()
            .filter(|l| l.to_lowercase().starts_with("error"))
            .count();
        assert_eq!(errors, 1, "{args:?}: {e}");
    }
    assert!(s.ps().is_empty());
    assert_eq!(s.containers_dir_entries(), 0);
    assert_eq!(s.mounts(), 0);
    // A name in use.
    s.ok(&[
        "create",
        "--name",
        "taken",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    let o = s.run(&[
        "create",
        "--name",
        "taken",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("already in use"), "{}", err(&o));
    assert_eq!(s.ps().len(), 1);
    assert_eq!(s.containers_dir_entries(), 1);
    // inspect knows images too; an unknown name is an error (Docker's
    // exit 1 and words: the others named are still shown).
    assert_eq!(s.inspect("busybox")["Architecture"], "amd64");
    let o = s.run(&["inspect", "nothing-here"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("No such object: nothing-here"),
        "{}",
        err(&o)
    );
    // An image in use by a container is not removed.
    let o = s.run(&["rmi", "busybox"]);
    assert_eq!(o.status.code(), Some(125));
    s.ok(&["rm", "taken"]);
    // A command that is not found fails inside the runtime, after the
    // bridge and the published port were set up: 127, and none of the
    // network is left (netns, NAT rules, lease), then rm leaves nothing.
    let publish = format!("127.0.0.1:{}:80", free_port());
    let o = s.run(&[
        "run", "--name", "nocmd", "-p", &publish, "busybox", "/no/such",
    ]);
    assert_eq!(o.status.code(), Some(127), "{}", err(&o));
    assert!(err(&o).contains("/no/such"), "{}", err(&o));
    // As Docker: the container stays, created, with the code and error.
    let c = s.inspect("nocmd");
    assert_eq!(c["State"]["Status"], "created", "{c}");
    assert_eq!(c["State"]["ExitCode"], 127, "{c}");
    assert!(c["State"]["Error"].as_str().unwrap().contains("/no/such"));
    let id = c["Id"].as_str().unwrap().to_string();
    assert!(!s.dir.path().join("store/run/netns").join(&id).exists());
    assert_no_nat_rules(&id);
    let leases = std::fs::read_dir("/run/strata/ipam/strata")
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .filter(|l| l.contains(&id))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(leases, 0, "a lease names {id}");
    s.ok(&["rm", "nocmd"]);
    assert_eq!(s.containers_dir_entries(), 0);
    // With --rm it goes at once.
    let o = s.run(&["run", "--rm", "busybox", "/no/such"]);
    assert_eq!(o.status.code(), Some(127), "{}", err(&o));
    assert_eq!(s.containers_dir_entries(), 0);
    assert_eq!(s.mounts(), 0);
    s.ok(&["rmi", "busybox"]);
}

#[test]
fn image_config_entrypoint_env_workdir_user_volumes() {
    let s = Strata::new();
    let img = image_with_config(
        &s,
        "localhost/cfg:1",
        serde_json::json!({
            "Entrypoint": ["sh", "-c", "echo $GREETING $0 $1; pwd; id -u; grep ' /data ' /proc/mounts | cut -d' ' -f2", "ep"],
            "Cmd": ["from-cmd"],
            "Env": ["GREETING=hi", "PATH=/usr/local/bin:/usr/bin:/bin"],
            "WorkingDir": "/work/dir",
            "User": "nobody",
            "Volumes": {"/data": {}},
            "Labels": {"org.example.app": "cfg"},
            "StopSignal": "SIGUSR1"
        }),
    );
    // Entrypoint + Cmd, Env, WorkingDir (created), User, Volumes mounted.
    let o = s.ok(&["run", "--name", "c", "--network", "none", &img]);
    assert_eq!(o, "hi ep from-cmd\n/work/dir\n65534\n/data\n");
    // Arguments replace Cmd, not Entrypoint; -e overrides the image's Env.
    let o = s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-e",
        "GREETING=yo",
        &img,
        "argv1",
    ]);
    assert!(o.starts_with("yo ep argv1\n"), "{o}");
    let c = s.inspect("c");
    assert_eq!(c["Config"]["Labels"]["org.example.app"], "cfg");
    assert_eq!(c["Config"]["StopSignal"], "SIGUSR1");
    // The anonymous volume lives in the store and goes with rm -v.
    let vols = || {
        std::fs::read_dir(s.dir.path().join("store/volumes"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    // --rm took its anonymous volume along (as Docker's does); c's stays
    // until rm -v.
    assert_eq!(vols(), 1);
    s.ok(&["rm", "-v", "c"]);
    assert_eq!(vols(), 0);
}

/// A `strata` command on a pty of the test's own (its controlling
/// terminal, as in a real session): the master end, and what it shows.
struct OnPty {
    child: std::process::Child,
    master: std::fs::File,
    rx: std::sync::mpsc::Receiver<String>,
    seen: String,
}

impl OnPty {
    fn spawn(s: &Strata, args: &[&str], rows: u16, cols: u16) -> OnPty {
        use std::os::fd::{AsRawFd, FromRawFd};
        use std::os::unix::process::CommandExt;
        let ws = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&ws), None).unwrap();
        let slave = pty.slave.as_raw_fd();
        let mut c = s.cmd(args);
        c.stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
        // SAFETY: setsid and TIOCSCTTY between fork and exec, on our own
        // pty: the CLI runs in the pty's foreground group.
        unsafe {
            c.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(slave, libc::TIOCSCTTY as _, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = c.spawn().unwrap();
        drop(pty.slave);
        // SAFETY: the master fd is ours; the File takes it over.
        let master = unsafe { std::fs::File::from_raw_fd(pty.master.as_raw_fd()) };
        std::mem::forget(pty.master);
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let mut reader = master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0
                    || tx
                        .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                        .is_err()
                {
                    break;
                }
            }
        });
        OnPty {
            child,
            master,
            rx,
            seen: String::new(),
        }
    }

    fn wait_text(&mut self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.seen.contains(want) {
            assert!(
                Instant::now() < deadline,
                "waiting for {want:?}, saw {:?}",
                self.seen
            );
            if let Ok(t) = self.rx.recv_timeout(Duration::from_millis(100)) {
                self.seen.push_str(&t);
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.master.write_all(bytes).unwrap();
    }

    /// Resize our terminal: the kernel signals the CLI (SIGWINCH).
    fn resize(&self, rows: u16, cols: u16) {
        use std::os::fd::AsRawFd;
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the winsize we pass, on our master fd.
        assert_eq!(
            unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) },
            0
        );
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "no exit: {:?}", self.seen);
            if let Ok(t) = self.rx.recv_timeout(Duration::from_millis(50)) {
                self.seen.push_str(&t);
            }
        }
    }
}

#[test]
fn window_resize_and_ctrl_c_reach_the_container() {
    let s = Strata::new();
    let mut p = OnPty::spawn(
        &s,
        &[
            "run",
            "-it",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "trap 'echo caught-int; exit 7' INT; stty size; read x; stty size; echo ready; sleep 100; echo fell-through",
        ],
        20,
        80,
    );
    p.wait_text("20 80");
    // The CLI tells the monitor, which resizes the container's pty.
    p.resize(33, 120);
    std::thread::sleep(Duration::from_millis(500));
    p.send(b"go\r");
    p.wait_text("33 120");
    // Ctrl-C is a byte through our raw terminal; the container's pty turns
    // it into SIGINT for its foreground group (sleep dies, sh's trap exits
    // 7). One that lands before sh has forked sleep is only noted by sh
    // (sleep would run its 100 s), so it is sent again each second until
    // the CLI exits; the status, not the text, is the proof: a later ^C
    // may flush the trap's output from the container's pty.
    p.wait_text("ready");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = p.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "no exit after ^C: {:?}", p.seen);
        p.send(b"\x03");
        let tick = Instant::now() + Duration::from_secs(1);
        while Instant::now() < tick && p.child.try_wait().unwrap().is_none() {
            if let Ok(t) = p.rx.recv_timeout(Duration::from_millis(50)) {
                p.seen.push_str(&t);
            }
        }
    };
    assert_eq!(status.code(), Some(7), "{}", p.seen);
    assert!(!p.seen.contains("fell-through"), "{}", p.seen);
}

#[test]
fn attach_to_detached_containers_stdin_output_resize_detach() {
    use std::io::Write;
    let s = Strata::new();
    // -di: stdin is a pipe the monitor holds; attach writes into it and
    // gets stdout and stderr apart, from now on only.
    s.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "pipe",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo before; while read l; do echo got:$l; echo err:$l >&2; done",
    ]);
    wait_for("before in the log", || {
        s.ok(&["logs", "pipe"]).contains("before")
    });
    let mut a = s
        .cmd(&["attach", "pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = a.stdin.take().unwrap();
    stdin.write_all(b"hello\n").unwrap();
    let mut stdout = std::io::BufReader::new(a.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "got:hello\n");
    // The end of our input leaves the container's stdin open (Docker's
    // way), so a second line still goes through, then kill ends both.
    stdin.write_all(b"again\n").unwrap();
    drop(stdin);
    line.clear();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "got:again\n");
    s.ok(&["kill", "pipe"]);
    let o = a.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(137));
    assert_eq!(err(&o), "err:hello\nerr:again\n");
    // Logs kept everything, history included.
    let logs = s.run(&["logs", "pipe"]);
    assert_eq!(out(&logs), "before\ngot:hello\ngot:again\n");
    // A stopped container cannot be attached to.
    let o = s.run(&["attach", "pipe"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("start it first"), "{}", err(&o));

    // -dit: a shell on a pty; attach through a terminal of our own, type
    // into it, resize it, and leave with ctrl-p ctrl-q: it keeps running.
    s.ok(&[
        "run",
        "-dit",
        "--name",
        "tty",
        "--network",
        "none",
        "busybox",
        "sh",
    ]);
    let mut p = OnPty::spawn(&s, &["attach", "tty"], 25, 90);
    p.send(b"stty size; echo sum-$((40+2))\r");
    p.wait_text("sum-42");
    assert!(p.seen.contains("25 90"), "{}", p.seen);
    p.resize(40, 132);
    std::thread::sleep(Duration::from_millis(300));
    p.send(b"stty size\r");
    p.wait_text("40 132");
    p.send(b"\x10\x11");
    let st = p.wait_exit();
    assert_eq!(st.code(), Some(0), "{}", p.seen);
    let c = s.inspect("tty");
    assert_eq!(c["State"]["Status"], "running", "{c}");
    // Attach again and end it from inside: attach returns its status.
    let mut p = OnPty::spawn(&s, &["attach", "tty"], 25, 90);
    std::thread::sleep(Duration::from_millis(300));
    p.send(b"exit 9\r");
    assert_eq!(p.wait_exit().code(), Some(9), "{}", p.seen);
}

#[test]
fn exposed_ports_publish_all_and_random_host_ports() {
    let s = Strata::new();
    let img = image_with_config(
        &s,
        "localhost/web:1",
        serde_json::json!({
            "Cmd": ["httpd", "-f", "-p", "80", "-h", "/etc"],
            "ExposedPorts": {"80/tcp": {}},
        }),
    );
    // -P: the image's 80/tcp and --expose 9000/udp on free host ports;
    // -p with no host port: a free one too, on the address given.
    s.ok(&[
        "run",
        "-d",
        "-P",
        "--expose",
        "9000/udp",
        "-p",
        "127.0.0.1::81",
        "--name",
        "web",
        &img,
    ]);
    let ports = s.ok(&["port", "web"]);
    let host_port = |spec: &str, addr: &str| -> u16 {
        let line = ports
            .lines()
            .find(|l| l.starts_with(spec))
            .unwrap_or_else(|| panic!("no {spec} in {ports}"));
        let (a, p) = line
            .rsplit_once(" -> ")
            .unwrap()
            .1
            .rsplit_once(':')
            .unwrap();
        assert_eq!(a, addr, "{line}");
        p.parse().unwrap()
    };
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut r = range.split_whitespace().map(|n| n.parse::<u16>().unwrap());
    let (lo, hi) = (r.next().unwrap(), r.next().unwrap());
    let web = host_port("80/tcp", "0.0.0.0");
    for p in [
        web,
        host_port("9000/udp", "0.0.0.0"),
        host_port("81/tcp", "127.0.0.1"),
    ] {
        assert!((lo..=hi).contains(&p), "{p} outside {lo}-{hi}");
    }
    assert_eq!(ports.lines().count(), 3, "{ports}");
    let c = s.inspect("web");
    let exposed = c["Config"]["ExposedPorts"].as_object().unwrap();
    assert!(
        exposed.contains_key("80/tcp") && exposed.contains_key("9000/udp"),
        "{c}"
    );
    // The randomly published port reaches the server.
    let addr = format!("127.0.0.1:{web}");
    let mut page = None;
    wait_for("httpd through -P", || {
        page = http_get_path(&addr, "/hostname");
        page.is_some()
    });
    let id = c["Id"].as_str().unwrap();
    assert!(page.unwrap().contains(&id[..12]));
    // Bad --expose is a usage error, before anything is made.
    let o = s.run(&["create", "--expose", "80/sctp", &img]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("invalid port \"80/sctp\""), "{}", err(&o));
    s.ok(&["rm", "-f", "web"]);
}

/// The default profile is an allowlist with Docker's capability groups;
/// `--security-opt seccomp=FILE` takes Docker-format profiles, whose
/// includes/excludes are decided by the container's capabilities.
#[test]
fn seccomp_default_allowlist_and_docker_format_profiles() {
    let s = Strata::new();
    let run = |extra: &[&str], cmd: &[&str]| -> Output {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(extra);
        args.push("busybox");
        args.extend_from_slice(cmd);
        s.run(&args)
    };
    // unshare needs no capability for a user namespace, so only the
    // filter refuses it; CAP_SYS_ADMIN's group re-allows it (and clone
    // with namespace flags).
    let o = run(&[], &["unshare", "-U", "true"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("Operation not permitted"), "{}", err(&o));
    let o = run(&["--cap-add", "SYS_ADMIN"], &["unshare", "-U", "true"]);
    assert!(o.status.success(), "{}", err(&o));
    // syslog (dmesg) is CAP_SYSLOG's.
    let o = run(&[], &["dmesg"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("Operation not permitted"), "{}", err(&o));
    let o = run(&["--cap-add", "SYSLOG"], &["sh", "-c", "dmesg | head -1"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(!out(&o).is_empty());
    // Threads (clone3 answers ENOSYS, glibc falls back to clone), pipes,
    // sockets and job control all work under the allowlist.
    let o = run(
        &[],
        &[
            "sh",
            "-c",
            // The listener's stdin stays open (a background job's is
            // /dev/null, whose EOF could end busybox nc before it read).
            "set -e; echo a | cat; (sleep 0.1 &); sleep 3 | nc -l -p 7000 & sleep 0.3; echo ping | nc 127.0.0.1 7000; wait $!",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "a\nping\n");

    // A Docker-format profile of the test's own.
    let profile = s.dir.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                         "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
            "syscalls": [
              {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
               "includes": {"caps": ["CAP_CHOWN"]}},
              {"names": ["unshare"], "action": "SCMP_ACT_ERRNO",
               "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
              {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
               "includes": {"arches": ["s390x"]}}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = run(&["--security-opt", &opt], &["sh", "-c", "pwd; mkdir /x"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(out(&o), "/\n", "getcwd's rule is for s390x only");
    assert!(err(&o).contains("Permission denied"), "{}", err(&o));
    let o = run(
        &["--security-opt", &opt, "--cap-drop", "CHOWN"],
        &["mkdir", "/x"],
    );
    assert!(o.status.success(), "{}", err(&o));
    let o = run(&["--security-opt", &opt], &["unshare", "-U", "true"]);
    assert!(err(&o).contains("Operation not permitted"), "{}", err(&o));
    let o = run(
        &["--security-opt", &opt, "--cap-add", "SYS_ADMIN"],
        &["unshare", "-U", "true"],
    );
    assert!(o.status.success(), "{}", err(&o));

    // A broken profile: one clear error, exit 125, no container.
    std::fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_NOPE"}"#).unwrap();
    let o = run(&["--security-opt", &opt], &["true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("SCMP_ACT_NOPE"), "{}", err(&o));
    assert_eq!(err(&o).trim().lines().count(), 1, "{}", err(&o));
    assert_eq!(s.containers_dir_entries(), 0);
}

/// `--privileged` gets the host's devices (not its console or pts);
/// `--device` adds one node, renamed and with the cgroup access asked for.
#[test]
fn privileged_host_devices_and_device_flag() {
    let s = Strata::new();
    let run = |extra: &[&str], script: &str| -> Output {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "sh", "-c", script]);
        s.run(&args)
    };
    let o = run(&[], "test -e /dev/kmsg || test -e /dev/loop0 || echo none");
    assert_eq!(out(&o), "none\n");
    let o = run(
        &["--privileged"],
        "stat -c '%n %F %t:%T' /dev/kmsg /dev/loop0; readlink /dev/ptmx; \
         test -e /dev/console && echo console; ls /dev/pts | grep -vc ptmx; \
         dd if=/dev/kmsg bs=16k count=1 2>/dev/null | wc -c",
    );
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(lines[0], "/dev/kmsg character special file 1:b");
    assert_eq!(lines[1], "/dev/loop0 block special file 7:0");
    assert_eq!(lines[2], "pts/ptmx", "the container's own ptmx");
    assert_eq!(lines[3], "0", "no host pts, no host console");
    assert_ne!(lines[4], "0", "the host's kernel log is readable");
    // --device: renamed, read-only in the device cgroup; a node made for
    // another device (loop1) stays closed.
    let o = run(
        &["--device", "/dev/loop0:/dev/xda:r"],
        "stat -c '%F %t:%T' /dev/xda; dd if=/dev/xda of=/dev/null count=1 && echo read-ok; \
         dd if=/dev/zero of=/dev/xda count=1 2>&1 | grep -o 'Operation not permitted'; \
         mknod /dev/y b 7 1 && dd if=/dev/y of=/dev/null count=1 2>&1 | grep -o 'Operation not permitted'",
    );
    assert_eq!(
        out(&o),
        "block special file 7:0\nread-ok\nOperation not permitted\nOperation not permitted\n",
        "{}",
        err(&o)
    );
    // Bad --device values: one error, 125, nothing made.
    for bad in ["/etc/passwd", "/dev/null:/dev/x:rwx", "/dev/nope"] {
        let o = run(&["--device", bad], "true");
        assert_eq!(o.status.code(), Some(125), "{bad}");
        assert!(err(&o).contains(bad), "{bad}: {}", err(&o));
        assert_eq!(err(&o).trim().lines().count(), 1, "{}", err(&o));
    }
    assert_eq!(s.containers_dir_entries(), 0);
}

/// The detach keys of a foreground `run -it` (Docker's ctrl-p ctrl-q, or
/// `--detach-keys`): the CLI exits 0 and gives its terminal back, the
/// container runs on, and `attach` finds it.
#[test]
fn detach_keys_leave_a_foreground_run_running() {
    let s = Strata::new();
    // The CLI's exit status, with all it printed taken into `seen`.
    let wait_exit = |p: &mut OnPty| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = p.child.try_wait().unwrap() {
                while let Ok(t) = p.rx.recv_timeout(Duration::from_millis(300)) {
                    p.seen.push_str(&t);
                }
                return st;
            }
            assert!(Instant::now() < deadline, "CLI still running: {:?}", p.seen);
            if let Ok(t) = p.rx.recv_timeout(Duration::from_millis(50)) {
                p.seen.push_str(&t);
            }
        }
    };
    let mut p = OnPty::spawn(
        &s,
        &[
            "run",
            "-it",
            "--name",
            "fg",
            "--network",
            "none",
            "busybox",
            "sh",
        ],
        24,
        80,
    );
    p.send(b"echo one-$((20+22))\r");
    p.wait_text("one-42");
    // ctrl-p alone goes on after the next key; ctrl-p ctrl-q detaches.
    p.send(b"\x10");
    p.send(b"\x10\x11");
    let st = wait_exit(&mut p);
    assert_eq!(st.code(), Some(0), "{}", p.seen);
    assert_eq!(s.inspect("fg")["State"]["Status"], "running");
    // The container kept its shell; output after the detach went to the
    // log only (echo's line is there, and later output is not ours).
    let mut a = OnPty::spawn(&s, &["attach", "fg"], 24, 80);
    std::thread::sleep(Duration::from_millis(300));
    a.send(b"echo two-$((1+1)); exit 5\r");
    let st = wait_exit(&mut a);
    assert_eq!(st.code(), Some(5), "{}", a.seen);
    assert!(a.seen.contains("two-2"), "{}", a.seen);
    while let Ok(t) = p.rx.try_recv() {
        p.seen.push_str(&t);
    }
    assert!(!p.seen.contains("two-2"), "{}", p.seen);
    assert!(s.ok(&["logs", "fg"]).contains("one-42"));
    s.ok(&["rm", "fg"]);

    // Custom keys; the default pair is then plain input.
    let mut p = OnPty::spawn(
        &s,
        &[
            "run",
            "-it",
            "--rm",
            "--detach-keys",
            "ctrl-x,x",
            "--network",
            "none",
            "busybox",
            "sh",
        ],
        24,
        80,
    );
    p.send(b"echo three\r");
    p.wait_text("three");
    p.send(b"\x10\x11\x18x");
    assert_eq!(wait_exit(&mut p).code(), Some(0), "{}", p.seen);
    let ps = s.ps();
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0]["State"], "running");
    s.ok(&["rm", "-f", ps[0]["Id"].as_str().unwrap()]);
    // A bad sequence is refused before anything is made.
    let o = s.run(&["run", "-it", "--detach-keys", "ctrl-", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("detach keys"), "{}", err(&o));
    assert_eq!(s.containers_dir_entries(), 0);
}

/// The monitor is `strata-monitor` when it sits beside `strata` (a small
/// binary), else `strata container-monitor`; both run the container.
#[test]
fn monitor_is_the_lean_binary_or_strata_itself() {
    let s = Strata::new();
    let monitor_exe = |s: &Strata, name: &str| -> (String, String) {
        let id = s.inspect(name)["Id"].as_str().unwrap().to_string();
        let st: Value = serde_json::from_slice(
            &std::fs::read(s.root().join("containers").join(&id).join("state.json")).unwrap(),
        )
        .unwrap();
        let pid = st["monitor_pid"].as_i64().unwrap();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        (
            exe.file_name().unwrap().to_string_lossy().into_owned(),
            String::from_utf8_lossy(&cmdline).replace('\0', " "),
        )
    };
    s.ok(&[
        "run",
        "-d",
        "--name",
        "lean",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    let (exe, _) = monitor_exe(&s, "lean");
    assert_eq!(exe, "strata-monitor");
    assert_eq!(s.ok(&["exec", "lean", "echo", "hi"]), "hi\n");
    // The monitor runs with glibc's allocator tuned for waiting; the
    // container's environment is the image's, without that tuning.
    let id = s.inspect("lean")["Id"].as_str().unwrap().to_string();
    let st: Value = serde_json::from_slice(
        &std::fs::read(s.root().join("containers").join(&id).join("state.json")).unwrap(),
    )
    .unwrap();
    let environ = std::fs::read(format!("/proc/{}/environ", st["monitor_pid"])).unwrap();
    assert!(
        String::from_utf8_lossy(&environ).contains("GLIBC_TUNABLES=glibc.malloc.tcache_count=0"),
        "monitor environ: {}",
        String::from_utf8_lossy(&environ)
    );
    let inside = s.ok(&["exec", "lean", "cat", "/proc/1/environ"]);
    assert!(
        inside.contains("PATH=") && !inside.contains("GLIBC_TUNABLES"),
        "{inside}"
    );
    s.ok(&["rm", "-f", "lean"]);

    // strata alone (no strata-monitor beside it): its own hidden verb.
    let alone = s.dir.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(BIN, alone.join("strata")).unwrap();
    let o = Command::new(alone.join("strata"))
        .arg("--root")
        .arg(s.root())
        .args([
            "run",
            "-d",
            "--name",
            "fat",
            "--network",
            "none",
            "busybox",
            "sleep",
            "60",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let (exe, cmdline) = monitor_exe(&s, "fat");
    assert_eq!(exe, "strata");
    assert!(cmdline.contains("container-monitor"), "{cmdline}");
    assert_eq!(s.ps()[0]["State"], "running");
    s.ok(&["rm", "-f", "fat"]);
}

/// Two free host TCP ports in a row, for a published range.
fn free_port_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

#[test]
fn published_port_ranges_and_udp_reach_the_container() {
    let s = Strata::new();
    let tcp = free_port_pair();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let range = format!("127.0.0.1:{}-{}:80-81", tcp, tcp + 1);
    let udp_publish = format!("127.0.0.1:{udp}:9000/udp");
    // busybox has no UDP server: the host's python3 answers, run from the
    // host's /usr mounted read-only.
    let echo = "import socket\n\
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                s.bind(('0.0.0.0', 9000))\n\
                while True:\n    d, a = s.recvfrom(512)\n    s.sendto(b'echo:' + d, a)\n";
    let script = format!(
        "mkdir /a /b; echo eighty > /a/index.html; echo eighty-one > /b/index.html; \
         httpd -p 80 -h /a; httpd -p 81 -h /b; exec /usr/bin/python3 -c \"{echo}\""
    );
    s.ok(&[
        "run",
        "-d",
        "--name",
        "ranges",
        "-p",
        &range,
        "-p",
        &udp_publish,
        "-v",
        "/usr:/usr:ro",
        "-v",
        "/usr/lib:/lib:ro",
        "-v",
        "/usr/lib64:/lib64:ro",
        "busybox",
        "sh",
        "-c",
        &script,
    ]);
    let ports = s.ok(&["port", "ranges"]);
    for want in [
        format!("80/tcp -> 127.0.0.1:{tcp}"),
        format!("81/tcp -> 127.0.0.1:{}", tcp + 1),
        format!("9000/udp -> 127.0.0.1:{udp}"),
    ] {
        assert!(ports.contains(&want), "{want} not in {ports}");
    }
    // Each host port of the range reaches its own container port.
    for (port, page) in [(tcp, "eighty\n"), (tcp + 1, "eighty-one\n")] {
        let addr = format!("127.0.0.1:{port}");
        wait_for(&format!("httpd through {addr}"), || {
            http_get(&addr).is_some_and(|r| r.ends_with(&format!("\r\n\r\n{page}")))
        });
    }
    // A datagram to the published UDP port comes back from the container.
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    wait_for("the UDP echo through -p", || {
        c.send_to(b"ping", ("127.0.0.1", udp)).unwrap();
        matches!(c.recv(&mut buf), Ok(n) if &buf[..n] == b"echo:ping")
    });
    s.ok(&["rm", "-f", "ranges"]);
    // Removal takes the published ports away.
    let addr = format!("127.0.0.1:{tcp}");
    assert!(http_get(&addr).is_none(), "{addr} still answers after rm");
}
