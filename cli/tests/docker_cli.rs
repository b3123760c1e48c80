//! End-to-end tests of the Docker CLI habits scripts rely on: Go-template
//! `--format`, `--filter`, `inspect --format`, `version` and `info`. They
//! drive the `strata` binary on a busybox image made here.

use serde_json::Value;

mod common;
use common::{Strata, err, out};

struct Engine(Strata);

impl Engine {
    fn new() -> Engine {
        let s = Strata::empty("strata-dcli-");
        s.import_busybox();
        Engine(s)
    }
    fn ok(&self, args: &[&str]) -> String {
        self.0.ok(args)
    }
    fn lines(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = self.ok(args).lines().map(str::to_string).collect();
        v.sort();
        v
    }
    /// Exit code, stdout, stderr.
    fn fails(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.0.run(args);
        (o.status.code().unwrap_or(-1), out(&o), err(&o))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Leave nothing running behind a failed test.
        if let Ok(ids) = std::str::from_utf8(&self.0.run(&["ps", "-aq", "--no-trunc"]).stdout) {
            for id in ids.lines() {
                let _ = self.0.run(&["rm", "-f", id]);
            }
        }
    }
}

/// Three containers (running, exited 3, created) to list.
fn three(e: &Engine) -> String {
    e.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--label",
        "tier=front",
        "busybox",
        "sleep",
        "60",
    ]);
    let o =
        e.0.run(&["run", "--name", "job", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    e.ok(&[
        "create",
        "--name",
        "idle",
        "--label",
        "tier=back",
        "busybox",
        "true",
    ])
    .trim()
    .to_string()
}

#[test]
fn ps_templates_tables_and_filters() {
    let e = Engine::new();
    let idle = three(&e);
    assert_eq!(e.lines(&["ps", "--format", "{{.Names}}"]), ["web"]);
    assert_eq!(
        e.lines(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]),
        ["idle created", "job exited", "web running"]
    );
    // A status or exited filter looks at stopped containers without -a.
    assert_eq!(
        e.lines(&["ps", "--filter", "status=exited", "--format", "{{.Names}}"]),
        ["job"]
    );
    assert_eq!(
        e.lines(&["ps", "-a", "-f", "exited=3", "--format", "{{.Names}}"]),
        ["job"]
    );
    assert!(e.ok(&["ps", "-a", "-f", "exited=0", "-q"]).is_empty());
    assert_eq!(
        e.lines(&["ps", "-a", "-f", "label=tier", "--format", "{{.Names}}"]),
        ["idle", "web"]
    );
    assert_eq!(
        e.lines(&[
            "ps",
            "-a",
            "-f",
            "label=tier=front",
            "--format",
            "{{.Labels}}"
        ]),
        ["tier=front"]
    );
    // Values of one key OR, keys AND.
    assert_eq!(
        e.lines(&[
            "ps",
            "-a",
            "-f",
            "name=web",
            "-f",
            "name=job",
            "--format",
            "{{.Names}}"
        ]),
        ["job", "web"]
    );
    assert!(
        e.ok(&["ps", "-a", "-f", "name=web", "-f", "status=exited", "-q"])
            .is_empty()
    );
    // name= is a regular expression, as Docker's.
    assert_eq!(
        e.lines(&["ps", "-a", "-f", "name=^id", "--format", "{{.Names}}"]),
        ["idle"]
    );
    assert_eq!(
        e.lines(&[
            "ps",
            "-a",
            "-f",
            &format!("id={}", &idle[..6]),
            "--format",
            "{{.ID}}"
        ]),
        [idle[..12].to_string()]
    );
    assert_eq!(
        e.lines(&["ps", "-a", "-f", "ancestor=busybox", "-q"]).len(),
        3
    );
    assert!(
        e.ok(&["ps", "-a", "-f", "ancestor=nosuch", "-q"])
            .is_empty()
    );

    // table: Docker's header names for the fields, aligned columns.
    let t = e.ok(&[
        "ps",
        "-a",
        "--format",
        "table {{.Names}}\\t{{.Image}}\\t{{.State}}",
    ]);
    let rows: Vec<&str> = t.lines().collect();
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        ["NAMES", "IMAGE", "STATE"]
    );
    assert_eq!(rows.len(), 4, "{t}");
    let col = rows[0].find("IMAGE").unwrap();
    for r in &rows[1..] {
        assert_eq!(&r[col..col + 7], "busybox", "{t}");
    }
    // {{json .}}: one object per line with Docker's keys.
    for line in e.ok(&["ps", "-a", "--format", "{{json .}}"]).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        for k in [
            "ID",
            "Names",
            "Image",
            "Command",
            "Status",
            "State",
            "CreatedAt",
            "RunningFor",
            "Ports",
            "Labels",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {line}");
        }
    }
    // The default table still has Docker's columns.
    let t = e.ok(&["ps"]);
    assert!(t.starts_with("CONTAINER ID   IMAGE"), "{t}");

    // Bad input: Docker's words, exit 125.
    let (code, _, stderr) = e.fails(&["ps", "--filter", "bogus=1"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("invalid filter 'bogus'"), "{stderr}");
    let (code, _, stderr) = e.fails(&["ps", "--filter", "status"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("bad format of filter"), "{stderr}");
    let (code, stdout, stderr) = e.fails(&["ps", "-a", "--format", "{{.Nope}}"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("Nope"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let (code, _, stderr) = e.fails(&["ps", "--format", "{{.Names"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("template parsing error"), "{stderr}");
}

#[test]
fn inspect_formats_containers_and_images() {
    let e = Engine::new();
    three(&e);
    let f = |args: &[&str]| e.ok(args).trim_end().to_string();
    assert_eq!(
        f(&["inspect", "--format", "{{.State.Status}}", "web"]),
        "running"
    );
    assert_eq!(f(&["inspect", "-f", "{{.State.ExitCode}}", "job"]), "3");
    assert_eq!(
        f(&["container", "inspect", "-f", "{{.State.Running}}", "idle"]),
        "false"
    );
    assert_eq!(
        f(&["inspect", "-f", "{{json .Config.Labels}}", "web"]),
        r#"{"tier":"front"}"#
    );
    assert_eq!(
        f(&["inspect", "-f", "{{.Config.Labels}}", "web"]),
        "map[tier:front]"
    );
    assert_eq!(
        f(&["inspect", "-f", "{{.Config.Cmd}}", "web"]),
        "[sleep 60]",
        "lists print as Go prints them"
    );
    let env = f(&[
        "inspect",
        "-f",
        "{{range .Config.Env}}{{println .}}{{end}}",
        "web",
    ]);
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    assert_eq!(
        f(&["inspect", "-f", "{{.Name}}", "web", "idle"]),
        "web\nidle"
    );
    assert!(!f(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"]).is_empty());
    // One missing: the others shown, the error named, exit 1.
    let (code, stdout, stderr) = e.fails(&["inspect", "-f", "{{.Name}}", "web", "nothere"]);
    assert_eq!(code, 1);
    assert_eq!(stdout.trim(), "web");
    assert!(stderr.contains("No such object: nothere"), "{stderr}");
    // Images: by --type, and image inspect.
    let id = f(&["inspect", "--type", "image", "-f", "{{.Id}}", "busybox"]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        f(&[
            "image",
            "inspect",
            "--format",
            "{{index .RepoTags 0}}",
            "busybox"
        ]),
        f(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
    );
    let (code, _, _) = e.fails(&["inspect", "--type", "container", "busybox"]);
    assert_eq!(code, 1, "busybox is an image, not a container");
    let (code, _, stderr) = e.fails(&["inspect", "--type", "volume", "web"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("--type"), "{stderr}");
}

#[test]
fn images_templates_and_filters() {
    let e = Engine::new();
    e.ok(&["tag", "busybox", "app:1"]);
    e.ok(&["tag", "busybox", "app:2"]);
    e.ok(&["create", "--name", "c", "busybox", "true"]);
    let labeled = e.ok(&["commit", "-c", "LABEL team=infra", "c", "labeled:1"]);
    // A commit without a name makes a dangling image.
    let dangling = e.ok(&["commit", "-c", "ENV X=1", "c"]);
    let names = e.lines(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    for n in ["app:1", "app:2", "labeled:1", "<none>:<none>"] {
        assert!(names.iter().any(|x| x.ends_with(n)), "{n} in {names:?}");
    }
    assert_eq!(
        e.lines(&[
            "images",
            "--filter",
            "reference=app*",
            "--format",
            "{{.Tag}}"
        ]),
        ["1", "2"]
    );
    assert_eq!(
        e.lines(&["images", "-f", "reference=app:2", "--format", "{{.Tag}}"]),
        ["2"]
    );
    let d = e.lines(&["images", "-f", "dangling=true", "-q"]);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(dangling.contains(&d[0]), "{dangling} vs {d:?}");
    assert!(
        !e.ok(&["images", "-f", "dangling=false", "-q"])
            .contains(&d[0])
    );
    let l = e.lines(&[
        "images",
        "-f",
        "label=team=infra",
        "--format",
        "{{.Repository}}",
    ]);
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(l[0].ends_with("labeled"), "{l:?}");
    assert!(
        labeled.contains(
            &e.ok(&["images", "-f", "label=team", "-q"])
                .trim()
                .to_string()
        )
    );
    // since/before exclude the named image itself.
    let since = e.ok(&[
        "images",
        "-f",
        "since=labeled:1",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    assert!(!since.contains("labeled"), "{since}");
    let before = e.ok(&[
        "images",
        "-f",
        "before=labeled:1",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    assert!(!before.contains("labeled"), "{before}");
    let t = e.ok(&[
        "images",
        "--format",
        "table {{.Repository}}\\t{{.Tag}}\\t{{.Size}}",
    ]);
    assert_eq!(
        t.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["REPOSITORY", "TAG", "SIZE"]
    );
    let (code, _, stderr) = e.fails(&["images", "-f", "nope=1"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("invalid filter 'nope'"), "{stderr}");
    let (code, _, stderr) = e.fails(&["images", "-f", "before=nosuch:1"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("nosuch"), "{stderr}");
}

#[test]
fn version_and_info() {
    let e = Engine::new();
    assert_eq!(
        e.ok(&["version", "--format", "{{.Client.Version}}"]).trim(),
        env!("CARGO_PKG_VERSION")
    );
    let v = e.ok(&["version"]);
    assert!(v.contains("Version:") && v.contains("OS/Arch:"), "{v}");
    e.ok(&["run", "-d", "--name", "web", "busybox", "sleep", "60"]);
    e.ok(&["create", "--name", "idle", "busybox", "true"]);
    assert_eq!(e.ok(&["info", "--format", "{{.Driver}}"]).trim(), "overlay");
    assert_eq!(
        e.ok(&[
            "info",
            "-f",
            "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}} {{.Images}}"
        ])
        .trim(),
        "2 1 1 1"
    );
    let doc: Value =
        serde_json::from_str(&e.ok(&["system", "info", "--format", "{{json .}}"])).unwrap();
    assert_eq!(doc["OSType"], "linux");
    assert!(doc["NCPU"].as_u64().unwrap() >= 1);
    assert!(doc["CgroupVersion"] == "1" || doc["CgroupVersion"] == "2");
    let text = e.ok(&["info"]);
    assert!(
        text.contains(" Containers: 2") && text.contains("  Running: 1"),
        "{text}"
    );
}

#[test]
fn rename_keeps_the_container_and_frees_the_old_name() {
    let e = Engine::new();
    let id = e
        .ok(&["run", "-d", "--name", "old", "busybox", "sleep", "60"])
        .trim()
        .to_string();
    e.ok(&["create", "--name", "other", "busybox", "true"]);
    e.ok(&["rename", "old", "new"]);
    assert_eq!(
        e.ok(&[
            "inspect",
            "-f",
            "{{.Id}} {{.Name}} {{.State.Status}}",
            "new"
        ])
        .trim(),
        format!("{id} new running")
    );
    assert_eq!(e.lines(&["ps", "--format", "{{.Names}}"]), ["new"]);
    // Still the same container: exec and stop reach it by its new name.
    assert_eq!(e.ok(&["exec", "new", "echo", "hi"]).trim(), "hi");
    // The old name is free again; a taken or invalid name is refused and
    // changes nothing.
    e.ok(&["create", "--name", "old", "busybox", "true"]);
    for (args, want) in [
        (vec!["rename", "new", "other"], "already in use"),
        (vec!["rename", "new", "bad name"], "invalid container name"),
        (vec!["rename", "new", "new"], "same name"),
        (vec!["rename", "nosuch", "x"], "no such container"),
    ] {
        let (code, _, stderr) = e.fails(&args);
        assert_eq!(code, 125, "{args:?}");
        assert!(stderr.to_lowercase().contains(want), "{args:?}: {stderr}");
    }
    assert_eq!(
        e.lines(&["ps", "-a", "--format", "{{.Names}}"]),
        ["new", "old", "other"]
    );
    e.ok(&["container", "rename", &id[..12], "newer"]);
    e.ok(&["stop", "-t", "1", "newer"]);
    assert_eq!(
        e.ok(&["inspect", "-f", "{{.State.Status}}", "newer"])
            .trim(),
        "exited"
    );
}

#[test]
fn pause_and_unpause_freeze_the_container() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/tick; sleep 0.05; done",
    ]);
    let tick = || e.ok(&["exec", "ticker", "cat", "/tmp/tick"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    tick();
    assert_eq!(e.ok(&["pause", "ticker"]).trim(), "ticker");
    assert_eq!(
        e.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Paused}} {{.State.Running}}",
            "ticker"
        ])
        .trim(),
        "paused true true"
    );
    let ps = e.ok(&["ps", "--format", "{{.State}}|{{.Status}}"]);
    assert!(
        ps.starts_with("paused|Up ") && ps.trim_end().ends_with("(Paused)"),
        "{ps}"
    );
    assert_eq!(
        e.lines(&["ps", "-f", "status=paused", "--format", "{{.Names}}"]),
        ["ticker"]
    );
    assert_eq!(
        e.ok(&["info", "-f", "{{.ContainersPaused}} {{.ContainersRunning}}"])
            .trim(),
        "1 0"
    );
    // Frozen: the loop's file does not move, exec is refused as Docker's.
    let frozen = std::fs::read_to_string(
        e.ok(&["inspect", "-f", "{{.GraphDriver.Data.MergedDir}}", "ticker"])
            .trim()
            .to_string()
            + "/tmp/tick",
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let merged = e.ok(&["inspect", "-f", "{{.GraphDriver.Data.MergedDir}}", "ticker"]);
    assert_eq!(
        std::fs::read_to_string(merged.trim().to_string() + "/tmp/tick").unwrap(),
        frozen
    );
    let (code, _, stderr) = e.fails(&["exec", "ticker", "true"]);
    assert_eq!(code, 125);
    assert!(
        stderr.contains("is paused, unpause the container before exec"),
        "{stderr}"
    );
    let (code, _, stderr) = e.fails(&["pause", "ticker"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("already paused"), "{stderr}");
    e.ok(&["unpause", "ticker"]);
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_ne!(tick(), frozen, "the loop runs again");
    assert_eq!(
        e.ok(&["inspect", "-f", "{{.State.Status}}", "ticker"])
            .trim(),
        "running"
    );
    let (code, _, stderr) = e.fails(&["unpause", "ticker"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("not paused"), "{stderr}");
    // A paused container still stops (the signal, then a thaw).
    e.ok(&["container", "pause", "ticker"]);
    e.ok(&["stop", "-t", "2", "ticker"]);
    assert_eq!(
        e.ok(&["inspect", "-f", "{{.State.Status}}", "ticker"])
            .trim(),
        "exited"
    );
    let (code, _, stderr) = e.fails(&["pause", "ticker"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("not running"), "{stderr}");
}

#[test]
fn volumes_create_list_inspect_use_remove_prune() {
    let e = Engine::new();
    assert_eq!(
        e.ok(&["volume", "create", "--label", "app=web", "data"])
            .trim(),
        "data"
    );
    // Creating an existing name again is not an error (Docker's).
    assert_eq!(e.ok(&["volume", "create", "data"]).trim(), "data");
    let anon = e.ok(&["volume", "create"]).trim().to_string();
    assert_eq!(anon.len(), 64, "{anon}");
    e.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "o=size=1m",
        "scratch",
    ]);
    assert_eq!(e.lines(&["volume", "ls", "-q"]), {
        let mut v = vec![anon.clone(), "data".into(), "scratch".into()];
        v.sort();
        v
    });
    let t = e.ok(&["volume", "ls"]);
    assert!(t.starts_with("DRIVER    VOLUME NAME"), "{t}");
    assert_eq!(
        e.ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}} {{.Labels.app}} {{.Scope}}",
            "data"
        ])
        .trim(),
        "data local web local"
    );
    let mp = e
        .ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "data"])
        .trim()
        .to_string();
    assert!(std::path::Path::new(&mp).is_dir(), "{mp}");
    assert_eq!(
        e.lines(&["volume", "ls", "-f", "label=app=web", "-q"]),
        ["data"]
    );

    // A container writes to the volume; another sees it; tmpfs stays in memory.
    e.ok(&[
        "run",
        "--name",
        "w",
        "-v",
        "data:/data",
        "-v",
        "scratch:/s",
        "busybox",
        "sh",
        "-c",
        "echo hi > /data/f && grep -q ' /s tmpfs ' /proc/mounts && echo t > /s/x",
    ]);
    assert_eq!(std::fs::read_to_string(format!("{mp}/f")).unwrap(), "hi\n");
    assert_eq!(
        e.ok(&["run", "--rm", "-v", "data:/d:ro", "busybox", "cat", "/d/f"]),
        "hi\n"
    );
    let smp = e
        .ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "scratch"])
        .trim()
        .to_string();
    assert!(
        !std::path::Path::new(&smp).join("x").exists(),
        "tmpfs data is not on disk"
    );
    // In use (by the stopped container w): refused, nothing removed.
    assert_eq!(
        e.lines(&["volume", "ls", "-f", "dangling=true", "-q"]),
        std::slice::from_ref(&anon)
    );
    let (code, _, stderr) = e.fails(&["volume", "rm", "data"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("volume is in use"), "{stderr}");
    assert!(std::path::Path::new(&mp).join("f").exists());
    // Prune takes only the unused ones.
    let p = e.ok(&["volume", "prune", "-f"]);
    assert!(p.contains(&anon) && !p.contains("data\n"), "{p}");
    assert_eq!(e.lines(&["volume", "ls", "-q"]), ["data", "scratch"]);
    e.ok(&["rm", "w"]);
    assert_eq!(
        e.ok(&["volume", "rm", "data", "scratch"]),
        "data\nscratch\n"
    );
    assert!(e.ok(&["volume", "ls", "-q"]).is_empty());
    assert!(!std::path::Path::new(&mp).exists());

    // Anonymous volumes of `-v /dst` go with rm -v; system df counts volumes.
    e.ok(&["create", "--name", "a", "-v", "/cache", "busybox", "true"]);
    assert_eq!(e.ok(&["volume", "ls", "-q"]).lines().count(), 1);
    assert!(e.ok(&["system", "df"]).contains("Volumes     1"));
    e.ok(&["rm", "-v", "a"]);
    assert!(e.ok(&["volume", "ls", "-q"]).is_empty());

    // Bad input: Docker's words, exit 125, nothing made.
    for (args, want) in [
        (vec!["volume", "create", "bad name"], "invalid characters"),
        (
            vec!["volume", "create", "-o", "colour=red", "v2"],
            "invalid option",
        ),
        (vec!["volume", "create", "-d", "nfs", "v3"], "not supported"),
        (vec!["volume", "rm", "nosuch"], "no such volume"),
        (
            vec!["volume", "ls", "-f", "bogus=1"],
            "invalid filter 'bogus'",
        ),
    ] {
        let (code, _, stderr) = e.fails(&args);
        assert_eq!(code, 125, "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    assert!(e.ok(&["volume", "ls", "-q"]).is_empty());
    let (code, _, stderr) = e.fails(&["volume", "inspect", "nosuch"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no such volume"), "{stderr}");
}

#[test]
fn logs_since_until_and_wait_conditions() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "talk",
        "busybox",
        "sh",
        "-c",
        "echo early; sleep 2; echo late; sleep 30",
    ]);
    // wait --condition running returns once it runs (podman prints -1).
    assert_eq!(
        e.ok(&["wait", "--condition", "running", "talk"]).trim(),
        "-1"
    );
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let mid = chrono::Utc::now().to_rfc3339();
    std::thread::sleep(std::time::Duration::from_millis(2000));
    assert_eq!(e.ok(&["logs", "talk"]), "early\nlate\n");
    assert_eq!(e.ok(&["logs", "--since", &mid, "talk"]), "late\n");
    assert_eq!(e.ok(&["logs", "--until", &mid, "talk"]), "early\n");
    assert_eq!(
        e.ok(&["logs", "--since", "1h", "-n", "1", "talk"]),
        "late\n"
    );
    assert!(
        e.ok(&[
            "logs",
            "--since",
            "2000-01-01",
            "--until",
            "2000-01-02",
            "talk"
        ])
        .is_empty()
    );
    let (code, _, stderr) = e.fails(&["logs", "--since", "yesterday", "talk"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("invalid time"), "{stderr}");
    // paused, then stopped with its code, then removed.
    e.ok(&["pause", "talk"]);
    assert_eq!(
        e.ok(&["wait", "--condition", "paused", "talk"]).trim(),
        "-1"
    );
    e.ok(&["unpause", "talk"]);
    e.ok(&["kill", "-s", "KILL", "talk"]);
    assert_eq!(
        e.ok(&["wait", "--condition", "stopped", "talk"]).trim(),
        "137"
    );
    let waiter =
        e.0.cmd(&["wait", "--condition", "removed", "-i", "50", "talk"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    e.ok(&["rm", "talk"]);
    let w = waiter.wait_with_output().unwrap();
    assert!(w.status.success(), "{}", err(&w));
    assert_eq!(out(&w).trim(), "-1");
    e.ok(&["create", "--name", "talk", "busybox", "true"]);
    let (code, _, stderr) = e.fails(&["wait", "--condition", "sideways", "talk"]);
    assert_eq!(code, 125);
    assert!(
        stderr.contains("no such container") || stderr.contains("invalid condition"),
        "{stderr}"
    );
}

#[test]
fn events_are_logged_filtered_formatted_and_followed() {
    let e = Engine::new();
    let t0 = chrono::Utc::now().to_rfc3339();
    let o =
        e.0.run(&["run", "--name", "one", "busybox", "sh", "-c", "exit 2"]);
    assert_eq!(o.status.code(), Some(2));
    e.ok(&["rename", "one", "uno"]);
    e.ok(&["rm", "uno"]);
    e.ok(&["tag", "busybox", "ev:1"]);
    e.ok(&["volume", "create", "evvol"]);
    let t1 = chrono::Utc::now().to_rfc3339();
    let past = |extra: &[&str]| {
        let mut args = vec!["events", "--since", &t0, "--until", &t1];
        args.extend_from_slice(extra);
        e.ok(&args).lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(
        past(&["--filter", "type=container", "--format", "{{.Action}}"]),
        ["create", "start", "die", "rename", "destroy"]
    );
    assert_eq!(
        past(&[
            "-f",
            "event=die",
            "--format",
            "{{.Actor.Attributes.exitCode}} {{.Actor.Attributes.name}} {{.from}}"
        ]),
        ["2 one busybox"]
    );
    assert_eq!(
        past(&["-f", "container=uno", "--format", "{{.Action}}"]),
        ["rename", "destroy"]
    );
    assert_eq!(
        past(&[
            "-f",
            "type=image",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}"
        ]),
        ["tag ev:1"]
    );
    assert_eq!(
        past(&["-f", "type=volume", "--format", "{{.Action}} {{.Actor.ID}}"]),
        ["create evvol"]
    );
    // Docker's default line, and JSON.
    let lines = past(&["-f", "event=start"]);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].contains(" container start ") && lines[0].ends_with("(image=busybox, name=one)"),
        "{lines:?}"
    );
    let j: Value =
        serde_json::from_str(&past(&["-f", "event=create", "--format", "json"])[0]).unwrap();
    assert_eq!(j["Type"], "container");
    assert!(j["timeNano"].as_i64().unwrap() > 0);
    // Following: the events from --since on, until --until passes (with
    // --until alone, Docker shows every earlier event too).
    let since = chrono::Utc::now().to_rfc3339();
    let until = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let follower =
        e.0.cmd(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "-f",
            "type=container",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    e.ok(&["create", "--name", "late", "busybox", "true"]);
    let o = follower.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(out(&o), "create late\n");
    let (code, _, stderr) = e.fails(&["events", "-f", "colour=red", "--until", "1s"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("invalid filter 'colour'"), "{stderr}");
}

#[test]
fn system_prune_removes_what_nothing_uses() {
    let e = Engine::new();
    e.ok(&["tag", "busybox", "keep:1"]);
    e.ok(&[
        "run", "-d", "--name", "up", "-v", "busy:/b", "busybox", "sleep", "60",
    ]);
    e.ok(&["create", "--name", "stopped", "busybox", "true"]);
    e.ok(&["create", "--name", "base", "busybox", "true"]);
    e.ok(&["commit", "-c", "ENV A=1", "base", "unused:1"]);
    let dangling = e
        .ok(&["commit", "-c", "ENV B=1", "base"])
        .trim()
        .to_string();
    e.ok(&["volume", "create", "idle"]);
    e.ok(&[
        "network",
        "create",
        "--subnet",
        "192.168.235.0/24",
        "lonely",
    ]);
    // Without -f it asks; EOF on stdin is no: nothing goes.
    let o = e.0.run(&["system", "prune"]);
    assert!(o.status.success());
    assert!(
        out(&o).contains("Are you sure you want to continue? [y/N]"),
        "{}",
        out(&o)
    );
    assert_eq!(e.lines(&["ps", "-aq"]).len(), 3);
    // -f: stopped containers, the dangling image, the build cache.
    let p = e.ok(&["system", "prune", "-f"]);
    assert!(p.contains("Deleted Networks:\nlonely\n"), "{p}");
    assert!(
        p.contains("Deleted Containers:") && p.contains("Deleted Images:"),
        "{p}"
    );
    assert!(p.contains(&dangling[7..]), "{p}");
    assert!(p.contains("Total reclaimed space:"), "{p}");
    assert_eq!(e.lines(&["ps", "-a", "--format", "{{.Names}}"]), ["up"]);
    let images = e.lines(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.iter().any(|i| i.ends_with("unused:1")), "{images:?}");
    assert_eq!(e.lines(&["volume", "ls", "-q"]), ["busy", "idle"]);
    // -a --volumes: every unused image and volume; what `up` uses stays.
    let p = e.ok(&["system", "prune", "-a", "--volumes", "-f"]);
    assert!(p.contains("Deleted Volumes:\nidle\n"), "{p}");
    assert_eq!(e.lines(&["volume", "ls", "-q"]), ["busy"]);
    let images = e.lines(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(
        images.len(),
        2,
        "busybox and keep:1 are the one image `up` uses: {images:?}"
    );
    assert!(
        images.iter().all(|i| !i.ends_with("unused:1")),
        "{images:?}"
    );
    assert_eq!(e.ok(&["exec", "up", "true"]), "");
    // until= in the past keeps everything made since.
    e.ok(&["create", "--name", "young", "busybox", "true"]);
    e.ok(&[
        "system",
        "prune",
        "-f",
        "--filter",
        "until=2000-01-01T00:00:00Z",
    ]);
    assert_eq!(
        e.lines(&["ps", "-a", "--format", "{{.Names}}"]),
        ["up", "young"]
    );
    let (code, _, stderr) = e.fails(&["system", "prune", "-f", "--filter", "colour=red"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("invalid filter 'colour'"), "{stderr}");
}

#[test]
fn stats_reads_cpu_memory_pids_and_network() {
    let e = Engine::new();
    // A busy loop and a few more processes, under a memory limit.
    e.ok(&[
        "run", "-d", "--name", "busy", "--memory", "256m", "busybox", "sh", "-c",
        "sleep 60 & sleep 60 & head -c 16m /dev/zero | tr '\\0' x > /dev/null & while :; do :; done",
    ]);
    e.ok(&["run", "-d", "--name", "idle", "busybox", "sleep", "60"]);
    e.ok(&["create", "--name", "never", "busybox", "true"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let rows = e.lines(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}|{{.NetIO}}|{{.BlockIO}}",
    ]);
    assert_eq!(rows.len(), 2, "running ones only: {rows:?}");
    let busy: Vec<&str> = rows[0].split('|').collect();
    assert_eq!(busy[0], "busy");
    let cpu: f64 = busy[1].trim_end_matches('%').parse().unwrap();
    assert!(cpu > 30.0, "a busy loop uses a CPU: {rows:?}");
    assert!(
        busy[2].ends_with(" / 256MiB"),
        "the --memory limit: {rows:?}"
    );
    assert!(busy[3].parse::<u32>().unwrap() >= 3, "{rows:?}");
    assert!(busy[4].contains(" / "), "{rows:?}");
    let idle: Vec<&str> = rows[1].split('|').collect();
    assert_eq!(idle[0], "idle");
    let cpu: f64 = idle[1].trim_end_matches('%').parse().unwrap();
    assert!(cpu < 5.0, "{rows:?}");
    assert_eq!(idle[3], "1");
    // The bridge's traffic shows in NET I/O once something is sent.
    e.ok(&[
        "exec",
        "busy",
        "sh",
        "-c",
        "ping -c 2 -W 1 -i 0.2 $(ip route | awk '/default/ {print $3}') || true",
    ]);
    let net = e.ok(&["stats", "--no-stream", "--format", "{{.NetIO}}", "busy"]);
    assert_ne!(net.trim(), "0B / 0B", "{net}");
    // -a shows stopped ones with zeros; the table has Docker's header.
    let t = e.ok(&["stats", "--no-stream", "-a"]);
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("CONTAINER ID   NAME"), "{t}");
    assert!(
        lines[0].contains("MEM USAGE / LIMIT") && lines[0].ends_with("PIDS"),
        "{t}"
    );
    assert_eq!(lines.len(), 4, "{t}");
    assert!(
        t.lines()
            .any(|l| l.contains("never") && l.contains("0.00%")),
        "{t}"
    );
    let (code, _, stderr) = e.fails(&["stats", "--no-stream", "nosuch"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("no such container"), "{stderr}");
}

#[test]
fn save_of_several_images_loads_back_with_every_name() {
    let e = Engine::new();
    e.ok(&["tag", "busybox", "first:1"]);
    e.ok(&["create", "--name", "c", "busybox", "true"]);
    e.ok(&["commit", "-c", "ENV X=1", "c", "second:2"]);
    let tar = e.0.dir.path().join("two.tar");
    e.ok(&["save", "-o", tar.to_str().unwrap(), "first:1", "second:2"]);
    let other = Strata::empty("strata-dcli-load-");
    let loaded = other.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(
        loaded.contains("first:1") && loaded.contains("second:2"),
        "{loaded}"
    );
    let names = other.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        names.contains("first:1") && names.contains("second:2"),
        "{names}"
    );
}

#[test]
fn update_changes_limits_of_running_and_stopped_containers() {
    let e = Engine::new();
    e.ok(&[
        "run", "-d", "--name", "lim", "--memory", "128m", "busybox", "sleep", "60",
    ]);
    let mem = || e.ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "lim"]);
    let pids_max = || {
        e.ok(&[
            "exec",
            "lim",
            "sh",
            "-c",
            "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
        ])
    };
    assert!(mem().trim_end().ends_with("/ 128MiB"), "{}", mem());
    assert_eq!(
        e.ok(&[
            "update",
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            "--cpus",
            "0.5",
            "lim"
        ])
        .trim(),
        "lim"
    );
    assert!(mem().trim_end().ends_with("/ 64MiB"), "{}", mem());
    let pids = pids_max();
    assert_eq!(pids.trim(), "50");
    let quota = e.ok(&["exec", "lim", "sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max"]);
    assert_eq!(quota.trim(), "50000");
    // The record keeps them: a restart comes back with 64m.
    e.ok(&["stop", "-t", "1", "lim"]);
    e.ok(&["update", "--pids-limit", "40", "lim"]);
    e.ok(&["start", "lim"]);
    assert!(mem().trim_end().ends_with("/ 64MiB"), "{}", mem());
    let pids = pids_max();
    assert_eq!(
        pids.trim(),
        "40",
        "an update of a stopped container applies at start"
    );
    let events = e.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "-f",
        "event=update",
        "--format",
        "{{.Actor.Attributes.name}}",
    ]);
    assert_eq!(events, "lim\nlim\n");
    for (args, want) in [
        (vec!["update", "lim"], "one or more flags"),
        (vec!["update", "--cpus", "0", "lim"], "--cpus"),
        (vec!["update", "--memory", "lots", "lim"], "lots"),
        (
            vec!["update", "--memory", "64m", "nosuch"],
            "no such container",
        ),
    ] {
        let (code, _, stderr) = e.fails(&args);
        assert_eq!(code, 125, "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

#[test]
fn run_flags_ulimit_shm_tmpfs_sysctl_groups_oom_resources_annotations_cidfile() {
    let e = Engine::new();
    let cid = e.0.dir.path().join("cid");
    let out = e.ok(&[
        "run", "--rm", "--cidfile", cid.to_str().unwrap(),
        "--ulimit", "nofile=512:1024", "--shm-size", "8m", "--tmpfs", "/scratch:size=4m",
        "--sysctl", "net.ipv4.ip_forward=1", "--group-add", "1234", "--group-add", "nogroup",
        "--oom-score-adj", "300", "--memory", "64m", "--memory-swap", "128m",
        "--memory-reservation", "32m", "--cpu-shares", "512", "--cpuset-cpus", "0",
        "--annotation", "org.example.k=v", "busybox", "sh", "-c",
        "ulimit -n; ulimit -Hn; df -k /dev/shm | awk 'NR==2 {print $2}'; \
         grep ' /scratch tmpfs ' /proc/mounts | grep -o 'size=[0-9]*k'; \
         cat /proc/sys/net/ipv4/ip_forward; id -G; cat /proc/self/oom_score_adj; \
         cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/memory/memory.soft_limit_in_bytes \
             /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes /sys/fs/cgroup/cpuset/cpuset.cpus 2>/dev/null",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "512", "{out}");
    assert_eq!(lines[1], "1024", "{out}");
    assert_eq!(lines[2], "8192", "{out}");
    assert_eq!(lines[3], "size=4096k", "{out}");
    assert_eq!(lines[4], "1", "{out}");
    let groups: Vec<&str> = lines[5].split(' ').collect();
    assert!(
        groups.contains(&"1234") && groups.contains(&"65534"),
        "{out}"
    );
    assert_eq!(lines[6], "300", "{out}");
    assert_eq!(lines[7..], ["512", "33554432", "134217728", "0"], "{out}");
    let id = std::fs::read_to_string(&cid).unwrap();
    assert_eq!(id.len(), 64, "{id}");
    // The annotation reaches the runtime's config.
    e.ok(&[
        "create",
        "--name",
        "ann",
        "--annotation",
        "a.b=c",
        "busybox",
        "true",
    ]);
    let config = std::fs::read_to_string(
        e.0.root()
            .join("containers")
            .join(e.ok(&["inspect", "-f", "{{.Id}}", "ann"]).trim())
            .join("config.json"),
    )
    .unwrap_or_default();
    assert!(config.contains("\"a.b\": \"c\""), "{config}");
    // Options end at the image, as Docker's: -l and -c (--label and
    // --cpu-shares here) after it belong to the command.
    let ls = e.ok(&["run", "--rm", "busybox", "ls", "-l", "/bin/busybox"]);
    assert!(
        ls.starts_with("-rwx") && ls.trim_end().ends_with("/bin/busybox"),
        "{ls}"
    );
    assert_eq!(
        e.ok(&["run", "--rm", "busybox", "sh", "-c", "echo $0", "-c"])
            .trim(),
        "-c"
    );
    // A cidfile that exists is refused before anything is made.
    let before = e.lines(&["ps", "-aq"]).len();
    for (args, want) in [
        (
            vec!["run", "--cidfile", cid.to_str().unwrap(), "busybox", "true"],
            "Container ID file found",
        ),
        (
            vec!["run", "--ulimit", "nofile=9:1", "busybox", "true"],
            "soft limit above",
        ),
        (
            vec!["run", "--ulimit", "bogus=1", "busybox", "true"],
            "unknown limit",
        ),
        (
            vec!["run", "--memory-swap", "1g", "busybox", "true"],
            "memory limit",
        ),
        (
            vec!["run", "--oom-score-adj", "5000", "busybox", "true"],
            "oom-score-adj",
        ),
        (
            vec!["run", "--group-add", "nosuchgroup", "busybox", "true"],
            "unable to find group",
        ),
        (
            vec!["run", "--tmpfs", "relative", "busybox", "true"],
            "absolute",
        ),
        (
            vec!["run", "--sysctl", "novalue", "busybox", "true"],
            "KEY=VALUE",
        ),
    ] {
        let (code, _, stderr) = e.fails(&args);
        assert_eq!(code, 125, "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    assert_eq!(e.lines(&["ps", "-aq"]).len(), before, "nothing was made");
}

/// Poll `f` every 100 ms for up to `secs`; whether it came true.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    f()
}

#[test]
fn restart_policies_restart_with_back_off_until_stopped() {
    let e = Engine::new();
    // on-failure:2: the first run and two restarts, then it stays exited.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo attempt; exit 3",
    ]);
    assert!(eventually(20, || e.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.RestartCount}}",
        "flaky"
    ]) == "exited 2\n"));
    assert_eq!(e.ok(&["logs", "flaky"]), "attempt\nattempt\nattempt\n");
    assert_eq!(e.ok(&["inspect", "-f", "{{.State.ExitCode}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", "flaky"]), "3 on-failure:2\n");
    let actions = e.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "container=flaky",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(
        actions.lines().filter(|l| *l == "restart").count(),
        2,
        "{actions}"
    );
    // on-failure does not restart a clean exit.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "clean",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ]);
    assert!(eventually(10, || e.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}}",
        "clean"
    ]) == "exited\n"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        e.ok(&["inspect", "-f", "{{.RestartCount}}", "clean"]),
        "0\n"
    );
    // always: `ps` shows it Restarting between runs; `stop` ends it for good.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "loop",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.3; exit 1",
    ]);
    assert!(eventually(10, || e
        .ok(&["ps", "--format", "{{.Names}} {{.Status}}"])
        .contains("loop Restarting (1)")));
    assert!(eventually(10, || e
        .ok(&["inspect", "-f", "{{.RestartCount}}", "loop"])
        .trim()
        .parse::<u32>()
        .unwrap()
        >= 2));
    e.ok(&["stop", "-t", "1", "loop"]);
    let after = e.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.RestartCount}}",
        "loop",
    ]);
    assert!(after.starts_with("exited "), "{after}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        e.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.RestartCount}}",
            "loop"
        ]),
        after
    );
    // A foreground run returns with its first run's code; the policy
    // carries on without it.
    let o = e.0.run(&[
        "run",
        "--name",
        "fg",
        "--restart",
        "on-failure:1",
        "busybox",
        "sh",
        "-c",
        "exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", err(&o));
    assert!(eventually(10, || e.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.RestartCount}}",
        "fg"
    ]) == "exited 1\n"));
    // rm -f of a container between restarts.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "gone",
        "--restart",
        "unless-stopped",
        "busybox",
        "false",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    e.ok(&["rm", "-f", "gone"]);
    assert_eq!(e.ok(&["ps", "-a", "--filter", "name=gone", "-q"]), "");
    // Bad policies: Docker's errors, nothing made.
    for (args, want) in [
        (
            vec!["run", "--restart", "sometimes", "busybox", "true"],
            "invalid restart policy",
        ),
        (
            vec!["run", "--restart", "always:3", "busybox", "true"],
            "maximum retry count cannot be used with restart policy",
        ),
        (
            vec!["run", "--restart", "on-failure:x", "busybox", "true"],
            "maximum retry count must be an integer",
        ),
        (
            vec!["run", "--rm", "--restart", "always", "busybox", "true"],
            "Conflicting options: --restart and --rm",
        ),
    ] {
        let (code, _, msg) = e.fails(&args);
        assert_eq!(code, 125, "{args:?}");
        assert!(msg.contains(want), "{args:?}: {msg}");
    }
    assert_eq!(e.ok(&["ps", "-aq", "--filter", "status=created"]), "");
}

