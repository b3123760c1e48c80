//! The default seccomp profile, Docker's policy written as our own
//! denylist: everything is allowed but the syscalls that reach past the
//! container (kernel modules, kexec, keyrings, clocks, mount and
//! namespace changes, tracing other processes, ...). As in Docker, a
//! capability given to the container re-allows the syscalls it governs.

use serde_json::{Value, json};

/// (syscalls, the capability that allows them, or "" for never).
const DENIED: &[(&[&str], &str)] = &[
    (
        &[
            "kexec_load",
            "kexec_file_load",
            "add_key",
            "request_key",
            "keyctl",
            "uselib",
            "userfaultfd",
            "vm86",
            "vm86old",
            "get_kernel_syms",
            "query_module",
            "create_module",
            "nfsservctl",
            "_sysctl",
            "sysfs",
            "ustat",
        ],
        "",
    ),
    (
        &["init_module", "finit_module", "delete_module"],
        "CAP_SYS_MODULE",
    ),
    (&["acct"], "CAP_SYS_PACCT"),
    (&["reboot"], "CAP_SYS_BOOT"),
    (
        &[
            "settimeofday",
            "stime",
            "clock_settime",
            "clock_adjtime",
            "adjtimex",
        ],
        "CAP_SYS_TIME",
    ),
    (
        &["ptrace", "process_vm_readv", "process_vm_writev", "kcmp"],
        "CAP_SYS_PTRACE",
    ),
    (&["iopl", "ioperm"], "CAP_SYS_RAWIO"),
    (&["syslog"], "CAP_SYSLOG"),
    (&["open_by_handle_at"], "CAP_DAC_READ_SEARCH"),
    (
        &["get_mempolicy", "set_mempolicy", "mbind", "move_pages"],
        "CAP_SYS_NICE",
    ),
    (
        &[
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "swapon",
            "swapoff",
            "unshare",
            "setns",
            "sethostname",
            "setdomainname",
            "quotactl",
            "lookup_dcookie",
            "name_to_handle_at",
            "bpf",
            "perf_event_open",
            "fanotify_init",
            "open_tree",
            "move_mount",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
        ],
        "CAP_SYS_ADMIN",
    ),
];

/// The profile for a container with `caps` (its bounding set).
pub fn default_profile(caps: &[String]) -> Value {
    let mut names: Vec<&str> = Vec::new();
    for (calls, cap) in DENIED {
        if cap.is_empty() || !caps.iter().any(|c| c == cap) {
            names.extend_from_slice(calls);
        }
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_reallow_what_they_govern() {
        let denied = |caps: &[&str]| -> Vec<String> {
            let caps: Vec<String> = caps.iter().map(|s| s.to_string()).collect();
            default_profile(&caps)["syscalls"][0]["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        let plain = denied(&["CAP_CHOWN"]);
        assert!(plain.contains(&"mount".to_string()));
        assert!(plain.contains(&"kexec_load".to_string()));
        let admin = denied(&["CAP_SYS_ADMIN"]);
        assert!(!admin.contains(&"mount".to_string()));
        assert!(admin.contains(&"kexec_load".to_string()));
    }
}
