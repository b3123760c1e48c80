//! A stub in front of a compiled seccomp filter that answers ENOSYS, not
//! the profile's default errno, for syscalls newer than the profile.
//!
//! A profile is a list written at one time; the kernel and the C library
//! inside the container grow. glibc tries a new syscall (clone3, faccessat2,
//! ...) and falls back to the old one only on ENOSYS: a profile's EPERM
//! for a syscall it has never heard of breaks programs that would run.
//! runc answers ENOSYS for every syscall number above the highest the
//! profile names (per architecture), and for clone3 when the profile does
//! not name it; so do we, for the native architecture. Other syscalls keep
//! the profile's own default action.
//!
//! Classic BPF jumps are relative, so instructions put in front of
//! libseccomp's program leave its jumps intact.

use libseccomp::ScmpSyscall;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};

/// AUDIT_ARCH_X86_64, the native architecture this stub speaks for.
#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: u32 = 0xc000_00b7;

const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
/// offsetof(struct seccomp_data, nr) and (.., arch).
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// What the stub needs to know of a profile: the highest syscall number
/// it names on this architecture, and whether it names clone3. None when
/// no stub is wanted (a profile that allows by default lets the kernel
/// answer for unknown syscalls itself).
pub fn plan(spec: &LinuxSeccomp) -> Option<(u32, bool)> {
    if matches!(
        spec.default_action(),
        LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog
    ) {
        return None;
    }
    let mut max = None::<u32>;
    let mut clone3 = false;
    for rule in spec.syscalls().iter().flatten() {
        for name in rule.names() {
            clone3 |= name == "clone3";
            if let Ok(sc) = ScmpSyscall::from_name(name) {
                let nr = sc.as_raw_syscall();
                if nr >= 0 {
                    max = max.max(Some(nr as u32));
                }
            }
        }
    }
    max.map(|m| (m, clone3))
}

/// The stub: on the native architecture, ENOSYS for a syscall number above
/// `max` (and for clone3 unless named); everything else falls through to
/// the program that follows.
pub fn stub(max: u32, clone3_named: bool) -> Vec<libc::sock_filter> {
    let clone3 = ScmpSyscall::from_name("clone3").map_or(-1, |s| s.as_raw_syscall());
    let check_clone3 = !clone3_named && clone3 >= 0 && (clone3 as u32) <= max;
    // [0] ld arch; [1] jeq native ? next : program; [2] ld nr;
    // [3] jgt max ? enosys : next; [4] (jeq clone3 ? enosys : next);
    // [n-2] ja program; [n-1] ret ENOSYS.
    let len: u8 = if check_clone3 { 7 } else { 6 };
    let enosys = len - 1;
    let mut s = vec![
        stmt(LD_W_ABS, DATA_ARCH),
        jump(JEQ_K, NATIVE_ARCH, 0, len - 2),
        stmt(LD_W_ABS, DATA_NR),
        jump(JGT_K, max, enosys - 4, 0),
    ];
    if check_clone3 {
        s.push(jump(JEQ_K, clone3 as u32, enosys - 5, 0));
    }
    s.push(stmt(JA, 1));
    s.push(stmt(RET_K, SECCOMP_RET_ERRNO | libc::ENOSYS as u32));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(default: &str, names: &[&str]) -> LinuxSeccomp {
        serde_json::from_value(serde_json::json!({
            "defaultAction": default,
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap()
    }

    /// Runs the stub as the kernel would for (arch, nr): Some(ret) when
    /// it answers, None when it falls through to the program.
    fn eval(prog: &[libc::sock_filter], arch: u32, nr: u32) -> Option<u32> {
        let (mut pc, mut acc) = (0usize, 0u32);
        while pc < prog.len() {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => acc = if i.k == DATA_ARCH { arch } else { nr },
                JEQ_K => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
                JGT_K => pc += usize::from(if acc > i.k { i.jt } else { i.jf }),
                JA => pc += i.k as usize,
                RET_K => return Some(i.k),
                other => panic!("unexpected insn {other:#x}"),
            }
        }
        None
    }

    #[test]
    fn allow_by_default_needs_no_stub() {
        assert_eq!(plan(&profile("SCMP_ACT_ALLOW", &["read"])), None);
        assert_eq!(plan(&profile("SCMP_ACT_LOG", &["read"])), None);
        assert_eq!(
            plan(&profile("SCMP_ACT_ERRNO", &["read", "write"])),
            Some((1, false))
        );
        assert_eq!(
            plan(&profile("SCMP_ACT_KILL", &["clone3"])).map(|p| p.1),
            Some(true)
        );
    }

    #[test]
    fn newer_syscalls_and_unnamed_clone3_get_enosys() {
        let enosys = Some(SECCOMP_RET_ERRNO | 38);
        // epoll_pwait2 (441) is the highest named; clone3 (435) is not named.
        let s = stub(441, false);
        assert_eq!(eval(&s, NATIVE_ARCH, 1000), enosys);
        assert_eq!(eval(&s, NATIVE_ARCH, 442), enosys);
        assert_eq!(eval(&s, NATIVE_ARCH, 435), enosys);
        assert_eq!(eval(&s, NATIVE_ARCH, 441), None);
        assert_eq!(eval(&s, NATIVE_ARCH, 83), None);
        // Another architecture (i386): the profile decides.
        assert_eq!(eval(&s, 0x4000_0003, 1000), None);
        // clone3 named: the profile decides for it.
        assert_eq!(eval(&stub(441, true), NATIVE_ARCH, 435), None);
        // clone3 above the highest named: covered by the range check.
        let low = stub(300, false);
        assert_eq!(low.len(), 6);
        assert_eq!(eval(&low, NATIVE_ARCH, 435), enosys);
        assert_eq!(eval(&low, NATIVE_ARCH, 300), None);
    }
}