#[test]
fn healthchecks_turn_healthy_then_unhealthy() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "svc",
        "--health-cmd",
        "test -e /tmp/up && echo up",
        "--health-interval",
        "300ms",
        "--health-retries",
        "2",
        "--health-timeout",
        "2s",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/up; exec sleep 60",
    ]);
    let status = || e.ok(&["ps", "--filter", "name=svc", "--format", "{{.Status}}"]);
    assert!(
        eventually(10, || status().ends_with("(healthy)\n")),
        "{}",
        status()
    );
    assert_eq!(
        e.ok(&["ps", "--filter", "health=healthy", "--format", "{{.Names}}"]),
        "svc\n"
    );
    assert_eq!(
        e.ok(&[
            "inspect",
            "-f",
            "{{(index .State.Health.Log 0).Output}}",
            "svc"
        ]),
        "up\n\n"
    );
    e.ok(&["exec", "svc", "rm", "/tmp/up"]);
    assert!(
        eventually(10, || status().ends_with("(unhealthy)\n")),
        "{}",
        status()
    );
    let h = e.ok(&[
        "inspect",
        "-f",
        "{{.State.Health.Status}} {{.State.Health.FailingStreak}} {{len .State.Health.Log}}",
        "svc",
    ]);
    let f: Vec<&str> = h.split_whitespace().collect();
    assert_eq!(f[0], "unhealthy", "{h}");
    assert!(
        f[1].parse::<u32>().unwrap() >= 2 && f[2].parse::<u32>().unwrap() <= 5,
        "{h}"
    );
    // `healthcheck run`: one probe now, podman's output and exit codes.
    let (code, o, _) = e.fails(&["healthcheck", "run", "svc"]);
    assert_eq!((code, o.as_str()), (1, "unhealthy\n"));
    e.ok(&["exec", "svc", "touch", "/tmp/up"]);
    assert_eq!(e.ok(&["healthcheck", "run", "svc"]), "healthy\n");
    let actions = e.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "container=svc",
        "--format",
        "{{.Action}}",
    ]);
    for want in ["health_status: healthy", "health_status: unhealthy"] {
        assert!(actions.lines().any(|l| l == want), "{actions}");
    }
    // A probe that outlives its timeout counts as a failure.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "sleep 5",
        "--health-interval",
        "200ms",
        "--health-timeout",
        "300ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "60",
    ]);
    assert!(eventually(10, || e.ok(&[
        "inspect",
        "-f",
        "{{.State.Health.Status}}",
        "slow"
    ]) == "unhealthy\n"));
    let out = e.ok(&[
        "inspect",
        "-f",
        "{{(index .State.Health.Log 0).Output}}",
        "slow",
    ]);
    assert!(out.contains("Health check exceeded timeout"), "{out}");
    // --no-healthcheck, and a container without one.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "plain",
        "--no-healthcheck",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(
        e.ok(&["inspect", "-f", "{{.State.Health}}", "plain"]),
        "<nil>\n"
    );
    let (code, _, msg) = e.fails(&["healthcheck", "run", "plain"]);
    assert_eq!(code, 125);
    assert!(msg.contains("has no defined healthcheck"), "{msg}");
    let (code, _, msg) = e.fails(&["run", "--health-interval", "soon", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(msg.contains("invalid duration"), "{msg}");
}

#[test]
fn run_namespaces_log_drivers_and_platform() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "base",
        "--hostname",
        "basehost",
        "busybox",
        "sleep",
        "60",
    ]);
    // --pid container:NAME: its processes are ours to see.
    let o = e.ok(&[
        "run",
        "--rm",
        "--pid",
        "container:base",
        "busybox",
        "ps",
        "-o",
        "comm",
    ]);
    assert!(o.lines().any(|l| l.trim() == "sleep"), "{o}");
    // --uts container:NAME: its hostname.
    assert_eq!(
        e.ok(&[
            "run",
            "--rm",
            "--uts",
            "container:base",
            "busybox",
            "hostname"
        ]),
        "basehost\n"
    );
    // --pid host, --uts host, --cgroupns host.
    let host_pid1 = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let o = e.ok(&[
        "run",
        "--rm",
        "--pid",
        "host",
        "busybox",
        "readlink",
        "/proc/self/ns/pid",
    ]);
    assert_eq!(o.trim(), host_pid1.to_string_lossy());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        e.ok(&["run", "--rm", "--uts", "host", "busybox", "hostname"]),
        host
    );
    let host_cg = std::fs::read_link("/proc/self/ns/cgroup").unwrap();
    let o = e.ok(&[
        "run",
        "--rm",
        "--cgroupns",
        "host",
        "busybox",
        "readlink",
        "/proc/self/ns/cgroup",
    ]);
    assert_eq!(o.trim(), host_cg.to_string_lossy());
    let o = e.ok(&["run", "--rm", "busybox", "readlink", "/proc/self/ns/cgroup"]);
    assert_ne!(o.trim(), host_cg.to_string_lossy());
    // --ipc host: the host's IPC namespace.
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let o = e.ok(&[
        "run",
        "--rm",
        "--ipc",
        "host",
        "busybox",
        "readlink",
        "/proc/self/ns/ipc",
    ]);
    assert_eq!(o.trim(), host_ipc.to_string_lossy());
    // --log-opt max-size/max-file: rotated, the newest lines kept.
    e.ok(&[
        "run",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=300",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 50 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    let logs = e.ok(&["logs", "chatty"]);
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.last(), Some(&"line-49"), "{logs}");
    assert!(!lines.contains(&"line-0") && lines.len() < 20, "{logs}");
    let numbers: Vec<u32> = lines.iter().map(|l| l[5..].parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{logs}");
    // --log-driver none: nothing kept, and logs says so.
    e.ok(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "hi",
    ]);
    let (code, _, msg) = e.fails(&["logs", "quiet"]);
    assert_ne!(code, 0);
    assert!(
        msg.contains("configured logging driver does not support reading"),
        "{msg}"
    );
    // Bad values: Docker's errors, nothing made.
    for (args, want) in [
        (
            vec!["run", "--pid", "container:nosuch", "busybox", "true"],
            "nosuch",
        ),
        (
            vec!["run", "--ipc", "shareable-ish", "busybox", "true"],
            "invalid --ipc",
        ),
        (
            vec!["run", "--cgroupns", "sideways", "busybox", "true"],
            "invalid --cgroupns",
        ),
        (
            vec!["run", "--userns", "keep-id", "busybox", "true"],
            "invalid --userns",
        ),
        (
            vec!["run", "--log-driver", "syslog", "busybox", "true"],
            "no log driver named 'syslog'",
        ),
        (
            vec!["run", "--log-opt", "max-file=3", "busybox", "true"],
            "max-file cannot be set without max-size",
        ),
        (
            vec!["run", "--log-opt", "colour=red", "busybox", "true"],
            "unknown log opt 'colour'",
        ),
        (
            vec!["run", "--platform", "linux/s390x", "busybox", "true"],
            "s390x",
        ),
        (
            vec!["run", "--uts", "host", "-h", "x", "busybox", "true"],
            "conflicting options: hostname and the UTS mode",
        ),
    ] {
        let (code, _, msg) = e.fails(&args);
        assert_eq!(code, 125, "{args:?}: {msg}");
        assert!(msg.contains(want), "{args:?}: {msg}");
    }
    assert_eq!(
        e.ok(&[
            "run",
            "--rm",
            "--platform",
            "linux/amd64",
            "--userns",
            "host",
            "busybox",
            "true"
        ]),
        ""
    );
    assert_eq!(e.ok(&["ps", "-aq", "--filter", "status=created"]), "");
}

