//! `checkpoint` and `restore` through CRIU (see [`crate::criu`]), with
//! runc's command line and behaviour: a checkpoint without
//! `--leave-running` or `--pre-dump` ends the container (and deletes it,
//! poststop hooks included); a restore makes a new container from a
//! bundle and an image directory, running, and waits for it unless
//! `--detach`.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::create::Cleanup;
use crate::cgroups;
use crate::criu::{self, Common, Dump, ExternalMount, Restore};
use crate::error::{Context, Error, Result};
use crate::state::{ContainerState, Root, Status};

#[derive(Clone, Debug, Default)]
pub struct CheckpointOptions {
    pub common: Common,
    pub leave_running: bool,
    pub pre_dump: bool,
    pub parent_path: Option<PathBuf>,
    pub criu: Option<PathBuf>,
}

pub fn checkpoint(root: &Root, id: &str, opts: &CheckpointOptions) -> Result<()> {
    crate::state::validate_id(id)?;
    let st = root.load(id)?;
    let _lock = root.lock(id)?;
    match st.status(&root.dir(id)) {
        Status::Running | Status::Paused => {}
        _ => return Err(Error::NotRunning),
    }
    let criu = criu::binary(opts.criu.as_deref())?;
    if let Some(parent) = opts.parent_path.as_ref().filter(|p| p.is_absolute()) {
        // CRIU takes it relative to the image path (runc checks the same).
        return Err(Error::Container(format!(
            "--parent-path {} must be relative to --image-path",
            parent.display()
        )));
    }
    for dir in [
        Some(&opts.common.image_path),
        opts.common.work_path.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        make_dir(dir)?;
    }
    if let Some(parent) = &opts.parent_path {
        let seen = opts.common.image_path.join(parent);
        if !seen.is_dir() {
            return Err(Error::Container(format!(
                "--parent-path {}: {} is not a checkpoint's image directory",
                parent.display(),
                seen.display()
            )));
        }
    }
    let externals = criu::external_mounts(&st.spec, &st.bundle, Some(st.pid), st.cgroup().as_ref());
    if !opts.pre_dump {
        let names = criu::stdio_names(st.pid);
        let path = opts.common.image_path.join(criu::DESCRIPTORS);
        let body = serde_json::to_vec(&names).map_err(|e| Error::Container(e.to_string()))?;
        std::fs::write(&path, body).ctx(|| format!("write {}", path.display()))?;
    }
    let dump = Dump {
        common: &opts.common,
        pid: st.pid,
        rootfs: &st.rootfs,
        leave_running: opts.leave_running,
        pre_dump: opts.pre_dump,
        parent_path: opts.parent_path.as_deref(),
        externals: &externals,
    };
    let log = opts.common.log_dir().join(if opts.pre_dump {
        "pre-dump.log"
    } else {
        "dump.log"
    });
    criu::run(dump.command(&criu), "checkpoint", &log)?;
    drop(_lock);
    if !opts.leave_running && !opts.pre_dump {
        // CRIU has ended the processes; the container goes, as with runc.
        super::delete::delete(root, id, true)?;
    }
    Ok(())
}

fn make_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::Io {
            context: format!("create {}", dir.display()),
            source: e,
        }),
    }
}

#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub common: Common,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    pub criu: Option<PathBuf>,
    pub systemd_cgroup: bool,
}

/// A bind mount of the rootfs on a directory of the state dir: CRIU wants
/// its root to be a mount point whose parent is not overmounted (runc
/// does the same). Unmounted and removed when dropped.
struct CriuRoot(PathBuf);

impl CriuRoot {
    fn new(state_dir: &Path, rootfs: &Path) -> Result<CriuRoot> {
        let dir = state_dir.join("criu-root");
        std::fs::create_dir(&dir).ctx(|| format!("create {}", dir.display()))?;
        let root = CriuRoot(dir);
        nix::mount::mount(
            Some(rootfs),
            &root.0,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("bind {} for criu", rootfs.display()))?;
        Ok(root)
    }
}

