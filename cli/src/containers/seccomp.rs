//! Seccomp profiles the Docker way.
//!
//! Docker's profiles are a superset of the OCI `linux.seccomp` object: a
//! rule may carry `includes`/`excludes` conditions on the container's
//! capabilities, the host's architecture and its kernel version, and the
//! architectures may come as an `archMap`. [`Profile::resolve`] turns such
//! a profile into the plain OCI object for one container; an OCI profile
//! passes through unchanged, so `--security-opt seccomp=FILE` takes
//! either.
//!
//! [`default_profile`] is our own allowlist with Docker's policy: every
//! syscall not listed fails with EPERM; the listed ones are what ordinary
//! programs use; calls that reach past the container are allowed only
//! with the capability that governs them (`mount` with CAP_SYS_ADMIN,
//! `reboot` with CAP_SYS_BOOT, ...); `clone` may not create namespaces
//! without CAP_SYS_ADMIN and `clone3` answers ENOSYS then (so libcs fall
//! back to `clone`); `personality` is limited to the harmless personas;
//! vsock sockets are refused.

use serde::Deserialize;
use serde_json::{Value, json};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SeccompError {
    #[error("not a seccomp profile: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("seccomp profile: unknown action {0:?}")]
    Action(String),
    #[error("seccomp profile: a rule has no syscall names")]
    NoNames,
}

/// A Docker-format (or OCI-format) seccomp profile.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub arch_map: Vec<ArchMap>,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub listener_path: Option<String>,
    #[serde(default)]
    pub syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub names: Vec<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Option<Vec<Value>>,
    #[serde(default)]
    pub includes: Filter,
    #[serde(default)]
    pub excludes: Filter,
}

/// A rule's condition: capabilities held, Go architecture names
/// (`amd64`, `386`, ...) and a minimum kernel version.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// What a profile is resolved against.
pub struct Host<'a> {
    /// The container's capabilities (its bounding set).
    pub caps: &'a [String],
    /// Go's name for the host architecture (`amd64`).
    pub arch: &'a str,
    /// The running kernel (major, minor).
    pub kernel: (u32, u32),
}

impl Host<'_> {
    pub fn current(caps: &[String]) -> Host<'_> {
        Host {
            caps,
            arch: go_arch(),
            kernel: kernel_version(),
        }
    }
}

const ACTIONS: &[&str] = &[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];

impl Profile {
    pub fn parse(data: &[u8]) -> Result<Profile, SeccompError> {
        Ok(serde_json::from_slice(data)?)
    }

    /// The OCI `linux.seccomp` object for a container on `host`.
    pub fn resolve(&self, host: &Host) -> Result<Value, SeccompError> {
        check_action(&self.default_action)?;
        let mut arches = self.architectures.clone();
        // archMap: the host's own architecture and its sub-architectures.
        let native = scmp_arch(host.arch);
        for m in &self.arch_map {
            if Some(m.architecture.as_str()) == native {
                arches.push(m.architecture.clone());
                arches.extend(m.sub_architectures.iter().cloned());
            }
        }
        let mut rules = Vec::new();
        // Names already given an unconditional action: a later rule
        // (another capability's group) need not list them again.
        let mut plain = std::collections::HashSet::new();
        for r in &self.syscalls {
            check_action(&r.action)?;
            if !applies(r, host) {
                continue;
            }
            let mut names = r.names.clone();
            names.extend(r.name.iter().cloned());
            if names.is_empty() {
                return Err(SeccompError::NoNames);
            }
            let has_args = r.args.as_ref().is_some_and(|a| !a.is_empty());
            if !has_args {
                names.retain(|n| plain.insert((n.clone(), r.action.clone(), r.errno_ret)));
                if names.is_empty() {
                    continue;
                }
            }
            let mut rule = json!({"names": names, "action": r.action});
            if let Some(e) = r.errno_ret {
                rule["errnoRet"] = json!(e);
            }
            if has_args {
                rule["args"] = json!(r.args);
            }
            rules.push(rule);
        }
        let mut out = json!({"defaultAction": self.default_action, "syscalls": rules});
        if !arches.is_empty() {
            out["architectures"] = json!(arches);
        }
        if let Some(e) = self.default_errno_ret {
            out["defaultErrnoRet"] = json!(e);
        }
        if !self.flags.is_empty() {
            out["flags"] = json!(self.flags);
        }
        if let Some(p) = &self.listener_path {
            out["listenerPath"] = json!(p);
        }
        Ok(out)
    }
}

