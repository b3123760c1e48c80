//! The rootless default network: `pasta` (Debian's passt package) as
//! podman 5 uses it. pasta gives the container's namespace an `eth0`
//! with the host's address and routes, and carries its traffic through
//! sockets of the user on the host; `-p` ports are host sockets pasta
//! listens on. No bridge, no veth, no NAT rule: nothing a user cannot make.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::containers::record::Port;

/// The pasta arguments for `ports`: `-t`/`-u` per published port
/// (`[ADDR/]HOST:CONTAINER`), `none` for a protocol with none.
pub fn port_args(ports: &[Port]) -> Vec<String> {
    let mut args = Vec::new();
    for (flag, proto) in [("-t", "tcp"), ("-u", "udp")] {
        let mine: Vec<&Port> = ports.iter().filter(|p| p.protocol == proto).collect();
        if mine.is_empty() {
            args.extend([flag.to_string(), "none".to_string()]);
        }
        for p in mine {
            let addr = if p.host_ip.is_empty() || p.host_ip == "0.0.0.0" {
                String::new()
            } else {
                format!("{}/", p.host_ip)
            };
            args.extend([
                flag.to_string(),
                format!("{addr}{}:{}", p.host_port, p.container_port),
            ]);
        }
    }
    // Nothing forwarded from the namespace's loopback to the host's.
    args.extend(["-T", "none", "-U", "none"].map(String::from));
    args
}

/// The lowest port an unprivileged user may listen on.
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// The refusal for ports a rootless user may not publish, before
/// anything is made.
pub fn check_ports(ports: &[Port]) -> Result<()> {
    let start = unprivileged_port_start();
    // 0: a free port picked later, from the unprivileged ones.
    if let Some(p) = ports
        .iter()
        .find(|p| p.host_port != 0 && p.host_port < start)
    {
        bail!(
            "rootless: cannot publish port {}: ports below {start} need root (net.ipv4.ip_unprivileged_port_start is {start})",
            p.host_port
        );
    }
    Ok(())
}

/// The address pasta answers DNS on for the container, forwarding to
/// the host's resolver (podman's choice): for hosts whose resolver sits
/// on their loopback, which a container cannot reach.
pub const DNS_FORWARD: &str = "169.254.1.1";

/// Does the host name only resolvers on its loopback (127.0.0.53 and
/// the like) in `resolv_conf`?
pub fn loopback_resolvers_only(resolv_conf: &str) -> bool {
    let servers: Vec<std::net::IpAddr> = resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    !servers.is_empty() && servers.iter().all(|ip| ip.is_loopback())
}

fn pid_file(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join("pasta").join(format!("{id}.pid"))
}

/// Start pasta for the namespace pinned at `netns`; it daemonizes once
/// the namespace's interface is up.
pub fn start(run_dir: &Path, id: &str, netns: &Path, ports: &[Port]) -> Result<()> {
    let tun = Path::new("/dev/net/tun");
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(tun)
        .is_err()
    {
        bail!(
            "rootless networking needs {} open to this user (mode 0666, as Debian's udev makes it); use --network none or host",
            tun.display()
        );
    }
    let pid = pid_file(run_dir, id);
    if let Some(d) = pid.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    let mut cmd = std::process::Command::new("pasta");
    super::outliving(&mut cmd);
    let out = cmd
        .args(["--config-net", "--quiet", "--netns"])
        .arg(netns)
        .arg("--pid")
        .arg(&pid)
        .args(["--dns-forward", DNS_FORWARD])
        .args(port_args(ports))
        .stdin(std::process::Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "pasta not found: install the passt package for rootless networking, or use --network none or host"
            )
        }
        Err(e) => return Err(e).context("run pasta"),
    };
    if !out.status.success() {
        stop(run_dir, id);
        bail!(
            "pasta: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| !l.contains("syslog"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}

/// The pid of the pasta started for `id`, while it runs.
fn live_pid(run_dir: &Path, id: &str) -> Option<i32> {
    std::fs::read_to_string(pid_file(run_dir, id))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|p| *p > 1)
        .filter(|pid| {
            // pasta is passt's other name; Debian's re-executes itself as
            // `passt.avx2` where the CPU has AVX2.
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("pasta") || c.starts_with("passt"))
        })
}

/// Does the pasta started for `id` run?
pub fn running(run_dir: &Path, id: &str) -> bool {
    live_pid(run_dir, id).is_some()
}

/// End the container's pasta, if it runs.
pub fn stop(run_dir: &Path, id: &str) {
    if let Some(pid) = live_pid(run_dir, id) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let _ = std::fs::remove_file(pid_file(run_dir, id));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(ip: &str, host: u16, container: u16, proto: &str) -> Port {
        Port {
            host_ip: ip.into(),
            host_port: host,
            container_port: container,
            protocol: proto.into(),
        }
    }

    #[test]
    fn ports_become_pasta_options() {
        assert_eq!(
            port_args(&[]),
            ["-t", "none", "-u", "none", "-T", "none", "-U", "none"]
        );
        assert_eq!(
            port_args(&[
                port("", 8080, 80, "tcp"),
                port("127.0.0.1", 5353, 53, "udp"),
                port("0.0.0.0", 8443, 443, "tcp"),
            ]),
            [
                "-t",
                "8080:80",
                "-t",
                "8443:443",
                "-u",
                "127.0.0.1/5353:53",
                "-T",
                "none",
                "-U",
                "none"
            ]
        );
        assert!(check_ports(&[port("", 65000, 80, "tcp"), port("", 0, 80, "tcp")]).is_ok());
        assert!(loopback_resolvers_only(
            "nameserver 127.0.0.53\noptions edns0\n"
        ));
        assert!(loopback_resolvers_only(
            "nameserver 127.0.0.1\nnameserver ::1\n"
        ));
        assert!(!loopback_resolvers_only(
            "nameserver 127.0.0.53\nnameserver 10.0.0.2\n"
        ));
        assert!(!loopback_resolvers_only(""));
        if unprivileged_port_start() > 80 {
            let e = check_ports(&[port("", 80, 80, "tcp")])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("port 80") && e.contains("ip_unprivileged_port_start"),
                "{e}"
            );
        }
    }
}
