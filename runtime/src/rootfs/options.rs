//! Mount option strings (as in `config.json` and fstab) to mount flags.

use nix::mount::MsFlags;

/// Parsed `options` of one mount.
#[derive(Debug, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// Propagation changes applied after the mount (rprivate, shared, ...).
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific data (`mode=755,size=65536k`).
    pub data: String,
    pub bind: bool,
    pub recursive: bool,
    /// `rro`: read-only all the way down (mount_setattr AT_RECURSIVE).
    pub rro: bool,
    /// `tmpcopyup`: a tmpfs starts with what the directory it covers held.
    pub tmpcopyup: bool,
}

/// Options that set (true) or clear (false) a flag.
const FLAG_TABLE: &[(&str, bool, MsFlags)] = &[
    ("ro", true, MsFlags::MS_RDONLY),
    ("rw", false, MsFlags::MS_RDONLY),
    ("nosuid", true, MsFlags::MS_NOSUID),
    ("suid", false, MsFlags::MS_NOSUID),
    ("nodev", true, MsFlags::MS_NODEV),
    ("dev", false, MsFlags::MS_NODEV),
    ("noexec", true, MsFlags::MS_NOEXEC),
    ("exec", false, MsFlags::MS_NOEXEC),
    ("sync", true, MsFlags::MS_SYNCHRONOUS),
    ("async", false, MsFlags::MS_SYNCHRONOUS),
    ("dirsync", true, MsFlags::MS_DIRSYNC),
    ("remount", true, MsFlags::MS_REMOUNT),
    ("mand", true, MsFlags::MS_MANDLOCK),
    ("nomand", false, MsFlags::MS_MANDLOCK),
    ("noatime", true, MsFlags::MS_NOATIME),
    ("atime", false, MsFlags::MS_NOATIME),
    ("nodiratime", true, MsFlags::MS_NODIRATIME),
    ("diratime", false, MsFlags::MS_NODIRATIME),
    ("relatime", true, MsFlags::MS_RELATIME),
    ("norelatime", false, MsFlags::MS_RELATIME),
    ("strictatime", true, MsFlags::MS_STRICTATIME),
    ("nostrictatime", false, MsFlags::MS_STRICTATIME),
    ("silent", true, MsFlags::MS_SILENT),
    ("loud", false, MsFlags::MS_SILENT),
];

const PROPAGATION_TABLE: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("shared", MsFlags::MS_SHARED),
    ("slave", MsFlags::MS_SLAVE),
    ("unbindable", MsFlags::MS_UNBINDABLE),
];

/// Parse a propagation name (`rslave`, `private`, ...) into flags.
pub fn propagation(name: &str) -> Option<MsFlags> {
    let (recursive, base) = match name.strip_prefix('r') {
        Some(rest) if PROPAGATION_TABLE.iter().any(|(n, _)| *n == rest) => (true, rest),
        _ => (false, name),
    };
    let flag = PROPAGATION_TABLE.iter().find(|(n, _)| *n == base)?.1;
    Some(if recursive {
        flag | MsFlags::MS_REC
    } else {
        flag
    })
}

pub fn parse(options: &[String]) -> MountOptions {
    let mut out = MountOptions {
        flags: MsFlags::empty(),
        propagation: Vec::new(),
        data: String::new(),
        bind: false,
        recursive: false,
        rro: false,
        tmpcopyup: false,
    };
    let mut data = Vec::new();
    for opt in options {
        let opt = opt.as_str();
        if let Some((_, set, flag)) = FLAG_TABLE.iter().find(|(n, _, _)| *n == opt) {
            if *set {
                out.flags |= *flag;
            } else {
                out.flags &= !*flag;
            }
        } else if opt == "bind" {
            out.bind = true;
        } else if opt == "rbind" {
            out.bind = true;
            out.recursive = true;
        } else if let Some(p) = propagation(opt) {
            out.propagation.push(p);
        } else if opt == "rro" {
            out.rro = true;
        } else if opt == "tmpcopyup" {
            out.tmpcopyup = true;
        } else if opt == "defaults" || opt.starts_with("idmap") {
            // Options other runtimes understand that need no flag here:
            // `defaults` is "rw,suid,dev,exec,auto,nouser,async".
        } else {
            data.push(opt);
        }
    }
    out.data = data.join(",");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_data_split() {
        let o = parse(&[
            "nosuid".into(),
            "strictatime".into(),
            "mode=755".into(),
            "size=65536k".into(),
        ]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert!(!o.bind);
    }

    #[test]
    fn bind_and_propagation() {
        let o = parse(&["rbind".into(), "ro".into(), "rprivate".into()]);
        assert!(o.bind && o.recursive);
        assert_eq!(o.flags, MsFlags::MS_RDONLY);
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
    }

    #[test]
    fn later_option_wins() {
        assert_eq!(parse(&["ro".into(), "rw".into()]).flags, MsFlags::empty());
    }

    #[test]
    fn propagation_names() {
        assert_eq!(
            propagation("rslave"),
            Some(MsFlags::MS_SLAVE | MsFlags::MS_REC)
        );
        assert_eq!(propagation("shared"), Some(MsFlags::MS_SHARED));
        assert_eq!(propagation("rw"), None);
    }
}
