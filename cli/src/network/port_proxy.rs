//! Published ports of a rootless container on a user network (what
//! podman's rootlessport does): the container sits on a bridge inside the
//! user's network namespace (see [`super::rootless_netns`]), which the
//! host cannot route to. A proxy process per container listens on the
//! host's ports as the user, then enters that namespace, so every
//! connection it makes to the container's address starts there:
//! listening sockets stay in the namespace they were made in.
//!
//! TCP: a thread per connection pair, copying both ways. UDP: one socket
//! per client in the namespace, forgotten after a minute of silence. The
//! container sees connections from its network's gateway, not from the
//! client (as with rootlessport).
//!
//! The proxy is the lean monitor binary's `--port-proxy` mode (or the
//! hidden `port-proxy` verb); it says `ready` on its stdout once every
//! port is bound, else it exits with the reason on its stderr.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::containers::record::{self, Port};

/// How long a UDP client's mapping lives without traffic.
const UDP_IDLE: Duration = Duration::from_secs(60);

/// One port to forward: `PROTO:HOSTIP:HOSTPORT:CONTAINERPORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    pub udp: bool,
    pub host: SocketAddr,
    pub container_port: u16,
}

impl Forward {
    pub fn from_port(p: &Port) -> Result<Forward> {
        let ip: Ipv4Addr = if p.host_ip.is_empty() {
            Ipv4Addr::UNSPECIFIED
        } else {
            p.host_ip
                .parse()
                .map_err(|_| anyhow::anyhow!("invalid host address {}", p.host_ip))?
        };
        Ok(Forward {
            udp: p.protocol == "udp",
            host: SocketAddr::from((ip, p.host_port)),
            container_port: p.container_port,
        })
    }

    pub fn arg(&self) -> String {
        let proto = if self.udp { "udp" } else { "tcp" };
        format!(
            "{proto}:{}:{}:{}",
            self.host.ip(),
            self.host.port(),
            self.container_port
        )
    }

    pub fn parse(s: &str) -> Result<Forward> {
        let bad = || anyhow::anyhow!("invalid forward {s:?}: PROTO:HOSTIP:HOSTPORT:PORT");
        let mut it = s.split(':');
        let udp = match it.next() {
            Some("tcp") => false,
            Some("udp") => true,
            _ => return Err(bad()),
        };
        let ip: Ipv4Addr = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let hp: u16 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let cp: u16 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(Forward {
            udp,
            host: SocketAddr::from((ip, hp)),
            container_port: cp,
        })
    }
}

fn pid_file(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join("port-proxy").join(format!("{id}.pid"))
}

/// Start the proxy of container `id` (address `ip` in the namespace at
/// `netns`) for `ports`; returns once every port is bound, or with the
/// proxy's reason (a port in use, say).
pub fn start(
    exe: &Path,
    run_dir: &Path,
    id: &str,
    netns: &Path,
    ip: Ipv4Addr,
    ports: &[Port],
) -> Result<()> {
    if ports.is_empty() {
        return Ok(());
    }
    let forwards: Vec<String> = ports
        .iter()
        .map(|p| Forward::from_port(p).map(|f| f.arg()))
        .collect::<Result<_>>()?;
    let pid_path = pid_file(run_dir, id);
    if let Some(d) = pid_path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    let mut cmd = crate::containers::helper_command(exe, "--port-proxy", "port-proxy");
    cmd.arg(netns)
        .arg(ip.to_string())
        .args(&forwards)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    super::outliving(&mut cmd);
    let mut child = cmd.spawn().context("start the port proxy")?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    if line.trim() != "ready" {
        let mut why = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut why);
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("publish ports: {}", why.trim());
    }
    record::write_pid_file(&pid_path, child.id() as i32)?;
    // The proxy lives on by itself (setsid); its stderr is dropped.
    drop(child);
    Ok(())
}

/// End container `id`'s proxy, if it runs.
pub fn stop(run_dir: &Path, id: &str) {
    let f = pid_file(run_dir, id);
    if let Some(pid) = record::live_pid_file(&f) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let _ = std::fs::remove_file(f);
}

// ---- the proxy ----------------------------------------------------------

enum Bound {
    Tcp(TcpListener, u16),
    Udp(UdpSocket, u16),
}

