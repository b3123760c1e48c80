//! RUN: a container made the engine's way (the stage's image config and
//! the run options become an OCI spec, Docker's capabilities and seccomp
//! policy) on the stage's rootfs overlay, run by strata-runtime in a
//! child process of ours (`strata build-step-run`), its output streamed
//! to the build's progress. Networks: `default` (the strata bridge, as
//! Docker's builder), `none` (loopback only) or `host`.
//!
//! Mount targets the runtime had to create in the rootfs (`/etc/hosts`,
//! `/proc` in an image without one, a `--mount` target) are removed from
//! the step's upper dir afterwards, so they never become part of the layer.

use std::io::BufRead;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use nix::fcntl::OFlag;
use serde_json::{Value, json};

use crate::build::fsops;
use crate::build::progress::Progress;
use crate::network;

/// Where the builder's containers live and what runs them.
#[derive(Clone, Debug)]
pub struct Host {
    /// The store root.
    pub root: PathBuf,
    /// Runtime state and network namespaces (`/run/strata` or under the root).
    pub run_dir: PathBuf,
    /// The `strata` binary (for `build-step-run`).
    pub exe: PathBuf,
}

pub struct RunSpec<'a> {
    /// The stage's image config document.
    pub image: &'a Value,
    pub args: Vec<String>,
    /// Build args in scope, as `KEY=VALUE`, below the image's Env.
    pub env: Vec<String>,
    pub network: &'a str,
    /// Extra OCI mounts (`RUN --mount`).
    pub mounts: Vec<Value>,
    pub privileged: bool,
}

/// The error text Docker's builder gives for a failing RUN.
pub fn failed(args: &[String], code: i32) -> anyhow::Error {
    anyhow!(
        "process \"{}\" did not complete successfully: exit code: {code}",
        args.join(" ")
    )
}

