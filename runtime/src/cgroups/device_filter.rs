//! Device access on cgroup v2: v2 has no devices.allow/deny files; the
//! kernel asks an eBPF program of type CGROUP_DEVICE attached to the
//! cgroup instead. This module turns the spec's `linux.resources.devices`
//! rules (plus the devices every container gets) into that program, loads
//! it with bpf(2) and attaches it, replacing any program attached before.
//!
//! libcgroups has the same behind its `cgroupsv2_devices` feature, but it
//! first raises RLIMIT_MEMLOCK to 128 MiB and fails when it cannot (no
//! CAP_SYS_RESOURCE, as on this host); kernels since 5.11 charge BPF
//! memory to the memory cgroup, so no rlimit is needed.
//!
//! Semantics: rules are read in order and the last rule that matches a
//! request decides (a `type: a` rule with no numbers matches every
//! device, so `{allow: false, access: rwm}` first means deny by default).
//! An allow rule matches a request whose access bits it all grants; a
//! deny rule matches a request that asks for any access it denies. A
//! request no rule matches is denied.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// One device rule in the kernel's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// BPF_DEVCG_DEV_BLOCK (1) or BPF_DEVCG_DEV_CHAR (2); None: any.
    pub kind: Option<u32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// BPF_DEVCG_ACC_MKNOD (1) | READ (2) | WRITE (4).
    pub access: u32,
}

const DEV_BLOCK: u32 = 1;
const DEV_CHAR: u32 = 2;
const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

fn access_bits(s: &str) -> Result<u32> {
    s.chars().try_fold(0, |acc, c| match c {
        'm' => Ok(acc | ACC_MKNOD),
        'r' => Ok(acc | ACC_READ),
        'w' => Ok(acc | ACC_WRITE),
        _ => Err(Error::InvalidSpec(format!(
            "device rule access {s:?}: only r, w and m are allowed"
        ))),
    })
}

impl Rule {
    pub fn from_spec(d: &LinuxDeviceCgroup) -> Result<Rule> {
        let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(DEV_BLOCK),
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
            LinuxDeviceType::P => {
                return Err(Error::InvalidSpec(
                    "device rule of type p: only a, b and c can be allowed or denied".into(),
                ));
            }
        };
        // A negative number (-1 in some specs) is a wildcard, as `*`.
        let num = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok());
        let access = match d.access().as_deref() {
            None | Some("") => ACC_ALL,
            Some(s) => access_bits(s)?,
        };
        Ok(Rule {
            allow: d.allow(),
            kind,
            major: num(d.major()),
            minor: num(d.minor()),
            access,
        })
    }

    fn allow_char(major: u32, minor: Option<u32>, access: u32) -> Rule {
        Rule {
            allow: true,
            kind: Some(DEV_CHAR),
            major: Some(major),
            minor,
            access,
        }
    }
}

/// What every container may use whatever its rules say (the same list
/// the v1 path writes to devices.allow): mknod of any node, the default
/// devices, the console, /dev/ptmx and the pty slaves, and /dev/net/tun.
pub fn default_rules() -> Vec<Rule> {
    let mut rules = vec![
        Rule {
            allow: true,
            kind: Some(DEV_CHAR),
            major: None,
            minor: None,
            access: ACC_MKNOD,
        },
        Rule {
            allow: true,
            kind: Some(DEV_BLOCK),
            major: None,
            minor: None,
            access: ACC_MKNOD,
        },
    ];
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        rules.push(Rule::allow_char(major, Some(minor), ACC_ALL));
    }
    rules.push(Rule::allow_char(136, None, ACC_ALL));
    rules.push(Rule::allow_char(10, Some(200), ACC_ALL));
    rules
}

/// The spec's rules followed by the defaults.
pub fn rules_for(spec_rules: Option<&Vec<LinuxDeviceCgroup>>) -> Result<Vec<Rule>> {
    let mut rules = spec_rules
        .into_iter()
        .flatten()
        .map(Rule::from_spec)
        .collect::<Result<Vec<_>>>()?;
    rules.extend(default_rules());
    Ok(rules)
}

/// One eBPF instruction, as the kernel reads it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst register in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

