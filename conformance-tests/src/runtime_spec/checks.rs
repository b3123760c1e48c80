//! The checks, in the order of the runtime-spec's config.md and
//! runtime.md. Scripts run in busybox `sh`; they exit 0 when the item is
//! honoured and say what they saw otherwise.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::console::ConsoleSocket;
use super::{Case, Check, LEAK_VAR, Outcome, Step, describe, fail};

macro_rules! check {
    ($item:expr, $what:expr, $f:expr) => {
        Check {
            item: $item,
            what: $what,
            run: $f,
        }
    };
}

pub fn all() -> Vec<Check> {
    vec![
        // --- process ---
        check!("process.args", "argv reaches the process as given", |c| {
            c.config["process"]["args"] = json!([
                "sh",
                "-c",
                "test \"$0|$1|$#\" = 'one|two words|1'",
                "one",
                "two words"
            ]);
            c.inside_current()
        }),
        check!(
            "process.env",
            "the config's environment and nothing of the runtime's",
            |c| {
                c.config["process"]["env"] = json!(["PATH=/bin", "SPEC_A=1", "SPEC_B=two words"]);
                c.inside(&format!(
                    "test \"$SPEC_A|$SPEC_B\" = '1|two words' && test -z \"${{{LEAK_VAR}+set}}\""
                ))
            }
        ),
        check!("process.cwd", "the process starts in cwd", |c| {
            c.config["process"]["cwd"] = json!("/tmp");
            c.inside("test \"$(pwd)\" = /tmp")
        }),
        check!("process.user.uid", "uid and gid are set", |c| {
            c.config["process"]["user"] = json!({"uid": 1000, "gid": 1001});
            c.inside("test \"$(id -u):$(id -g)\" = 1000:1001")
        }),
        check!(
            "process.user.additionalGids",
            "exactly gid and the additional gids",
            |c| {
                c.config["process"]["user"] =
                    json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 7]});
                c.inside("test \"$(id -G | tr ' ' '\\n' | sort -n | tr '\\n' ' ')\" = '5 7 1000 '")
            }
        ),
        check!("process.user.umask", "the umask is set", |c| {
            c.config["process"]["user"] = json!({"uid": 0, "gid": 0, "umask": 23});
            c.inside("test \"$(umask)\" = 0027")
        }),
        check!("process.user.umask", "0022 when umask is unset", |c| {
            c.inside("test \"$(umask)\" = 0022")
        }),
        check!("process.capabilities.bounding", "the bounding set", |c| {
            set_caps(c, &["CAP_CHOWN", "CAP_KILL"], &["CAP_CHOWN"], &[], &[]);
            c.inside(&cap_is("CapBnd", 0x21))
        }),
        check!("process.capabilities.effective", "the effective set", |c| {
            set_caps(c, &["CAP_CHOWN", "CAP_KILL"], &["CAP_CHOWN"], &[], &[]);
            c.inside(&cap_is("CapEff", 0x1))
        }),
        check!("process.capabilities.permitted", "the permitted set", |c| {
            set_caps(
                c,
                &["CAP_CHOWN", "CAP_KILL"],
                &["CAP_CHOWN", "CAP_KILL"],
                &[],
                &[],
            );
            c.config["process"]["capabilities"]["effective"] = json!(["CAP_CHOWN"]);
            c.inside(&cap_is("CapPrm", 0x21))
        }),
        check!(
            "process.capabilities.inheritable",
            "the inheritable set",
            |c| {
                set_caps(
                    c,
                    &["CAP_CHOWN", "CAP_KILL"],
                    &["CAP_CHOWN", "CAP_KILL"],
                    &["CAP_KILL"],
                    &[],
                );
                c.inside(&cap_is("CapInh", 0x20))
            }
        ),
        check!(
            "process.capabilities.ambient",
            "ambient caps reach a non-root process",
            |c| {
                let s = ["CAP_NET_BIND_SERVICE"];
                set_caps(c, &s, &s, &s, &s);
                c.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
                c.inside(&format!(
                    "{} && {}",
                    cap_is("CapAmb", 0x400),
                    cap_is("CapEff", 0x400)
                ))
            }
        ),
        check!("process.rlimits", "soft and hard limits are set", |c| {
            c.config["process"]["rlimits"] = json!([
                {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
            ]);
            c.inside(
                "grep -Eq '^Max open files +512 +1000 ' /proc/self/limits && \
                 grep -Eq '^Max core file size +0 +0 ' /proc/self/limits",
            )
        }),
        check!("process.noNewPrivileges", "true sets no_new_privs", |c| {
            c.inside("grep -Eq '^NoNewPrivs:[[:space:]]+1$' /proc/self/status")
        }),
        check!("process.noNewPrivileges", "false leaves it clear", |c| {
            c.config["process"]["noNewPrivileges"] = json!(false);
            c.inside("grep -Eq '^NoNewPrivs:[[:space:]]+0$' /proc/self/status")
        }),
        check!("process.oomScoreAdj", "oom_score_adj is set", |c| {
            c.config["process"]["oomScoreAdj"] = json!(500);
            c.inside("test \"$(cat /proc/self/oom_score_adj)\" = 500")
        }),
        check!(
            "process.ioPriority",
            "the I/O class and priority are set",
            |c| {
                c.config["process"]["ioPriority"] =
                    json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
                c.inside("ionice -p $$ | grep -q 'best-effort: prio 6'")
            }
        ),
        check!(
            "process.scheduler",
            "the policy and nice value are set",
            |c| {
                c.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5});
                // /proc/PID/stat field 19 is nice, field 41 the policy (3 = BATCH).
                c.inside("test \"$(awk '{print $19\" \"$41}' /proc/self/stat)\" = '5 3'")
            }
        ),
        check!(
            "process.scheduler",
            "flags: SCHED_FLAG_RESET_ON_FORK resets a child's nice",
            |c| {
                c.config["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": -5,
                                                      "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
                // The shell runs at -5; cat is its child, back at 0.
                c.inside(
                    "test \"$(awk '{print $19}' /proc/$$/stat)\" = -5 && \
                 test \"$(cat /proc/self/stat | awk '{print $19}')\" = 0",
                )
            }
        ),
        check!(
            "process.apparmorProfile",
            "refused where AppArmor is missing",
            |c| {
                if Path::new("/sys/kernel/security/apparmor").exists() {
                    return Outcome::Skip(
                        "the host has AppArmor; the check is for hosts without".into(),
                    );
                }
                c.config["process"]["apparmorProfile"] = json!("spec-conformance");
                c.refused()
            }
        ),
        check!(
            "process.selinuxLabel",
            "refused where SELinux is missing",
            |c| {
                if Path::new("/sys/fs/selinux/enforce").exists() {
                    return Outcome::Skip(
                        "the host has SELinux; the check is for hosts without".into(),
                    );
                }
                c.config["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
                c.refused()
            }
        ),
        check!("process.terminal", "false: stdio are not terminals", |c| {
            c.inside("! test -t 0 && ! test -t 1 && ! test -t 2")
        }),
        check!(
            "process.terminal",
            "true: a pty sent on --console-socket",
            |c| {
                terminal(
                    c,
                    None,
                    "test -t 0 && test -t 1 && test -t 2 && echo TTY-OK",
                    "TTY-OK",
                )
            }
        ),
        check!(
            "process.consoleSize",
            "the pty has the configured size",
            |c| { terminal(c, Some((30, 100)), "stty size", "30 100") }
        ),
        // --- root ---
        check!("root.path", "an absolute root path", |c| {
            c.config["root"]["path"] = json!(c.rootfs().display().to_string());
            c.inside("test -x /bin/busybox")
        }),
        check!("root.readonly", "the rootfs is read-only", |c| {
            c.config["root"]["readonly"] = json!(true);
            c.inside(
                "! touch /spec-ro 2>/dev/null && \
                 awk '$2 == \"/\" {o = $4} END {exit !(o ~ /^ro(,|$)/)}' /proc/mounts",
            )
        }),
        // --- mounts ---
        check!(
            "mounts",
            "tmpfs with options (nosuid, nodev, size, mode)",
            |c| {
                c.add_mount(
                    json!({"destination": "/tmp/t", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "nodev", "size=1m", "mode=750"]}),
                );
                c.inside(
                    "o=$(awk '$2 == \"/tmp/t\" {print $3\" \"$4}' /proc/mounts); \
                 case \"$o\" in tmpfs*nosuid*) ;; *) echo \"$o\"; exit 1;; esac; \
                 case \"$o\" in *nodev*size=1024k*mode=750*) ;; *) echo \"$o\"; exit 1;; esac; \
                 test \"$(stat -c %a /tmp/t)\" = 750",
                )
            }
        ),
        check!("mounts", "a missing destination is created", |c| {
            c.add_mount(
                json!({"destination": "/spec/new/dir", "type": "tmpfs", "source": "tmpfs"}),
            );
            c.inside("awk '$2 == \"/spec/new/dir\"' /proc/mounts | grep -q tmpfs")
        }),
        check!("mounts", "a bind mount of a host directory", |c| {
            bind_source(c);
            c.inside("test \"$(cat /mnt/b/file)\" = hello && touch /mnt/b/new")
                .and(|| {
                    Outcome::check(
                        c.host().join("bind/new").exists(),
                        "the write did not reach the source",
                    )
                })
        }),
        check!("mounts", "a read-only bind mount", |c| {
            bind_source(c);
            c.config["mounts"][7]["options"] = json!(["rbind", "ro"]);
            c.inside("test \"$(cat /mnt/b/file)\" = hello && ! touch /mnt/b/new 2>/dev/null")
        }),
        check!("mounts", "bind flags nosuid, nodev, noexec", |c| {
            bind_source(c);
            c.config["mounts"][7]["options"] = json!(["rbind", "nosuid", "nodev", "noexec"]);
            c.inside(
                "o=$(awk '$2 == \"/mnt/b\" {print $4}' /proc/mounts); \
                 for f in nosuid nodev noexec; do case \",$o,\" in *,$f,*) ;; *) echo \"$o\"; exit 1;; esac; done",
            )
        }),
        check!("mounts", "a bind mount of a single file", |c| {
            let src = c.host().join("file");
            if let Err(e) = std::fs::write(&src, "one file\n") {
                return fail(e.to_string());
            }
            c.add_mount(json!({"destination": "/etc/spec-file", "type": "bind",
                               "source": src.display().to_string(), "options": ["bind"]}));
            c.inside("test \"$(cat /etc/spec-file)\" = 'one file'")
        }),
        check!(
            "mounts",
            "mounts are made in order (a later one on an earlier)",
            |c| {
                bind_source(c);
                c.add_mount(
                    json!({"destination": "/mnt/b/sub", "type": "tmpfs", "source": "tmpfs",
                               "options": ["size=2m"]}),
                );
                c.inside(
                "test -f /mnt/b/file && awk '$2 == \"/mnt/b/sub\"' /proc/mounts | grep -q size=2048k",
            )
            }
        ),
        // --- hostname, domainname ---
        check!("hostname", "the UTS hostname", |c| {
            c.config["hostname"] = json!("spec-host");
            c.inside("test \"$(hostname)\" = spec-host")
        }),
        check!("domainname", "the UTS domainname", |c| {
            c.config["domainname"] = json!("spec.example");
            c.inside("test \"$(cat /proc/sys/kernel/domainname)\" = spec.example")
        }),
        // --- hooks ---
        check!("hooks", "run in lifecycle order", hooks_order),
        check!(
            "hooks",
            "the state on stdin (ociVersion, id, pid, bundle, status)",
            hook_state
        ),
        check!("hooks", "args and env of a hook", |c| {
            let out = c.host().join("args");
            c.config["hooks"] = json!({"createRuntime": [{
                "path": "/bin/sh",
                "args": ["sh", "-c", "echo \"$1|$SPEC_HOOK\" > \"$0\"", out.display().to_string(), "first"],
                "env": ["SPEC_HOOK=from-env"]
            }]});
            c.script("true");
            if let Err(o) = c.run_container().and_then(ok) {
                return o;
            }
            let got = c.host_file("args").unwrap_or_default();
            Outcome::check(
                got.trim() == "first|from-env",
                format!("hook wrote {got:?}"),
            )
        }),
        check!(
            "hooks.createRuntime",
            "a failing hook fails create and runs nothing",
            |c| {
                c.bind_host_dir();
                c.config["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
                c.script("echo ran > /host/ran");
                let out = match c.try_create() {
                    Ok(o) => o,
                    Err(o) => return o,
                };
                if out.status.success() {
                    return fail("create succeeded");
                }
                let _ = c.runtime(&["start", &c.id.clone()]);
                std::thread::sleep(Duration::from_millis(200));
                if c.host_file("ran").is_some() {
                    return fail("the process ran");
                }
                let id = c.id.clone();
                match c.runtime(&["state", &id]) {
                    Ok(o) if o.status.success() => fail(format!(
                        "the container is left after the failed create: {}",
                        String::from_utf8_lossy(&o.stdout)
                    )),
                    _ => Outcome::Pass,
                }
            }
        ),
        check!(
            "hooks.poststart",
            "a failing hook warns and the rest run",
            |c| {
                let m = c.host().join("second");
                c.config["hooks"] = json!({"poststart": [
                    {"path": "/bin/false"},
                    {"path": "/bin/sh", "args": ["sh", "-c", format!("touch {}", m.display())]}
                ]});
                c.script("sleep 0.3");
                let _ = c.run_container();
                Outcome::check(m.exists(), "the hook after the failing one did not run")
            }
        ),
        check!(
            "hooks.poststop",
            "a failing hook warns and the rest run",
            |c| {
                let m = c.host().join("second");
                c.config["hooks"] = json!({"poststop": [
                    {"path": "/bin/false"},
                    {"path": "/bin/sh", "args": ["sh", "-c", format!("touch {}", m.display())]}
                ]});
                c.script("true");
                let _ = c.run_container();
                let id = c.id.clone();
                let _ = c.runtime(&["delete", "--force", &id]);
                Outcome::check(m.exists(), "the hook after the failing one did not run")
            }
        ),
        check!(
            "hooks.timeout",
            "a hook past its timeout fails create",
            |c| {
                c.config["hooks"] = json!({"createRuntime": [
                    {"path": "/bin/sleep", "args": ["sleep", "20"], "timeout": 1}
                ]});
                let start = Instant::now();
                let out = match c.try_create() {
                    Ok(o) => o,
                    Err(o) => return o,
                };
                if out.status.success() {
                    return fail("create succeeded");
                }
                let took = start.elapsed();
                Outcome::check(
                    took < Duration::from_secs(10),
                    format!("create took {took:?}"),
                )
            }
        ),
        // --- annotations ---
        check!("annotations", "are reported by state", |c| {
            c.config["annotations"] = json!({"org.example.spec": "yes"});
            c.script("sleep 10");
            let st = c.create().and_then(|_| c.state());
            match st {
                Ok(st) => Outcome::check(
                    st["annotations"]["org.example.spec"] == "yes",
                    format!("state: {st}"),
                ),
                Err(o) => o,
            }
        }),
        // --- lifecycle (runtime.md) ---
        check!(
            "state",
            "after create: created, with id, pid, bundle, ociVersion",
            |c| {
                c.script("sleep 10");
                let st = match c.create().and_then(|_| c.state()) {
                    Ok(st) => st,
                    Err(o) => return o,
                };
                let bundle = c.bundle().display().to_string();
                Outcome::check(
                    st["status"] == "created"
                        && st["id"] == c.id.as_str()
                        && st["pid"].as_i64().is_some_and(|p| p > 0)
                        && st["bundle"] == bundle.as_str()
                        && st["ociVersion"].is_string(),
                    format!("state: {st}"),
                )
            }
        ),
        check!(
            "start",
            "the process runs only at start; running, then stopped",
            lifecycle
        ),
        check!("create", "an id in use is refused", |c| {
            c.script("sleep 10");
            if let Err(o) = c.create() {
                return o;
            }
            match c.try_create() {
                Ok(o) => Outcome::check(!o.status.success(), "the second create succeeded"),
                Err(o) => o,
            }
        }),
        check!("start", "start of a stopped container fails", |c| {
            c.script("true");
            let r: Step<()> = (|| {
                c.create()?;
                c.op("start", &[])?;
                c.wait_status("stopped", Duration::from_secs(10))?;
                let id = c.id.clone();
                let o = c.runtime(&["start", &id])?;
                if o.status.success() {
                    return Err(fail("the second start succeeded"));
                }
                Ok(())
            })();
            r.err().unwrap_or(Outcome::Pass)
        }),
        check!("kill", "the signal reaches the process", |c| {
            c.bind_host_dir();
            c.script("trap 'echo TERM > /host/sig; exit 0' TERM; echo up > /host/up; while :; do sleep 0.1; done");
            let r: Step<()> = (|| {
                c.create()?;
                c.op("start", &[])?;
                wait_file(c, "up")?;
                let id = c.id.clone();
                let o = c.runtime(&["kill", &id, "TERM"])?;
                ok(o)?;
                c.wait_status("stopped", Duration::from_secs(10))?;
                match c.host_file("sig") {
                    Some(s) if s.trim() == "TERM" => Ok(()),
                    other => Err(fail(format!("the trap wrote {other:?}"))),
                }
            })();
            r.err().unwrap_or(Outcome::Pass)
        }),
        check!(
            "delete",
            "refused while running; removes the container when stopped",
            |c| {
                c.script("sleep 30");
                let r: Step<()> = (|| {
                    c.create()?;
                    c.op("start", &[])?;
                    let id = c.id.clone();
                    if c.runtime(&["delete", &id])?.status.success() {
                        return Err(fail("delete of a running container succeeded"));
                    }
                    ok(c.runtime(&["kill", &id, "KILL"])?)?;
                    c.wait_status("stopped", Duration::from_secs(10))?;
                    c.op("delete", &[])?;
                    if c.runtime(&["state", &id])?.status.success() {
                        return Err(fail("state still answers after delete"));
                    }
                    Ok(())
                })();
                r.err().unwrap_or(Outcome::Pass)
            }
        ),
        // --- linux.namespaces ---
        check!(
            "linux.namespaces.pid",
            "the process is pid 1 of a new namespace",
            |c| { c.inside("test $$ = 1") }
        ),
        check!(
            "linux.namespaces.network",
            "a new namespace with only lo",
            |c| {
                c.inside("test \"$(awk -F: 'NR > 2 {gsub(/ /, \"\", $1); print $1}' /proc/net/dev)\" = lo")
            }
        ),
        check!(
            "linux.namespaces",
            "ipc, uts, mount, pid and net are new",
            |c| {
                let s = ns_compare(c, &["ipc", "uts", "mnt", "pid", "net"], "!=");
                c.inside(&s)
            }
        ),
        check!(
            "linux.namespaces.cgroup",
            "a new cgroup namespace roots /proc/self/cgroup",
            |c| {
                c.add_namespace(json!({"type": "cgroup"}));
                let s = ns_compare(c, &["cgroup"], "!=");
                c.inside(&format!("{s} && ! grep -v ':/$' /proc/self/cgroup"))
            }
        ),
        check!(
            "linux.namespaces",
            "a namespace not listed is the runtime's",
            |c| {
                for ns in ["ipc", "uts", "network"] {
                    c.drop_namespace(ns);
                }
                // A hostname needs a UTS namespace of the container's own.
                if let Some(o) = c.config.as_object_mut() {
                    o.remove("hostname");
                }
                c.drop_mount("/sys");
                c.drop_mount("/sys/fs/cgroup");
                let s = ns_compare(c, &["ipc", "uts", "net"], "=");
                c.inside(&s)
            }
        ),
        check!(
            "linux.namespaces.path",
            "joins an existing network namespace",
            join_netns
        ),
        check!("linux.namespaces.user", "uid and gid mappings", |c| {
            c.add_namespace(json!({"type": "user"}));
            c.linux()["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
            c.linux()["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
            c.drop_mount("/sys/fs/cgroup");
            if let Err(o) = chown_tree(&c.rootfs(), 200000) {
                return o;
            }
            c.inside(
                "test \"$(awk '{print $1\" \"$2\" \"$3}' /proc/self/uid_map)\" = '0 200000 65536' && \
                 test \"$(awk '{print $1\" \"$2\" \"$3}' /proc/self/gid_map)\" = '0 200000 65536' && \
                 test \"$(id -u)\" = 0 && test \"$(stat -c %u /bin/busybox)\" = 0",
            )
        }),
        check!(
            "linux.namespaces.time",
            "timeOffsets move the boottime and monotonic clocks",
            |c| {
                c.add_namespace(json!({"type": "time"}));
                c.linux()["timeOffsets"] = json!({
                    "monotonic": {"secs": 31536000, "nanosecs": 0},
                    "boottime": {"secs": 63072000, "nanosecs": 0}
                });
                // /proc/uptime is the boottime clock as the namespace sees it.
                c.inside(
                "awk '{exit !($1 > 63072000)}' /proc/uptime && \
                 test \"$(awk '$1 == \"monotonic\" {print $2\" \"$3}' /proc/self/timens_offsets)\" = '31536000 0'",
            )
            }
        ),
        // --- linux.devices and the default devices ---
        check!(
            "linux.devices",
            "a device node with type, numbers, mode",
            |c| {
                c.linux()["devices"] = json!([{"path": "/dev/spec-null", "type": "c", "major": 1,
                                            "minor": 3, "fileMode": 438, "uid": 0, "gid": 0}]);
                c.linux()["resources"] = json!({"devices": [
                    {"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
                ]});
                c.inside(
                "test -c /dev/spec-null && test \"$(stat -c '%t:%T %a' /dev/spec-null)\" = '1:3 666' \
                 && echo x > /dev/spec-null",
            )
            }
        ),
        check!("linux.devices", "the default devices exist", |c| {
            c.inside(
                "for d in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do \
                   n=${d%%:*}; test -c /dev/$n || { echo no /dev/$n; exit 1; }; \
                   test \"$(stat -c '%t:%T' /dev/$n)\" = \"${d#*:}\" || { echo wrong /dev/$n; exit 1; }; \
                 done; test -e /dev/ptmx",
            )
        }),
        check!(
            "linux.devices",
            "the /dev symlinks (fd, stdin, stdout, stderr)",
            |c| {
                c.inside(
                    "test \"$(readlink /dev/fd)\" = /proc/self/fd && \
                 test \"$(readlink /dev/stdin)\" = /proc/self/fd/0 && \
                 test \"$(readlink /dev/stdout)\" = /proc/self/fd/1 && \
                 test \"$(readlink /dev/stderr)\" = /proc/self/fd/2",
                )
            }
        ),
        check!(
            "linux.resources.devices",
            "a denied device cannot be opened",
            |c| { devices_rule(c, false) }
        ),
        check!(
            "linux.resources.devices",
            "an allowed device can be opened",
            |c| { devices_rule(c, true) }
        ),
        // --- linux.resources (cgroups) ---
        check!("linux.resources.memory", "limit", |c| {
            c.linux()["resources"] = json!({"memory": {"limit": 67108864}});
            c.inside(&cgroup_is(
                "memory/memory.limit_in_bytes",
                "memory.max",
                "67108864",
            ))
        }),
        check!("linux.resources.memory", "reservation", |c| {
            c.linux()["resources"] =
                json!({"memory": {"limit": 67108864, "reservation": 33554432}});
            c.inside(&cgroup_is(
                "memory/memory.soft_limit_in_bytes",
                "memory.low",
                "33554432",
            ))
        }),
        check!("linux.resources.pids", "limit", |c| {
            c.linux()["resources"] = json!({"pids": {"limit": 50}});
            c.inside(&cgroup_is("pids/pids.max", "pids.max", "50"))
        }),
        check!("linux.resources.cpu", "shares", |c| {
            c.linux()["resources"] = json!({"cpu": {"shares": 512}});
            // runc's conversion to cgroup v2: 1 + ((shares - 2) * 9999) / 262142
            c.inside(&cgroup_is("cpu/cpu.shares", "cpu.weight", "512|20"))
        }),
        check!("linux.resources.cpu", "quota and period", |c| {
            c.linux()["resources"] = json!({"cpu": {"quota": 50000, "period": 100000}});
            c.inside(&format!(
                "{} && {}",
                cgroup_is("cpu/cpu.cfs_quota_us", "cpu.max", "50000|50000 100000"),
                cgroup_is("cpu/cpu.cfs_period_us", "cpu.max", "100000|50000 100000")
            ))
        }),
        check!("linux.resources.cpu", "cpus (cpuset)", |c| {
            c.linux()["resources"] = json!({"cpu": {"cpus": "0"}});
            c.inside(&format!(
                "{} && test \"$(taskset -p $$ | awk '{{print $NF}}')\" = 1",
                cgroup_is("cpuset/cpuset.cpus", "cpuset.cpus", "0")
            ))
        }),
        check!(
            "linux.cgroupsPath",
            "the container's cgroup is at cgroupsPath",
            |c| {
                let path = format!("/spec-conformance/{}", c.id);
                c.linux()["cgroupsPath"] = json!(path);
                c.linux()["resources"] = json!({"pids": {"limit": 100}});
                c.inside(&format!(
                    "grep -Eq '^[0-9]+:pids:{path}$|^0::{path}$' /proc/self/cgroup"
                ))
            }
        ),
        // --- linux.sysctl ---
        check!("linux.sysctl", "namespaced sysctls are written", |c| {
            c.linux()["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmax": "12345678"});
            c.inside(
                "test \"$(cat /proc/sys/net/ipv4/ip_forward)\" = 1 && \
                 test \"$(cat /proc/sys/kernel/shmmax)\" = 12345678",
            )
        }),
        // --- linux.seccomp ---
        check!(
            "linux.seccomp",
            "SCMP_ACT_ERRNO answers EPERM by default",
            |c| {
                c.linux()["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}
                ]});
                c.inside(
                    "mkdir /tmp/x 2>&1 | grep -q 'Operation not permitted' && test ! -e /tmp/x",
                )
            }
        ),
        check!("linux.seccomp", "errnoRet sets the errno", |c| {
            c.linux()["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
            ]});
            c.inside("mkdir /tmp/x 2>&1 | grep -q 'Permission denied' && test ! -e /tmp/x")
        }),
        check!("linux.seccomp", "argument conditions", |c| {
            c.linux()["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 511, "op": "SCMP_CMP_EQ"}]},
                {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 2, "value": 511, "op": "SCMP_CMP_EQ"}]}
            ]});
            c.inside(
                "touch /tmp/f && chmod 755 /tmp/f && ! chmod 777 /tmp/f 2>/dev/null && \
                 test \"$(stat -c %a /tmp/f)\" = 755",
            )
        }),
        check!(
            "linux.seccomp",
            "an allowlist with defaultAction SCMP_ACT_ERRNO",
            |c| {
                c.linux()["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": allowlist(), "action": "SCMP_ACT_ALLOW"}]});
                c.inside(
                    "! mkdir /tmp/x 2>/dev/null && test ! -e /tmp/x && echo fine | grep -q fine",
                )
            }
        ),
        // --- masked and read-only paths ---
        check!(
            "linux.maskedPaths",
            "files read empty, directories are empty",
            |c| {
                // /proc/loadavg and /proc/driver exist on every kernel (kcore
                // needs CONFIG_PROC_KCORE); a missing path is skipped.
                c.linux()["maskedPaths"] =
                    json!(["/proc/loadavg", "/proc/driver", "/proc/spec-missing"]);
                c.linux()["readonlyPaths"] = json!([]);
                c.inside(
                "test \"$(stat -c '%t:%T' /proc/loadavg)\" = 1:3 && test -z \"$(cat /proc/loadavg)\" \
                 && test -z \"$(ls -A /proc/driver)\" \
                 && ! touch /proc/driver/x 2>/dev/null",
            )
            }
        ),
        check!("linux.readonlyPaths", "are mounted read-only", |c| {
            c.linux()["readonlyPaths"] = json!(["/proc/sys"]);
            c.inside(
                "! echo x > /proc/sys/kernel/hostname 2>/dev/null && \
                 awk '$5 == \"/proc/sys\" {o = $6} END {exit !(o ~ /^ro(,|$)/)}' /proc/self/mountinfo",
            )
        }),
        check!(
            "linux.rootfsPropagation",
            "private: no shared peer group on /",
            |c| {
                c.linux()["rootfsPropagation"] = json!("private");
                c.inside("awk '$5 == \"/\" {print $7}' /proc/self/mountinfo | grep -vq shared:")
            }
        ),
        check!("linux.personality", "LINUX32 changes uname -m", |c| {
            c.linux()["personality"] = json!({"domain": "LINUX32"});
            c.inside("test \"$(uname -m)\" = i686")
        }),
    ]
}

