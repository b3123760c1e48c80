//! The libcgroups boundary: where a container's cgroup lives, putting
//! processes in it, applying `linux.resources`, freezing, removal.
//! cgroup v1 (including this hybrid layout) and v2 are both handled by
//! libcgroups. With `--systemd-cgroup` the cgroup is a scope that systemd
//! makes ([`systemd`]); without it, a `slice:prefix:name` path is mapped
//! to the same cgroupfs path systemd would use.

use std::path::{Path, PathBuf};

use libcgroups::common::{
    AnyCgroupManager, CgroupConfig, CgroupManager, ControllerOpt, FreezerState,
    create_cgroup_manager,
};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

use crate::error::{Error, Result};
use crate::state::ContainerState;

pub mod dbus_wire;
pub mod device_filter;
pub mod systemd;
mod v2_files;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: i64 = 0x63677270;

/// Names a cgroup v2 mount to put containers in, for hybrid hosts whose
/// /sys/fs/cgroup is v1 but that also mount the unified hierarchy (such
/// as /sys/fs/cgroup/unified). Read by `create`; the container's state
/// keeps it for every later command.
pub const V2_ROOT_ENV: &str = "STRATA_CGROUP2_ROOT";

fn is_cgroup2(p: &Path) -> bool {
    nix::sys::statfs::statfs(p)
        .map(|s| s.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Is /sys/fs/cgroup a pure cgroup v2 mount?
pub fn is_unified() -> bool {
    is_cgroup2(Path::new(CGROUP_ROOT))
}

/// The cgroup v2 mount new containers go in: `STRATA_CGROUP2_ROOT`, or
/// /sys/fs/cgroup on a unified host; None for v1 (and hybrid) hosts.
pub fn v2_root_for_new() -> Result<Option<PathBuf>> {
    if let Some(root) = std::env::var_os(V2_ROOT_ENV).filter(|r| !r.is_empty()) {
        let root = PathBuf::from(root);
        if !is_cgroup2(&root) {
            return Err(Error::Cgroup(format!(
                "{V2_ROOT_ENV}={}: not a cgroup2 mount",
                root.display()
            )));
        }
        return Ok(Some(root));
    }
    Ok(host_v2_root())
}

/// /sys/fs/cgroup on a unified (pure v2) host, else None.
pub fn host_v2_root() -> Option<PathBuf> {
    is_unified().then(|| PathBuf::from(CGROUP_ROOT))
}

/// A container's cgroup: its path, and the v2 mount it lives under (None:
/// the host's v1 hierarchies, found by libcgroups).
#[derive(Debug, Clone, PartialEq)]
pub struct Cgroup {
    pub path: PathBuf,
    pub v2_root: Option<PathBuf>,
    /// The systemd scope that owns the cgroup (`--systemd-cgroup`).
    pub systemd_unit: Option<String>,
}

impl Cgroup {
    /// The directory in the v2 tree, if it is a v2 cgroup.
    pub fn v2_dir(&self) -> Option<PathBuf> {
        let rel = self.path.strip_prefix("/").unwrap_or(&self.path);
        self.v2_root.as_ref().map(|r| r.join(rel))
    }
}

/// The cgroup path of a container, following runc's conventions:
/// `cgroupsPath` as given (absolute, or taken from the hierarchy root when
/// relative); `slice:prefix:name` with `--systemd-cgroup` mapped to
/// `/slice/prefix-name.scope`; empty means `/strata-runtime/<id>`.
pub fn path_for(spec: &Spec, id: &str, systemd: bool) -> Result<PathBuf> {
    let given = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let Some(given) = given.filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(PathBuf::from("/strata-runtime").join(id));
    };
    let s = given.to_string_lossy();
    if systemd || (!s.starts_with('/') && s.matches(':').count() == 2) {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 3 {
            return Err(Error::InvalidSpec(format!(
                "cgroupsPath {s:?} must be slice:prefix:name with --systemd-cgroup"
            )));
        }
        let slice = if parts[0].is_empty() {
            "system.slice"
        } else {
            parts[0]
        };
        let unit = if parts[2].ends_with(".slice") {
            parts[2].to_string()
        } else if parts[1].is_empty() {
            format!("{}.scope", parts[2])
        } else {
            format!("{}-{}.scope", parts[1], parts[2])
        };
        return Ok(PathBuf::from("/").join(expand_slice(slice)).join(unit));
    }
    if s.split('/').any(|c| c == "..") {
        return Err(Error::InvalidSpec(format!(
            "cgroupsPath {s:?} must not contain .."
        )));
    }
    Ok(PathBuf::from("/").join(given.strip_prefix("/").unwrap_or(&given)))
}

/// systemd's slice nesting: `a-b-c.slice` lives in `a.slice/a-b.slice/`.
fn expand_slice(slice: &str) -> PathBuf {
    let name = slice.strip_suffix(".slice").unwrap_or(slice);
    let mut path = PathBuf::new();
    let mut prefix = String::new();
    for part in name.split('-').filter(|p| !p.is_empty()) {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    path
}

pub fn manager(cg: &Cgroup, id: &str) -> Result<AnyCgroupManager> {
    let err = |e: &dyn std::fmt::Display| {
        Error::Cgroup(format!("cgroup manager for {}: {e}", cg.path.display()))
    };
    if let Some(root) = &cg.v2_root {
        // The v2 manager of libcgroups, on the mount we were given.
        let rel = cg.path.strip_prefix("/").unwrap_or(&cg.path);
        return libcgroups::v2::manager::Manager::new(root.clone(), rel.to_path_buf())
            .map(AnyCgroupManager::V2)
            .map_err(|e| err(&e));
    }
    create_cgroup_manager(CgroupConfig {
        cgroup_path: cg.path.clone(),
        systemd_cgroup: false,
        container_name: id.to_string(),
    })
    .map_err(|e| err(&e))
}

/// Put `pid` into the container's cgroup, created on the way: the slow
/// path ([`Placement`] says why), for v2 kernels without clone3.
pub fn place(cg: &Cgroup, id: &str, pid: i32) -> Result<()> {
    manager(cg, id)?
        .add_task(Pid::from_raw(pid))
        .map_err(|e| Error::Cgroup(format!("join {}: {e}", cg.path.display())))
}

/// How a new process gets into the container's cgroup without the parent
/// writing its pid to `cgroup.procs`.
///
/// Why: a pid written to `cgroup.procs` takes the kernel's global
/// threadgroup lock for writing, which waits for an RCU grace period: 4 to
/// 16 ms on this kernel, v1 and v2 alike, most of a container's start.
pub enum Placement {
    /// v1: the process writes "0" to each hierarchy's `tasks` file
    /// ([`join_self`]). A single thread moving itself skips that lock on
    /// kernels since 6.0 (0.04 ms here); a freshly forked child is
    /// single-threaded, so it moves whole.
    SelfJoin(Vec<PathBuf>),
    /// v2: the process is born in the cgroup (clone3 with
    /// CLONE_INTO_CGROUP and this directory fd), which takes only the
    /// read side of that lock. Kernels before 5.7 lack it: the parent
    /// places the process with [`place`] then.
    Born(std::os::fd::OwnedFd),
}

impl Placement {
    /// The `tasks` files the process writes itself into (empty when it
    /// is born in its cgroup).
    pub fn self_join_tasks(&self) -> &[PathBuf] {
        match self {
            Placement::SelfJoin(tasks) => tasks,
            Placement::Born(_) => &[],
        }
    }
}

/// Create the container's cgroup (our own short path: one read of
/// mountinfo and a directory per v1 hierarchy; on v2 the directories with
/// the controllers enabled above them, as libcgroups' v2 manager does;
/// libcgroups' manager, which reads mountinfo once per controller on v1,
/// is left for [`apply`]) and say how the new process joins it.
pub fn prepare(cg: &Cgroup) -> Result<Placement> {
    match cg.v2_dir() {
        None => prepare_v1(cg).map(Placement::SelfJoin),
        Some(dir) => prepare_v2(cg, &dir).map(Placement::Born),
    }
}

/// A failure to create a cgroup directory: `CgroupDenied` when the tree
/// is not writable for us (a rootless runtime may go on without).
fn create_error(dir: &Path, e: std::io::Error) -> Error {
    let msg = format!("create {}: {e}", dir.display());
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM | libc::EROFS) => Error::CgroupDenied(msg),
        _ => Error::Cgroup(msg),
    }
}