// Opcodes used (class | op | source).
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JNE_K: u8 = 0x55;
const JMP_JEQ_K: u8 = 0x15;
const JMP_EXIT: u8 = 0x95;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Registers: r1 the context (struct bpf_cgroup_dev_ctx { u32 access_type;
// u32 major; u32 minor; }, access_type = access << 16 | type); r2 type,
// r3 access, r4 major, r5 minor, r6 scratch, r0 the verdict.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const R6: u8 = 6;

/// The program for `rules`: the last matching rule decides; no match
/// denies.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU64_AND_K, R2, 0, 0, 0xffff),
        insn(LDX_MEM_W, R3, R1, 0, 0),
        insn(ALU64_RSH_K, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        let (block, always) = rule_block(rule);
        prog.extend(block);
        if always {
            // Code after a rule that matches everything would never run,
            // and the verifier refuses unreachable instructions.
            return prog;
        }
    }
    prog.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    prog
}

/// Code that returns the rule's verdict when it matches and falls through
/// to the next block when it does not; true when it matches every request.
fn rule_block(rule: &Rule) -> (Vec<Insn>, bool) {
    let mut block: Vec<Insn> = Vec::new();
    // Jumps to "past the end of this block", patched once its length is
    // known.
    let mut skips: Vec<usize> = Vec::new();
    for (reg, value) in [(R2, rule.kind), (R4, rule.major), (R5, rule.minor)] {
        if let Some(value) = value {
            skips.push(block.len());
            block.push(insn(JMP_JNE_K, reg, 0, 0, value as i32));
        }
    }
    let access = rule.access & ACC_ALL;
    if access != ACC_ALL {
        block.push(insn(ALU64_MOV_X, R6, R3, 0, 0));
        if rule.allow {
            // Matches when the request wants nothing the rule lacks.
            block.push(insn(ALU64_AND_K, R6, 0, 0, (!access & ACC_ALL) as i32));
            skips.push(block.len());
            block.push(insn(JMP_JNE_K, R6, 0, 0, 0));
        } else {
            // Matches when the request wants anything the rule denies.
            block.push(insn(ALU64_AND_K, R6, 0, 0, access as i32));
            skips.push(block.len());
            block.push(insn(JMP_JEQ_K, R6, 0, 0, 0));
        }
    }
    block.push(insn(ALU64_MOV_K, R0, 0, 0, i32::from(rule.allow)));
    block.push(insn(JMP_EXIT, 0, 0, 0, 0));
    let len = block.len();
    for &i in &skips {
        // A jump's offset counts from the instruction after it.
        block[i].off = (len - i - 1) as i16;
    }
    (block, skips.is_empty())
}

// bpf(2): commands, program and attach types, and the parts of union
// bpf_attr each command reads (the kernel zero-extends a shorter attr).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a live, initialised #[repr(C)] prefix of union
    // bpf_attr for `cmd`, and its size is passed with it; the kernel reads
    // (and for QUERY writes) only that many bytes and the buffers it
    // points to, which the callers keep alive across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: bpf(2) returned this descriptor to us just now and nothing
    // else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn load(prog: &[Insn]) -> Result<OwnedFd> {
    let license = c"Apache";
    let mut log = vec![0u8; 64 * 1024];
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"strata_devs");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    bpf(BPF_PROG_LOAD, &mut attr).map(owned).map_err(|e| {
        let verifier = String::from_utf8_lossy(&log);
        let verifier = verifier.trim_end_matches('\0').trim();
        Error::Cgroup(format!(
            "load the device filter (BPF_PROG_LOAD): {e}{}{verifier}",
            if verifier.is_empty() { "" } else { ": " }
        ))
    })
}