fn check_action(a: &str) -> Result<(), SeccompError> {
    if ACTIONS.contains(&a) {
        Ok(())
    } else {
        Err(SeccompError::Action(a.to_string()))
    }
}

/// Docker's rule conditions: every included capability held, the host's
/// architecture listed, the kernel new enough; and none of the excluded.
fn applies(r: &Rule, host: &Host) -> bool {
    let held = |c: &String| host.caps.iter().any(|h| h == c);
    let inc = &r.includes;
    if !inc.caps.iter().all(held) {
        return false;
    }
    if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == host.arch) {
        return false;
    }
    if let Some(min) = &inc.min_kernel
        && parse_version(min).is_some_and(|v| host.kernel < v)
    {
        return false;
    }
    let exc = &r.excludes;
    if exc.caps.iter().any(held) {
        return false;
    }
    if exc.arches.iter().any(|a| a == host.arch) {
        return false;
    }
    if let Some(min) = &exc.min_kernel
        && parse_version(min).is_some_and(|v| host.kernel >= v)
    {
        return false;
    }
    true
}

fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

fn kernel_version() -> (u32, u32) {
    nix::sys::utsname::uname()
        .ok()
        .and_then(|u| parse_version(&u.release().to_string_lossy()))
        .unwrap_or((0, 0))
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn scmp_arch(go: &str) -> Option<&'static str> {
    Some(match go {
        "amd64" => "SCMP_ARCH_X86_64",
        "386" => "SCMP_ARCH_X86",
        "arm64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "s390x" => "SCMP_ARCH_S390X",
        "riscv64" => "SCMP_ARCH_RISCV64",
        _ => return None,
    })
}

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// What ordinary programs need, allowed to every container. Grouped by
/// what the calls touch; 32-bit x86 variants sit beside their 64-bit
/// names.
const ALLOWED: &[&[&str]] = &[
    // Files and directories.
    &[
        "access",
        "faccessat",
        "faccessat2",
        "chdir",
        "fchdir",
        "getcwd",
        "chmod",
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "chown",
        "chown32",
        "fchown",
        "fchown32",
        "fchownat",
        "lchown",
        "lchown32",
        "creat",
        "open",
        "openat",
        "openat2",
        "close",
        "close_range",
        "link",
        "linkat",
        "symlink",
        "symlinkat",
        "unlink",
        "unlinkat",
        "rename",
        "renameat",
        "renameat2",
        "mkdir",
        "mkdirat",
        "rmdir",
        "mknod",
        "mknodat",
        "readlink",
        "readlinkat",
        "stat",
        "stat64",
        "lstat",
        "lstat64",
        "fstat",
        "fstat64",
        "fstatat64",
        "newfstatat",
        "statx",
        "statfs",
        "statfs64",
        "fstatfs",
        "fstatfs64",
        "truncate",
        "truncate64",
        "ftruncate",
        "ftruncate64",
        "fallocate",
        "getdents",
        "getdents64",
        "readdir",
        "umask",
        "utime",
        "utimes",
        "utimensat",
        "utimensat_time64",
        "futimesat",
        "flock",
        "fsync",
        "fdatasync",
        "sync",
        "syncfs",
        "sync_file_range",
        "fadvise64",
        "fadvise64_64",
        "readahead",
        "name_to_handle_at",
    ],
    // Extended attributes.
    &[
        "getxattr",
        "lgetxattr",
        "fgetxattr",
        "setxattr",
        "lsetxattr",
        "fsetxattr",
        "listxattr",
        "llistxattr",
        "flistxattr",
        "removexattr",
        "lremovexattr",
        "fremovexattr",
    ],
    // Reading, writing and moving bytes between descriptors.
    &[
        "read",
        "readv",
        "pread64",
        "preadv",
        "preadv2",
        "write",
        "writev",
        "pwrite64",
        "pwritev",
        "pwritev2",
        "lseek",
        "_llseek",
        "sendfile",
        "sendfile64",
        "splice",
        "tee",
        "vmsplice",
        "copy_file_range",
        "dup",
        "dup2",
        "dup3",
        "fcntl",
        "fcntl64",
        "ioctl",
        "pipe",
        "pipe2",
    ],
    // Waiting on descriptors, events and timers.
    &[
        "select",
        "_newselect",
        "pselect6",
        "pselect6_time64",
        "poll",
        "ppoll",
        "ppoll_time64",
        "epoll_create",
        "epoll_create1",
        "epoll_ctl",
        "epoll_ctl_old",
        "epoll_wait",
        "epoll_wait_old",
        "epoll_pwait",
        "epoll_pwait2",
        "eventfd",
        "eventfd2",
        "signalfd",
        "signalfd4",
        "timerfd_create",
        "timerfd_settime",
        "timerfd_settime64",
        "timerfd_gettime",
        "timerfd_gettime64",
        "inotify_init",
        "inotify_init1",
        "inotify_add_watch",
        "inotify_rm_watch",
        "fanotify_mark",
    ],
    // Asynchronous I/O (not io_uring, which Docker leaves out too).
    &[
        "io_setup",
        "io_destroy",
        "io_submit",
        "io_cancel",
        "io_getevents",
        "io_pgetevents",
        "io_pgetevents_time64",
        "ioprio_get",
        "ioprio_set",
    ],
    // Memory.
    &[
        "brk",
        "mmap",
        "mmap2",
        "munmap",
        "mremap",
        "mprotect",
        "madvise",
        "mincore",
        "msync",
        "mlock",
        "mlock2",
        "mlockall",
        "munlock",
        "munlockall",
        "remap_file_pages",
        "memfd_create",
        "memfd_secret",
        "membarrier",
        "pkey_alloc",
        "pkey_free",
        "pkey_mprotect",
        "map_shadow_stack",
    ],
    // Processes and threads.
    &[
        "fork",
        "vfork",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "wait4",
        "waitid",
        "waitpid",
        "getpid",
        "getppid",
        "gettid",
        "getpgid",
        "setpgid",
        "getpgrp",
        "getsid",
        "setsid",
        "set_tid_address",
        "set_robust_list",
        "get_robust_list",
        "futex",
        "futex_time64",
        "futex_waitv",
        "futex_wake",
        "futex_wait",
        "futex_requeue",
        "rseq",
        "restart_syscall",
        "prctl",
        "arch_prctl",
        "capget",
        "capset",
        "seccomp",
        "getrlimit",
        "ugetrlimit",
        "setrlimit",
        "prlimit64",
        "getrusage",
        "getpriority",
        "setpriority",
        "pidfd_open",
        "pidfd_send_signal",
        "process_mrelease",
        "getcpu",
        "get_thread_area",
        "set_thread_area",
        "landlock_create_ruleset",
        "landlock_add_rule",
        "landlock_restrict_self",
    ],
    // Scheduling.
    &[
        "sched_yield",
        "sched_getaffinity",
        "sched_setaffinity",
        "sched_getattr",
        "sched_setattr",
        "sched_getparam",
        "sched_setparam",
        "sched_getscheduler",
        "sched_setscheduler",
        "sched_get_priority_max",
        "sched_get_priority_min",
        "sched_rr_get_interval",
        "sched_rr_get_interval_time64",
    ],
    // User and group ids.
    &[
        "getuid",
        "getuid32",
        "geteuid",
        "geteuid32",
        "getgid",
        "getgid32",
        "getegid",
        "getegid32",
        "getresuid",
        "getresuid32",
        "getresgid",
        "getresgid32",
        "getgroups",
        "getgroups32",
        "setuid",
        "setuid32",
        "setgid",
        "setgid32",
        "setreuid",
        "setreuid32",
        "setregid",
        "setregid32",
        "setresuid",
        "setresuid32",
        "setresgid",
        "setresgid32",
        "setfsuid",
        "setfsuid32",
        "setfsgid",
        "setfsgid32",
        "setgroups",
        "setgroups32",
    ],
    // Signals.
    &[
        "kill",
        "tkill",
        "tgkill",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigpending",
        "rt_sigsuspend",
        "rt_sigtimedwait",
        "rt_sigtimedwait_time64",
        "rt_sigqueueinfo",
        "rt_tgsigqueueinfo",
        "rt_sigreturn",
        "sigreturn",
        "sigaltstack",
        "sigprocmask",
        "signal",
        "sigaction",
        "sigpending",
        "sigsuspend",
        "pause",
        "alarm",
    ],
    // Clocks and timers (reading them; setting needs CAP_SYS_TIME).
    &[
        "time",
        "gettimeofday",
        "clock_gettime",
        "clock_gettime64",
        "clock_getres",
        "clock_getres_time64",
        "clock_nanosleep",
        "clock_nanosleep_time64",
        "nanosleep",
        "clock_adjtime",
        "clock_adjtime64",
        "adjtimex",
        "getitimer",
        "setitimer",
        "timer_create",
        "timer_delete",
        "timer_getoverrun",
        "timer_gettime",
        "timer_gettime64",
        "timer_settime",
        "timer_settime64",
        "times",
    ],
    // Sockets (`socket` itself is conditional, see below).
    &[
        "socketpair",
        "bind",
        "listen",
        "accept",
        "accept4",
        "connect",
        "getsockname",
        "getpeername",
        "getsockopt",
        "setsockopt",
        "shutdown",
        "send",
        "sendto",
        "sendmsg",
        "sendmmsg",
        "recv",
        "recvfrom",
        "recvmsg",
        "recvmmsg",
        "recvmmsg_time64",
        "socketcall",
    ],
    // System V and POSIX IPC (the container has its own IPC namespace).
    &[
        "ipc",
        "msgget",
        "msgctl",
        "msgsnd",
        "msgrcv",
        "semget",
        "semctl",
        "semop",
        "semtimedop",
        "semtimedop_time64",
        "shmget",
        "shmctl",
        "shmat",
        "shmdt",
        "mq_open",
        "mq_unlink",
        "mq_notify",
        "mq_getsetattr",
        "mq_timedsend",
        "mq_timedsend_time64",
        "mq_timedreceive",
        "mq_timedreceive_time64",
    ],
    // The system, as far as it is the container's to read.
    &["uname", "sysinfo", "getrandom", "cachestat"],
    // Tracing and comparing processes: the kernel's own checks suffice
    // since 4.8, which closed the ptrace bypass of seccomp.
    &[
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "kcmp",
        "pidfd_getfd",
        "process_madvise",
    ],
];

