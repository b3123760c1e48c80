//! cgroup v2 files written by us rather than by libcgroups, where its v2
//! controllers get a spec value wrong. Each is checked in the cgroup2-only
//! VM test (tests/cgroup_v2_vm.rs).

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::error::{Error, Result};

fn write(file: &Path, value: &str) -> Result<()> {
    std::fs::write(file, value).map_err(|e| Error::Cgroup(format!("write {}: {e}", file.display())))
}

/// The blkio weight (10 to 1000) on v2: io.bfq.weight takes it as it is;
/// io.weight (1 to 10000) takes it mapped linearly, as runc maps it.
/// (libcgroups maps it in u16 arithmetic, which overflows for any weight
/// above 16: a panic in debug builds, a wrong weight in release ones.)
pub fn io_weight(dir: &Path, weight: u16) -> Result<()> {
    if weight == 0 {
        return Ok(());
    }
    if !(10..=1000).contains(&weight) {
        return Err(Error::InvalidSpec(format!(
            "blockIO weight {weight}: must be between 10 and 1000"
        )));
    }
    let bfq = dir.join("io.bfq.weight");
    if bfq.exists() {
        return write(&bfq, &weight.to_string());
    }
    let w = u32::from(weight);
    write(
        &dir.join("io.weight"),
        &(1 + (w - 10) * 9999 / 990).to_string(),
    )
}

/// `swap` equal to `limit` (memory+swap in v1 terms) means no swap:
/// memory.swap.max 0. (libcgroups skips writing a 0, which leaves the
/// container free to swap without limit.)
pub fn no_swap(dir: &Path, memory: Option<&LinuxMemory>) -> Result<()> {
    let Some(m) = memory else { return Ok(()) };
    match (m.limit(), m.swap()) {
        (Some(limit), Some(swap)) if limit > 0 && swap == limit => {
            write(&dir.join("memory.swap.max"), "0")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_weight_maps_to_io_weight_without_bfq() {
        let d = tempfile::tempdir().unwrap();
        io_weight(d.path(), 500).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("io.weight")).unwrap(),
            "4950"
        );
        io_weight(d.path(), 1000).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("io.weight")).unwrap(),
            "10000"
        );
        io_weight(d.path(), 10).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("io.weight")).unwrap(),
            "1"
        );
        std::fs::write(d.path().join("io.bfq.weight"), "100").unwrap();
        io_weight(d.path(), 500).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("io.bfq.weight")).unwrap(),
            "500"
        );
        let e = io_weight(d.path(), 5).unwrap_err().to_string();
        assert!(e.contains("between 10 and 1000"), "{e}");
    }
}
