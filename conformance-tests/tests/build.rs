//! `strata build` against Debian's `podman build` (buildah 1.28): the same
//! Dockerfiles on the same busybox base, compared field by field (config)
//! and path by path (the flattened root filesystem: type, mode, owner,
//! size, content, link target, hard-link group, xattrs).
//!
//! Which reference each case trusts is said per case:
//! - `Podman`: buildah's image, with the differences buildah is known to
//!   have on every image (below) set aside;
//! - `Expect`: a hand-written expectation, where buildah 1.28 lacks the
//!   feature (heredocs) or is wrong (see ../shared/DESIGN.md's facts).
//!
//! buildah's artifacts set aside: the empty mount-point stubs it leaves
//! (`/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`, `/run`), which
//! strata (like BuildKit) removes after each RUN.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use strata_conformance_tests::{busybox_tar, describe_tree, strata_bin, text};

enum Reference {
    Podman,
    /// (path, description prefix) pairs that strata's tree must have, and
    /// config fields (JSON pointer, value).
    Expect(
        &'static [(&'static str, &'static str)],
        &'static [(&'static str, &'static str)],
    ),
}

struct Case {
    name: &'static str,
    dockerfile: &'static str,
    /// (path, content); a path ending in `@MODE` gets that octal mode.
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    reference: Reference,
}

const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
];

const BUILDAH_STUBS: &[&str] = &["etc/hostname", "etc/hosts", "etc/resolv.conf", "run"];

