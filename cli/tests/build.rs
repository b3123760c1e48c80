//! `strata build`, `commit`, `diff`, `export`, `history` and `cp`, end to
//! end through the binary, on a busybox image made from busybox-static.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Strata, err, out};

fn write(dir: &Path, rel: &str, content: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// A store with busybox and a context dir holding `dockerfile`.
fn setup(prefix: &str, dockerfile: &str) -> (Strata, PathBuf) {
    let s = Strata::empty(prefix);
    s.import_busybox();
    let ctx = s.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    write(&ctx, "Dockerfile", dockerfile);
    (s, ctx)
}

fn build(s: &Strata, ctx: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["build", "--progress", "plain"];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    s.run(&args)
}

fn build_ok(s: &Strata, ctx: &Path, extra: &[&str]) -> String {
    let o = build(s, ctx, extra);
    assert!(o.status.success(), "build failed: {}", err(&o));
    err(&o)
}

fn config(s: &Strata, image: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["image", "inspect", image])).unwrap();
    v[0]["Config"].clone()
}

/// Nothing of a build may stay behind: no temp dirs, no mounts, no
/// runtime state, no draft snapshots.
fn assert_clean(s: &Strata) {
    let root = s.root();
    let tmp: Vec<_> = std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(tmp.is_empty(), "left in tmp: {tmp:?}");
    let drafts: Vec<_> = std::fs::read_dir(root.join("snapshots"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tmp-"))
        .map(|e| e.file_name())
        .collect();
    assert!(drafts.is_empty(), "draft snapshots left: {drafts:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(root.to_str().unwrap()),
        "mounts left under the store:\n{}",
        mounts
            .lines()
            .filter(|l| l.contains(root.to_str().unwrap()))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let state = root.join("run/build-runtime");
    if state.exists() {
        // The runtime's compiled seccomp cache stays, as it should.
        let left: Vec<_> = std::fs::read_dir(&state)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != "seccomp@cache")
            .collect();
        assert!(left.is_empty(), "runtime state left: {left:?}");
    }
}

#[test]
fn build_runs_copies_and_sets_the_config() {
    let (s, ctx) = setup(
        "build-basic",
        r#"# syntax=docker/dockerfile:1.4
FROM busybox AS base
ARG GREETING=hi
ENV APP=/app \
    MODE=prod
WORKDIR $APP
COPY hello.txt src/ ./
RUN echo "$GREETING from $MODE" > greeting
COPY --chmod=755 <<EOF /app/run.sh
#!/bin/sh
echo running in $APP
EOF
LABEL org.example.name="demo app" version=1
EXPOSE 8080 53/udp
VOLUME /data
USER nobody
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --retries=2 CMD wget -q -O- localhost:8080
ONBUILD RUN echo child
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["/app/run.sh"]
CMD ["--serve"]
"#,
    );
    write(&ctx, "hello.txt", "hello\n");
    write(&ctx, "src/lib.sh", "echo lib\n");
    build_ok(&s, &ctx, &["-t", "app:1", "--build-arg", "GREETING=hey"]);
    let c = config(&s, "app:1");
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["User"], "nobody");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/app/run.sh"]));
    assert_eq!(c["Cmd"], serde_json::json!(["--serve"]));
    assert_eq!(c["StopSignal"], "SIGQUIT");
    assert_eq!(c["Labels"]["org.example.name"], "demo app");
    assert_eq!(c["Labels"]["version"], "1");
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "53/udp": {}})
    );
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "wget -q -O- localhost:8080"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000i64);
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo child"]));
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("MODE=prod"))
    );
    // Build args do not persist in the image.
    assert!(!c["Env"].to_string().contains("GREETING"));
    let o = s.run(&[
        "run",
        "--rm",
        "--entrypoint",
        "cat",
        "app:1",
        "/app/greeting",
        "/app/hello.txt",
        "/app/lib.sh",
        "/app/run.sh",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        out(&o),
        "hey from prod\nhello\necho lib\n#!/bin/sh\necho running in /app\n"
    );
    let o = s.run(&[
        "run",
        "--rm",
        "--entrypoint",
        "stat",
        "app:1",
        "-c",
        "%a %u",
        "/app/run.sh",
        "/app/hello.txt",
    ]);
    assert_eq!(out(&o), "755 0\n644 0\n", "{}", err(&o));
    let o = s.run(&["run", "--rm", "app:1"]);
    assert_eq!(out(&o), "running in /app\n", "{}", err(&o));
    // History as Docker writes it: config-only steps are empty layers.
    let h = s.ok(&["history", "--no-trunc", "app:1"]);
    assert!(
        h.contains("RUN /bin/sh -c echo \"$GREETING from $MODE\" > greeting # buildkit"),
        "{h}"
    );
    assert!(h.contains("ENV APP=/app MODE=prod"), "{h}");
    let json = s.ok(&["image", "history", "--format", "json", "app:1"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["CreatedBy"], "CMD [\"--serve\"]");
    assert_eq!(rows[0]["Size"], "0B");
    // No mount stubs (/etc/hosts, /etc/resolv.conf) in the RUN layer.
    let layers = s.ok(&["image", "inspect", "app:1"]);
    let v: serde_json::Value = serde_json::from_str(&layers).unwrap();
    let dirs = v[0]["GraphDriver"]["Data"]["LowerDirs"]
        .as_array()
        .unwrap()
        .clone();
    for d in &dirs[1..] {
        let d = Path::new(d.as_str().unwrap());
        assert!(
            !d.join("etc/hosts").exists() && !d.join("etc/resolv.conf").exists(),
            "stub in {}",
            d.display()
        );
        assert!(
            !d.join("proc").exists() && !d.join("dev").exists(),
            "stub in {}",
            d.display()
        );
    }
    assert_clean(&s);
}

#[test]
fn cache_hits_and_misses() {
    let (s, ctx) = setup(
        "build-cache",
        "FROM busybox\nARG V=1\nCOPY a.txt /a.txt\nRUN echo $V > /v && cat /proc/sys/kernel/random/uuid > /stamp\n",
    );
    write(&ctx, "a.txt", "one");
    let first = build_ok(&s, &ctx, &["-t", "c:1"]);
    assert!(!first.contains("CACHED"), "{first}");
    let stamp = |s: &Strata| out(&s.run(&["run", "--rm", "c:1", "cat", "/stamp"]));
    let t1 = stamp(&s);
    // No change: every layer step is a hit, the image the same.
    let again = build_ok(&s, &ctx, &["-t", "c:1"]);
    assert_eq!(again.matches("CACHED").count(), 2, "{again}");
    assert_eq!(stamp(&s), t1);
    // The mtime alone is not a change.
    Command::new("touch")
        .arg("-d")
        .arg("2001-01-01")
        .arg(ctx.join("a.txt"))
        .status()
        .unwrap();
    let touched = build_ok(&s, &ctx, &["-t", "c:1"]);
    assert_eq!(touched.matches("CACHED").count(), 2, "{touched}");
    // A build arg the RUN sees: the RUN misses, the COPY hits.
    let arg = build_ok(&s, &ctx, &["-t", "c:1", "--build-arg", "V=2"]);
    assert_eq!(arg.matches("CACHED").count(), 1, "{arg}");
    assert_eq!(out(&s.run(&["run", "--rm", "c:1", "cat", "/v"])), "2\n");
    // Content: both miss.
    write(&ctx, "a.txt", "two");
    let changed = build_ok(&s, &ctx, &["-t", "c:1"]);
    assert_eq!(changed.matches("CACHED").count(), 0, "{changed}");
    assert_eq!(out(&s.run(&["run", "--rm", "c:1", "cat", "/a.txt"])), "two");
    // --no-cache: nothing is reused.
    let t2 = stamp(&s);
    let none = build_ok(&s, &ctx, &["-t", "c:1", "--no-cache"]);
    assert_eq!(none.matches("CACHED").count(), 0, "{none}");
    assert_ne!(stamp(&s), t2);
    // builder prune forgets the cache; the next build runs again.
    s.ok(&["builder", "prune", "-af"]);
    let pruned = build_ok(&s, &ctx, &["-t", "c:2"]);
    assert_eq!(pruned.matches("CACHED").count(), 0, "{pruned}");
    let check = s.run(&["system", "check"]);
    assert!(check.status.success(), "{}", out(&check));
    assert_clean(&s);
}

/// On a terminal, `--progress auto` is the live view (redrawn in place,
/// ending FINISHED); off one it is plain lines.
#[test]
fn progress_is_a_live_view_on_a_terminal() {
    let (s, ctx) = setup(
        "build-tty",
        "FROM busybox\nRUN echo start && sleep 0.5 && echo end\nCMD [\"true\"]\n",
    );
    let cmd = format!(
        "{} --root {} build -t tty {}",
        common::BIN,
        s.root().display(),
        ctx.display()
    );
    // util-linux's script gives the build a pty for stdin/stdout/stderr.
    let o = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let tty = out(&o);
    assert!(tty.contains("[+] Building"), "{tty:?}");
    assert!(tty.contains("\x1b[2K=> [2/3] RUN echo start"), "{tty:?}");
    assert!(tty.contains("=> => # start"), "{tty:?}");
    assert!(tty.contains("F\x1b[2K"), "no redraw: {tty:?}");
    assert!(tty.contains("(4/4) FINISHED"), "{tty:?}");
    assert!(!tty.contains("#2 DONE"), "{tty:?}");
    // The same build off a terminal: plain lines.
    let plain = s.run(&["build", "--no-cache", "-t", "tty", ctx.to_str().unwrap()]);
    assert!(plain.status.success());
    let e = err(&plain);
    assert!(
        e.contains("#2 [2/3] RUN echo start") && e.contains("#2 DONE"),
        "{e}"
    );
    assert!(!e.contains('\x1b'), "{e:?}");
}

/// COPY --link makes its layer apart from what is below it, so a change
/// below does not invalidate it: the same layer (same diff) is reused on
/// the new parent, while a plain COPY after the change runs again.
#[test]
fn copy_link_layers_are_reused_on_a_new_parent() {
    let (s, ctx) = setup(
        "build-link",
        "FROM busybox\nARG B=1\nRUN echo $B > /base\nCOPY --link app/ /app/\nCOPY app/ /plain/\n\
         RUN cat /app/x /base > /out\n",
    );
    write(&ctx, "app/x", "linked\n");
    build_ok(&s, &ctx, &["-t", "l:1"]);
    let second = build_ok(&s, &ctx, &["-t", "l:2", "--build-arg", "B=2"]);
    // Only the --link copy is a hit.
    assert_eq!(second.matches("CACHED").count(), 1, "{second}");
    let hit = second
        .lines()
        .skip_while(|l| !l.ends_with("] COPY app/ /app/"))
        .nth(1)
        .unwrap_or_default();
    assert!(hit.ends_with("CACHED"), "{second}");
    let o = s.run(&["run", "--rm", "l:2", "cat", "/out", "/plain/x"]);
    assert_eq!(out(&o), "linked\n2\nlinked\n", "{}", err(&o));
    let layers = |t: &str| {
        let v: serde_json::Value = serde_json::from_str(&s.ok(&["image", "inspect", t])).unwrap();
        v[0]["RootFS"]["Layers"].as_array().unwrap().clone()
    };
    let (one, two) = (layers("l:1"), layers("l:2"));
    assert_eq!(one.len(), 5);
    assert_ne!(one[1], two[1], "the RUN below changed");
    assert_eq!(one[2], two[2], "the --link layer is the same layer");
    // Both images run from their own chains, and the store is sound.
    let o = s.run(&["run", "--rm", "l:1", "cat", "/out"]);
    assert_eq!(out(&o), "linked\n1\n", "{}", err(&o));
    let check = s.run(&["system", "check"]);
    assert!(check.status.success(), "{}", out(&check));
    assert_clean(&s);
}

/// `--cache-to type=local` on one store, `--cache-from` on another that
/// has the same base image (saved and loaded): the second store runs no
/// step, and gets the first one's layers (the RUN's random stamp).
#[test]
fn cache_shared_through_a_local_directory() {
    let df = "FROM busybox AS tool\nRUN cat /proc/sys/kernel/random/uuid > /tool\n\
              FROM busybox\nARG V=1\nCOPY a.txt /a.txt\nRUN cat /proc/sys/kernel/random/uuid > /stamp\n\
              COPY --from=tool /tool /tool\nENV X=1\nRUN true\nCMD [\"cat\", \"/stamp\"]\n";
    let (a, ctx) = setup("build-share-a", df);
    write(&ctx, "a.txt", "one");
    let base = a.dir.path().join("base.tar");
    a.ok(&["save", "-o", base.to_str().unwrap(), "busybox"]);
    let cache = a.dir.path().join("cache");
    let min = a.dir.path().join("cache-min");
    let to = format!("type=local,dest={},mode=max", cache.display());
    let to_min = format!("type=local,dest={}", min.display());
    let first = build_ok(
        &a,
        &ctx,
        &["-t", "app", "--cache-to", &to, "--cache-to", &to_min],
    );
    assert!(first.contains("exporting cache"), "{first}");
    assert!(cache.join("index.json").is_file() && cache.join("oci-layout").is_file());
    let stamp = |s: &Strata| out(&s.run(&["run", "--rm", "app"]));
    let made = stamp(&a);
    assert_eq!(made.len(), 37, "{made:?}");

    let fresh = |prefix: &str| {
        let s = Strata::empty(prefix);
        s.ok(&["load", "-i", base.to_str().unwrap()]);
        s
    };
    // mode=max: every step of both stages comes from the cache.
    let b = fresh("build-share-b");
    let from = format!("type=local,src={}", cache.display());
    let hit = build_ok(&b, &ctx, &["-t", "app", "--cache-from", &from]);
    assert_eq!(hit.matches("CACHED").count(), 5, "{hit}");
    assert_eq!(stamp(&b), made);
    let tool = out(&b.run(&["run", "--rm", "app", "cat", "/tool"]));
    assert_eq!(tool, out(&a.run(&["run", "--rm", "app", "cat", "/tool"])));
    // Adopted steps are the store's own cache now: no --cache-from needed.
    let again = build_ok(&b, &ctx, &["-t", "app"]);
    assert_eq!(again.matches("CACHED").count(), 5, "{again}");
    let check = b.run(&["system", "check"]);
    assert!(check.status.success(), "{}", out(&check));
    assert_clean(&b);

    // mode=min (the default): only the final stage's lineage. The tool
    // stage runs again, and the final stage's COPY --from it misses
    // because its stamp is new; the steps before it hit.
    let c = fresh("build-share-c");
    let from_min = format!("type=local,src={}", min.display());
    let part = build_ok(&c, &ctx, &["-t", "app", "--cache-from", &from_min]);
    assert_eq!(part.matches("CACHED").count(), 2, "{part}");
    assert_eq!(stamp(&c), made);

    // A changed source: that step and what follows it run.
    let d = fresh("build-share-d");
    write(&ctx, "a.txt", "two");
    let changed = build_ok(&d, &ctx, &["-t", "app", "--cache-from", &from]);
    assert_eq!(changed.matches("CACHED").count(), 1, "{changed}");
    assert_ne!(stamp(&d), made);
    write(&ctx, "a.txt", "one");

    // A corrupt blob in the cache: a warning, the step runs, the build
    // passes and the store holds nothing bad.
    let blobs = cache.join("blobs/sha256");
    let manifest: serde_json::Value = {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(cache.join("index.json")).unwrap()).unwrap();
        let m = index["manifests"][0]["digest"].as_str().unwrap();
        serde_json::from_slice(&std::fs::read(blobs.join(&m[7..])).unwrap()).unwrap()
    };
    for l in manifest["layers"].as_array().unwrap() {
        let p = blobs.join(&l["digest"].as_str().unwrap()[7..]);
        let mut bytes = std::fs::read(&p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&p, bytes).unwrap();
    }
    let e = fresh("build-share-e");
    let bad = build_ok(&e, &ctx, &["-t", "app", "--cache-from", &from]);
    assert!(bad.contains("[Warning] cache type=local"), "{bad}");
    assert_eq!(bad.matches("CACHED").count(), 0, "{bad}");
    assert_eq!(stamp(&e).len(), 37);
    let check = e.run(&["system", "check"]);
    assert!(check.status.success(), "{}", out(&check));
    assert_clean(&e);
    // A directory that is no cache at all: one warning, a normal build.
    let none = build_ok(&e, &ctx, &["--cache-from", "type=local,src=/nonexistent"]);
    assert!(
        none.contains("importing cache type=local,src=/nonexistent"),
        "{none}"
    );
    // Bad specs are errors before anything runs.
    for bad in ["type=s3", "type=local", "type=registry,ref=UPPER/Case"] {
        let o = build(&e, &ctx, &["--cache-to", bad]);
        assert!(!o.status.success(), "{bad}");
        assert!(err(&o).contains("--cache-to"), "{bad}: {}", err(&o));
    }
}