/// Does the spec ask for resource limits (which need a cgroup)? Device
/// rules alone do not: without a devices cgroup the container still gets
/// only the devices it is given.
pub fn limits_requested(spec: &Spec) -> bool {
    let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
        return false;
    };
    r.memory().is_some()
        || r.cpu().is_some()
        || r.pids().is_some()
        || r.block_io().is_some()
        || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
        || r.network().is_some()
        || r.unified().as_ref().is_some_and(|u| !u.is_empty())
}

/// The v2 controllers libcgroups manages.
const V2_CONTROLLERS: &[&str] = &["cpu", "cpuset", "hugetlb", "io", "memory", "pids"];

fn prepare_v2(cg: &Cgroup, leaf: &Path) -> Result<std::os::fd::OwnedFd> {
    let root = cg.v2_root.clone().unwrap_or_default();
    let available = std::fs::read_to_string(root.join("cgroup.controllers"))
        .map_err(|e| Error::Cgroup(format!("read {}/cgroup.controllers: {e}", root.display())))?;
    let wanted: Vec<&str> = available
        .split_whitespace()
        .filter(|c| V2_CONTROLLERS.contains(c))
        .collect();
    // Best effort, as libcgroups: a controller that cannot be enabled
    // fails when a limit needs it.
    let enable = |dir: &Path| {
        let file = dir.join("cgroup.subtree_control");
        let on = std::fs::read_to_string(&file).unwrap_or_default();
        for c in wanted
            .iter()
            .filter(|c| !on.split_whitespace().any(|o| o == **c))
        {
            if let Err(e) = std::fs::write(&file, format!("+{c}")) {
                tracing::debug!("enable {c} in {}: {e}", file.display());
            }
        }
    };
    enable(&root);
    let mut dir = root.clone();
    let rel = leaf.strip_prefix(&root).unwrap_or(leaf);
    let mut parts = rel.components().peekable();
    while let Some(part) = parts.next() {
        dir.push(part);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(create_error(&dir, e)),
        }
        // Not the leaf: a cgroup with controllers for its children may
        // hold no process ("no internal processes").
        if parts.peek().is_some() {
            enable(&dir);
        }
    }
    std::fs::File::open(&dir)
        .map(std::os::fd::OwnedFd::from)
        .map_err(|e| Error::Cgroup(format!("open {}: {e}", dir.display())))
}

