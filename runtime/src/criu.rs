//! The CRIU boundary: finding the binary, its command lines for dump,
//! pre-dump and restore, the external mounts and inherited pipes a
//! container needs, and CRIU's own error lines when it fails.
//!
//! runc talks to CRIU over its RPC socket (`criu swrk`); we run the same
//! operations through CRIU's command line, whose options map one to one
//! onto the RPC fields runc sets.

use std::path::{Path, PathBuf};
use std::process::Command;

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

/// The file in the image directory that lists the init's stdio as the
/// kernel names them (`pipe:[1234]`, `/dev/null`), as runc writes it: a
/// restore hands the new pipes to CRIU in their place.
pub const DESCRIPTORS: &str = "descriptors.json";

/// How CRIU treats the container's cgroups (runc's --manage-cgroups-mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CgroupMode {
    /// Leave them alone: a restored process stays in the cgroup CRIU runs
    /// in, which the runtime made for the new container. Our default.
    #[default]
    Ignore,
    Soft,
    Full,
    Strict,
}

impl CgroupMode {
    pub fn parse(s: &str) -> Result<CgroupMode> {
        Ok(match s {
            "ignore" => CgroupMode::Ignore,
            "soft" => CgroupMode::Soft,
            "full" => CgroupMode::Full,
            "strict" => CgroupMode::Strict,
            other => {
                return Err(Error::Container(format!(
                    "invalid manage cgroups mode {other:?} (soft, full, strict or ignore)"
                )));
            }
        })
    }

    fn arg(self) -> &'static str {
        match self {
            CgroupMode::Ignore => "--manage-cgroups=ignore",
            CgroupMode::Soft => "--manage-cgroups=soft",
            CgroupMode::Full => "--manage-cgroups=full",
            CgroupMode::Strict => "--manage-cgroups=strict",
        }
    }
}

/// Options shared by checkpoint and restore (runc's flag names).
#[derive(Clone, Debug, Default)]
pub struct Common {
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub cgroup_mode: CgroupMode,
}

impl Common {
    /// Where CRIU writes its log: the work path, else the image path.
    pub fn log_dir(&self) -> &Path {
        self.work_path.as_deref().unwrap_or(&self.image_path)
    }

    fn args(&self, cmd: &mut Command, log: &str) {
        cmd.arg("-D").arg(&self.image_path);
        cmd.arg("-W").arg(self.log_dir());
        cmd.args(["-o", log, "-v4", self.cgroup_mode.arg()]);
        for (on, flag) in [
            (self.tcp_established, "--tcp-established"),
            (self.ext_unix_sk, "--ext-unix-sk"),
            (self.shell_job, "--shell-job"),
            (self.file_locks, "--file-locks"),
        ] {
            if on {
                cmd.arg(flag);
            }
        }
    }
}

/// The criu binary: the global `--criu` path, or a bare name (default
/// `criu`) looked up on PATH.
pub fn binary(given: Option<&Path>) -> Result<PathBuf> {
    let name = given.unwrap_or(Path::new("criu"));
    if name.components().count() > 1 {
        return if name.is_file() {
            Ok(name.to_path_buf())
        } else {
            Err(Error::Container(format!(
                "criu binary {} not found",
                name.display()
            )))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Container(
                "checkpoint/restore needs criu, which is not on PATH (Debian: apt-get install criu)"
                    .into(),
            )
        })
}

/// The container's mounts CRIU cannot see the source of from inside: bind
/// mounts (keyed by their destination) and masked files (/dev/null bound
/// over them). On dump each becomes `--external mnt[DEST]:KEY`; on restore
/// `--external mnt[KEY]:HOST_PATH`.
pub struct ExternalMount {
    pub dest: PathBuf,
    pub key: String,
    pub host_source: PathBuf,
}

pub fn external_mounts(
    spec: &Spec,
    bundle: &Path,
    init_pid: Option<i32>,
    cgroup: Option<&crate::cgroups::Cgroup>,
) -> Vec<ExternalMount> {
    let mut out = cgroup_binds(spec, cgroup);
    for m in spec.mounts().iter().flatten() {
        if !crate::rootfs::mounts::is_bind(m) {
            continue;
        }
        let Some(src) = crate::rootfs::mounts::bind_source(m, bundle) else {
            continue;
        };
        out.push(ExternalMount {
            dest: m.destination().clone(),
            key: m.destination().display().to_string(),
            host_source: src,
        });
    }
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    for path in masked {
        // On dump only the masked paths that exist as files are mounts
        // (directories get a tmpfs, missing ones nothing); on restore the
        // key is all CRIU needs.
        if let Some(pid) = init_pid {
            let seen = Path::new(&format!("/proc/{pid}/root")).join(path.trim_start_matches('/'));
            match std::fs::metadata(&seen) {
                Ok(md) if !md.is_dir() => {}
                _ => continue,
            }
        }
        out.push(ExternalMount {
            dest: PathBuf::from(&path),
            key: "/dev/null".into(),
            host_source: "/dev/null".into(),
        });
    }
    out
}