impl Case<'_> {
    /// `inside` with the process args already set.
    fn inside_current(&mut self) -> Outcome {
        match self.run_container() {
            Ok(out) if out.status.success() => Outcome::Pass,
            Ok(out) => Outcome::Fail(describe(&out)),
            Err(o) => o,
        }
    }

    /// The runtime must refuse the config: create fails and leaves nothing.
    fn refused(&mut self) -> Outcome {
        self.script("true");
        let out = match self.try_create() {
            Ok(o) => o,
            Err(o) => return o,
        };
        if out.status.success() {
            return fail("create accepted the config");
        }
        if out.stderr.is_empty() && out.stdout.is_empty() {
            return fail("refused without saying why");
        }
        Outcome::Pass
    }
}

impl Outcome {
    /// The next verification, if this one passed.
    fn and(self, next: impl FnOnce() -> Outcome) -> Outcome {
        match self {
            Outcome::Pass => next(),
            other => other,
        }
    }
}

fn ok(out: std::process::Output) -> Step<()> {
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(describe(&out)))
    }
}

fn set_caps(c: &mut Case, bnd: &[&str], eff_prm: &[&str], inh: &[&str], amb: &[&str]) {
    c.config["process"]["capabilities"] = json!({
        "bounding": bnd, "effective": eff_prm, "permitted": eff_prm,
        "inheritable": inh, "ambient": amb
    });
}