/// Move the calling (single-threaded) process into the cgroups whose
/// `tasks` files [`Placement::SelfJoin`] holds.
/// `exec --cgroup`: the tasks files an exec joins when it asks for
/// sub-cgroups of the container's, given as `PATH` (every controller) or
/// `CTRL[,CTRL]:PATH`, as runc takes them. v1 (and hybrid) hosts; each
/// sub-cgroup must exist already.
pub fn sub_cgroup_tasks(cg: &Cgroup, subs: &[String]) -> Result<Vec<PathBuf>> {
    if cg.v2_dir().is_some() {
        return Err(Error::Cgroup(
            "exec --cgroup is not supported on cgroup v2 yet".into(),
        ));
    }
    let hierarchies: Vec<Hierarchy> = v1_hierarchies().into_iter().filter(joined).collect();
    let mut all: Option<PathBuf> = None;
    let mut by_ctrl: Vec<(String, PathBuf)> = Vec::new();
    for s in subs {
        let (ctrls, path) = match s.split_once(':') {
            Some((c, p)) => (Some(c), p),
            None => (None, s.as_str()),
        };
        let rel = Path::new(path.trim_start_matches('/'));
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Error::Cgroup(format!("{path} is not a sub cgroup path")));
        }
        match ctrls {
            None => all = Some(rel.to_path_buf()),
            Some(list) => {
                for c in list.split(',') {
                    if !hierarchies
                        .iter()
                        .any(|h| h.controllers.iter().any(|x| x == c))
                    {
                        return Err(Error::Cgroup(format!("unknown controller {c:?}")));
                    }
                    by_ctrl.push((c.to_string(), rel.to_path_buf()));
                }
            }
        }
    }
    let base = cg.path.strip_prefix("/").unwrap_or(&cg.path);
    let mut files = Vec::new();
    for h in &hierarchies {
        let sub = by_ctrl
            .iter()
            .find(|(c, _)| h.controllers.contains(c))
            .map(|(_, p)| p.clone())
            .or_else(|| all.clone())
            .unwrap_or_default();
        let dir = h.mount_point.join(base).join(&sub);
        if !dir.is_dir() {
            return Err(Error::Cgroup(format!(
                "adding pid to cgroups: {}/cgroup.procs: no such file or directory",
                dir.display()
            )));
        }
        files.push(dir.join("tasks"));
    }
    if let Some(unified) = hybrid_unified() {
        let dir = unified.join(base);
        let sub = all.as_ref().map(|a| dir.join(a)).filter(|d| d.is_dir());
        files.push(sub.unwrap_or(dir).join("cgroup.procs"));
    }
    Ok(files)
}