/// Syscalls allowed only with a capability.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "mount",
            "umount",
            "umount2",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "pivot_root",
            "unshare",
            "setns",
            "clone",
            "clone3",
            "sethostname",
            "setdomainname",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "fanotify_init",
            "bpf",
            "perf_event_open",
            "syslog",
            "swapon",
            "swapoff",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["init_module", "finit_module", "delete_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "set_mempolicy",
            "set_mempolicy_home_node",
            "mbind",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
];

/// The namespace flags of `clone`: CLONE_NEWNS, NEWCGROUP, NEWUTS,
/// NEWIPC, NEWUSER, NEWPID and NEWNET.
const CLONE_NAMESPACE_FLAGS: u64 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;

/// `personality` values a container may set: Linux, PER_LINUX32, their
/// UNAME26 forms, and the query 0xffffffff.
const PERSONAS: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

const AF_VSOCK: u64 = 40;

fn arg(index: u32, value: u64, op: &str) -> Value {
    json!({"index": index, "value": value, "op": op})
}

fn rule(names: &[&str], action: &str) -> Rule {
    Rule {
        names: names.iter().map(|s| s.to_string()).collect(),
        action: action.to_string(),
        ..Rule::default()
    }
}

fn caps_filter(caps: &[&str]) -> Filter {
    Filter {
        caps: caps.iter().map(|s| s.to_string()).collect(),
        ..Filter::default()
    }
}