#[test]
fn multi_stage_targets_and_parallel_stages() {
    // Each stage writes when it began and ended its step (seconds since
    // boot, one clock for all): stages that run side by side overlap. No
    // wall-clock limit is asserted.
    let (s, ctx) = setup(
        "build-stages",
        "FROM busybox AS one\nRUN cut -d\" \" -f1 /proc/uptime > /one.start && sleep 2 && echo one > /one && cut -d\" \" -f1 /proc/uptime > /one.end\n\
         FROM busybox AS two\nRUN cut -d\" \" -f1 /proc/uptime > /two.start && sleep 2 && echo two > /two && cut -d\" \" -f1 /proc/uptime > /two.end\n\
         FROM busybox AS unused\nRUN exit 1\n\
         FROM scratch\nCOPY --from=one /one /one.start /one.end /\nCOPY --from=1 /two /two.start /two.end /\nCOPY --from=busybox /bin/busybox /bin/busybox\n",
    );
    build_ok(&s, &ctx, &["-t", "multi"]);
    let o = s.run(&[
        "run",
        "--rm",
        "multi",
        "/bin/busybox",
        "cat",
        "/one",
        "/two",
        "/one.start",
        "/one.end",
        "/two.start",
        "/two.end",
    ]);
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}{}", err(&o));
    assert_eq!(lines[..2], ["one", "two"]);
    let t: Vec<f64> = lines[2..]
        .iter()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    // Two independent stages run side by side: each began before the
    // other ended. (The failing stage nobody needs never ran: the build
    // passed.)
    assert!(
        t[0] < t[3] && t[2] < t[1],
        "stage one {}..{}, stage two {}..{}: they did not overlap",
        t[0],
        t[1],
        t[2],
        t[3]
    );
    // --target builds that stage only.
    build_ok(&s, &ctx, &["-t", "just-one", "--target", "one"]);
    let o = s.run(&["run", "--rm", "just-one", "cat", "/one"]);
    assert_eq!(out(&o), "one\n");
    let bad = build(&s, &ctx, &["--target", "nope"]);
    assert!(!bad.status.success());
    assert!(
        err(&bad).contains("target stage \"nope\" could not be found"),
        "{}",
        err(&bad)
    );
    let failing = build(&s, &ctx, &["--target", "unused"]);
    assert!(!failing.status.success());
    assert!(
        err(&failing).contains("did not complete successfully: exit code: 1"),
        "{}",
        err(&failing)
    );
    assert_clean(&s);
}