pub fn join_self(tasks: &[PathBuf]) -> Result<()> {
    tasks.iter().try_for_each(|t| write_file(t, "0"))
}

fn write_file(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|e| Error::Cgroup(format!("write {}: {e}", path.display())))
}

/// Change a running container's resources (`update`): on v2 its device
/// filter is replaced only when `resources` names devices.
pub fn apply(cg: &Cgroup, id: &str, resources: Option<&LinuxResources>) -> Result<()> {
    let devices = resources.is_some_and(|r| r.devices().is_some());
    apply_resources(&manager(cg, id)?, cg, resources, devices)
}

/// Apply the spec's resources to a new container's cgroup (as runc, after
/// the process is placed; before the container's program runs), with a
/// manager built beforehand. On v2 the device filter is always attached:
/// no rules means only the default devices.
pub fn apply_with(
    m: &AnyCgroupManager,
    cg: &Cgroup,
    resources: Option<&LinuxResources>,
) -> Result<()> {
    apply_resources(m, cg, resources, true)
}

/// The kernel takes the letters r, w and m in a device rule's access;
/// runc reads an access string for those and ignores the rest ("rwa" is
/// "rw"), where the kernel would refuse the whole rule. A rule left with
/// no letter grants and denies nothing, and is dropped.
fn normalize_device_access(resources: &mut LinuxResources) {
    let Some(rules) = resources.devices().clone() else {
        return;
    };
    let rules = rules
        .into_iter()
        .filter_map(|mut r| match r.access().clone() {
            None => Some(r),
            Some(a) => {
                let kept: String = ['r', 'w', 'm']
                    .into_iter()
                    .filter(|c| a.contains(*c))
                    .collect();
                (!kept.is_empty()).then(|| {
                    r.set_access(Some(kept));
                    r
                })
            }
        })
        .collect();
    resources.set_devices(Some(rules));
}

/// v1 writes cpu.cfs_period_us before cpu.cfs_quota_us. A shorter period
/// with the old quota can be more than a parent cgroup allows (EINVAL),
/// though the new pair is within it: the new quota goes in first, as
/// runc does. Where that is refused (a longer period is still to come),
/// the manager's writes in its order follow anyway.
fn v1_quota_first(cg: &Cgroup, resources: &LinuxResources) {
    let Some(cpu) = resources.cpu() else { return };
    let (Some(quota), Some(_)) = (cpu.quota(), cpu.period()) else {
        return;
    };
    if cg.v2_dir().is_some() {
        return;
    }
    let rel = cg.path.strip_prefix("/").unwrap_or(&cg.path);
    let file = Path::new(CGROUP_ROOT)
        .join("cpu")
        .join(rel)
        .join("cpu.cfs_quota_us");
    if file.exists() {
        let _ = std::fs::write(&file, quota.to_string());
    }
}

fn apply_resources(
    m: &AnyCgroupManager,
    cg: &Cgroup,
    resources: Option<&LinuxResources>,
    devices: bool,
) -> Result<()> {
    let mut resources = resources.cloned().unwrap_or_default();
    // libcgroups' v2 io controller converts the blkio weight to io.weight
    // in u16 arithmetic, which overflows for weights above 16 (a panic in
    // debug builds, a wrong weight in release): on v2 we write it.
    let v2_weight = cg
        .v2_dir()
        .zip(resources.block_io().as_ref().and_then(|b| b.weight()));
    if v2_weight.is_some() {
        let mut bio = resources.block_io().clone().unwrap_or_default();
        bio.set_weight(None);
        resources.set_block_io(Some(bio));
    }
    normalize_device_access(&mut resources);
    v1_quota_first(cg, &resources);
    if let Some(dir) = cg.v2_dir() {
        v2_controllers_present(&dir, &resources)?;
    }
    let opt = ControllerOpt {
        resources: &resources,
        disable_oom_killer: resources
            .memory()
            .as_ref()
            .and_then(|m| m.disable_oom_killer())
            .unwrap_or(false),
        oom_score_adj: None,
        freezer_state: None,
    };
    m.apply(&opt)
        .map_err(|e| Error::Cgroup(format!("apply resources to {}: {e}", cg.path.display())))?;
    if let Some((dir, weight)) = v2_weight {
        v2_files::io_weight(&dir, weight)?;
    }
    if let Some(dir) = cg.v2_dir() {
        v2_files::no_swap(&dir, resources.memory().as_ref())?;
    }
    // v1's devices controller is libcgroups'; v2 has none, it takes an
    // eBPF program (ours: libcgroups' needs CAP_SYS_RESOURCE). Rootless,
    // as runc: no program (loading one needs privileges the user lacks);
    // the container has only the device nodes bound into it anyway.
    let rootless = crate::process::namespaces::rootless();
    if let Some(dir) = cg.v2_dir().filter(|_| devices && !rootless) {
        let rules = device_filter::rules_for(resources.devices().as_ref())?;
        device_filter::install(&dir, &rules)?;
    }
    Ok(())
}