fn cases() -> Vec<Case> {
    use Reference::*;
    vec![
        Case {
            name: "env-forms",
            dockerfile: "FROM localhost/busybox\nENV A=1 B=\"two words\" C=${A}x\nENV LEGACY a value here\nENV D=$B-$LEGACY\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "arg-default-and-override",
            dockerfile: "FROM localhost/busybox\nARG X=default\nARG Y=keep\nRUN echo $X $Y > /args\nENV FROM_ARG=$X\n",
            files: &[],
            args: &["--build-arg", "X=given"],
            reference: Podman,
        },
        Case {
            name: "global-arg-in-from",
            dockerfile: "ARG BASE=localhost/busybox\nFROM $BASE\nARG BASE\nRUN echo \"$BASE\" > /base\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "labels",
            dockerfile: "FROM localhost/busybox\nLABEL a=1 \"b c\"=d e=\"f g\"\nLABEL multi.line=\"x\" \\\n      other=y\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "expose",
            dockerfile: "FROM localhost/busybox\nEXPOSE 80 443/tcp 53/udp\nEXPOSE 8080\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "volumes",
            dockerfile: "FROM localhost/busybox\nVOLUME /data\nVOLUME [\"/var/log\", \"/cache\"]\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "user-workdir",
            dockerfile: "FROM localhost/busybox\nWORKDIR /a/b\nWORKDIR c\nRUN pwd > /pwd\nUSER nobody\nRUN id -u > /tmp/uid\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "cmd-exec",
            dockerfile: "FROM localhost/busybox\nCMD [\"echo\", \"hi\"]\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "cmd-shell",
            dockerfile: "FROM localhost/busybox\nCMD echo \"shell form\" $HOME\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "entrypoint-and-cmd",
            dockerfile: "FROM localhost/busybox\nENTRYPOINT [\"/bin/echo\"]\nCMD [\"default\", \"args\"]\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "entrypoint-shell",
            dockerfile: "FROM localhost/busybox\nCMD [\"x\"]\nENTRYPOINT exec top -b\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "stopsignal",
            dockerfile: "FROM localhost/busybox\nSTOPSIGNAL SIGQUIT\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "healthcheck",
            dockerfile: "FROM localhost/busybox\nHEALTHCHECK --interval=5s --timeout=2s --start-period=1s --retries=4 CMD wget -q -O- localhost || exit 1\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "healthcheck-exec",
            dockerfile: "FROM localhost/busybox\nHEALTHCHECK CMD [\"true\"]\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "onbuild",
            dockerfile: "FROM localhost/busybox\nONBUILD RUN echo child\nONBUILD COPY . /app\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "shell",
            dockerfile: "FROM localhost/busybox\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN echo $0 > /shell-was\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "copy-file",
            dockerfile: "FROM localhost/busybox\nCOPY a.txt /renamed.txt\nCOPY a.txt /dir/\n",
            files: &[("a.txt", "a\n")],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "copy-dir-contents",
            dockerfile: "FROM localhost/busybox\nCOPY src /app\nCOPY src/ /app2/\n",
            files: &[
                ("src/x", "x"),
                ("src/sub/y@755", "y"),
                ("src/sub/deeper/z", "z"),
            ],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "copy-glob",
            dockerfile: "FROM localhost/busybox\nCOPY *.txt /txt/\nCOPY d?r/* /globbed/\n",
            files: &[
                ("one.txt", "1"),
                ("two.txt", "2"),
                ("no.md", "n"),
                ("dir/a", "a"),
                ("dar/b", "b"),
            ],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "copy-many",
            dockerfile: "FROM localhost/busybox\nCOPY a b c /many/\n",
            files: &[("a", "a"), ("b", "b"), ("c", "c")],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "copy-chown-numeric",
            dockerfile: "FROM localhost/busybox\nCOPY --chown=1234:5678 a /a\nCOPY --chown=42 d /d\n",
            files: &[("a", "a"), ("d/f", "f")],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "copy-chown-names",
            dockerfile: "FROM localhost/busybox\nRUN echo 'app:x:1001:1002::/home/app:/bin/sh' >> /etc/passwd && echo 'grp:x:1003:' >> /etc/group\nCOPY --chown=app:grp a /a\n",
            files: &[("a", "a")],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "copy-chmod",
            dockerfile: "FROM localhost/busybox\nCOPY --chmod=750 a /a\nCOPY --chmod=640 d/ /d/\n",
            files: &[("a", "a"), ("d/f", "f")],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "copy-modes-kept",
            dockerfile: "FROM localhost/busybox\nCOPY . /ctx/\n",
            files: &[
                ("exec@755", "#!/bin/sh\n"),
                ("private@600", "p"),
                ("plain", "x"),
            ],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "copy-symlink-in-dir",
            dockerfile: "FROM localhost/busybox\nCOPY tree /tree\n",
            files: &[
                ("tree/target", "t"),
                ("tree/link->target", ""),
                ("tree/abs->/etc/passwd", ""),
            ],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "multi-stage-from-name",
            dockerfile: "FROM localhost/busybox AS build\nRUN mkdir /out && echo built > /out/artifact && ln /out/artifact /out/hard\nFROM localhost/busybox\nCOPY --from=build /out /out\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "multi-stage-from-index",
            dockerfile: "FROM localhost/busybox\nRUN echo zero > /zero\nFROM localhost/busybox\nCOPY --from=0 /zero /zero\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "copy-from-image",
            dockerfile: "FROM scratch\nCOPY --from=localhost/busybox /bin/busybox /bin/busybox\nCOPY --from=localhost/busybox /etc/passwd /etc/\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "from-stage",
            dockerfile: "FROM localhost/busybox AS base\nENV STAGE=base\nRUN echo base > /base\nFROM base\nRUN echo child > /child\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "add-tar",
            dockerfile: "FROM localhost/busybox\nADD archive.tar.gz /unpacked/\nADD plain.txt /plain.txt\n",
            files: &[("archive.tar.gz", "@tgz"), ("plain.txt", "plain")],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "dockerignore",
            dockerfile: "FROM localhost/busybox\nCOPY . /ctx/\n",
            files: &[
                (".dockerignore", "*.log\nbuild\n!build/keep\n"),
                ("a.log", "l"),
                ("keep.txt", "k"),
                ("build/out", "o"),
                ("build/keep", "kk"),
            ],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "run-deletes",
            dockerfile: "FROM localhost/busybox\nRUN rm -rf /var/www /bin/vi && rm /etc/group\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "run-opaque-dir",
            dockerfile: "FROM localhost/busybox\nRUN rm -rf /root && mkdir /root && echo fresh > /root/only\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "run-links-and-modes",
            dockerfile: "FROM localhost/busybox\nRUN echo x > /a && ln /a /b && ln -s /a /c && mkfifo /fifo && chmod 4755 /a && mkdir -m 1777 /shared\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "run-exec-form",
            dockerfile: "FROM localhost/busybox\nRUN [\"/bin/sh\", \"-c\", \"echo exec > /exec\"]\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "run-env-and-args",
            dockerfile: "FROM localhost/busybox\nARG A=arg\nENV E=env\nARG E=shadowed\nRUN echo $A $E > /seen\n",
            files: &[],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "xattr-capability",
            dockerfile: "FROM localhost/busybox\nCOPY capped /capped\n",
            files: &[("capped@755", "@cap")],
            args: &[],
            reference: Podman,
        },
        Case {
            name: "heredoc-run",
            dockerfile: "FROM localhost/busybox\nRUN <<EOF\necho one > /one\necho two >> /one\nEOF\nRUN cat > /two <<DOC\nline $HOME\nDOC\n",
            files: &[],
            args: &[],
            // buildah 1.28 has no heredocs; Docker 20.10 needs a syntax image from the network.
            reference: Expect(
                &[("one", "file 644 0:0 8 "), ("two", "file 644 0:0 11 ")],
                &[],
            ),
        },
        Case {
            name: "heredoc-copy",
            dockerfile: "FROM localhost/busybox\nARG WHO=world\nCOPY <<EOF /greeting\nhello $WHO\nEOF\nCOPY --chmod=755 <<\"RAW\" /raw.sh\n#!/bin/sh\necho $WHO\nRAW\n",
            files: &[],
            args: &[],
            reference: Expect(
                &[
                    ("greeting", "file 644 0:0 12 "),
                    ("raw.sh", "file 755 0:0 20 "),
                ],
                &[],
            ),
        },
        Case {
            name: "setuid-chmod",
            dockerfile: "FROM localhost/busybox\nCOPY --chmod=4755 tool /tool\n",
            files: &[("tool", "t")],
            args: &[],
            // buildah keeps these (BuildKit 0.8 drops the 7000 bits of --chmod).
            reference: Podman,
        },
        Case {
            name: "setuid-context-file",
            dockerfile: "FROM localhost/busybox\nCOPY tool /tool\n",
            files: &[("tool@4755", "t")],
            args: &[],
            // buildah 1.28 drops the setuid bit of a context file; Docker
            // keeps the mode as it is in the context.
            reference: Expect(&[("tool", "file 4755 0:0 1 ")], &[]),
        },
        Case {
            name: "expose-range",
            dockerfile: "FROM localhost/busybox\nEXPOSE 8000-8002/tcp\n",
            files: &[],
            args: &[],
            // buildah keeps the range as one key; Docker expands it.
            reference: Expect(
                &[],
                &[(
                    "/ExposedPorts",
                    "{\"8000/tcp\":{},\"8001/tcp\":{},\"8002/tcp\":{}}",
                )],
            ),
        },
    ]
}

