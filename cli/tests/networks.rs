//! End-to-end tests of user-defined networks: `network create/ls/inspect/
//! rm/prune/connect/disconnect`, containers finding each other by name
//! and alias through the network's DNS server, `--ip`, `--mac-address`,
//! `--add-host`, `--dns*`, `--internal`, Docker's errors, and nothing left
//! behind (bridge, NAT rule, DNS server, leases) after `rm` or a crash.

use std::process::Command;

mod common;
use common::{Strata, err, out};

struct Engine(Strata);

impl Engine {
    fn new() -> Engine {
        let s = Strata::empty("strata-net-");
        s.import_busybox();
        Engine(s)
    }
    fn ok(&self, args: &[&str]) -> String {
        self.0.ok(args)
    }
    /// Exit code, stdout, stderr.
    fn fails(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.0.run(args);
        (o.status.code().unwrap_or(-1), out(&o), err(&o))
    }
    fn inspect(&self, what: &str, format: &str) -> String {
        self.ok(&["inspect", "--format", format, what])
            .trim()
            .to_string()
    }
    fn net_inspect(&self, what: &str, format: &str) -> String {
        self.ok(&["network", "inspect", "--format", format, what])
            .trim()
            .to_string()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Leave nothing running or wired behind a failed test.
        if let Ok(ids) = std::str::from_utf8(&self.0.run(&["ps", "-aq", "--no-trunc"]).stdout) {
            for id in ids.lines() {
                let _ = self.0.run(&["rm", "-f", id]);
            }
        }
        let _ = self.0.run(&["network", "prune", "-f"]);
    }
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

fn masquerade_rule(subnet: &str, bridge: &str) -> bool {
    Command::new("iptables")
        .args([
            "-w",
            "-t",
            "nat",
            "-C",
            "POSTROUTING",
            "-s",
            subnet,
            "!",
            "-o",
        ])
        .args([bridge, "-j", "MASQUERADE"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A web server answering `hello-NAME` on port 80.
fn web(e: &Engine, name: &str, extra: &[&str]) -> String {
    let script = format!(
        "mkdir -p /www && echo hello-{name} > /www/index.html && exec httpd -f -p 80 -h /www"
    );
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", &script]);
    e.ok(&args).trim().to_string()
}

/// The addresses busybox nslookup printed for its query.
fn resolved(nslookup: &str) -> Vec<String> {
    nslookup
        .lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .filter_map(|l| l.strip_prefix("Address: ").map(|a| a.trim().to_string()))
        .collect()
}

#[test]
fn containers_on_a_user_network_find_each_other_by_name_and_alias() {
    let e = Engine::new();
    let id = e.ok(&["network", "create", "--label", "team=a", "appnet"]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    // ls: the built-ins and ours, Docker's table, filters and templates.
    let ls = e.ok(&["network", "ls"]);
    let head: Vec<&str> = ls.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(head, ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]);
    for n in ["bridge", "host", "none", "appnet"] {
        assert!(
            ls.lines().any(|l| l.split_whitespace().nth(1) == Some(n)),
            "{ls}"
        );
    }
    assert_eq!(
        e.ok(&[
            "network",
            "ls",
            "--filter",
            "label=team=a",
            "--format",
            "{{.Name}} {{.Driver}}"
        ]),
        "appnet bridge\n"
    );
    assert_eq!(
        e.ok(&["network", "ls", "-q", "--filter", "name=appnet"]),
        format!("{}\n", &id[..12])
    );
    assert_eq!(
        e.ok(&[
            "network",
            "ls",
            "--filter",
            "type=custom",
            "--format",
            "{{.Name}}"
        ]),
        "appnet\n"
    );
    // inspect: Docker's document, a subnet from the 10.89.x.0/24 pool.
    let subnet = e.net_inspect(
        "appnet",
        "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
    );
    let (net, gw) = subnet.split_once(' ').unwrap();
    assert!(
        net.starts_with("10.89.") && net.ends_with(".0/24"),
        "{subnet}"
    );
    assert_eq!(gw, net.replace(".0/24", ".1"));
    assert_eq!(
        e.net_inspect(&id[..12], "{{.Name}} {{.Driver}} {{.Scope}} {{.Internal}}"),
        "appnet bridge local false"
    );

    let web_id = web(
        &e,
        "web",
        &["--network", "appnet", "--network-alias", "frontend"],
    );
    // The client's resolver is the network's DNS server on the gateway.
    let conf = e.ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(conf.contains(&format!("nameserver {gw}\n")), "{conf}");
    let web_ip = e.inspect(
        "web",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    );
    assert!(web_ip.starts_with(&net.replace(".0/24", ".")), "{web_ip}");
    for name in ["web", "frontend", "WEB", &web_id[..12]] {
        let o = e.ok(&[
            "run",
            "--rm",
            "--network",
            "appnet",
            "busybox",
            "nslookup",
            name,
        ]);
        assert_eq!(resolved(&o), vec![web_ip.clone()], "{name}: {o}");
    }
    // Talking by name (wget resolves through the same server).
    let o = e.ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "wget",
        "-q",
        "-O",
        "-",
        "http://frontend/",
    ]);
    assert_eq!(o, "hello-web\n");
    // A name not on the network is not answered as one.
    let (code, o, _) = e.fails(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "nslookup",
        "nosuch",
    ]);
    assert_ne!(code, 0, "{o}");
    // The default bridge keeps Docker's behaviour: no names.
    let (code, o, _) = e.fails(&["run", "--rm", "busybox", "nslookup", "web"]);
    assert_ne!(code, 0, "{o}");
    // inspect of the network lists the running container.
    assert_eq!(
        e.net_inspect(
            "appnet",
            "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}"
        ),
        format!("web {web_ip}/24")
    );
    // A network in use is not removed (Docker's words, exit 1).
    let (code, _, msg) = e.fails(&["network", "rm", "appnet"]);
    assert_eq!(code, 1);
    assert!(msg.contains("has active endpoints"), "{msg}");

    // A second network with a fixed subnet, a fixed address, and a
    // running container connected to it and off again.
    e.ok(&[
        "network",
        "create",
        "--subnet",
        "192.168.231.0/24",
        "--gateway",
        "192.168.231.254",
        "back",
    ]);
    let o = e.ok(&[
        "run",
        "--rm",
        "--network",
        "back",
        "--ip",
        "192.168.231.9",
        "busybox",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(o.contains("192.168.231.9/24"), "{o}");
    e.ok(&["network", "connect", "--alias", "api", "back", "web"]);
    let o = e.ok(&["exec", "web", "ip", "-4", "-o", "addr"]);
    assert!(o.contains("eth1") && o.contains("192.168.231."), "{o}");
    let back_ip = e.inspect(
        "web",
        "{{(index .NetworkSettings.Networks \"back\").IPAddress}}",
    );
    let o = e.ok(&[
        "run",
        "--rm",
        "--network",
        "back",
        "busybox",
        "nslookup",
        "api",
    ]);
    assert_eq!(resolved(&o), vec![back_ip.clone()], "{o}");
    assert_eq!(
        e.ok(&[
            "ps",
            "--filter",
            "network=back",
            "--format",
            "{{.Names}} {{.Networks}}"
        ]),
        "web appnet,back\n"
    );
    e.ok(&["network", "disconnect", "back", "web"]);
    let o = e.ok(&["exec", "web", "ip", "-4", "-o", "addr"]);
    assert!(!o.contains("eth1"), "{o}");
    let (code, o, _) = e.fails(&[
        "run",
        "--rm",
        "--network",
        "back",
        "busybox",
        "nslookup",
        "api",
    ]);
    assert_ne!(code, 0, "{o}");
    let (code, _, msg) = e.fails(&["network", "disconnect", "back", "web"]);
    assert_ne!(code, 0);
    assert!(msg.contains("is not connected to network back"), "{msg}");

    // rm: nothing left behind (bridge, NAT rule, DNS server, leases).
    let bridge = e.net_inspect(
        "appnet",
        "{{index .Options \"com.docker.network.bridge.name\"}}",
    );
    assert!(link_exists(&bridge), "{bridge}");
    assert!(masquerade_rule(net, &bridge));
    let dns_dir = std::path::Path::new("/run/strata/dns").join(&bridge);
    let pid: i32 = std::fs::read_to_string(dns_dir.join("pid"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    e.ok(&["rm", "-f", "web"]);
    assert_eq!(e.ok(&["network", "rm", "appnet", "back"]), "appnet\nback\n");
    assert!(!link_exists(&bridge));
    assert!(!masquerade_rule(net, &bridge));
    assert!(!dns_dir.exists());
    assert!(
        !std::path::Path::new("/run/strata/ipam")
            .join(&bridge)
            .exists()
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z")),
        "the DNS server {pid} outlived its network"
    );
    assert_eq!(
        e.ok(&[
            "network",
            "ls",
            "--format",
            "{{.Name}}",
            "--filter",
            "type=custom"
        ]),
        ""
    );
}

#[test]
fn network_errors_are_dockers_and_leave_nothing() {
    let e = Engine::new();
    e.ok(&["network", "create", "--subnet", "192.168.232.0/24", "one"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["network", "create", "one"],
            "network with name one already exists",
        ),
        (
            &["network", "create", "bridge"],
            "network with name bridge already exists",
        ),
        (
            &["network", "create", "--subnet", "192.168.232.128/25", "two"],
            "Pool overlaps with other one on this address space",
        ),
        (
            &["network", "create", "--subnet", "10.300.0.0/16", "two"],
            "invalid CIDR address: 10.300.0.0/16",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "192.168.233.0/24",
                "--gateway",
                "10.0.0.1",
                "two",
            ],
            "is not in the subnet",
        ),
        (
            &["network", "create", "--driver", "overlay", "two"],
            "plugin \"overlay\" not found",
        ),
        (&["network", "create", "bad/name"], "invalid network name"),
        (
            &["run", "--network", "nosuch", "busybox", "true"],
            "network nosuch not found",
        ),
        (
            &["run", "--ip", "10.89.0.9", "busybox", "true"],
            "user specified IP address is supported on user defined networks only",
        ),
        (
            &["run", "--network-alias", "x", "busybox", "true"],
            "network-scoped alias is supported only for containers in user defined networks",
        ),
        (
            &[
                "run",
                "--network",
                "one",
                "--ip",
                "10.1.2.3",
                "busybox",
                "true",
            ],
            "no configured subnet contains the IP address 10.1.2.3",
        ),
        (
            &[
                "run",
                "--network",
                "one",
                "--mac-address",
                "zz",
                "busybox",
                "true",
            ],
            "invalid MAC address: zz",
        ),
        (
            &["run", "--add-host", "nocolon", "busybox", "true"],
            "bad format for add-host",
        ),
        (
            &["run", "--dns", "not-an-ip", "busybox", "true"],
            "not-an-ip is not an ip address",
        ),
        (&["network", "rm", "nosuch"], "No such network: nosuch"),
        (&["network", "rm", "bridge"], "pre-defined network"),
        (
            &["network", "inspect", "nosuch"],
            "network nosuch not found",
        ),
    ];
    for (args, want) in cases {
        let (code, _, msg) = e.fails(args);
        assert_ne!(code, 0, "{args:?}");
        assert!(msg.contains(want), "{args:?}: {msg}");
    }
    // Nothing half-made: no container, one network.
    assert_eq!(e.ok(&["ps", "-aq"]), "");
    assert_eq!(
        e.ok(&[
            "network",
            "ls",
            "--format",
            "{{.Name}}",
            "--filter",
            "type=custom"
        ]),
        "one\n"
    );
    // A fixed address is taken once.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "one",
        "--ip",
        "192.168.232.7",
        "busybox",
        "sleep",
        "60",
    ]);
    let (code, _, msg) = e.fails(&[
        "run",
        "--network",
        "one",
        "--ip",
        "192.168.232.7",
        "busybox",
        "true",
    ]);
    assert_ne!(code, 0);
    assert!(msg.contains("Address already in use"), "{msg}");
}

#[test]
fn dns_server_and_leases_survive_crashes() {
    let e = Engine::new();
    e.ok(&["network", "create", "crashnet"]);
    let bridge = e.net_inspect(
        "crashnet",
        "{{index .Options \"com.docker.network.bridge.name\"}}",
    );
    let dns_dir = std::path::Path::new("/run/strata/dns").join(&bridge);
    web(&e, "srv", &["--network", "crashnet"]);
    let ip = e.inspect(
        "srv",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    );
    // The DNS server is killed: the next container to join starts it again.
    let pid = std::fs::read_to_string(dns_dir.join("pid")).unwrap();
    let pid = pid.split_whitespace().next().unwrap();
    assert!(
        Command::new("kill")
            .args(["-9", pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let o = e.ok(&[
        "run",
        "--rm",
        "--network",
        "crashnet",
        "busybox",
        "nslookup",
        "srv",
    ]);
    assert_eq!(resolved(&o), vec![ip.clone()], "{o}");
    // The container and its monitor die unobserved: the next command
    // that looks tidies its names and address away.
    let monitor = e.inspect("srv", "{{.State.Pid}}");
    let st: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            e.0.root()
                .join("containers")
                .join(e.inspect("srv", "{{.Id}}"))
                .join("state.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mon = st["monitor_pid"].as_i64().unwrap().to_string();
    for p in [mon.as_str(), monitor.as_str()] {
        let _ = Command::new("kill").args(["-9", p]).status();
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        e.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"])
            .contains("srv exited")
    );
    let records = std::fs::read_to_string(dns_dir.join("records.json")).unwrap_or_default();
    assert!(!records.contains(&ip), "{records}");
    let lease = std::path::Path::new("/run/strata/ipam")
        .join(&bridge)
        .join(&ip);
    assert!(!lease.exists(), "{}", lease.display());
    // The server leaves once nobody is on the network.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while dns_dir.join("pid").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !dns_dir.join("pid").exists(),
        "the idle DNS server did not leave"
    );
}

#[test]
fn hosts_resolv_conf_mac_and_internal_networks() {
    let e = Engine::new();
    // --add-host (host-gateway too), --dns, --dns-search, --dns-option.
    let o = e.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db.local:192.0.2.10",
        "--add-host",
        "gw:host-gateway",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "example.com",
        "--dns-option",
        "timeout:1",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf",
    ]);
    assert!(o.contains("192.0.2.10\tdb.local\n"), "{o}");
    assert!(o.contains("10.89.0.1\tgw\n"), "{o}");
    assert!(
        o.contains("search example.com\nnameserver 192.0.2.53\noptions timeout:1\n"),
        "{o}"
    );
    assert!(
        !o.lines()
            .any(|l| l.starts_with("nameserver") && !l.ends_with("192.0.2.53")),
        "{o}"
    );
    // --mac-address on the interface and in inspect.
    e.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "192.168.234.0/24",
        "inner",
    ]);
    e.ok(&[
        "run",
        "-d",
        "--name",
        "m",
        "--network",
        "inner",
        "--mac-address",
        "02:42:c0:a8:ea:63",
        "busybox",
        "sleep",
        "60",
    ]);
    let o = e.ok(&["exec", "m", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(o, "02:42:c0:a8:ea:63\n");
    assert_eq!(
        e.inspect(
            "m",
            "{{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}"
        ),
        "02:42:c0:a8:ea:63"
    );
    // --internal: no route out, no NAT rule, but names and neighbours.
    assert_eq!(e.net_inspect("inner", "{{.Internal}}"), "true");
    let o = e.ok(&["exec", "m", "ip", "route"]);
    assert!(!o.contains("default"), "{o}");
    let bridge = e.net_inspect(
        "inner",
        "{{index .Options \"com.docker.network.bridge.name\"}}",
    );
    assert!(!masquerade_rule("192.168.234.0/24", &bridge));
    let o = e.ok(&[
        "run",
        "--rm",
        "--network",
        "inner",
        "busybox",
        "sh",
        "-c",
        "nslookup m >/dev/null && ping -c1 -W2 m >/dev/null && echo reached",
    ]);
    assert_eq!(o, "reached\n");
}