/// The v2 controllers `resources` needs, by name.
fn v2_controllers_needed(r: &LinuxResources) -> Vec<&'static str> {
    let mut need = Vec::new();
    if r.memory()
        .as_ref()
        .is_some_and(|m| m.limit().is_some() || m.reservation().is_some() || m.swap().is_some())
    {
        need.push("memory");
    }
    if let Some(c) = r.cpu() {
        if c.shares().is_some() || c.quota().is_some() || c.period().is_some() {
            need.push("cpu");
        }
        if c.cpus().is_some() || c.mems().is_some() {
            need.push("cpuset");
        }
    }
    if r.pids().is_some() {
        need.push("pids");
    }
    if r.block_io().as_ref().is_some_and(|b| {
        b.weight().is_some()
            || b.throttle_read_bps_device().is_some()
            || b.throttle_write_bps_device().is_some()
            || b.throttle_read_iops_device().is_some()
            || b.throttle_write_iops_device().is_some()
    }) {
        need.push("io");
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        need.push("hugetlb");
    }
    need
}

/// Every controller the limits need is enabled for the v2 cgroup at
/// `dir` (its parent's `cgroup.subtree_control` gives it): else one clear
/// error, not a missing file. What a delegated subtree often lacks.
fn v2_controllers_present(dir: &Path, r: &LinuxResources) -> Result<()> {
    let need = v2_controllers_needed(r);
    if need.is_empty() {
        return Ok(());
    }
    let have = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let missing: Vec<&str> = need
        .into_iter()
        .filter(|c| !have.split_whitespace().any(|h| h == *c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(dir);
    Err(Error::Cgroup(format!(
        "the {} controller{} not enabled for {} (its cgroup.controllers: {}): enable {} in {}/cgroup.subtree_control",
        missing.join(", "),
        if missing.len() == 1 { " is" } else { "s are" },
        dir.display(),
        if have.trim().is_empty() {
            "none"
        } else {
            have.trim()
        },
        missing
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" "),
        parent.display()
    )))
}

/// Does a container's process go into this v1 hierarchy? Every one that
/// carries a controller libcgroups manages, and systemd's named one
/// (`name=systemd`), where runc puts it too: a process left in that
/// hierarchy's root is counted in whichever unit ran the runtime.
fn joined(h: &Hierarchy) -> bool {
    h.controllers
        .iter()
        .any(|c| V1_CONTROLLERS.contains(&c.as_str()) || c == "name=systemd")
}

/// The v1 controllers libcgroups manages.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// Create the container's cgroup in each v1 hierarchy (cpusets filled in
/// from their parents); the `tasks` file of each.
fn prepare_v1(cg: &Cgroup) -> Result<Vec<PathBuf>> {
    let rel = cg.path.strip_prefix("/").unwrap_or(&cg.path);
    let mut files = Vec::new();
    let io = |what: &str, p: &Path, e: std::io::Error| {
        Error::Cgroup(format!("{what} {}: {e}", p.display()))
    };
    for h in v1_hierarchies() {
        if !joined(&h) {
            continue;
        }
        let cpuset = h.controllers.iter().any(|c| c == "cpuset");
        let mut dir = h.mount_point.clone();
        for comp in rel.components() {
            let parent = dir.clone();
            dir.push(comp);
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(create_error(&dir, e)),
            }
            // A new cpuset has no cpus or mems, and takes no task until
            // it has: inherit the parent's, level by level.
            if cpuset {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let mine = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
                    if mine.trim().is_empty() {
                        let theirs = std::fs::read_to_string(parent.join(f))
                            .map_err(|e| io("read", &parent.join(f), e))?;
                        std::fs::write(dir.join(f), theirs.trim())
                            .map_err(|e| io("write", &dir.join(f), e))?;
                    }
                }
            }
        }
        files.push(dir.join("tasks"));
    }
    // Hybrid hosts: the v2 tree beside the v1 controllers gets the same
    // path, as runc gives it (tools read a process's cgroup off its `0::`
    // line); it holds no controllers of ours, so this is placement only.
    if let Some(unified) = hybrid_unified() {
        let dir = unified.join(rel);
        match std::fs::create_dir_all(&dir) {
            Ok(()) => files.push(dir.join("cgroup.procs")),
            Err(e) => tracing::debug!("hybrid cgroup {}: {e}", dir.display()),
        }
    }
    Ok(files)
}