struct Stores {
    dir: tempfile::TempDir,
}

impl Stores {
    fn strata(&self, args: &[&str]) -> Output {
        Command::new(strata_bin())
            .arg("--root")
            .arg(self.dir.path().join("strata"))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn podman(&self, args: &[&str]) -> Output {
        let d = self.dir.path();
        Command::new("podman")
            .arg("--root")
            .arg(d.join("proot"))
            .arg("--runroot")
            .arg(d.join("prun"))
            .arg("--tmpdir")
            .arg(d.join("ptmp"))
            .args([
                "--storage-driver",
                "overlay",
                "--runtime",
                "runc",
                "--cgroup-manager",
                "cgroupfs",
            ])
            .args(args)
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Stores {
    fn drop(&mut self) {
        let _ = self.podman(&["image", "unmount", "-a"]);
        let _ = self.podman(&["system", "reset", "-f"]);
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path())
            .stderr(Stdio::null())
            .status();
    }
}

fn must(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn make_context(dir: &Path, c: &Case) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), c.dockerfile).unwrap();
    for (path, content) in c.files {
        if let Some((link, target)) = path.split_once("->") {
            let p = dir.join(link);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, p).unwrap();
            continue;
        }
        let (rel, mode) = match path.split_once('@') {
            Some((r, m)) => (r, Some(u32::from_str_radix(m, 8).unwrap())),
            None => (*path, None),
        };
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        match *content {
            "@tgz" => {
                let src = dir.join("../tgz-src");
                std::fs::create_dir_all(src.join("inner")).unwrap();
                std::fs::write(src.join("inner/file"), "from the archive\n").unwrap();
                std::os::unix::fs::symlink("inner/file", src.join("link")).unwrap();
                let st = Command::new("tar")
                    .arg("-C")
                    .arg(&src)
                    .arg("-czf")
                    .arg(&p)
                    .arg(".")
                    .status()
                    .unwrap();
                assert!(st.success());
            }
            "@cap" => {
                std::fs::copy("/bin/busybox", &p).unwrap();
            }
            text => std::fs::write(&p, text).unwrap(),
        }
        if let Some(m) = mode {
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap();
        }
        if *content == "@cap" {
            let st = Command::new("setcap")
                .arg("cap_net_bind_service+ep")
                .arg(&p)
                .status()
                .unwrap();
            assert!(st.success(), "setcap");
        }
    }
}