/// The ids of the device programs attached to the cgroup.
fn attached(cgroup: &OwnedFd) -> std::io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// Attach the program for `rules` to the cgroup directory `dir`, then
/// detach the device programs it had before (attach first, so that the
/// cgroup is never left without a filter).
pub fn install(dir: &Path, rules: &[Rule]) -> Result<()> {
    let err =
        |what: &str, e: std::io::Error| Error::Cgroup(format!("{what} ({}): {e}", dir.display()));
    let prog = load(&program(rules))?;
    let cgroup: OwnedFd = std::fs::File::open(dir)
        .map_err(|e| err("open cgroup", e))?
        .into();
    let old = attached(&cgroup).map_err(|e| err("query device programs", e))?;
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| err("attach the device filter", e))?;
    for id in old {
        let mut get = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        let old_fd =
            owned(bpf(BPF_PROG_GET_FD_BY_ID, &mut get).map_err(|e| err("find old filter", e))?);
        let mut detach = AttachAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_bpf_fd: old_fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: 0,
        };
        bpf(BPF_PROG_DETACH, &mut detach).map_err(|e| err("detach the old device filter", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    /// Runs the program on one request, as the kernel would: a small
    /// interpreter for the instructions `program` emits.
    fn run(prog: &[Insn], kind: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | kind, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            let k = i.imm as i64 as u64;
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = u64::from(ctx[(i.off / 4) as usize]),
                ALU64_AND_K => r[dst] &= k,
                ALU64_RSH_K => r[dst] >>= k,
                ALU64_MOV_K => r[dst] = k,
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JNE_K if r[dst] != k => pc += i.off as usize,
                JMP_JEQ_K if r[dst] == k => pc += i.off as usize,
                JMP_JNE_K | JMP_JEQ_K => {}
                JMP_EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn spec_rule(
        allow: bool,
        typ: LinuxDeviceType,
        mm: Option<(i64, i64)>,
        acc: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(acc);
        if let Some((major, minor)) = mm {
            b = b.major(major).minor(minor);
        }
        b.build().unwrap()
    }

    #[test]
    fn deny_all_then_allows_the_last_match_decides() {
        let spec = vec![
            spec_rule(false, LinuxDeviceType::A, None, "rwm"),
            spec_rule(true, LinuxDeviceType::C, Some((1, 11)), "r"),
            spec_rule(true, LinuxDeviceType::B, Some((7, 0)), "rw"),
            spec_rule(false, LinuxDeviceType::B, Some((7, 0)), "w"),
        ];
        let prog = program(&rules_for(Some(&spec)).unwrap());
        let (c, b) = (DEV_CHAR, DEV_BLOCK);
        // The defaults.
        assert_eq!(run(&prog, c, ACC_READ | ACC_WRITE, 1, 3), 1, "/dev/null rw");
        assert_eq!(run(&prog, c, ACC_WRITE, 136, 4), 1, "a pty slave");
        assert_eq!(
            run(&prog, c, ACC_MKNOD, 250, 1),
            1,
            "mknod of any char node"
        );
        assert_eq!(run(&prog, b, ACC_MKNOD, 8, 0), 1, "mknod of any block node");
        // Not allowed by anything.
        assert_eq!(run(&prog, c, ACC_READ, 1, 1), 0, "/dev/mem");
        assert_eq!(run(&prog, b, ACC_READ, 8, 0), 0, "/dev/sda");
        // /dev/kmsg: read only.
        assert_eq!(run(&prog, c, ACC_READ, 1, 11), 1);
        assert_eq!(run(&prog, c, ACC_WRITE, 1, 11), 0);
        assert_eq!(run(&prog, c, ACC_READ | ACC_WRITE, 1, 11), 0);
        // A block device allowed rw, then its writes denied.
        assert_eq!(run(&prog, b, ACC_READ, 7, 0), 1);
        assert_eq!(run(&prog, b, ACC_WRITE, 7, 0), 0);
        assert_eq!(run(&prog, b, ACC_READ | ACC_WRITE, 7, 0), 0);
        // The type matters.
        assert_eq!(run(&prog, c, ACC_READ, 7, 0), 0);
    }

    #[test]
    fn allow_all_then_a_deny() {
        let spec = vec![
            spec_rule(true, LinuxDeviceType::A, None, "rwm"),
            spec_rule(false, LinuxDeviceType::C, Some((1, 1)), "rwm"),
        ];
        let prog = program(&rules_for(Some(&spec)).unwrap());
        assert_eq!(run(&prog, DEV_BLOCK, ACC_READ, 8, 0), 1);
        assert_eq!(run(&prog, DEV_CHAR, ACC_READ, 1, 1), 0);
        // The defaults come last: mknod of any node stays allowed (as v1
        // writes `c *:* m` after the spec's rules); opening it does not.
        assert_eq!(run(&prog, DEV_CHAR, ACC_MKNOD, 1, 1), 1);
    }

    #[test]
    fn nothing_follows_a_rule_that_matches_everything() {
        let spec = vec![spec_rule(false, LinuxDeviceType::A, None, "rwm")];
        let prog = program(&rules_for(Some(&spec)).unwrap());
        let last = prog.len() - 1;
        assert_eq!((prog[last].code, prog[last - 1].imm), (JMP_EXIT, 0));
        assert_eq!(
            prog.iter().filter(|i| i.code == JMP_EXIT).count(),
            13,
            "12 defaults + the deny"
        );
    }

    #[test]
    fn no_rules_means_only_the_defaults() {
        let prog = program(&rules_for(None).unwrap());
        assert_eq!(run(&prog, DEV_CHAR, ACC_READ, 1, 5), 1);
        assert_eq!(run(&prog, DEV_CHAR, ACC_READ, 4, 1), 0);
    }

    #[test]
    fn wildcards_and_bad_access() {
        let spec = vec![spec_rule(true, LinuxDeviceType::C, Some((4, -1)), "rw")];
        let prog = program(&rules_for(Some(&spec)).unwrap());
        assert_eq!(run(&prog, DEV_CHAR, ACC_READ, 4, 7), 1, "minor -1 is any");
        let bad = vec![spec_rule(true, LinuxDeviceType::C, None, "rx")];
        let e = rules_for(Some(&bad)).unwrap_err().to_string();
        assert!(e.contains("only r, w and m"), "{e}");
    }
}