/// Without a cgroup namespace of its own, the container's `cgroup` mount
/// is made of bind mounts of its cgroup directories (one for v2, one per
/// v1 hierarchy under a tmpfs), whose sources CRIU cannot see: they are
/// external, keyed by their place, and on restore point at the new
/// container's directories. With a cgroup namespace they are real mounts.
fn cgroup_binds(spec: &Spec, cgroup: Option<&crate::cgroups::Cgroup>) -> Vec<ExternalMount> {
    let own_ns = crate::spec::namespaces(spec)
        .iter()
        .any(|(t, p)| *t == oci_spec::runtime::LinuxNamespaceType::Cgroup && p.is_none());
    let Some(cg) = cgroup.filter(|_| !own_ns) else {
        return Vec::new();
    };
    let rel = crate::rootfs::paths::relative(&cg.path);
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten() {
        if !matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")) {
            continue;
        }
        let dest = m.destination();
        let bind = |dest: PathBuf, host_source: PathBuf| ExternalMount {
            key: dest.display().to_string(),
            dest,
            host_source,
        };
        if let Some(root) = &cg.v2_root {
            out.push(bind(dest.clone(), root.join(&rel)));
            continue;
        }
        for h in crate::cgroups::v1_hierarchies() {
            let src = h.mount_point.join(&rel);
            if let Some(name) = h.mount_point.file_name().filter(|_| src.is_dir()) {
                out.push(bind(dest.join(name), src));
            }
        }
    }
    out
}

/// `criu dump` (or `pre-dump`) of the tree under `pid`.
pub struct Dump<'a> {
    pub common: &'a Common,
    pub pid: i32,
    pub rootfs: &'a Path,
    pub leave_running: bool,
    pub pre_dump: bool,
    /// A previous pre-dump's image directory (runc's --parent-path),
    /// relative to the image path or absolute.
    pub parent_path: Option<&'a Path>,
    pub externals: &'a [ExternalMount],
}

impl Dump<'_> {
    pub fn command(&self, criu: &Path) -> Command {
        let mut cmd = Command::new(criu);
        cmd.arg(if self.pre_dump { "pre-dump" } else { "dump" });
        cmd.arg("-t").arg(self.pid.to_string());
        cmd.arg("--root").arg(self.rootfs);
        let log = if self.pre_dump {
            "pre-dump.log"
        } else {
            "dump.log"
        };
        self.common.args(&mut cmd, log);
        if self.leave_running {
            cmd.arg("--leave-running");
        }
        if self.pre_dump {
            cmd.arg("--track-mem");
        }
        if let Some(parent) = self.parent_path {
            cmd.arg("--prev-images-dir").arg(parent).arg("--track-mem");
        }
        if !self.pre_dump {
            // Pre-dumps carry memory only.
            for e in self.externals {
                cmd.arg("--external")
                    .arg(format!("mnt[{}]:{}", e.dest.display(), e.key));
            }
        }
        cmd
    }
}

/// `criu restore` of a container's images under `root`, detached, its
/// root task a child of ours (a sibling of criu).
pub struct Restore<'a> {
    pub common: &'a Common,
    pub root: &'a Path,
    pub pid_file: &'a Path,
    pub externals: &'a [ExternalMount],
    /// Our fds standing in for the init's pipes: (fd, `pipe:[ino]`).
    pub inherit: &'a [(i32, String)],
    /// The new container's cgroup path, for the modes that restore
    /// cgroups (the tasks go below it).
    pub cgroup_root: Option<&'a Path>,
}

impl Restore<'_> {
    pub fn command(&self, criu: &Path) -> Command {
        let mut cmd = Command::new(criu);
        cmd.arg("restore");
        cmd.arg("--root").arg(self.root);
        self.common.args(&mut cmd, "restore.log");
        cmd.args([
            "--restore-detached",
            "--restore-sibling",
            "--evasive-devices",
        ]);
        cmd.arg("--pidfile").arg(self.pid_file);
        for e in self.externals {
            cmd.arg("--external")
                .arg(format!("mnt[{}]:{}", e.key, e.host_source.display()));
        }
        for (fd, key) in self.inherit {
            cmd.arg("--inherit-fd").arg(format!("fd[{fd}]:{key}"));
        }
        if self.common.cgroup_mode != CgroupMode::Ignore
            && let Some(cg) = self.cgroup_root
        {
            cmd.arg("--cgroup-root").arg(cg);
        }
        cmd
    }
}

/// The init's stdio as the kernel names them, for [`DESCRIPTORS`].
pub fn stdio_names(pid: i32) -> Vec<String> {
    (0..3)
        .map(|fd| {
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "/dev/null".into())
        })
        .collect()
}