/// Join an existing container cgroup (for `exec`).
pub fn join(cg: &Cgroup, id: &str, pid: i32) -> Result<()> {
    manager(cg, id)?
        .add_task(Pid::from_raw(pid))
        .map_err(|e| Error::Cgroup(format!("join {}: {e}", cg.path.display())))
}

pub fn remove(cg: &Cgroup, id: &str) -> Result<()> {
    if let Some(unit) = &cg.systemd_unit {
        // systemd kills what is left and removes the scope's cgroup.
        systemd::stop(unit, hierarchy_dirs(cg).first().map(PathBuf::as_path))?;
    }
    if remove_empty(cg) {
        return Ok(());
    }
    // Sub-cgroups (an exec's --cgroup, a user's mkdir) first, deepest
    // first, their processes killed: libcgroups removes only the top.
    for dir in hierarchy_dirs(cg) {
        remove_children(&dir);
    }
    manager(cg, id)?
        .remove()
        .map_err(|e| Error::Cgroup(format!("remove {}: {e}", cg.path.display())))?;
    // libcgroups' v1 manager knows nothing of the hybrid v2 tree, nor of
    // the named systemd hierarchy.
    if cg.v2_root.is_none() {
        let rel = cg.path.strip_prefix("/").unwrap_or(&cg.path);
        if let Some(unified) = hybrid_unified() {
            let _ = std::fs::remove_dir(unified.join(rel));
        }
        for h in v1_hierarchies().iter().filter(|h| {
            !h.controllers
                .iter()
                .any(|c| V1_CONTROLLERS.contains(&c.as_str()))
        }) {
            let _ = std::fs::remove_dir(h.mount_point.join(rel));
        }
    }
    Ok(())
}

/// The container's directory in every hierarchy it has one in.
fn hierarchy_dirs(cg: &Cgroup) -> Vec<PathBuf> {
    if let Some(d) = cg.v2_dir() {
        return vec![d];
    }
    let rel = cg.path.strip_prefix("/").unwrap_or(&cg.path);
    let Ok(entries) = std::fs::read_dir(CGROUP_ROOT) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path().join(rel))
        .filter(|d| d.is_dir())
        .collect()
}

/// Kill what runs in `dir`'s child cgroups and remove them, deepest first.
fn remove_children(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let child = e.path();
        remove_children(&child);
        for _ in 0..100 {
            let procs = std::fs::read_to_string(child.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ =
                    nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            match std::fs::remove_dir(&child) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                // Killed tasks take a moment to leave.
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }
}

/// The cgroup v2 tree of a hybrid host (`/sys/fs/cgroup/unified`), if this
/// is one.
fn hybrid_unified() -> Option<PathBuf> {
    let p = Path::new(CGROUP_ROOT).join("unified");
    (!is_unified() && is_cgroup2(&p)).then_some(p)
}

/// The common case of `delete`: the container has exited and its cgroup
/// is empty, so one rmdir per hierarchy removes it, without building a
/// libcgroups manager (which re-reads mountinfo for every controller).
/// False if anything is left (processes, child cgroups): the manager's
/// removal, which kills and retries, takes over.
fn remove_empty(cg: &Cgroup) -> bool {
    let rel = cg.path.strip_prefix("/").unwrap_or(&cg.path);
    let mut dirs = Vec::new();
    if let Some(dir) = cg.v2_dir() {
        dirs.push(dir);
    } else {
        let Ok(entries) = std::fs::read_dir(CGROUP_ROOT) else {
            return false;
        };
        for e in entries.flatten() {
            // cpu and cpuacct are symlinks to cpu,cpuacct: visit it once.
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path().join(rel));
            }
        }
    }
    for d in dirs {
        match std::fs::remove_dir(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return false,
        }
    }
    true
}