impl Drop for CriuRoot {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Mount points CRIU expects in the rootfs (a fresh copy of the bundle
/// lacks those the first create made): every mount's destination that
/// is not inside a tmpfs, which CRIU restores whole.
fn make_mount_points(spec: &oci_spec::runtime::Spec, bundle: &Path, rootfs: &Path) -> Result<()> {
    let mounts = spec.mounts().clone().unwrap_or_default();
    let tmpfs: Vec<&Path> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| m.destination().as_path())
        .collect();
    let root_dir = std::fs::File::open(rootfs).ctx(|| format!("open {}", rootfs.display()))?;
    use std::os::fd::AsRawFd as _;
    for m in &mounts {
        let dest = m.destination();
        if tmpfs.iter().any(|t| dest != *t && dest.starts_with(t)) {
            continue;
        }
        let dir = !crate::rootfs::mounts::is_bind(m)
            || crate::rootfs::mounts::bind_source(m, bundle).is_none_or(|s| s.is_dir());
        crate::rootfs::paths::ensure_target(root_dir.as_raw_fd(), dest, dir)?;
    }
    Ok(())
}

/// The cgroup files a process writes "0" to, to join the container's
/// cgroup (v1 `tasks` per hierarchy, v2 `cgroup.procs`).
fn join_files(cg: &cgroups::Cgroup, placement: &cgroups::Placement) -> Vec<std::ffi::CString> {
    let mut files: Vec<PathBuf> = placement.self_join_tasks().to_vec();
    if let Some(dir) = cg.v2_dir() {
        files.push(dir.join("cgroup.procs"));
    }
    files
        .into_iter()
        .filter_map(|p| std::ffi::CString::new(p.into_os_string().into_encoded_bytes()).ok())
        .collect()
}

pub fn restore(root: &Root, opts: &RestoreOptions) -> Result<i32> {
    let bundle = crate::spec::load_bundle(&opts.bundle)?;
    let spec = &bundle.spec;
    let criu = criu::binary(opts.criu.as_deref())?;
    let descriptors = opts.common.image_path.join(criu::DESCRIPTORS);
    let names: Vec<String> = std::fs::read(&descriptors)
        .ctx(|| {
            format!(
                "read {} (is {} a checkpoint's image path?)",
                descriptors.display(),
                opts.common.image_path.display()
            )
        })
        .and_then(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| Error::Container(format!("{}: {e}", descriptors.display())))
        })?;
    if let Some(w) = &opts.common.work_path {
        make_dir(w)?;
    }

    let dir = root.claim(&opts.id)?;
    let mut cleanup = Cleanup {
        root,
        id: opts.id.clone(),
        pids: Vec::new(),
        cgroup: None,
        armed: true,
    };
    let _lock = root.lock(&opts.id)?;
    let cgroup_path = cgroups::path_for(spec, &opts.id, opts.systemd_cgroup)?;
    if opts.systemd_cgroup {
        return Err(Error::Container(
            "restore with --systemd-cgroup is not supported yet".into(),
        ));
    }
    let cgroup = cgroups::Cgroup {
        path: cgroup_path.clone(),
        v2_root: cgroups::v2_root_for_new()?,
        systemd_unit: None,
    };
    let mut st = ContainerState::new(&opts.id, &bundle, &cgroup);
    root.save_creating(&st)?;

    // The cgroup with its limits first: CRIU runs in it, so the restored
    // processes (its children) start there.
    cgroups::precheck(&cgroup, spec)?;
    cleanup.cgroup = Some(cgroup.clone());
    let placement = cgroups::prepare(&cgroup)?;
    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    cgroups::apply_with(&cgroups::manager(&cgroup, &opts.id)?, &cgroup, resources)?;
    let join = join_files(&cgroup, &placement);
    drop(placement);

    make_mount_points(spec, &bundle.dir, &bundle.rootfs)?;
    let criu_root = CriuRoot::new(&dir, &bundle.rootfs)?;
    let externals: Vec<ExternalMount> =
        criu::external_mounts(spec, &bundle.dir, None, Some(&cgroup));
    // Our stdio stand in for the init's pipes. CRIU gets them as fds 10
    // and up (without close-on-exec), not as its own stdio, which carry
    // its messages (libnftables writes to its stderr), apart from the
    // container's output.
    let mut handed = Vec::new();
    let mut inherit = Vec::new();
    for (fd, key) in criu::inherited_pipes(&names) {
        // SAFETY: F_DUPFD on one of our stdio fds; the new fd is owned
        // below and closed once CRIU is done.
        let new = unsafe { libc::fcntl(fd, libc::F_DUPFD, 10) };
        if new < 0 {
            return Err(Error::Container(format!(
                "restore: fd {fd} ({key}) to hand to criu: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: `new` is a fresh descriptor of ours.
        handed.push(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(new) });
        inherit.push((new, key));
    }
    let pid_file = dir.join("restore.pid");
    let restore = Restore {
        common: &opts.common,
        root: &criu_root.0,
        pid_file: &pid_file,
        externals: &externals,
        inherit: &inherit,
        cgroup_root: Some(&cgroup_path),
    };
    if !opts.detach {
        crate::process::become_subreaper()?;
    }
    let mut cmd = restore.command(&criu);
    {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: between fork and exec the child only opens and writes
        // the cgroup files named beforehand (no allocation, no locks).
        unsafe {
            cmd.pre_exec(move || {
                for f in &join {
                    let fd = libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let rc = libc::write(fd, b"0".as_ptr().cast(), 1);
                    let err = std::io::Error::last_os_error();
                    libc::close(fd);
                    if rc != 1 {
                        return Err(err);
                    }
                }
                Ok(())
            });
        }
    }
    let log = opts.common.log_dir().join("restore.log");
    criu::run(cmd, "restore", &log)?;
    drop(handed);
    drop(criu_root);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::Container("criu restore wrote no pid".into()))?;
    let _ = std::fs::remove_file(&pid_file);
    st.pid = pid;
    st.pid_start = crate::state::proc_stat(pid)
        .map(|(start, _)| start)
        .ok_or_else(|| Error::Container(format!("restored process {pid} is gone")))?;
    root.save(&st)?;
    if let Some(pf) = &opts.pid_file {
        super::write_pid_file(pf, pid)?;
    }
    cleanup.armed = false;
    drop(_lock);
    if opts.detach {
        return Ok(0);
    }
    crate::signals::block_all()?;
    let code = crate::signals::wait_forwarding(pid, None);
    if let Err(e) = super::delete::delete(root, &opts.id, true) {
        tracing::warn!("delete after restore: {e}");
    }
    code.map_err(|e| Error::Container(format!("waiting for container: {e}")))
}
