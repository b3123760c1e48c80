//! `process.scheduler` (sched_setattr(2)) and `process.ioPriority`
//! (ioprio_set(2)), applied by the init and by `exec` before privileges
//! are dropped: a real-time policy needs CAP_SYS_NICE, which the user's
//! process may not keep.

use nix::errno::Errno;
use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxSchedulerFlag, LinuxSchedulerPolicy, Process, Scheduler,
};

use crate::error::{Context, Error, Result};

/// The kernel's `struct sched_attr` (SCHED_ATTR_SIZE_VER1, with the
/// utilization clamps).
#[repr(C)]
#[derive(Debug, Default, PartialEq, Eq)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
    sched_util_min: u32,
    sched_util_max: u32,
}

fn policy_number(p: LinuxSchedulerPolicy) -> u32 {
    match p {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    }
}

fn flag_bit(f: LinuxSchedulerFlag) -> u64 {
    match f {
        LinuxSchedulerFlag::SchedResetOnFork => 0x01,
        LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
        LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
        LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
        LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
        LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
        LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
    }
}

fn sched_attr(s: &Scheduler) -> SchedAttr {
    SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: policy_number(*s.policy()),
        sched_flags: s.flags().iter().flatten().map(|f| flag_bit(*f)).sum(),
        sched_nice: s.nice().unwrap_or(0),
        sched_priority: s.priority().unwrap_or(0).max(0) as u32,
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
        sched_util_min: 0,
        sched_util_max: 0,
    }
}

/// The spec's rules for the two fields, checked before anything runs
/// (runc's wording where runc has one).
pub fn validate(process: &Process) -> Result<()> {
    if let Some(s) = process.scheduler() {
        if let Some(n) = s.nice().filter(|n| !(-20..=19).contains(n)) {
            return Err(Error::InvalidProcess(format!(
                "invalid scheduler.nice: {n} (between -20 and 19)"
            )));
        }
        let realtime = matches!(
            s.policy(),
            LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr
        );
        if let Some(p) = *s.priority() {
            if realtime && !(1..=99).contains(&p) {
                return Err(Error::InvalidProcess(format!(
                    "invalid scheduler.priority: {p} (1 to 99 for SCHED_FIFO and SCHED_RR)"
                )));
            }
            if !realtime && p != 0 {
                return Err(Error::InvalidProcess(format!(
                    "scheduler.priority can only be specified for SCHED_FIFO or SCHED_RR policy (got {p})"
                )));
            }
        }
        let deadline = *s.policy() == LinuxSchedulerPolicy::SchedDeadline;
        if !deadline && (s.runtime().is_some() || s.deadline().is_some() || s.period().is_some()) {
            return Err(Error::InvalidProcess(
                "scheduler.runtime, deadline and period are for SCHED_DEADLINE only".into(),
            ));
        }
    }
    if let Some(io) = process.io_priority() {
        let p = io.priority();
        if !(0..=7).contains(&p) {
            return Err(Error::InvalidProcess(format!(
                "invalid ioPriority.priority: {p} (between 0 and 7)"
            )));
        }
    }
    Ok(())
}

/// The ioprio value: class in the top bits, the level below.
fn ioprio_value(io: &LinuxIOPriority) -> libc::c_int {
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    (class << 13) | io.priority() as libc::c_int
}

/// Applies `process.scheduler` and `process.ioPriority` to the calling
/// process (inherited across execve).
pub fn apply(process: &Process) -> Result<()> {
    if let Some(s) = process.scheduler() {
        let attr = sched_attr(s);
        // SAFETY: sched_setattr(pid 0 = self, attr, flags 0) reads `attr`,
        // a live struct whose `size` field says how much of it there is.
        let rc =
            unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0u32) };
        Errno::result(rc)
            .map(drop)
            .ctx(|| format!("set scheduler {} (sched_setattr)", s.policy()))?;
    }
    if let Some(io) = process.io_priority() {
        const IOPRIO_WHO_PROCESS: libc::c_int = 1;
        // SAFETY: ioprio_set takes three integers.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_ioprio_set,
                IOPRIO_WHO_PROCESS,
                0,
                ioprio_value(io),
            )
        };
        Errno::result(rc)
            .map(drop)
            .ctx(|| format!("set I/O priority {} {}", io.class(), io.priority()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(extra: serde_json::Value) -> Process {
        let mut p = serde_json::json!({"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}});
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        serde_json::from_value(p).unwrap()
    }

    #[test]
    fn attr_carries_policy_nice_and_flags() {
        let p = process(serde_json::json!({"scheduler": {"policy": "SCHED_BATCH", "nice": 5}}));
        let a = sched_attr(p.scheduler().as_ref().unwrap());
        assert_eq!((a.size, a.sched_policy, a.sched_nice), (56, 3, 5));
        assert_eq!(a.sched_flags, 0);
    }

    #[test]
    fn ioprio_packs_class_and_level() {
        let p = process(
            serde_json::json!({"ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}}),
        );
        assert_eq!(ioprio_value(p.io_priority().as_ref().unwrap()), 3 << 13);
        let p =
            process(serde_json::json!({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 6}}));
        assert_eq!(
            ioprio_value(p.io_priority().as_ref().unwrap()),
            (2 << 13) | 6
        );
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for bad in [
            serde_json::json!({"scheduler": {"policy": "SCHED_OTHER", "nice": 20}}),
            serde_json::json!({"scheduler": {"policy": "SCHED_OTHER", "priority": 5}}),
            serde_json::json!({"scheduler": {"policy": "SCHED_FIFO", "priority": 0}}),
            serde_json::json!({"scheduler": {"policy": "SCHED_RR", "runtime": 10}}),
            serde_json::json!({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}}),
        ] {
            assert!(validate(&process(bad.clone())).is_err(), "{bad}");
        }
        let fine = serde_json::json!({"scheduler": {"policy": "SCHED_FIFO", "priority": 10},
                                      "ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": 0}});
        assert!(validate(&process(fine)).is_ok());
    }
}
