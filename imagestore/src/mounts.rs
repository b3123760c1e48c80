//! `image mount`: a read-only overlay of an image's snapshots (a bind
//! mount for a one-layer image), recorded in the database as a GC root.

use std::path::PathBuf;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::digest::Digest;
use crate::error::{Context, Error, Result};
use crate::store::Store;

impl Store {
    pub fn mount_image(&mut self, id: &Digest) -> Result<PathBuf> {
        if let Some((p, _)) = self.mounted()?.into_iter().find(|(_, i)| i == id) {
            return Ok(PathBuf::from(p));
        }
        let dirs = self.snapshot_dirs(id)?;
        if dirs.is_empty() {
            return Err(Error::BadImage(format!(
                "image {} has no layers",
                id.short()
            )));
        }
        let target = self.root().join("mounts").join(id.hex());
        std::fs::create_dir_all(&target).ctx(|| format!("create {}", target.display()))?;
        let res = if dirs.len() == 1 {
            mount(
                Some(&dirs[0]),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .and_then(|_| {
                mount(
                    None::<&str>,
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None::<&str>,
                )
            })
        } else {
            // lowerdir lists the newest layer first.
            let lower: Vec<String> = dirs.iter().rev().map(|d| d.display().to_string()).collect();
            mount(
                Some("overlay"),
                &target,
                Some("overlay"),
                MsFlags::MS_RDONLY,
                Some(format!("lowerdir={}", lower.join(":")).as_str()),
            )
        };
        if let Err(e) = res {
            let _ = std::fs::remove_dir(&target);
            return Err(Error::Sys {
                context: format!("mount image {}", id.short()),
                source: e,
            });
        }
        self.record_mount(&target, id)?;
        Ok(target)
    }

    pub fn unmount_image(&mut self, id: &Digest) -> Result<PathBuf> {
        let (path, _) = self
            .mounted()?
            .into_iter()
            .find(|(_, i)| i == id)
            .ok_or_else(|| Error::BadImage(format!("image {} is not mounted", id.short())))?;
        match umount2(path.as_str(), MntFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                return Err(Error::Sys {
                    context: format!("unmount {path}"),
                    source: e,
                });
            }
        }
        let _ = std::fs::remove_dir(&path);
        self.forget_mount(&path)?;
        Ok(PathBuf::from(path))
    }
}