/// A registry index answering every request with `body` (v1 search).
fn search_index(body: &'static str) -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let mut req = [0u8; 4096];
            let _ = c.read(&mut req);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn search_lists_a_registry_index_and_refuses_an_unreachable_one() {
    let e = Engine::new();
    let port = search_index(
        r#"{"num_results":2,"query":"busybox","results":[
        {"name":"library/busybox","description":"Busybox base image.","star_count":3000,"is_official":true,"is_automated":false},
        {"name":"someone/busybox-tools","description":"Tools and more tools, far too many to list in one table cell","star_count":4,"is_official":false,"is_automated":true}]}"#,
    );
    let term = format!("127.0.0.1:{port}/busybox");
    let o = e.ok(&["search", &term]);
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]
    );
    assert!(
        lines[1].starts_with("library/busybox")
            && lines[1].contains("3000")
            && lines[1].contains("[OK]"),
        "{o}"
    );
    assert!(lines[2].contains("…"), "{o}");
    assert_eq!(
        e.ok(&[
            "search",
            "--filter",
            "is-official=true",
            "--format",
            "{{.Name}} {{.StarCount}}",
            &term
        ]),
        "library/busybox 3000\n"
    );
    assert_eq!(
        e.ok(&[
            "search",
            "--filter",
            "stars=10",
            "--format",
            "{{.Name}}",
            &term
        ]),
        "library/busybox\n"
    );
    assert_eq!(
        e.ok(&[
            "search",
            "--limit",
            "1",
            "--no-trunc",
            "--format",
            "{{.Name}}",
            &term
        ]),
        "library/busybox\n"
    );
    // Nobody listening: one clear error, exit 1 (Docker's code for it).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _, msg) = e.fails(&["search", &format!("127.0.0.1:{closed}/busybox")]);
    assert_eq!(code, 1);
    assert!(
        msg.contains(&format!("cannot search registry 127.0.0.1:{closed}")),
        "{msg}"
    );
    let (code, _, msg) = e.fails(&["search", "--limit", "0", "busybox"]);
    assert_eq!(code, 125);
    assert!(msg.contains("outside the range"), "{msg}");
}