/// The config podman stored (its docker-archive's config file): `inspect`
/// leaves out OnBuild and Shell.
fn stored_config(stores: &Stores, tag: &str) -> serde_json::Value {
    let tar = stores.dir.path().join("saved.tar");
    let _ = std::fs::remove_file(&tar);
    must(
        stores.podman(&[
            "save",
            "--format",
            "docker-archive",
            "-o",
            tar.to_str().unwrap(),
            tag,
        ]),
        "podman save",
    );
    let member = |name: &str| -> Vec<u8> {
        let o = Command::new("tar")
            .arg("-xOf")
            .arg(&tar)
            .arg(name)
            .output()
            .unwrap();
        assert!(o.status.success(), "tar {name}: {}", text(&o.stderr));
        o.stdout
    };
    let manifest: serde_json::Value = serde_json::from_slice(&member("manifest.json")).unwrap();
    let config_name = manifest[0]["Config"].as_str().unwrap().to_string();
    let config: serde_json::Value = serde_json::from_slice(&member(&config_name)).unwrap();
    config["config"].clone()
}

fn config_of(inspect: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(inspect).unwrap();
    v[0]["Config"].clone()
}

/// Absent, null, "", {} and [] are the same "unset" in both tools' configs.
fn norm(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Array(a) if a.is_empty() => serde_json::Value::Null,
        serde_json::Value::Object(o) if o.is_empty() => serde_json::Value::Null,
        serde_json::Value::String(s) if s.is_empty() => serde_json::Value::Null,
        other => other.clone(),
    }
}

