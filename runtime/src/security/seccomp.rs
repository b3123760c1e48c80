//! `linux.seccomp` compiled and loaded through libseccomp.

use std::collections::HashSet;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

use crate::error::{Error, Result};

const EPERM: i32 = libc::EPERM;

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(errno.map(|e| e as i32).unwrap_or(EPERM))
        }
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(errno.map(|e| e as u16).unwrap_or(EPERM as u16))
        }
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::Seccomp(
                "SCMP_ACT_NOTIFY needs a listenerPath, which is not supported".into(),
            ));
        }
    })
}

fn arch(a: &Arch) -> Option<ScmpArch> {
    Some(match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        _ => return None,
    })
}

fn compare(arg: &oci_spec::runtime::LinuxSeccompArg) -> ScmpArgCompare {
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(arg.value()),
    };
    let datum = if matches!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq) {
        arg.value_two().unwrap_or(0)
    } else {
        arg.value()
    };
    ScmpArgCompare::new(arg.index() as u32, op, datum)
}

fn err(context: &str, e: impl std::fmt::Display) -> Error {
    Error::Seccomp(format!("{context}: {e}"))
}

/// Build the filter (without loading it).
pub fn build(spec: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default = action(spec.default_action(), spec.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| err("new filter", e))?;
    // no_new_privs is the spec's own switch; loading must not force it.
    ctx.set_ctl_nnp(false)
        .map_err(|e| err("clear nnp attribute", e))?;
    for a in spec.architectures().iter().flatten() {
        if let Some(a) = arch(a) {
            match ctx.add_arch(a) {
                Ok(_) => {}
                Err(e) => tracing::debug!("seccomp arch {a:?} not added: {e}"),
            }
        }
    }
    for rule in spec.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue; // libseccomp rejects rules equal to the default action
        }
        let args: Vec<ScmpArgCompare> = rule.args().iter().flatten().map(compare).collect();
        let mut indexes = HashSet::new();
        let repeated = rule
            .args()
            .iter()
            .flatten()
            .any(|a| !indexes.insert(a.index()));
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                tracing::debug!("seccomp: syscall {name} unknown here; skipped");
                continue;
            };
            let result = if args.is_empty() {
                ctx.add_rule(act, sc)
            } else if repeated {
                // Several conditions on one argument are alternatives:
                // libseccomp needs them as separate rules.
                args.iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, sc, &[*c]).map(drop))
                    .map(|_| &mut ctx)
            } else {
                ctx.add_rule_conditional(act, sc, &args)
            };
            result.map_err(|e| err(&format!("add rule for {name}"), e))?;
        }
    }
    Ok(ctx)
}

pub fn load(spec: &LinuxSeccomp) -> Result<()> {
    build(spec)?.load().map_err(|e| err("load filter", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_style_profile_builds() {
        let j = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["read", "write", "exit_group", "no_such_syscall_xyz"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 131072, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
            ]
        });
        let spec: LinuxSeccomp = serde_json::from_value(j).unwrap();
        build(&spec).unwrap();
    }

    #[test]
    fn notify_is_refused_clearly() {
        let j = serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"});
        let spec: LinuxSeccomp = serde_json::from_value(j).unwrap();
        let e = build(&spec).err().unwrap().to_string();
        assert!(e.contains("SCMP_ACT_NOTIFY"), "{e}");
    }
}