/// Our default profile in Docker's format, before it is resolved for a
/// container.
pub fn default_docker_profile() -> Profile {
    let mut syscalls = vec![rule(&ALLOWED.concat(), "SCMP_ACT_ALLOW")];
    for p in PERSONAS {
        syscalls.push(Rule {
            args: Some(vec![arg(0, *p, "SCMP_CMP_EQ")]),
            ..rule(&["personality"], "SCMP_ACT_ALLOW")
        });
    }
    syscalls.push(Rule {
        args: Some(vec![arg(0, AF_VSOCK, "SCMP_CMP_NE")]),
        ..rule(&["socket"], "SCMP_ACT_ALLOW")
    });
    syscalls.push(Rule {
        includes: Filter {
            arches: vec!["amd64".into(), "x32".into(), "386".into()],
            ..Filter::default()
        },
        ..rule(&["modify_ldt"], "SCMP_ACT_ALLOW")
    });
    for (cap, names) in BY_CAPABILITY {
        syscalls.push(Rule {
            includes: caps_filter(&[cap]),
            ..rule(names, "SCMP_ACT_ALLOW")
        });
    }
    // Without CAP_SYS_ADMIN: clone only without namespace flags, and
    // clone3 (whose flags sit behind a pointer) says it does not exist.
    syscalls.push(Rule {
        args: Some(vec![json!({
            "index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
            "op": "SCMP_CMP_MASKED_EQ"
        })]),
        excludes: caps_filter(&["CAP_SYS_ADMIN"]),
        ..rule(&["clone"], "SCMP_ACT_ALLOW")
    });
    syscalls.push(Rule {
        errno_ret: Some(ENOSYS),
        excludes: caps_filter(&["CAP_SYS_ADMIN"]),
        ..rule(&["clone3"], "SCMP_ACT_ERRNO")
    });
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(EPERM),
        arch_map: vec![ArchMap {
            architecture: "SCMP_ARCH_X86_64".into(),
            sub_architectures: vec!["SCMP_ARCH_X86".into(), "SCMP_ARCH_X32".into()],
        }],
        syscalls,
        ..Profile::default()
    }
}