/// Both stores with one busybox base: imported by strata as
/// `localhost/busybox`, loaded into podman from strata's docker-archive.
fn stores_with_base(prefix: &str) -> Stores {
    let stores = Stores {
        dir: tempfile::Builder::new().prefix(prefix).tempdir().unwrap(),
    };
    let d = stores.dir.path().to_path_buf();
    std::fs::write(
        d.join("containers.conf"),
        "[containers]\ndefault_ulimits = []\n",
    )
    .unwrap();
    let tar = busybox_tar(&d);
    must(
        stores.strata(&["import", tar.to_str().unwrap(), "localhost/busybox"]),
        "strata import",
    );
    let archive = d.join("busybox-docker.tar");
    must(
        stores.strata(&["save", "-o", archive.to_str().unwrap(), "localhost/busybox"]),
        "strata save",
    );
    must(
        stores.podman(&["load", "-i", archive.to_str().unwrap()]),
        "podman load",
    );
    stores
}

/// A layer of several gzip members (one per 4 MiB, some stored, some
/// deflated) is read by the peers' own decompressors: podman (containers/
/// storage) loads it and umoci (Go's gzip) unpacks it, both to the tree
/// strata has.
#[test]
fn strata_layers_of_many_gzip_members_are_read_by_podman_and_umoci() {
    let stores = stores_with_base("strata-buildgz-");
    let d = stores.dir.path().to_path_buf();
    let ctx = d.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/busybox\nCOPY data/ /data/\n",
    )
    .unwrap();
    std::fs::create_dir_all(ctx.join("data")).unwrap();
    let mut x: u64 = 88172645463325252;
    let noise: Vec<u8> = (0..(9 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(ctx.join("data/noise.bin"), &noise).unwrap();
    std::fs::write(ctx.join("data/text.txt"), "line of text\n".repeat(700_000)).unwrap();
    let tag = "localhost/gz-members:1";
    must(
        stores.strata(&["build", "-q", "-t", tag, ctx.to_str().unwrap()]),
        "strata build",
    );
    let mount = must(
        stores.strata(&["image", "mount", tag]),
        "strata image mount",
    );
    let ours = describe_tree(Path::new(mount.trim()));
    let _ = stores.strata(&["image", "unmount", tag]);
    assert!(ours.contains_key("data/noise.bin"), "{ours:?}");

    let docker = d.join("gz-docker.tar");
    must(
        stores.strata(&["save", "-o", docker.to_str().unwrap(), tag]),
        "strata save",
    );
    must(
        stores.podman(&["load", "-i", docker.to_str().unwrap()]),
        "podman load",
    );
    let pmount = must(
        stores.podman(&["image", "mount", tag]),
        "podman image mount",
    );
    let theirs = describe_tree(Path::new(pmount.trim()));
    let _ = stores.podman(&["image", "unmount", tag]);
    assert_eq!(ours, theirs, "podman's tree of strata's image");

    let oci = d.join("gz-oci.tar");
    must(
        stores.strata(&[
            "save",
            "--format",
            "oci-archive",
            "-o",
            oci.to_str().unwrap(),
            tag,
        ]),
        "strata save oci",
    );
    let layout = d.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-xf")
            .arg(&oci)
            .status()
            .unwrap()
            .success()
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let name = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .unwrap_or("latest")
        .to_string();
    let bundle = d.join("bundle");
    let o = Command::new("umoci")
        .args(["raw", "unpack", "--rootless", "--image"])
        .arg(format!("{}:{name}", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "umoci: {}", text(&o.stderr));
    let umoci = describe_tree(&bundle);
    assert_eq!(
        umoci.get("data/noise.bin"),
        ours.get("data/noise.bin"),
        "umoci's noise.bin"
    );
    assert_eq!(umoci.get("data/text.txt"), ours.get("data/text.txt"));
}

#[test]
fn strata_build_matches_podman_build() {
    let stores = stores_with_base("strata-buildcmp-");
    let d = stores.dir.path().to_path_buf();
    let all = cases();
    assert!(all.len() >= 30, "{} cases", all.len());
    let mut failures: Vec<String> = Vec::new();
    let mut compared = 0;
    for c in &all {
        let ctx = d.join("ctx").join(c.name);
        make_context(&ctx, c);
        let tag = format!("localhost/cmp-{}:latest", c.name);
        let mut sargs = vec!["build", "--progress", "plain", "-t", tag.as_str()];
        sargs.extend_from_slice(c.args);
        sargs.push(ctx.to_str().unwrap());
        let o = stores.strata(&sargs);
        if !o.status.success() {
            failures.push(format!(
                "{}: strata build failed: {}",
                c.name,
                text(&o.stderr)
            ));
            continue;
        }
        let mount = must(
            stores.strata(&["image", "mount", &tag]),
            "strata image mount",
        );
        let ours = describe_tree(Path::new(mount.trim()));
        let our_config = config_of(&must(stores.strata(&["image", "inspect", &tag]), "inspect"));
        let _ = stores.strata(&["image", "unmount", &tag]);
        match &c.reference {
            Reference::Podman => {
                let mut pargs = vec!["build", "--format", "docker", "-t", tag.as_str()];
                pargs.extend_from_slice(c.args);
                pargs.push(ctx.to_str().unwrap());
                let o = stores.podman(&pargs);
                if !o.status.success() {
                    failures.push(format!(
                        "{}: podman build failed: {}",
                        c.name,
                        text(&o.stderr)
                    ));
                    continue;
                }
                let pmount = must(
                    stores.podman(&["image", "mount", &tag]),
                    "podman image mount",
                );
                let theirs = describe_tree(&PathBuf::from(pmount.trim()));
                let _ = stores.podman(&["image", "unmount", &tag]);
                let mut their_config = stored_config(&stores, &tag);
                // buildah's own label on everything it builds.
                if let Some(l) = their_config["Labels"].as_object_mut() {
                    l.remove("io.buildah.version");
                }
                let mut diffs = Vec::new();
                let keys: std::collections::BTreeSet<&String> =
                    ours.keys().chain(theirs.keys()).collect();
                for k in keys {
                    let (a, b) = (ours.get(k), theirs.get(k));
                    if a == b {
                        continue;
                    }
                    // buildah's mount stubs, absent from ours.
                    if a.is_none() && BUILDAH_STUBS.contains(&k.as_str()) {
                        continue;
                    }
                    diffs.push(format!("  {k}: strata {a:?} podman {b:?}"));
                }
                for f in CONFIG_FIELDS {
                    let (a, b) = (norm(&our_config[f]), norm(&their_config[f]));
                    if a != b {
                        diffs.push(format!("  config {f}: strata {a} podman {b}"));
                    }
                }
                if !diffs.is_empty() {
                    failures.push(format!("{} (vs podman):\n{}", c.name, diffs.join("\n")));
                }
            }
            Reference::Expect(paths, fields) => {
                for (p, want) in *paths {
                    match ours.get(*p) {
                        Some(got) if got.starts_with(want) => {}
                        got => failures.push(format!(
                            "{} (vs expectation): {p}: want {want:?}, got {got:?}",
                            c.name
                        )),
                    }
                }
                for (ptr, want) in *fields {
                    let got = our_config.pointer(ptr).cloned().unwrap_or_default();
                    let want: serde_json::Value = serde_json::from_str(want).unwrap();
                    if got != want {
                        failures.push(format!(
                            "{} (vs expectation): config {ptr}: want {want}, got {got}",
                            c.name
                        ));
                    }
                }
            }
        }
        compared += 1;
    }
    let report: BTreeMap<&str, bool> = all
        .iter()
        .map(|c| {
            (
                c.name,
                !failures.iter().any(|f| {
                    f.starts_with(&format!("{} ", c.name)) || f.starts_with(&format!("{}:", c.name))
                }),
            )
        })
        .collect();
    eprintln!(
        "build comparison: {} cases, {} compared, {} differ",
        all.len(),
        compared,
        failures.len()
    );
    for (n, ok) in &report {
        eprintln!("  {} {n}", if *ok { "same" } else { "DIFF" });
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}