pub fn freeze(cg: &Cgroup, id: &str, frozen: bool) -> Result<()> {
    let state = if frozen {
        FreezerState::Frozen
    } else {
        FreezerState::Thawed
    };
    manager(cg, id)?
        .freeze(state)
        .map_err(|e| Error::Cgroup(format!("freezer {}: {e}", cg.path.display())))
}

pub fn pids(cg: &Cgroup, id: &str) -> Result<Vec<i32>> {
    let pids = manager(cg, id)?
        .get_all_pids()
        .map_err(|e| Error::Cgroup(format!("list pids of {}: {e}", cg.path.display())))?;
    Ok(pids.into_iter().map(|p| p.as_raw()).collect())
}

/// Is the container's freezer cgroup frozen (paused)?
pub fn is_frozen(st: &ContainerState) -> bool {
    st.cgroup().is_some_and(|cg| cgroup_frozen(&cg))
}

/// Before a create places anything in `cg` (which may exist already, a
/// pod's or another container's): refuse a frozen one (the init would
/// hang there), warn about one with processes in it, and refuse
/// `resources.unified` where the controllers are on v1. As runc does.
pub fn precheck(cg: &Cgroup, spec: &Spec) -> Result<()> {
    let unified = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.unified().as_ref())
        .is_some_and(|u| !u.is_empty());
    if unified && cg.v2_root.is_none() {
        return Err(Error::InvalidSpec(
            "invalid configuration: resources.unified needs cgroup v2, and this host's controllers are on cgroup v1".into(),
        ));
    }
    if cgroup_frozen(cg) {
        return Err(Error::Cgroup(format!(
            "container's cgroup unexpectedly frozen: {}",
            cg.path.display()
        )));
    }
    let procs = match cg.v2_dir() {
        Some(d) => d.join("cgroup.procs"),
        None => match controller_dir(cg, "pids").or_else(|| controller_dir(cg, "memory")) {
            Some(d) => d.join("cgroup.procs"),
            None => return Ok(()),
        },
    };
    if let Ok(text) = std::fs::read_to_string(&procs) {
        let n = text.lines().filter(|l| !l.trim().is_empty()).count();
        if n > 0 {
            tracing::warn!(
                "container's cgroup is not empty: {n} process(es) found in {}",
                cg.path.display()
            );
        }
    }
    Ok(())
}

fn cgroup_frozen(cg: &Cgroup) -> bool {
    let rel = cg.path.strip_prefix("/").unwrap_or(&cg.path);
    if let Some(dir) = cg.v2_dir() {
        std::fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
    } else {
        std::fs::read_to_string(
            Path::new(CGROUP_ROOT)
                .join("freezer")
                .join(rel)
                .join("freezer.state"),
        )
        .is_ok_and(|s| s.trim() == "FROZEN")
    }
}

/// The directory of the container's cgroup in the hierarchy that carries
/// `controller` (v1), or in the v2 tree.
fn controller_dir(cg: &Cgroup, controller: &str) -> Option<PathBuf> {
    if let Some(dir) = cg.v2_dir() {
        return Some(dir);
    }
    let rel = cg.path.strip_prefix("/").unwrap_or(&cg.path);
    v1_hierarchies()
        .into_iter()
        .find(|h| h.controllers.iter().any(|c| c == controller))
        .map(|h| h.mount_point.join(rel))
}

/// The file that counts the container's OOM kills (v1
/// `memory.oom_control`, v2 `memory.events`), found once: on v1 finding
/// it reads mountinfo, and `events` polls the count ten times a second.
pub struct OomCounter(Option<PathBuf>);