/// The default profile for a container with `caps` (its bounding set).
pub fn default_profile(caps: &[String]) -> Value {
    // Our own profile's actions are all valid, so resolving cannot fail;
    // the fallback keeps the container confined all the same.
    default_docker_profile()
        .resolve(&Host::current(caps))
        .unwrap_or_else(|_| json!({"defaultAction": "SCMP_ACT_KILL_PROCESS"}))
}

/// A profile file given with `--security-opt seccomp=FILE`, resolved for
/// a container with `caps`.
pub fn profile_from_file(data: &[u8], caps: &[String]) -> Result<Value, SeccompError> {
    Profile::parse(data)?.resolve(&Host::current(caps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(caps: &[&str]) -> Vec<String> {
        caps.iter().map(|s| s.to_string()).collect()
    }

    /// The names a resolved profile allows without argument conditions.
    fn allowed(v: &Value) -> Vec<String> {
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
            .flat_map(|r| r["names"].as_array().unwrap().clone())
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    }

    fn resolve(caps: &[&str]) -> Value {
        let caps = host(caps);
        let h = Host {
            caps: &caps,
            arch: "amd64",
            kernel: (6, 1),
        };
        default_docker_profile().resolve(&h).unwrap()
    }

    #[test]
    fn an_allowlist_with_eperm_by_default() {
        let p = resolve(&["CAP_CHOWN"]);
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(p["defaultErrnoRet"], 1);
        assert_eq!(
            p["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let a = allowed(&p);
        for ok in ["read", "execve", "openat", "modify_ldt", "ptrace"] {
            assert!(a.contains(&ok.to_string()), "{ok} allowed");
        }
        for no in [
            "mount",
            "kexec_load",
            "keyctl",
            "unshare",
            "reboot",
            "chroot",
            "io_uring_setup",
        ] {
            assert!(!a.contains(&no.to_string()), "{no} not allowed");
        }
        // No name is listed twice among the unconditional ones.
        let mut sorted = a.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), a.len());
    }

    #[test]
    fn capabilities_reallow_what_they_govern() {
        let plain = resolve(&["CAP_SYS_CHROOT"]);
        let a = allowed(&plain);
        assert!(a.contains(&"chroot".to_string()));
        assert!(!a.contains(&"mount".to_string()));
        // clone is allowed only without namespace flags, clone3 is ENOSYS.
        let rules = plain["syscalls"].as_array().unwrap();
        let clone = rules
            .iter()
            .find(|r| r["names"] == json!(["clone"]))
            .unwrap();
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone["args"][0]["value"], 0x7E02_0000u64);
        let clone3 = rules
            .iter()
            .find(|r| r["names"] == json!(["clone3"]))
            .unwrap();
        assert_eq!(clone3["errnoRet"], 38);

        let admin = resolve(&["CAP_SYS_ADMIN"]);
        let a = allowed(&admin);
        for n in ["mount", "unshare", "setns", "clone", "clone3"] {
            assert!(a.contains(&n.to_string()), "{n} with CAP_SYS_ADMIN");
        }
        assert!(!a.contains(&"kexec_load".to_string()));
        assert!(!admin.to_string().contains("SCMP_CMP_MASKED_EQ"));
    }

    #[test]
    fn docker_conditions_caps_arches_and_kernel() {
        let p = Profile::parse(
            br#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
            "archMap":[{"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]},
                       {"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
            "syscalls":[
              {"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_X"]}},
              {"names":["b"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["CAP_X"]}},
              {"names":["c"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["arm64"]}},
              {"names":["d"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"6.2"}},
              {"name":"e","action":"SCMP_ACT_ERRNO","errnoRet":22,
               "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        )
        .unwrap();
        let caps = host(&["CAP_X"]);
        let h = Host {
            caps: &caps,
            arch: "amd64",
            kernel: (6, 1),
        };
        let v = p.resolve(&h).unwrap();
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
        );
        assert_eq!(v["defaultErrnoRet"], 38);
        let names: Vec<&Value> = v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["names"][0])
            .collect();
        assert_eq!(names, [&json!("a"), &json!("e")]);
        assert_eq!(v["syscalls"][1]["errnoRet"], 22);
        assert_eq!(v["syscalls"][1]["args"][0]["value"], 1);

        let none: Vec<String> = Vec::new();
        let h = Host {
            caps: &none,
            arch: "arm64",
            kernel: (6, 18),
        };
        let v = p.resolve(&h).unwrap();
        let names: Vec<&str> = v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["names"][0].as_str().unwrap())
            .collect();
        assert_eq!(names, ["b", "c", "d", "e"]);
    }

    #[test]
    fn bad_profiles_are_named() {
        let e = Profile::parse(b"{\"syscalls\":[]}").unwrap_err();
        assert!(e.to_string().contains("defaultAction"), "{e}");
        let p = Profile::parse(br#"{"defaultAction":"SCMP_ACT_NOPE"}"#).unwrap();
        let caps = Vec::new();
        let e = p.resolve(&Host::current(&caps)).unwrap_err();
        assert!(e.to_string().contains("SCMP_ACT_NOPE"), "{e}");
        assert!(Profile::parse(b"not json").is_err());
    }

    /// Our allowlist against the Docker-format profile Debian's
    /// containers-common ships (podman's default), resolved by the same
    /// code for Docker's default capabilities. The differences are
    /// deliberate, and listed; a misspelt name would show up here.
    #[test]
    fn against_the_containers_common_profile() {
        let path = "/usr/share/containers/seccomp.json";
        let data = std::fs::read(path)
            .unwrap_or_else(|e| panic!("{path}: {e} (install containers-common)"));
        let caps: Vec<String> = crate::containers::spec::DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let h = Host {
            caps: &caps,
            arch: "amd64",
            kernel: (6, 1),
        };
        let names = |v: &Value| -> std::collections::BTreeSet<String> {
            v["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
                .flat_map(|r| r["names"].as_array().unwrap().clone())
                .map(|n| n.as_str().unwrap().to_string())
                .collect()
        };
        let theirs = names(&Profile::parse(&data).unwrap().resolve(&h).unwrap());
        let ours = names(&default_docker_profile().resolve(&h).unwrap());
        let only_ours: Vec<&String> = ours.difference(&theirs).collect();
        let only_theirs: Vec<&String> = theirs.difference(&ours).collect();
        // Newer than that file, or allowed by Docker where podman's
        // profile refuses them (vmsplice, io_pgetevents, kcmp,
        // process_madvise).
        assert_eq!(
            only_ours,
            [
                "cachestat",
                "fchmodat2",
                "futex_requeue",
                "futex_wait",
                "futex_waitv",
                "futex_wake",
                "io_pgetevents",
                "io_pgetevents_time64",
                "kcmp",
                "map_shadow_stack",
                "process_madvise",
                "vmsplice",
            ]
        );
        // Podman lets every container mount, unshare, setns, reboot (its
        // pid namespace) and use keyrings, leaving the checks to the
        // kernel's capabilities; Docker (and we) ask for CAP_SYS_ADMIN,
        // CAP_SYS_BOOT or refuse. syscall and timerfd are not x86 calls.
        assert_eq!(
            only_theirs,
            [
                "clone3",
                "fsconfig",
                "fsmount",
                "fsopen",
                "fspick",
                "get_mempolicy",
                "keyctl",
                "mbind",
                "mount",
                "mount_setattr",
                "move_mount",
                "open_tree",
                "pivot_root",
                "reboot",
                "set_mempolicy",
                "setns",
                "syscall",
                "syslog",
                "timerfd",
                "umount",
                "umount2",
                "unshare",
            ]
        );
    }
}