#[test]
fn history_takes_go_templates() {
    let e = Engine::new();
    e.ok(&["create", "--name", "base", "busybox", "true"]);
    e.ok(&[
        "commit",
        "-c",
        "ENV A=1",
        "-m",
        "set A",
        "base",
        "withenv:1",
    ]);
    let id = e.ok(&["image", "inspect", "--format", "{{.Id}}", "withenv:1"]);
    let short = &id.trim().trim_start_matches("sha256:")[..12];
    let o = e.ok(&["history", "--format", "{{.ID}}|{{.Comment}}", "withenv:1"]);
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines.len(), 2, "{o}");
    assert_eq!(lines[0], format!("{short}|set A"));
    assert!(lines[1].starts_with("<missing>|"), "{o}");
    let o = e.ok(&["history", "--no-trunc", "--format", "{{.ID}}", "withenv:1"]);
    assert_eq!(o.lines().next(), Some(id.trim()));
    // `table` templates get Docker's headers.
    let o = e.ok(&[
        "history",
        "--format",
        "table {{.CreatedBy}}\t{{.Size}}",
        "withenv:1",
    ]);
    let head: Vec<&str> = o.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(head, ["CREATED", "BY", "SIZE"]);
    assert!(o.contains("strata import"), "{o}");
    let (code, _, msg) = e.fails(&["history", "--format", "{{.Nope", "withenv:1"]);
    assert_eq!(code, 125);
    assert!(msg.contains("template"), "{msg}");
}