impl OomCounter {
    pub fn new(cg: &Cgroup) -> OomCounter {
        let file = if cg.v2_root.is_some() {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        OomCounter(controller_dir(cg, "memory").map(|d| d.join(file)))
    }

    /// How many processes the OOM killer has killed in the cgroup (0
    /// when unknown).
    pub fn kills(&self) -> u64 {
        let text = self
            .0
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// The v1 cpuset files as runc's `events` reports them (None on v2, or
/// without a cpuset hierarchy).
pub fn cpuset_stats(cg: &Cgroup) -> Option<serde_json::Value> {
    if cg.v2_root.is_some() {
        return None;
    }
    let dir = controller_dir(cg, "cpuset")?;
    let read = |f: &str| std::fs::read_to_string(dir.join(format!("cpuset.{f}"))).ok();
    let list = |f: &str| serde_json::Value::from(parse_cpu_list(&read(f).unwrap_or_default()));
    let num = |f: &str| {
        serde_json::Value::from(
            read(f)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(0),
        )
    };
    let mut m = serde_json::Map::new();
    m.insert("cpus".into(), list("cpus"));
    m.insert("cpu_exclusive".into(), num("cpu_exclusive"));
    m.insert("mems".into(), list("mems"));
    for f in [
        "mem_hardwall",
        "mem_exclusive",
        "memory_migrate",
        "memory_spread_page",
        "memory_spread_slab",
        "memory_pressure",
        "sched_load_balance",
        "sched_relax_domain_level",
    ] {
        m.insert(f.into(), num(f));
    }
    Some(serde_json::Value::Object(m))
}

/// "0-2,5" as [0, 1, 2, 5]; what does not parse is left out.
fn parse_cpu_list(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b.min(a.saturating_add(4096)));
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

/// A mounted cgroup v1 hierarchy.
pub struct Hierarchy {
    pub mount_point: PathBuf,
    /// The controllers (and `name=` of a named hierarchy) it carries.
    pub controllers: Vec<String>,
}

pub fn v1_hierarchies() -> Vec<Hierarchy> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            if fstype != "cgroup" {
                return None;
            }
            let mp = pre.split(' ').nth(4)?;
            // Super options: "rw,cpu,cpuacct" (after type and source).
            let controllers = post
                .split(' ')
                .nth(2)
                .unwrap_or_default()
                .split(',')
                .filter(|o| {
                    !matches!(*o, "rw" | "ro") && !o.contains('=') || o.starts_with("name=")
                })
                .map(str::to_string)
                .collect();
            Some(Hierarchy {
                mount_point: PathBuf::from(crate::rootfs::mounts::unescape_mountinfo(mp)),
                controllers,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn device_access_keeps_only_what_the_kernel_takes() {
        let mut r: oci_spec::runtime::LinuxResources = serde_json::from_value(serde_json::json!({
            "devices": [
                {"allow": false, "access": "rwm"},
                {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "mwr"},
                {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "a"}
            ]
        }))
        .unwrap();
        super::normalize_device_access(&mut r);
        let access: Vec<_> = r
            .devices()
            .iter()
            .flatten()
            .map(|d| d.access().clone().unwrap_or_default())
            .collect();
        assert_eq!(access, ["rwm", "rw", "rwm"]);
    }

    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,5\n"), vec![0, 1, 2, 5]);
        assert_eq!(parse_cpu_list("0"), vec![0]);
        assert!(parse_cpu_list("").is_empty());
        assert_eq!(parse_cpu_list("x,3"), vec![3]);
    }

    fn spec_with(path: Option<&str>) -> Spec {
        let mut j = serde_json::json!({"ociVersion": "1.0.2", "linux": {}});
        if let Some(p) = path {
            j["linux"]["cgroupsPath"] = serde_json::json!(p);
        }
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn runc_cgroup_path_conventions() {
        assert_eq!(
            path_for(&spec_with(None), "c1", false).unwrap(),
            PathBuf::from("/strata-runtime/c1")
        );
        assert_eq!(
            path_for(&spec_with(Some("/a/b")), "c1", false).unwrap(),
            PathBuf::from("/a/b")
        );
        assert_eq!(
            path_for(&spec_with(Some("a/b")), "c1", false).unwrap(),
            PathBuf::from("/a/b")
        );
        assert_eq!(
            path_for(&spec_with(Some("machine.slice:libpod:abc")), "c1", true).unwrap(),
            PathBuf::from("/machine.slice/libpod-abc.scope")
        );
        assert_eq!(
            path_for(&spec_with(Some("a-b.slice:x:y")), "c1", true).unwrap(),
            PathBuf::from("/a.slice/a-b.slice/x-y.scope")
        );
        assert!(path_for(&spec_with(Some("/a/../../etc")), "c1", false).is_err());
        assert!(path_for(&spec_with(Some("bad")), "c1", true).is_err());
    }
}
