//! Layer unpacking: formats, metadata, whiteouts, and hostile layers made
//! here (path traversal, symlink and hardlink escapes, whiteout tricks,
//! forged overlay xattrs, corrupt streams).

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use strata_imagestore::Digest;
use strata_imagestore::unpack::{Compression, unpack};
use tar::{EntryType, Header};

/// A tar entry with raw name/link bytes (the tar crate refuses to write
/// `..` names, which is exactly what hostile layers contain).
fn raw(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: EntryType, data: &[u8], link: &str) {
    let mut h = Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(data.len() as u64);
    h.set_mode(if kind == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn finish(b: tar::Builder<Vec<u8>>) -> Vec<u8> {
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn snap() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("strata-snap-")
        .tempdir()
        .unwrap()
}

fn good_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(EntryType::Directory);
    h.set_mode(0o750);
    h.set_uid(1000);
    h.set_gid(1001);
    h.set_mtime(1_500_000_000);
    h.set_size(0);
    b.append_data(&mut h, "etc/", &[][..]).unwrap();
    let mut h = Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_mode(0o4755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_500_000_001);
    h.set_size(5);
    b.append_data(&mut h, "etc/tool", &b"hello"[..]).unwrap();
    let long = format!("etc/{}", "n".repeat(180));
    let mut h = Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_mode(0o644);
    h.set_size(4);
    b.append_data(&mut h, &long, &b"long"[..]).unwrap();
    let mut h = Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(EntryType::Symlink);
    h.set_size(0);
    h.set_mtime(1_500_000_002);
    b.append_link(&mut h, "etc/link", "/etc/tool").unwrap();
    let mut h = Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(EntryType::Link);
    h.set_size(0);
    b.append_link(&mut h, "etc/hard", "etc/tool").unwrap();
    let mut h = Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(EntryType::Fifo);
    h.set_mode(0o600);
    h.set_size(0);
    b.append_data(&mut h, "etc/fifo", &[][..]).unwrap();
    let mut h = Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(EntryType::Char);
    h.set_mode(0o666);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_size(0);
    b.append_data(&mut h, "etc/null", &[][..]).unwrap();
    // PAX xattrs: a user one is kept, a forged overlay one is dropped.
    b.append_pax_extensions([
        ("SCHILY.xattr.user.note", &b"kept"[..]),
        ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
    ])
    .unwrap();
    let mut h = Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_mode(0o644);
    h.set_size(1);
    b.append_data(&mut h, "etc/withxattr", &b"x"[..]).unwrap();
    finish(b)
}

fn getxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let cp = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let cn = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    let n =
        unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

#[test]
fn unpacks_metadata_links_devices_xattrs_long_names() {
    let tar = good_layer();
    let s = snap();
    let u = unpack(&tar[..], s.path(), "good").unwrap();
    assert_eq!(u.compression, Compression::None);
    assert_eq!(u.diff_id, Digest::of(&tar));
    assert_eq!(u.digest, u.diff_id);
    let r = s.path();
    let etc = std::fs::metadata(r.join("etc")).unwrap();
    assert_eq!(
        (etc.mode() & 0o7777, etc.uid(), etc.gid(), etc.mtime()),
        (0o750, 1000, 1001, 1_500_000_000)
    );
    let tool = std::fs::metadata(r.join("etc/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755, "setuid kept after chown");
    assert_eq!(tool.mtime(), 1_500_000_001);
    assert_eq!(std::fs::read(r.join("etc/tool")).unwrap(), b"hello");
    assert_eq!(
        std::fs::read(r.join("etc").join("n".repeat(180))).unwrap(),
        b"long"
    );
    assert_eq!(
        std::fs::read_link(r.join("etc/link")).unwrap(),
        Path::new("/etc/tool")
    );
    assert_eq!(
        std::fs::symlink_metadata(r.join("etc/link"))
            .unwrap()
            .mtime(),
        1_500_000_002
    );
    assert_eq!(
        std::fs::metadata(r.join("etc/hard")).unwrap().ino(),
        tool.ino()
    );
    assert!(
        std::fs::metadata(r.join("etc/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let null = std::fs::metadata(r.join("etc/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(
        getxattr(&r.join("etc/withxattr"), "user.note").as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(
        getxattr(&r.join("etc/withxattr"), "trusted.overlay.opaque"),
        None,
        "forged overlay xattr kept"
    );
}

#[test]
fn gzip_and_zstd_in_one_pass() {
    let tar = good_layer();
    let gz = gzip(&tar);
    let zs = zstd::encode_all(&tar[..], 3).unwrap();
    for (data, comp) in [(gz, Compression::Gzip), (zs, Compression::Zstd)] {
        let s = snap();
        let u = unpack(&data[..], s.path(), "c").unwrap();
        assert_eq!(u.compression, comp);
        assert_eq!(
            u.digest,
            Digest::of(&data),
            "compressed digest covers every byte"
        );
        assert_eq!(u.size, data.len() as u64);
        assert_eq!(u.diff_id, Digest::of(&tar));
        assert_eq!(std::fs::read(s.path().join("etc/tool")).unwrap(), b"hello");
    }
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let mut b = tar::Builder::new(Vec::new());
    raw(&mut b, "dir/", EntryType::Directory, b"", "");
    raw(&mut b, "dir/.wh..wh..opq", EntryType::Regular, b"", "");
    raw(&mut b, ".wh.gone", EntryType::Regular, b"", "");
    raw(&mut b, "sub/.wh.file", EntryType::Regular, b"", "");
    let s = snap();
    unpack(&finish(b)[..], s.path(), "wh").unwrap();
    assert_eq!(
        getxattr(&s.path().join("dir"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    for p in ["gone", "sub/file"] {
        let m = std::fs::symlink_metadata(s.path().join(p)).unwrap();
        assert!(
            m.file_type().is_char_device() && m.rdev() == 0,
            "{p} is not a 0/0 whiteout"
        );
    }
    assert!(!s.path().join(".wh.gone").exists());
}

/// Unpack a hostile layer; whatever happens, nothing outside `s` changes.
fn hostile(
    build: impl FnOnce(&mut tar::Builder<Vec<u8>>, &Path),
) -> (tempfile::TempDir, tempfile::TempDir, Result<(), String>) {
    let outside = tempfile::Builder::new()
        .prefix("strata-outside-")
        .tempdir()
        .unwrap();
    std::fs::write(outside.path().join("victim"), "precious").unwrap();
    let s = snap();
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b, outside.path());
    let res = unpack(&finish(b)[..], s.path(), "hostile")
        .map(drop)
        .map_err(|e| e.to_string());
    // The outside directory holds exactly what it held.
    let names: Vec<String> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["victim"], "layer wrote outside its snapshot");
    assert_eq!(
        std::fs::read_to_string(outside.path().join("victim")).unwrap(),
        "precious"
    );
    (s, outside, res)
}

#[test]
fn dotdot_traversal_is_refused() {
    let (_s, _o, res) = hostile(|b, out| {
        let rel = format!("../../../../../../..{}/evil", out.display());
        raw(b, &rel, EntryType::Regular, b"x", "");
    });
    let err = res.unwrap_err();
    assert!(err.contains("unsafe path") && err.contains(".."), "{err}");
}

#[test]
fn absolute_paths_are_contained() {
    let (s, o, res) = hostile(|b, out| {
        raw(
            b,
            &format!("{}/abs", out.display()),
            EntryType::Regular,
            b"x",
            "",
        )
    });
    res.unwrap();
    assert!(
        s.path()
            .join(o.path().strip_prefix("/").unwrap())
            .join("abs")
            .is_file()
    );
}

#[test]
fn symlink_then_entry_beneath_cannot_escape() {
    // Absolute symlink to the outside dir, then a file beneath it.
    let (_s, _o, res) = hostile(|b, out| {
        raw(b, "link", EntryType::Symlink, b"", out.to_str().unwrap());
        raw(b, "link/pwned", EntryType::Regular, b"x", "");
    });
    // Refused (the link points nowhere inside the layer) or contained: the
    // outside check in `hostile` is what matters.
    if let Err(e) = res {
        assert!(e.contains("unsafe path"), "{e}");
    }
}

#[test]
fn relative_symlink_climbing_out_is_clamped() {
    let (s, _o, res) = hostile(|b, _| {
        raw(
            b,
            "up",
            EntryType::Symlink,
            b"",
            "../../../../../../../../../..",
        );
        raw(b, "up/clamped", EntryType::Regular, b"x", "");
    });
    res.unwrap();
    assert!(
        s.path().join("clamped").is_file(),
        "resolved at the snapshot root"
    );
}

#[test]
fn chained_symlinks_cannot_escape() {
    let (_s, _o, res) = hostile(|b, out| {
        raw(b, "a", EntryType::Symlink, b"", "b");
        raw(b, "b", EntryType::Symlink, b"", "c/..");
        raw(b, "c", EntryType::Symlink, b"", out.to_str().unwrap());
        raw(b, "a/victim", EntryType::Regular, b"overwritten", "");
    });
    if let Err(e) = res {
        assert!(e.contains("unsafe path"), "{e}");
    }
}

#[test]
fn hardlink_to_outside_is_refused() {
    let (_s, _o, res) = hostile(|b, out| {
        raw(
            b,
            "h",
            EntryType::Link,
            b"",
            &format!("{}/victim", out.display()),
        );
    });
    assert!(
        res.unwrap_err()
            .contains("hardlink target is not in this layer")
    );
    let (_s, _o, res) = hostile(|b, out| {
        raw(
            b,
            "h",
            EntryType::Link,
            b"",
            &format!("../../../../../../../..{}/victim", out.display()),
        );
    });
    assert!(res.unwrap_err().contains("unsafe path"));
}

#[test]
fn hardlink_through_symlink_links_the_symlink_itself() {
    let (s, o, res) = hostile(|b, out| {
        raw(
            b,
            "s",
            EntryType::Symlink,
            b"",
            &format!("{}/victim", out.display()),
        );
        raw(b, "h", EntryType::Link, b"", "s");
    });
    res.unwrap();
    let h = std::fs::symlink_metadata(s.path().join("h")).unwrap();
    assert!(h.file_type().is_symlink());
    assert_eq!(
        std::fs::metadata(o.path().join("victim")).unwrap().nlink(),
        1
    );
}

#[test]
fn whiteout_through_symlink_or_dotdot_cannot_delete_outside() {
    let (_s, _o, res) = hostile(|b, out| {
        raw(b, "d", EntryType::Symlink, b"", out.to_str().unwrap());
        raw(b, "d/.wh.victim", EntryType::Regular, b"", "");
    });
    if let Err(e) = res {
        assert!(e.contains("unsafe path"), "{e}");
    }
    let (_s, _o, res) = hostile(|b, out| {
        raw(
            b,
            &format!("../../../../../../..{}/.wh.victim", out.display()),
            EntryType::Regular,
            b"",
            "",
        );
    });
    assert!(res.unwrap_err().contains("unsafe path"));
}

#[test]
fn file_over_a_symlink_replaces_the_link() {
    let (s, _o, res) = hostile(|b, out| {
        raw(
            b,
            "f",
            EntryType::Symlink,
            b"",
            &format!("{}/victim", out.display()),
        );
        raw(b, "f", EntryType::Regular, b"new", "");
    });
    res.unwrap();
    assert_eq!(std::fs::read(s.path().join("f")).unwrap(), b"new");
}

#[test]
fn corrupt_streams_are_refused() {
    let gz = gzip(&good_layer());
    let s = snap();
    let err = unpack(&gz[..gz.len() / 2], s.path(), "truncated")
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated"), "{err}");
    let s = snap();
    let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    let err = unpack(&junk[..], s.path(), "junk").unwrap_err().to_string();
    assert!(err.contains("junk"), "{err}");
    std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}