/// Run one RUN container on `rootfs` (the mounted overlay whose upper
/// dir is `upper`).
pub fn run(
    host: &Host,
    rootfs: &Path,
    upper: &Path,
    spec_in: &RunSpec,
    progress: &Progress,
    step: usize,
) -> Result<()> {
    let id = format!("build-{}", crate::containers::record::new_id()?);
    let work = host.root.join("tmp").join(&id);
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let result = (|| {
        let netns = match spec_in.network {
            "host" => None,
            "none" | "default" => {
                let p = network::netns_path(&host.run_dir, &id);
                network::create_netns(&p)?;
                Some(p)
            }
            other => bail!("unsupported network mode {other:?} (default, none or host)"),
        };
        // A rootless build's default network is pasta's, as its
        // containers' is.
        let rootless = crate::rootless::mode().is_some();
        let guard = NetGuard {
            id: id.clone(),
            netns: netns.clone(),
            bridge: spec_in.network == "default" && !rootless,
            pasta: (spec_in.network == "default" && rootless).then(|| host.run_dir.clone()),
        };
        if let (Some(run_dir), Some(ns)) = (&guard.pasta, &netns) {
            network::pasta::start(run_dir, &id, ns, &[])?;
        }
        let def = network::bridge::NetDef::default_bridge();
        let ip = match (&netns, guard.bridge) {
            (Some(ns), true) => Some(
                network::bridge::attach(
                    &id,
                    ns,
                    &network::bridge::Attach {
                        def: &def,
                        ifname: "eth0",
                        ip: None,
                        mac: None,
                        default_route: true,
                    },
                )?
                .ip
                .to_string(),
            ),
            _ => None,
        };
        let hostname = "buildkitsandbox";
        std::fs::write(
            work.join("hosts"),
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{}\t{hostname}\n",
                ip.as_deref().unwrap_or("127.0.1.1")
            ),
        )?;
        std::fs::write(
            work.join("resolv.conf"),
            crate::containers::resolv_conf(
                spec_in.network,
                &crate::containers::record::DnsConfig::default(),
                None,
            ),
        )?;
        let mut o = crate::containers::spec::Options {
            env: spec_in.env.clone(),
            entrypoint: Some(String::new()),
            args: spec_in.args.clone(),
            privileged: spec_in.privileged,
            ..Default::default()
        };
        if spec_in.network != "host" {
            for f in ["hosts", "resolv.conf"] {
                o.mounts
                    .push(json!({"destination": format!("/etc/{f}"), "type": "bind",
                    "source": work.join(f), "options": ["rbind", "ro"]}));
            }
        }
        o.mounts.extend(spec_in.mounts.iter().cloned());
        let (mut spec, _) = crate::containers::spec::build(
            spec_in.image,
            &o,
            rootfs,
            hostname,
            if spec_in.network == "host" {
                "host"
            } else {
                "none"
            },
            netns.as_deref(),
            &format!("/strata/{id}"),
        )?;
        // A build step has no terminal and no stdin.
        spec["process"]["terminal"] = json!(false);
        // Which mount targets exist before the run: the others are stubs.
        let root_fd = fsops::open_dir(rootfs)?;
        let missing: Vec<PathBuf> = spec["mounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["destination"].as_str())
            .map(|d| PathBuf::from(d.trim_start_matches('/')))
            .filter(|d| fsops::open_in(&root_fd, d, OFlag::O_PATH | OFlag::O_NOFOLLOW).is_err())
            .collect();
        let missing_parents: Vec<PathBuf> = missing
            .iter()
            .flat_map(|d| {
                d.ancestors()
                    .skip(1)
                    .map(Path::to_path_buf)
                    .collect::<Vec<_>>()
            })
            .filter(|d| !d.as_os_str().is_empty())
            .filter(|d| fsops::open_in(&root_fd, d, OFlag::O_PATH | OFlag::O_NOFOLLOW).is_err())
            .collect();
        drop(root_fd);
        std::fs::write(work.join("config.json"), serde_json::to_vec_pretty(&spec)?)?;
        let state = host.run_dir.join("build-runtime");
        let result_file = work.join("result");
        let mut child = Command::new(&host.exe)
            .arg("build-step-run")
            .arg("--state")
            .arg(&state)
            .arg("--bundle")
            .arg(&work)
            .arg("--id")
            .arg(&id)
            .arg("--result")
            .arg(&result_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("start the build step's runtime")?;
        let out = child.stdout.take();
        let err = child.stderr.take();
        let status = std::thread::scope(|s| {
            for r in [
                out.map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
                err.map(|e| Box::new(e) as Box<dyn std::io::Read + Send>),
            ]
            .into_iter()
            .flatten()
            {
                s.spawn(move || {
                    let mut lines = std::io::BufReader::new(r);
                    let mut buf = Vec::new();
                    while let Ok(n) = lines.read_until(b'\n', &mut buf) {
                        if n == 0 {
                            break;
                        }
                        progress.output(step, &String::from_utf8_lossy(&buf));
                        buf.clear();
                    }
                });
            }
            child.wait()
        })
        .context("wait for the build step")?;
        remove_stubs(upper, &missing, &missing_parents);
        drop(guard);
        let code = status.code().unwrap_or(128 + 9);
        if let Ok(msg) = std::fs::read_to_string(&result_file)
            && !msg.is_empty()
        {
            bail!("{}", msg.trim_end());
        }
        if code != 0 {
            return Err(failed(&spec_in.args, code));
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// Tears a step's network down however the step ended.
struct NetGuard {
    id: String,
    netns: Option<PathBuf>,
    bridge: bool,
    /// The run dir of the step's pasta (rootless).
    pasta: Option<PathBuf>,
}

impl Drop for NetGuard {
    fn drop(&mut self) {
        if let Some(run_dir) = &self.pasta {
            network::pasta::stop(run_dir, &self.id);
        }
        if let Some(ns) = &self.netns {
            if self.bridge {
                network::bridge::release_all(&network::bridge::NetDef::default_bridge(), &self.id);
            }
            network::remove_netns(ns);
        }
    }
}

/// Remove the mount stubs the runtime made (empty files or dirs that did
/// not exist before), and the directories made only to hold them. The
/// upper dir is the step's own output: walked by fds inside it, never by
/// paths that its symlinks could bend.
fn remove_stubs(upper: &Path, stubs: &[PathBuf], made_parents: &[PathBuf]) {
    let Ok(up) = fsops::open_dir(upper) else {
        return;
    };
    let unlink = |p: &Path, dir: bool| {
        let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
            return;
        };
        let Ok(pfd) = fsops::open_in(&up, parent, OFlag::O_RDONLY | OFlag::O_DIRECTORY) else {
            return;
        };
        let flag = if dir {
            nix::unistd::UnlinkatFlags::RemoveDir
        } else {
            nix::unistd::UnlinkatFlags::NoRemoveDir
        };
        let _ = nix::unistd::unlinkat(Some(pfd.as_raw_fd()), name, flag);
    };
    for s in stubs {
        let Ok(st) = fsops::stat_in(&up, s, true) else {
            continue;
        };
        match st.kind {
            fsops::Kind::File if st.size == 0 => unlink(s, false),
            // rmdir only removes it if it is empty.
            fsops::Kind::Dir => unlink(s, true),
            _ => {}
        }
    }
    let mut parents: Vec<&PathBuf> = made_parents.iter().collect();
    parents.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    parents.dedup();
    for p in parents {
        unlink(p, true);
    }
}