/// Which of our stdio fds stand in for the dumped init's pipes.
pub fn inherited_pipes(names: &[String]) -> Vec<(i32, String)> {
    names
        .iter()
        .enumerate()
        .filter(|(_, n)| n.starts_with("pipe:"))
        .map(|(i, n)| (i as i32, n.clone()))
        .collect()
}

/// Runs a CRIU command; on failure the error carries CRIU's own `Error`
/// lines from its log (what `criu` prints on the terminal is only a
/// pointer to the log).
pub fn run(mut cmd: Command, what: &str, log: &Path) -> Result<()> {
    tracing::debug!("criu: {cmd:?}");
    let out = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| Error::Container(format!("{what}: run criu: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let from_log = std::fs::read_to_string(log).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors = error_lines(&from_log, &stderr);
    Err(Error::Container(format!(
        "{what}: criu failed ({}): {errors} (log: {})",
        out.status,
        log.display()
    )))
}

/// The lines that say what went wrong: CRIU's `Error (file:line): ...`
/// lines from the log, else from its stderr, else the last stderr line.
pub fn error_lines(log: &str, stderr: &str) -> String {
    // The last ones: CRIU logs what it can do without (a missing diag
    // module) as errors too, before the one that ended it.
    let pick = |text: &str| -> Vec<String> {
        let all: Vec<String> = text
            .lines()
            .filter(|l| l.contains("Error (") || l.starts_with("Error"))
            .map(|l| {
                // "(00.012345) Error (criu/x.c:1): msg" -> "Error (criu/x.c:1): msg"
                l.find("Error").map(|i| &l[i..]).unwrap_or(l).to_string()
            })
            .collect();
        all[all.len().saturating_sub(4)..].to_vec()
    };
    let mut lines = pick(log);
    if lines.is_empty() {
        lines = pick(stderr);
    }
    if lines.is_empty()
        && let Some(last) = stderr.lines().rev().find(|l| !l.trim().is_empty())
    {
        lines.push(last.trim().to_string());
    }
    if lines.is_empty() {
        return "no error in its log".into();
    }
    lines.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_prefer_the_log() {
        let log = "(00.000001) Version: 3.17.1\n(00.0001) Error (criu/sockets.c:209): sockets: Diag module missing (-2)\n(00.0002) Error (criu/sockets.c:209): sockets: Diag module missing (-2)\n(00.0003) Error (criu/sockets.c:209): sockets: Diag module missing (-2)\n(00.001) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n(00.002) Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed\n";
        let got = error_lines(log, "whatever");
        assert!(
            got.ends_with("Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds; Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed"),
            "{got}"
        );
        assert_eq!(got.matches("Error (").count(), 4, "{got}");
        assert_eq!(error_lines("", "\nsomething odd\n"), "something odd");
    }

    #[test]
    fn dump_and_restore_command_lines() {
        let common = Common {
            image_path: "/img".into(),
            tcp_established: true,
            file_locks: true,
            ..Default::default()
        };
        let ext = [ExternalMount {
            dest: "/data".into(),
            key: "/data".into(),
            host_source: "/srv/data".into(),
        }];
        let dump = Dump {
            common: &common,
            pid: 42,
            rootfs: Path::new("/b/rootfs"),
            leave_running: true,
            pre_dump: false,
            parent_path: None,
            externals: &ext,
        };
        let args: Vec<String> = dump
            .command(Path::new("criu"))
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        assert!(
            line.starts_with("dump -t 42 --root /b/rootfs -D /img -W /img -o dump.log -v4 --manage-cgroups=ignore --tcp-established --file-locks --leave-running"),
            "{line}"
        );
        assert!(line.ends_with("--external mnt[/data]:/data"), "{line}");

        let inherit = [(0, "pipe:[77]".to_string())];
        let restore = Restore {
            common: &common,
            root: Path::new("/state/criu-root"),
            pid_file: Path::new("/w/pid"),
            externals: &ext,
            inherit: &inherit,
            cgroup_root: Some(Path::new("/strata/x")),
        };
        let line = restore
            .command(Path::new("criu"))
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            line.contains("--restore-detached --restore-sibling"),
            "{line}"
        );
        assert!(line.contains("--external mnt[/data]:/srv/data"), "{line}");
        assert!(line.contains("--inherit-fd fd[0]:pipe:[77]"), "{line}");
        // Ignore mode: the tasks stay in criu's (the new container's) cgroup.
        assert!(!line.contains("--cgroup-root"), "{line}");
    }

    #[test]
    fn only_pipes_are_inherited() {
        let names = [
            "pipe:[5]".to_string(),
            "/dev/null".into(),
            "pipe:[6]".into(),
        ];
        assert_eq!(
            inherited_pipes(&names),
            [(0, "pipe:[5]".to_string()), (2, "pipe:[6]".to_string())]
        );
    }
}