#[test]
fn reproducible_with_source_date_epoch() {
    let df = "FROM busybox\nCOPY . /src/\nRUN cd /src && cat a b > /ab && mkdir -p /var/x && touch /var/x/new\n";
    let mut ids = Vec::new();
    let archive = tempfile::tempdir().unwrap();
    let base = archive.path().join("busybox.tar");
    let ctx_dir = tempfile::tempdir().unwrap();
    write(ctx_dir.path(), "Dockerfile", df);
    write(ctx_dir.path(), "a", "a\n");
    write(ctx_dir.path(), "b", "b\n");
    for i in 0..2 {
        let s = Strata::empty(&format!("build-repro{i}"));
        if i == 0 {
            s.import_busybox();
            s.ok(&["save", "-o", base.to_str().unwrap(), "busybox"]);
        } else {
            s.ok(&["load", "-i", base.to_str().unwrap()]);
        }
        let o = s
            .cmd(&["build", "-q", "-t", "r", ctx_dir.path().to_str().unwrap()])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", err(&o));
        ids.push(out(&o).trim().to_string());
        let v: serde_json::Value = serde_json::from_str(&s.ok(&["image", "inspect", "r"])).unwrap();
        assert_eq!(v[0]["Created"], "2023-11-14T22:13:20Z");
        // Each build runs a second apart at least: the clamp is what
        // makes them equal, not luck.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(ids[0], ids[1]);
    assert!(ids[0].starts_with("sha256:"));
}

#[test]
fn bad_input_is_one_clear_error_and_nothing_is_left() {
    let cases: &[(&str, &str)] = &[
        (
            "FROM busybox\nRUN echo ok\nFROBNICATE x\n",
            "Dockerfile:3: unknown instruction: FROBNICATE",
        ),
        (
            "FROM busybox\nCOPY --frm=x a b\n",
            "Dockerfile:2: COPY: unknown flag: --frm",
        ),
        (
            "FROM busybox\nCOPY missing.txt /x\n",
            "\"/missing.txt\" not found",
        ),
        ("FROM busybox\nCOPY --from=nostage /a /a\n", "nostage"),
        (
            "FROM busybox\nRUN echo out && exit 3\n",
            "process \"/bin/sh -c echo out && exit 3\" did not complete successfully: exit code: 3",
        ),
        (
            "RUN x\nFROM busybox\n",
            "Dockerfile:1: RUN before the first FROM",
        ),
        (
            "FROM busybox\nCOPY a b c /notadir\n",
            "the destination must be a directory and end with a /",
        ),
        (
            "FROM busybox\nRUN <<EOF\necho never closed\n",
            "unterminated heredoc",
        ),
        ("FROM busybox\nCOPY ../outside /x\n", "not found"),
        ("FROM busybox\nEXPOSE http\n", "invalid port"),
        ("FROM busybox\nCOPY --chmod=abc a /a\n", "invalid --chmod"),
        ("FROM nosuchimage:1\n", "nosuchimage"),
    ];
    for (df, want) in cases {
        let (s, ctx) = setup("build-bad", df);
        write(&ctx, "a", "a");
        write(&ctx, "b", "b");
        write(&ctx, "c", "c");
        let before = s.ok(&["images", "-q"]);
        let o = build(&s, &ctx, &["-t", "broken"]);
        assert!(!o.status.success(), "{df:?} built");
        let e = err(&o);
        assert!(e.contains(want), "{df:?}: want {want:?} in:\n{e}");
        assert!(
            e.lines().filter(|l| l.starts_with("Error:")).count() == 1,
            "{e}"
        );
        assert_eq!(s.ok(&["images", "-q"]), before, "{df:?} left an image");
        assert_clean(&s);
    }
    // A failing RUN shows its output before the error.
    let (s, ctx) = setup(
        "build-bad-run",
        "FROM busybox\nRUN echo visible-output && exit 7\n",
    );
    let o = build(&s, &ctx, &[]);
    assert!(err(&o).contains("visible-output"), "{}", err(&o));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn dockerignore_and_context_from_stdin() {
    let (s, ctx) = setup(
        "build-ignore",
        "FROM busybox\nCOPY . /ctx/\nRUN find /ctx -type f | sort\n",
    );
    write(&ctx, "keep.txt", "k");
    write(&ctx, "debug.log", "l");
    write(&ctx, "logs/keep.log", "kl");
    write(&ctx, "node_modules/x/y.js", "x");
    write(
        &ctx,
        ".dockerignore",
        "*.log\nnode_modules\n**/*.tmp\n!logs/keep.log\n",
    );
    write(&ctx, "deep/a.tmp", "t");
    build_ok(&s, &ctx, &["-t", "ign"]);
    let o = s.run(&["run", "--rm", "ign", "find", "/ctx", "-type", "f"]);
    let listing = out(&o);
    assert!(
        listing.contains("/ctx/keep.txt") && listing.contains("/ctx/logs/keep.log"),
        "{listing}"
    );
    assert!(
        !listing.contains("debug.log")
            && !listing.contains("node_modules")
            && !listing.contains("a.tmp"),
        "{listing}"
    );
    // A context as a tar on stdin, the Dockerfile inside it.
    let tar = s.dir.path().join("ctx.tar");
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&ctx)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    let o = s
        .cmd(&["build", "-q", "-t", "fromstdin", "-"])
        .stdin(std::fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let o = s.run(&["run", "--rm", "fromstdin", "cat", "/ctx/keep.txt"]);
    assert_eq!(out(&o), "k");
    // A Dockerfile from stdin with a directory context.
    let o = s
        .cmd(&[
            "build",
            "-q",
            "-t",
            "dfstdin",
            "-f",
            "-",
            ctx.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"FROM busybox\nCOPY keep.txt /k\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&s.run(&["run", "--rm", "dfstdin", "cat", "/k"])), "k");
    assert_clean(&s);
}

#[test]
fn copy_and_add_cannot_escape() {
    // The context's symlinks point out of it; the base image's symlinks
    // point at host paths. Neither may read or write outside.
    let marker = tempfile::tempdir().unwrap();
    std::fs::write(marker.path().join("secret"), "host secret").unwrap();
    let (s, ctx) = setup(
        "build-escape",
        "FROM busybox\nRUN ln -s / /hostroot && ln -s ../../../../../../tmp /up\n\
         COPY link /via-link\nCOPY linkdir/ /via-dir/\nCOPY payload /hostroot/escaped-copy\nCOPY payload /up/escaped-up\n\
         ADD evil.tar /extract/\nRUN cat /via-link/secret 2>/dev/null && exit 9 || true\n",
    );
    std::os::unix::fs::symlink(marker.path().join("secret"), ctx.join("link")).unwrap();
    std::os::unix::fs::symlink(marker.path(), ctx.join("linkdir")).unwrap();
    write(&ctx, "payload", "payload");
    // A tar whose entries climb out of the destination.
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("../../../../tmp/strata-escaped-add", "x"),
        ("ok.txt", "fine"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        // The name as raw bytes: the tar crate refuses to write "..".
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, data.as_bytes()).unwrap();
    }
    std::fs::write(ctx.join("evil.tar"), b.into_inner().unwrap()).unwrap();
    let o = build(&s, &ctx, &["-t", "escape"]);
    // Either refused or confined; never outside.
    assert!(!Path::new("/escaped-copy").exists());
    assert!(!Path::new("/tmp/escaped-up").exists());
    assert!(!Path::new("/tmp/strata-escaped-add").exists());
    if o.status.success() {
        let r = s.run(&[
            "run",
            "--rm",
            "escape",
            "sh",
            "-c",
            "cat /via-link 2>&1; ls /via-dir 2>&1; cat /hostroot/escaped-copy",
        ]);
        assert!(!out(&r).contains("host secret"), "{}", out(&r));
    } else {
        let e = err(&o);
        assert!(e.contains("not found") || e.contains("unsafe path"), "{e}");
    }
    // The link to a host file resolves inside the context: not found.
    let (s2, ctx2) = setup("build-escape2", "FROM busybox\nCOPY link /x\n");
    std::os::unix::fs::symlink(marker.path().join("secret"), ctx2.join("link")).unwrap();
    let o = build(&s2, &ctx2, &[]);
    assert!(!o.status.success());
    assert!(err(&o).contains("not found"), "{}", err(&o));
    // An ADD tar that climbs out is refused by the unpacker's guard.
    let (s3, ctx3) = setup("build-escape3", "FROM busybox\nADD evil.tar /extract/\n");
    std::fs::copy(ctx.join("evil.tar"), ctx3.join("evil.tar")).unwrap();
    let o = build(&s3, &ctx3, &[]);
    assert!(!o.status.success());
    assert!(err(&o).contains("climbs above"), "{}", err(&o));
    assert!(!Path::new("/tmp/strata-escaped-add").exists());
    assert_clean(&s3);
}

#[test]
fn run_mounts_cache_secret_and_tmpfs() {
    let (s, ctx) = setup(
        "build-mounts",
        "FROM busybox\n\
         RUN --mount=type=cache,target=/cache,id=../../../../etc echo x >> /cache/count && wc -l < /cache/count > /seen\n\
         RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null && test ! -s /run/secrets/none\n\
         RUN --mount=type=tmpfs,target=/scratch touch /scratch/f && test -f /scratch/f\n\
         RUN --mount=type=bind,source=data,target=/mnt/data cat /mnt/data/file > /copied\n",
    );
    write(&ctx, "data/file", "bound\n");
    let secret = s.dir.path().join("token");
    std::fs::write(&secret, "s3cr3t-value").unwrap();
    let sec = format!("id=token,src={}", secret.display());
    build_ok(&s, &ctx, &["-t", "m", "--secret", &sec]);
    assert_eq!(
        out(&s.run(&["run", "--rm", "m", "cat", "/seen", "/copied"])),
        "1\nbound\n"
    );
    // The cache dir persists across builds; its id never names a path.
    build_ok(&s, &ctx, &["-t", "m", "--no-cache", "--secret", &sec]);
    assert_eq!(out(&s.run(&["run", "--rm", "m", "cat", "/seen"])), "2\n");
    assert!(!Path::new("/etc/count").exists());
    // The secret is in no layer, no config and no history.
    let save = s.dir.path().join("m.tar");
    s.ok(&["save", "-o", save.to_str().unwrap(), "m"]);
    let mut all = std::fs::read(&save).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    Command::new("tar")
        .arg("-C")
        .arg(tmp.path())
        .arg("-xf")
        .arg(&save)
        .status()
        .unwrap();
    for e in walk(tmp.path()) {
        let data = std::fs::read(&e).unwrap();
        let mut gz = flate2::read::MultiGzDecoder::new(&data[..]);
        let mut plain = Vec::new();
        if std::io::Read::read_to_end(&mut gz, &mut plain).is_ok() {
            all.extend(plain);
        }
    }
    assert!(
        !all.windows(12).any(|w| w == b"s3cr3t-value"),
        "the secret leaked into the image"
    );
    assert!(!s.ok(&["history", "--no-trunc", "m"]).contains("s3cr3t"));
    // A required secret that is not given is an error naming it.
    let (s2, ctx2) = setup(
        "build-mounts2",
        "FROM busybox\nRUN --mount=type=secret,id=need,required cat /run/secrets/need\n",
    );
    let o = build(&s2, &ctx2, &[]);
    assert!(err(&o).contains("secret need not found"), "{}", err(&o));
    assert_clean(&s);
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn commit_diff_export_history_and_cp() {
    let s = Strata::empty("build-commit");
    s.import_busybox();
    s.ok(&[
        "create",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "echo new > /new.txt && rm /bin/vi && mkdir -p /etc/app && echo conf > /etc/app/conf",
    ]);
    s.ok(&["start", "-a", "c1"]);
    let diff = s.ok(&["diff", "c1"]);
    for want in [
        "A /new.txt",
        "D /bin/vi",
        "C /etc",
        "A /etc/app",
        "A /etc/app/conf",
    ] {
        assert!(
            diff.lines().any(|l| l == want),
            "{want} missing in:\n{diff}"
        );
    }
    assert!(!diff.contains("/etc/hosts"), "{diff}");
    let id = s.ok(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/new.txt\"]",
        "-c",
        "ENV COMMITTED=yes",
        "-m",
        "my commit",
        "c1",
        "committed:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(out(&s.run(&["run", "--rm", "committed:1"])), "new\n");
    let o = s.run(&[
        "run",
        "--rm",
        "committed:1",
        "sh",
        "-c",
        "test -e /bin/vi || echo gone; echo $COMMITTED; cat /etc/app/conf",
    ]);
    assert_eq!(out(&o), "gone\nyes\nconf\n");
    let h = s.ok(&["history", "committed:1"]);
    assert!(h.contains("my commit"), "{h}");
    // export: the flattened filesystem, whiteouts applied.
    let tar = s.dir.path().join("c1.tar");
    s.ok(&["export", "-o", tar.to_str().unwrap(), "c1"]);
    let list = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let names = out(&list);
    assert!(names.lines().any(|l| l == "new.txt"), "{names}");
    assert!(names.lines().any(|l| l == "bin/busybox"), "{names}");
    assert!(
        !names.lines().any(|l| l == "bin/vi" || l.contains(".wh.")),
        "{names}"
    );
    // cp out and in, resolved inside the rootfs.
    let host = s.dir.path().join("out.txt");
    s.ok(&["cp", "c1:/new.txt", host.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&host).unwrap(), "new\n");
    let src = s.dir.path().join("in.txt");
    std::fs::write(&src, "into the container\n").unwrap();
    s.ok(&["cp", src.to_str().unwrap(), "c1:/root/"]);
    s.ok(&["start", "c1"]);
    // A symlink in the container cannot send cp to the host.
    s.ok(&[
        "create",
        "--name",
        "c2",
        "busybox",
        "sh",
        "-c",
        "ln -s / /escape && ln -s /etc/shadow-host /etc/link",
    ]);
    s.ok(&["start", "-a", "c2"]);
    let evil = s.dir.path().join("evil.txt");
    std::fs::write(&evil, "evil\n").unwrap();
    s.ok(&["cp", evil.to_str().unwrap(), "c2:/escape/tmp/"]);
    assert!(
        !Path::new("/tmp/evil.txt").exists(),
        "cp followed a container symlink to the host"
    );
    let missing = s.run(&["cp", "c1:/nope", host.to_str().unwrap()]);
    assert!(!missing.status.success());
    assert!(
        err(&missing).contains("Could not find the file /nope"),
        "{}",
        err(&missing)
    );
    s.ok(&["rm", "-f", "c1", "c2"]);
}

/// A local HTTP server (python3's) on 127.0.0.1 serving `dir`.
struct Http {
    child: std::process::Child,
    port: u16,
}

impl Http {
    fn serve(dir: &Path) -> Http {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Http { child, port }
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn add_from_a_url_with_checksum() {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("tool.sh"), "echo downloaded\n").unwrap();
    let http = Http::serve(files.path());
    let sum = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"echo downloaded\n"))
    };
    let url = format!("http://127.0.0.1:{}/tool.sh", http.port);
    let df =
        format!("FROM busybox\nADD --checksum=sha256:{sum} {url} /opt/\nADD {url} /renamed.sh\n");
    let (s, ctx) = setup("build-url", &df);
    build_ok(&s, &ctx, &["-t", "url", "--network", "host"]);
    let o = s.run(&[
        "run",
        "--rm",
        "url",
        "sh",
        "-c",
        "stat -c '%a %s' /opt/tool.sh /renamed.sh; sh /opt/tool.sh",
    ]);
    assert_eq!(out(&o), "600 16\n600 16\ndownloaded\n", "{}", err(&o));
    // A wrong checksum: one error naming both digests, no image.
    let bad = format!(
        "FROM busybox\nADD --checksum=sha256:{} {url} /opt/\n",
        "0".repeat(64)
    );
    write(&ctx, "Dockerfile", &bad);
    let o = build(&s, &ctx, &["-t", "badsum"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("digest mismatch") && err(&o).contains(&sum),
        "{}",
        err(&o)
    );
    assert!(!s.run(&["image", "inspect", "badsum"]).status.success());
    // COPY does not take URLs; a missing file is the server's 404.
    write(
        &ctx,
        "Dockerfile",
        &format!("FROM busybox\nCOPY {url} /x\n"),
    );
    assert!(err(&build(&s, &ctx, &[])).contains("source can't be a URL for COPY"));
    write(
        &ctx,
        "Dockerfile",
        &format!("FROM busybox\nADD http://127.0.0.1:{}/nope /x\n", http.port),
    );
    assert!(err(&build(&s, &ctx, &[])).contains("404"));
    assert_clean(&s);
}

#[test]
fn images_of_more_layers_than_one_page_of_mount_options() {
    // 140 layers: more lowerdirs than the classic overlay option string
    // takes; the kernel here (6.8+) stacks them one by one (lowerdir+).
    let mut df = String::from("FROM busybox\n");
    for i in 0..140 {
        df.push_str(&format!("RUN echo {i} > /layer-{i}\n"));
    }
    df.push_str("RUN ls / | grep -c layer- > /count\n");
    let (s, ctx) = setup("build-layers", &df);
    build_ok(&s, &ctx, &["-t", "deep"]);
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["image", "inspect", "deep"])).unwrap();
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 142);
    let o = s.run(&[
        "run",
        "--rm",
        "deep",
        "cat",
        "/count",
        "/layer-0",
        "/layer-139",
    ]);
    assert_eq!(out(&o), "140\n0\n139\n", "{}", err(&o));
    assert_clean(&s);
}