/// A script line checking one capability set of /proc/self/status.
fn cap_is(field: &str, mask: u64) -> String {
    format!(
        "{{ v=$(awk '$1 == \"{field}:\" {{print $2}}' /proc/self/status); \
         test \"$v\" = {mask:016x} || {{ echo {field}=$v; false; }}; }}"
    )
}

/// host()/bind with a file, bound at /mnt/b (mount index 7).
fn bind_source(c: &mut Case) {
    let dir = c.host().join("bind");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("file"), "hello\n");
    c.add_mount(json!({"destination": "/mnt/b", "type": "bind",
                       "source": dir.display().to_string(), "options": ["rbind"]}));
}

/// A script that compares the container's namespace links with the
/// host's: `op` is `=` (inherited) or `!=` (new).
fn ns_compare(c: &Case, kinds: &[&str], op: &str) -> String {
    kinds
        .iter()
        .map(|k| {
            let host = c.host_ns(k);
            format!(
                "{{ l=$(readlink /proc/self/ns/{k}); test \"$l\" {op} '{host}' || {{ echo \"{k}: $l vs host {host}\"; false; }}; }}"
            )
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

/// A script that reads a cgroup file (v1 path, v2 path) and compares it
/// with one of `want` (alternatives separated by `|`).
fn cgroup_is(v1: &str, v2: &str, want: &str) -> String {
    let alts = want
        .split('|')
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join("|");
    format!(
        "{{ f=/sys/fs/cgroup/{v1}; test -f $f || f=/sys/fs/cgroup/{v2}; v=$(cat $f) || exit 1; \
         case \"$v\" in {alts}) ;; *) echo \"$f=$v\"; false;; esac; }}"
    )
}

fn wait_file(c: &Case, name: &str) -> Step<String> {
    let start = Instant::now();
    loop {
        if let Some(s) = c.host_file(name) {
            return Ok(s);
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(fail(format!("{name} never appeared")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn terminal(c: &mut Case, size: Option<(u32, u32)>, script: &str, want: &str) -> Outcome {
    c.config["process"]["terminal"] = json!(true);
    if let Some((h, w)) = size {
        c.config["process"]["consoleSize"] = json!({"height": h, "width": w});
    }
    c.script(script);
    let sock = c.host().join("console.sock");
    let console = match ConsoleSocket::listen(&sock) {
        Ok(s) => s,
        Err(e) => return fail(format!("console socket: {e}")),
    };
    if let Err(o) = c.save() {
        return o;
    }
    let bundle = c.bundle().display().to_string();
    let id = c.id.clone();
    let sock = sock.display().to_string();
    // create + start, as containerd drives a terminal container (runc
    // refuses --console-socket on a foreground `run`).
    let r: Step<()> = (|| {
        let out = c.runtime(&[
            "create",
            "--bundle",
            &bundle,
            "--console-socket",
            &sock,
            &id,
        ])?;
        if !out.status.success() {
            return Err(fail(format!("create: {}", describe(&out))));
        }
        c.op("start", &[])?;
        c.wait_status("stopped", Duration::from_secs(10))?;
        Ok(())
    })();
    let seen = console.output(Duration::from_secs(10));
    if let Err(Outcome::Fail(why)) = r {
        return fail(format!("{why} (terminal: {seen:?})"));
    }
    match seen {
        Ok(s) => Outcome::check(s.contains(want), format!("the terminal showed {s:?}")),
        Err(e) => fail(e),
    }
}

fn hooks_order(c: &mut Case) -> Outcome {
    c.bind_host_dir();
    let log = c.host().join("order");
    let append = |name: &str, path: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} >> {path}")]});
    let host_log = log.display().to_string();
    c.config["hooks"] = json!({
        "createRuntime": [append("createRuntime", &host_log)],
        "createContainer": [append("createContainer", &host_log)],
        // startContainer runs in the container: the log is at /host there.
        "startContainer": [append("startContainer", "/host/order")],
        "poststart": [append("poststart", &host_log)],
        "poststop": [append("poststop", &host_log)]
    });
    c.script("sleep 0.5; echo process >> /host/order");
    let r: Step<()> = (|| {
        c.create()?;
        let after_create = c.host_file("order").unwrap_or_default();
        c.op("start", &[])?;
        c.wait_status("stopped", Duration::from_secs(10))?;
        c.op("delete", &[])?;
        let all = c.host_file("order").unwrap_or_default();
        let got: Vec<&str> = all.lines().collect();
        let want_created = "createRuntime\ncreateContainer\n";
        if after_create != want_created {
            return Err(fail(format!(
                "after create the hooks logged {after_create:?}"
            )));
        }
        let ok = got.len() == 6
            && got[..3] == ["createRuntime", "createContainer", "startContainer"]
            && got[3..5].contains(&"poststart")
            && got[3..5].contains(&"process")
            && got[5] == "poststop";
        if ok {
            Ok(())
        } else {
            Err(fail(format!("order: {got:?}")))
        }
    })();
    r.err().unwrap_or(Outcome::Pass)
}

fn hook_state(c: &mut Case) -> Outcome {
    let out = c.host().join("state.json");
    c.config["hooks"] = json!({"createRuntime": [{
        "path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", out.display())]
    }]});
    c.script("true");
    if let Err(o) = c.run_container().and_then(ok) {
        return o;
    }
    let text = c.host_file("state.json").unwrap_or_default();
    let st: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return fail(format!("not JSON ({e}): {text:?}")),
    };
    let bundle = c.bundle().display().to_string();
    Outcome::check(
        st["id"] == c.id.as_str()
            && st["pid"].as_i64().is_some_and(|p| p > 0)
            && st["bundle"] == bundle.as_str()
            && st["ociVersion"].is_string()
            && matches!(st["status"].as_str(), Some("creating" | "created")),
        format!("state: {st}"),
    )
}

fn lifecycle(c: &mut Case) -> Outcome {
    c.bind_host_dir();
    c.script("echo ran > /host/ran; sleep 0.5");
    let r: Step<()> = (|| {
        c.create()?;
        std::thread::sleep(Duration::from_millis(300));
        if c.host_file("ran").is_some() {
            return Err(fail("the process ran before start"));
        }
        c.op("start", &[])?;
        wait_file(c, "ran")?;
        let st = c.state()?;
        if st["status"] != "running" {
            return Err(fail(format!("after start: {st}")));
        }
        c.wait_status("stopped", Duration::from_secs(10))?;
        Ok(())
    })();
    r.err().unwrap_or(Outcome::Pass)
}

fn join_netns(c: &mut Case) -> Outcome {
    let name = format!("spec-{}", std::process::id());
    let add = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .output();
    match add {
        Ok(o) if o.status.success() => {}
        Ok(o) => return Outcome::Skip(format!("ip netns add: {}", describe(&o))),
        Err(e) => return Outcome::Skip(format!("no ip(8): {e}")),
    }
    let path = format!("/run/netns/{name}");
    let r = (|| {
        use std::os::unix::fs::MetadataExt as _;
        let ino = std::fs::metadata(&path)
            .map_err(|e| fail(e.to_string()))?
            .ino();
        c.drop_namespace("network");
        c.add_namespace(json!({"type": "network", "path": path}));
        Ok::<_, Outcome>(c.inside(&format!(
            "test \"$(readlink /proc/self/ns/net)\" = 'net:[{ino}]'"
        )))
    })();
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &name])
        .output();
    r.unwrap_or_else(|o| o)
}

fn devices_rule(c: &mut Case, allow: bool) -> Outcome {
    if !Path::new("/dev/fuse").exists() {
        return Outcome::Skip("the host has no /dev/fuse (10:229) to test with".into());
    }
    c.linux()["devices"] = json!([{"path": "/dev/spec-fuse", "type": "c", "major": 10,
                                    "minor": 229, "fileMode": 438}]);
    let mut rules = vec![json!({"allow": false, "access": "rwm"})];
    if allow {
        rules.push(json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}));
    }
    c.linux()["resources"] = json!({"devices": rules});
    if allow {
        c.inside("exec 3<>/dev/spec-fuse")
    } else {
        c.inside("! (exec 3<>/dev/spec-fuse) 2>/dev/null")
    }
}