/// The proxy's main: bind every host port here, enter the namespace at
/// `netns`, say `ready`, and forward to `ip` until killed.
pub fn serve(netns: &Path, ip: Ipv4Addr, forwards: &[Forward]) -> Result<()> {
    let mut bound = Vec::new();
    for f in forwards {
        let what = if f.udp { "udp" } else { "tcp" };
        let b = if f.udp {
            UdpSocket::bind(f.host).map(|s| Bound::Udp(s, f.container_port))
        } else {
            TcpListener::bind(f.host).map(|s| Bound::Tcp(s, f.container_port))
        };
        bound.push(b.with_context(|| format!("bind {what} {}", f.host))?);
    }
    let ns = std::fs::File::open(netns).with_context(|| format!("open {}", netns.display()))?;
    // Single-threaded still: the whole process moves; the threads made
    // from here on are born in the namespace.
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
        .context("enter the rootless network namespace")?;
    let mut threads = Vec::new();
    for b in bound {
        threads.push(match b {
            Bound::Tcp(l, port) => std::thread::spawn(move || tcp_loop(l, (ip, port).into())),
            Bound::Udp(s, port) => std::thread::spawn(move || udp_loop(s, (ip, port).into())),
        });
    }
    println!("ready");
    std::io::stdout().flush()?;
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn tcp_loop(listener: TcpListener, to: SocketAddr) {
    for conn in listener.incoming() {
        let Ok(client) = conn else { continue };
        std::thread::spawn(move || {
            let Ok(upstream) = TcpStream::connect_timeout(&to, Duration::from_secs(10)) else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
                return;
            };
            let back = std::thread::spawn(move || pipe(u2, c2));
            pipe(client, upstream);
            let _ = back.join();
        });
    }
}

/// Copy `from` to `to` until EOF, then close `to`'s writing half.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

fn udp_loop(host: UdpSocket, to: SocketAddr) {
    let host = Arc::new(host);
    let clients: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = host.recv_from(&mut buf) else {
            continue;
        };
        let known = clients.lock().ok().and_then(|m| m.get(&client).cloned());
        let upstream = match known {
            Some(u) => u,
            None => {
                let Ok(u) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) else {
                    continue;
                };
                if u.connect(to).is_err() || u.set_read_timeout(Some(UDP_IDLE)).is_err() {
                    continue;
                }
                let u = Arc::new(u);
                if let Ok(mut m) = clients.lock() {
                    m.insert(client, u.clone());
                }
                let (host, clients, back) = (host.clone(), clients.clone(), u.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = back.recv(&mut buf) {
                        let _ = host.send_to(&buf[..n], client);
                    }
                    if let Ok(mut m) = clients.lock() {
                        m.remove(&client);
                    }
                });
                u
            }
        };
        let _ = upstream.send(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forwarding loops, in this process's namespace: a client's
    /// datagrams reach the echo server through the proxy's socket and the
    /// answers come back to the client, two clients kept apart; a TCP
    /// stream goes both ways and closes.
    #[test]
    fn udp_and_tcp_are_carried_both_ways() {
        let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        let echo_addr = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = echo.recv_from(&mut buf) {
                let mut reply = b"echo:".to_vec();
                reply.extend_from_slice(&buf[..n]);
                let _ = echo.send_to(&reply, from);
            }
        });
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let front_addr = front.local_addr().unwrap();
        std::thread::spawn(move || udp_loop(front, echo_addr));
        for who in ["a", "b"] {
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            for i in 0..3 {
                let msg = format!("{who}{i}");
                client.send_to(msg.as_bytes(), front_addr).unwrap();
                let mut buf = [0u8; 512];
                let (n, from) = client.recv_from(&mut buf).unwrap();
                assert_eq!(from, front_addr);
                assert_eq!(&buf[..n], format!("echo:{msg}").as_bytes());
            }
        }

        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let server_addr = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut c, _) = server.accept().unwrap();
            let mut got = String::new();
            c.read_to_string(&mut got).unwrap();
            c.write_all(format!("got {got}").as_bytes()).unwrap();
        });
        let front = TcpListener::bind("127.0.0.1:0").unwrap();
        let front_addr = front.local_addr().unwrap();
        std::thread::spawn(move || tcp_loop(front, server_addr));
        let mut c = TcpStream::connect(front_addr).unwrap();
        c.write_all(b"hello").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = String::new();
        c.read_to_string(&mut back).unwrap();
        assert_eq!(back, "got hello");
    }

    #[test]
    fn forwards_round_trip_and_bad_ones_are_refused() {
        let p = Port {
            host_ip: "".into(),
            host_port: 8080,
            container_port: 80,
            protocol: "tcp".into(),
        };
        let f = Forward::from_port(&p).unwrap();
        assert_eq!(f.arg(), "tcp:0.0.0.0:8080:80");
        assert_eq!(Forward::parse(&f.arg()).unwrap(), f);
        let u = Forward::parse("udp:127.0.0.1:5353:53").unwrap();
        assert!(u.udp && u.host.ip().is_loopback() && u.container_port == 53);
        for bad in [
            "sctp:0.0.0.0:1:2",
            "tcp:0.0.0.0:1",
            "tcp:x:1:2",
            "tcp:0.0.0.0:1:2:3",
            "tcp:0.0.0.0:70000:2",
        ] {
            assert!(Forward::parse(bad).is_err(), "{bad}");
        }
    }
}
