//! Privilege shaping of the container process: capabilities, seccomp,
//! no_new_privs.

pub mod capabilities;
pub mod enosys;
pub mod lsm;
pub mod seccomp;

use nix::errno::Errno;

use crate::error::{Error, Result};

pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes plain integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Errno::result(rc).map(drop).map_err(|e| Error::Sys {
        context: "set no_new_privs".into(),
        source: e,
    })
}

/// Mark the process non-dumpable so that processes in the container cannot
/// ptrace it or open its /proc/<pid>/exe (the runtime binary) while it sets
/// up; execve of the user's program resets this.
pub fn set_non_dumpable() -> Result<()> {
    // SAFETY: prctl with PR_SET_DUMPABLE takes plain integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    Errno::result(rc).map(drop).map_err(|e| Error::Sys {
        context: "set non-dumpable".into(),
        source: e,
    })
}
