//! Image verbs of the `strata` binary, with images made here from
//! busybox-static, umoci and skopeo (Debian packages) for interop, and
//! hand-made tampered layouts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

mod common;
use common::Strata;

type Env = Strata;

impl Strata {
    fn new() -> Strata {
        Strata::empty("strata-img-")
    }
    fn images(&self) -> Vec<Value> {
        serde_json::from_str(&self.ok(&["images", "--format", "json"])).unwrap()
    }
    fn snapshot_count(&self) -> usize {
        std::fs::read_dir(self.root().join("snapshots"))
            .unwrap()
            .count()
    }
    /// A busybox rootfs tarball.
    fn rootfs_tar(&self) -> PathBuf {
        self.busybox_tar(true)
    }
    /// An OCI layout made by umoci from the busybox rootfs, tag `v1`.
    fn umoci_layout(&self) -> PathBuf {
        let lay = self.dir.path().join("layout");
        let b = self.dir.path().join("umoci-bundle");
        let l = format!("{}:v1", lay.display());
        for args in [
            vec!["init", "--layout", lay.to_str().unwrap()],
            vec!["new", "--image", &l],
        ] {
            assert!(
                Command::new("umoci")
                    .args(&args)
                    .status()
                    .unwrap()
                    .success(),
                "umoci {args:?}"
            );
        }
        assert!(
            Command::new("umoci")
                .args(["unpack", "--image", &l])
                .arg(&b)
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success()
        );
        self.rootfs_tar();
        let st = Command::new("tar")
            .arg("-C")
            .arg(b.join("rootfs"))
            .arg("-xzf")
            .arg(self.dir.path().join("rootfs.tar.gz"))
            .status()
            .unwrap();
        assert!(st.success());
        assert!(
            Command::new("umoci")
                .args(["repack", "--image", &l])
                .arg(&b)
                .status()
                .unwrap()
                .success()
        );
        assert!(
            Command::new("umoci")
                .args(["config", "--image", &l, "--config.cmd", "sh"])
                .status()
                .unwrap()
                .success()
        );
        lay
    }
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn import_images_tag_rmi() {
    let e = Env::new();
    let tar = e.rootfs_tar();
    let id = e.ok(&["import", tar.to_str().unwrap(), "busybox"]);
    assert!(id.starts_with("sha256:"));
    let imgs = e.images();
    assert_eq!(imgs.len(), 1);
    assert_eq!(imgs[0]["Names"], json!(["localhost/busybox:latest"]));
    for k in ["Id", "Names", "Digest", "Size", "Created"] {
        assert!(imgs[0].get(k).is_some(), "podman field {k} missing");
    }
    // Short names find the local image.
    e.ok(&["tag", "busybox", "other:1"]);
    let table = e.ok(&["images"]);
    assert!(
        table.contains("localhost/other") && table.contains("localhost/busybox"),
        "{table}"
    );
    let q = e.ok(&["images", "-q"]);
    assert_eq!(q.trim(), &id.trim()[7..19]);
    let insp: Value = serde_json::from_str(&e.ok(&["image", "inspect", "other:1"])).unwrap();
    assert_eq!(insp[0]["Id"], id.trim());
    assert_eq!(insp[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    // rmi by one of two names only untags; by the last name deletes.
    assert_eq!(
        e.ok(&["rmi", "other:1"]).trim(),
        "Untagged: localhost/other:1"
    );
    let out = e.ok(&["rmi", "busybox"]);
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert!(e.images().is_empty());
    // Garbage collected: no blobs, no snapshots.
    assert_eq!(
        std::fs::read_dir(e.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(e.snapshot_count(), 0);
    let o = e.run(&["rmi", "busybox"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found"));
}

#[test]
fn import_from_stdin_by_id_prefix() {
    let e = Env::new();
    let tar = e.rootfs_tar();
    let o = e
        .cmd(&["import", "-"])
        .stdin(std::fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(e.images()[0]["Names"], json!([]));
    e.ok(&["tag", &id[7..15], "named"]);
    assert_eq!(e.images()[0]["Names"], json!(["localhost/named:latest"]));
}

#[test]
fn load_umoci_layout_dir_and_archive_sharing_snapshots() {
    let e = Env::new();
    let lay = e.umoci_layout();
    let out = e.ok(&["load", "-i", lay.to_str().unwrap()]);
    assert!(out.starts_with("Loaded image ID: sha256:"), "{out}");
    let snaps = e.snapshot_count();
    assert!(snaps >= 1);
    // The same image as an oci-archive tar: no new snapshot.
    let archive = e.dir.path().join("oci.tar");
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&lay)
            .arg("-cf")
            .arg(&archive)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    e.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(e.snapshot_count(), snaps);
    assert_eq!(e.images().len(), 1);
    // The unpacked snapshot has busybox in it.
    let insp: Value = serde_json::from_str(&e.ok(&[
        "image",
        "inspect",
        &e.images()[0]["Id"].as_str().unwrap()[..12],
    ]))
    .unwrap();
    let dirs = insp[0]["GraphDriver"]["Data"]["LowerDirs"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        dirs.iter()
            .any(|d| Path::new(d.as_str().unwrap()).join("bin/busybox").is_file()),
        "{dirs:?}"
    );
    assert_eq!(insp[0]["Config"]["Cmd"], json!(["sh"]));
    assert!(e.ok(&["system", "check"]).contains("consistent"));
}

#[test]
fn load_docker_archive_made_by_skopeo() {
    let e = Env::new();
    let lay = e.umoci_layout();
    let arch = e.dir.path().join("docker.tar");
    let st = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:v1", lay.display()))
        .arg(format!("docker-archive:{}:busybox:skopeo", arch.display()))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "skopeo copy to docker-archive");
    let out = e.ok(&["load", "-i", arch.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: docker.io/library/busybox:skopeo");
    let insp: Value = serde_json::from_str(&e.ok(&["image", "inspect", "busybox:skopeo"])).unwrap();
    assert_eq!(insp[0]["Config"]["Cmd"], json!(["sh"]));
    // Also from stdin.
    let e2 = Env::new();
    let o = e2
        .cmd(&["load"])
        .stdin(std::fs::File::open(&arch).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Write a one-layer OCI layout by hand; `tweak` may corrupt it.
fn hand_layout(dir: &Path, layer: &[u8], diff_id: Option<String>, name: &str) -> PathBuf {
    let lay = dir.join(format!("hand-{name}"));
    std::fs::create_dir_all(lay.join("blobs/sha256")).unwrap();
    let put = |data: &[u8]| -> String {
        let d = sha(data);
        std::fs::write(lay.join("blobs/sha256").join(&d[7..]), data).unwrap();
        d
    };
    let ld = put(layer);
    let config = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.unwrap_or_else(|| sha(layer))]}});
    let cb = serde_json::to_vec(&config).unwrap();
    let cd = put(&cb);
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cb.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}]});
    let mb = serde_json::to_vec(&manifest).unwrap();
    let md = put(&mb);
    std::fs::write(lay.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": mb.len(), "annotations": {"org.opencontainers.image.ref.name": format!("localhost/{name}:1")}}]});
    std::fs::write(lay.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    lay
}

fn small_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(3);
    b.append_data(&mut h, "hello.txt", &b"hi\n"[..]).unwrap();
    b.into_inner().unwrap()
}

fn assert_nothing_loaded(e: &Env) {
    assert!(e.images().is_empty(), "an image was registered");
    assert_eq!(e.snapshot_count(), 0, "a snapshot was published");
    assert!(e.ok(&["system", "check"]).contains("consistent"));
}

#[test]
fn tampered_layer_blob_is_refused() {
    let e = Env::new();
    let layer = small_layer();
    let lay = hand_layout(e.dir.path(), &layer, None, "tampered");
    // Flip a byte of the layer file (its name still claims the old digest).
    let p = lay.join("blobs/sha256").join(&sha(&layer)[7..]);
    let mut data = std::fs::read(&p).unwrap();
    data[600] ^= 1;
    std::fs::write(&p, data).unwrap();
    let o = e.run(&["load", "-i", lay.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("digest mismatch for layer 1"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_nothing_loaded(&e);
}

#[test]
fn wrong_diff_id_is_refused() {
    let e = Env::new();
    let layer = small_layer();
    let lay = hand_layout(e.dir.path(), &layer, Some(sha(b"something else")), "diffid");
    let o = e.run(&["load", "-i", lay.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("digest mismatch for diff_id"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_nothing_loaded(&e);
}

#[test]
fn hostile_layer_in_an_image_is_refused() {
    let e = Env::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let name = b"../../../../../../../../tmp/strata-load-escape";
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(1);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let layer = b.into_inner().unwrap();
    let lay = hand_layout(e.dir.path(), &layer, None, "hostile");
    let o = e.run(&["load", "-i", lay.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unsafe path"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!Path::new("/tmp/strata-load-escape").exists());
    assert_nothing_loaded(&e);
}

#[test]
fn concurrent_loads_keep_one_copy() {
    let e = Env::new();
    let lay = e.umoci_layout();
    let kids: Vec<_> = (0..2)
        .map(|_| {
            e.cmd(&["load", "-i", lay.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(e.images().len(), 1);
    let layers = std::fs::read_to_string(lay.join("index.json")).unwrap();
    assert!(!layers.is_empty());
    let snaps = e.snapshot_count();
    let e2 = Env::new();
    e2.ok(&["load", "-i", lay.to_str().unwrap()]);
    assert_eq!(
        snaps,
        e2.snapshot_count(),
        "duplicate snapshots after concurrent loads"
    );
    assert!(e.ok(&["system", "check"]).contains("consistent"));
}

#[test]
fn load_killed_midway_leaves_a_consistent_store() {
    let e = Env::new();
    // A layer big enough to be caught mid-unpack.
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..3000 {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let data = vec![(i % 251) as u8; 8192];
        h.set_size(data.len() as u64);
        b.append_data(&mut h, format!("d{}/f{i}", i % 30), &data[..])
            .unwrap();
    }
    let layer = b.into_inner().unwrap();
    let lay = hand_layout(e.dir.path(), &layer, None, "big");
    for delay_ms in [5u64, 20, 60] {
        let mut k = e
            .cmd(&["load", "-i", lay.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = k.kill();
        let _ = k.wait();
        let check = e.run(&["system", "check"]);
        assert!(
            check.status.success(),
            "check after SIGKILL at {delay_ms} ms: {}",
            String::from_utf8_lossy(&check.stdout)
        );
    }
    e.ok(&["load", "-i", lay.to_str().unwrap()]);
    assert_eq!(e.images()[0]["Names"], json!(["localhost/big:1"]));
    assert!(e.ok(&["system", "check"]).contains("consistent"));
    // No debris: one snapshot, no temp dirs or temp blobs.
    assert_eq!(e.snapshot_count(), 1);
    assert_eq!(
        std::fs::read_dir(e.root().join("ingest")).unwrap().count(),
        0
    );
    assert_eq!(std::fs::read_dir(e.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn save_oci_archive_read_by_umoci_and_skopeo() {
    let e = Env::new();
    let tar = e.rootfs_tar();
    e.ok(&["import", tar.to_str().unwrap(), "busybox"]);
    let out = e.dir.path().join("saved-oci.tar");
    e.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        out.to_str().unwrap(),
        "busybox",
    ]);
    // skopeo reads the archive by name.
    let o = Command::new("skopeo")
        .arg("inspect")
        .arg(format!(
            "oci-archive:{}:localhost/busybox:latest",
            out.display()
        ))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    // umoci unpacks the layout into a runnable bundle.
    let lay = e.dir.path().join("saved-layout");
    std::fs::create_dir_all(&lay).unwrap();
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&lay)
            .arg("-xf")
            .arg(&out)
            .status()
            .unwrap()
            .success()
    );
    let bundle = e.dir.path().join("umoci-out");
    let o = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:localhost/busybox:latest", lay.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    // And it loads back (round trip) as the same image.
    let e2 = Env::new();
    e2.ok(&["load", "-i", out.to_str().unwrap()]);
    assert_eq!(e2.images()[0]["Id"], e.images()[0]["Id"]);
}

#[test]
fn docker_archive_round_trips_with_podman() {
    let e = Env::new();
    let tar = e.rootfs_tar();
    e.ok(&["import", tar.to_str().unwrap(), "busybox"]);
    let out = e.dir.path().join("saved-docker.tar");
    e.ok(&["save", "-o", out.to_str().unwrap(), "busybox"]);
    let pm = |args: &[&str]| {
        Command::new("podman")
            .arg("--root")
            .arg(e.dir.path().join("podman-root"))
            .arg("--runroot")
            .arg(e.dir.path().join("podman-run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = pm(&["load", "-i", out.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "podman load: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = pm(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("localhost/busybox:latest"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // podman saves it back; strata loads podman's docker-archive.
    let back = e.dir.path().join("from-podman.tar");
    let o = pm(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        back.to_str().unwrap(),
        "localhost/busybox:latest",
    ]);
    assert!(
        o.status.success(),
        "podman save: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let e2 = Env::new();
    let loaded = e2.ok(&["load", "-i", back.to_str().unwrap()]);
    assert!(loaded.contains("busybox"), "{loaded}");
    let insp: Value =
        serde_json::from_str(&e2.ok(&["image", "inspect", "localhost/busybox"])).unwrap();
    assert_eq!(
        insp[0]["RootFS"]["Layers"],
        serde_json::from_str::<Value>(&e.ok(&["image", "inspect", "busybox"])).unwrap()[0]["RootFS"]
            ["Layers"]
    );
    let _ = pm(&["system", "reset", "-f"]);
}

#[test]
fn image_mount_is_readonly_and_pins_the_image() {
    let e = Env::new();
    let lay = e.umoci_layout();
    e.ok(&["load", "-i", lay.to_str().unwrap()]);
    let id = e.images()[0]["Id"].as_str().unwrap().to_string();
    let tar = e.rootfs_tar();
    e.ok(&["import", tar.to_str().unwrap(), "flat"]);
    for img in [&id[..12], "flat"] {
        let path = e.ok(&["image", "mount", img]).trim().to_string();
        assert!(Path::new(&path).join("bin/busybox").is_file(), "{path}");
        assert!(
            std::fs::write(Path::new(&path).join("new"), "x").is_err(),
            "mount must be read-only"
        );
        let o = e.run(&["rmi", "-f", img]);
        assert!(!o.status.success(), "rmi of a mounted image must fail");
        assert_eq!(e.ok(&["image", "unmount", img]).trim(), path);
        assert!(!Path::new(&path).exists());
    }
    e.ok(&["rmi", "flat"]);
}

#[test]
fn prune_removes_dangling_images_only() {
    let e = Env::new();
    let tar = e.rootfs_tar();
    let o = e
        .cmd(&["import", "-"])
        .stdin(std::fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    let dangling = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let lay = e.umoci_layout();
    e.ok(&["load", "-i", lay.to_str().unwrap()]);
    let loaded = e
        .images()
        .iter()
        .map(|i| i["Id"].as_str().unwrap().to_string())
        .find(|i| !dangling.ends_with(i.as_str()))
        .unwrap();
    e.ok(&["tag", &loaded[..12], "keep"]);
    let out = e.ok(&["image", "prune"]);
    assert_eq!(out.trim(), format!("Deleted: {dangling}"));
    assert_eq!(e.images().len(), 1);
    assert!(e.ok(&["system", "check"]).contains("consistent"));
}

#[test]
fn index_picks_the_host_platform() {
    let e = Env::new();
    let layer = small_layer();
    let lay = hand_layout(e.dir.path(), &layer, None, "multi");
    // Wrap the manifest in an image index next to a manifest for another
    // platform that is not even in the layout (it must not be read).
    let index: Value =
        serde_json::from_slice(&std::fs::read(lay.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0].clone();
    let other = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha(b"not here"), "size": 8, "platform": {"os": "linux", "architecture": "arm64"}});
    let mut amd = m.clone();
    amd.as_object_mut().unwrap().remove("annotations");
    amd["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let nested = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [other, amd]}),
    )
    .unwrap();
    let nd = sha(&nested);
    std::fs::write(lay.join("blobs/sha256").join(&nd[7..]), &nested).unwrap();
    let top = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": nd, "size": nested.len(), "annotations": {"org.opencontainers.image.ref.name": "localhost/multi:2"}}]});
    std::fs::write(lay.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let out = e.ok(&["load", "-i", lay.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: localhost/multi:2");
    let insp: Value = serde_json::from_str(&e.ok(&["image", "inspect", "multi:2"])).unwrap();
    assert_eq!(insp[0]["Digest"], m["digest"]);
    assert_eq!(insp[0]["Architecture"], "amd64");
}

#[test]
fn system_df_counts_images_and_snapshots() {
    let e = Env::new();
    let tar = e.rootfs_tar();
    e.ok(&["import", tar.to_str().unwrap(), "a"]);
    let df = e.ok(&["system", "df"]);
    let images = df.lines().find(|l| l.starts_with("Images")).unwrap();
    assert!(
        images.split_whitespace().nth(1) == Some("1") && images.contains("MB"),
        "{df}"
    );
    let snaps = df.lines().find(|l| l.starts_with("Snapshots")).unwrap();
    assert_eq!(snaps.split_whitespace().nth(1), Some("1"), "{df}");
}