fn chown_tree(root: &Path, id: u32) -> Step<()> {
    let out = std::process::Command::new("chown")
        .args(["-hR", &format!("{id}:{id}")])
        .arg(root)
        .output()
        .map_err(|e| fail(e.to_string()))?;
    ok(out)
}

/// The syscalls busybox sh and its applets need for the allowlist check
/// (mkdir and mkdirat are left out on purpose).
fn allowlist() -> Vec<&'static str> {
    vec![
        "access",
        "arch_prctl",
        "brk",
        "capget",
        "capset",
        "chdir",
        "close",
        "close_range",
        "dup",
        "dup2",
        "dup3",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "faccessat",
        "faccessat2",
        "fchdir",
        "fcntl",
        "fstat",
        "fstatfs",
        "futex",
        "getcwd",
        "getdents64",
        "getegid",
        "geteuid",
        "getgid",
        "getpgrp",
        "getpid",
        "getppid",
        "getrandom",
        "getuid",
        "ioctl",
        "lseek",
        "lstat",
        "mmap",
        "mprotect",
        "munmap",
        "newfstatat",
        "open",
        "openat",
        "pipe",
        "pipe2",
        "prctl",
        "pread64",
        "prlimit64",
        "read",
        "readlink",
        "readlinkat",
        "rseq",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "set_robust_list",
        "set_tid_address",
        "setgid",
        "setgroups",
        "setuid",
        "setresuid",
        "setresgid",
        "stat",
        "statx",
        "uname",
        "vfork",
        "clone",
        "clone3",
        "wait4",
        "write",
        "writev",
        "sigaltstack",
        "getrlimit",
        "setrlimit",
        "umask",
        "fchown",
        "fsync",
        "nanosleep",
        "clock_nanosleep",
        "getsid",
        "setsid",
        "getpgid",
        "setpgid",
        "kill",
        "tgkill",
        "epoll_ctl",
        "epoll_pwait",
        "epoll_wait",
        "epoll_create1",
        "poll",
        "ppoll",
        "select",
        "pselect6",
        "sched_getaffinity",
        "sched_yield",
        "madvise",
        "getxattr",
        "lgetxattr",
    ]
}
