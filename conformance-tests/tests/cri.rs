//! strata-runtime under Kubernetes' CRI: containerd 1.6's CRI plugin with
//! the `strata` handler of examples/containerd/config.toml, driven the way
//! a kubelet drives it (RunPodSandbox, CreateContainer, StartContainer,
//! ContainerStatus, ExecSync, StopContainer, RemoveContainer,
//! StopPodSandbox, RemovePodSandbox) through conformance-tests/cri/client.py
//! (Debian has no crictl).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_conformance_tests::{Containerd, Podman, runtime_bin, text, workspace_dir};

const PAUSE: &str = "localhost/strata-pause:1";
const BUSYBOX: &str = "localhost/busybox:cri";

struct Cri {
    ctd: Containerd,
    /// strata-runtime's --root for the handler (containerd adds k8s.io).
    state: PathBuf,
    logs: PathBuf,
    /// Holds state and logs; dropped after containerd.
    _dir: tempfile::TempDir,
}

impl Cri {
    fn start() -> Cri {
        let example = workspace_dir().join("examples/containerd/config.toml");
        let conf = std::fs::read_to_string(&example).unwrap();
        let dir = tempfile::Builder::new()
            .prefix("strata-cri-")
            .tempdir()
            .unwrap();
        let state = dir.path().join("strata-root");
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        for installed in [
            "\"/usr/local/bin/strata-runtime\"",
            "\"/run/strata-runtime\"",
        ] {
            assert!(
                conf.contains(installed),
                "{installed} in {}",
                example.display()
            );
        }
        let conf = conf
            .replace(
                "\"/usr/local/bin/strata-runtime\"",
                &format!("\"{}\"", runtime_bin().display()),
            )
            .replace(
                "\"/run/strata-runtime\"",
                &format!("\"{}\"", state.display()),
            );
        // This host's facts: no registry to pull a pause image from, and
        // no CAP_SYS_RESOURCE to lower oom_score_adj below containerd's.
        let conf = format!(
            "{conf}[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{PAUSE}\"\n  restrict_oom_score_adj = true\n"
        );
        let ctd = Containerd::start_with("k8s.io", &conf);
        import_images(&ctd);
        Cri {
            ctd,
            state,
            logs,
            _dir: dir,
        }
    }

    fn client(&self, args: &[&str]) -> Output {
        Command::new("/usr/bin/python3")
            .arg(workspace_dir().join("conformance-tests/cri/client.py"))
            .arg(&self.ctd.socket)
            .args(args)
            .output()
            .expect("python3 with python3-grpcio (scripts/install-deps.sh)")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.client(args);
        assert!(
            o.status.success(),
            "CRI {args:?}: {}\n{}",
            text(&o.stderr),
            self.ctd.log()
        );
        text(&o.stdout).trim().to_string()
    }

    fn status(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["status", id])).unwrap()
    }

    fn wait_state(&self, id: &str, state: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.status(id);
            if s["state"] == state {
                return s;
            }
            assert!(Instant::now() < deadline, "{id}: {s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Containers strata-runtime holds state for.
    fn runtime_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.state.join("k8s.io"))
            .map(|d| {
                d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }
}

/// The pause image (busybox sleeping) and busybox, made by podman and
/// imported into containerd's k8s.io namespace.
fn import_images(ctd: &Containerd) {
    let pm = Podman::new();
    pm.import_busybox();
    let tar = pm.dir.path().join("rootfs.tar");
    let made = pm.run(&[
        "import",
        "--change",
        "CMD [\"sleep\", \"1000000\"]",
        tar.to_str().unwrap(),
        PAUSE,
    ]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let made = pm.run(&["tag", "localhost/busybox:test", BUSYBOX]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    for image in [PAUSE, BUSYBOX] {
        // One archive per image: ctr mixes up a docker-archive of two.
        let archive = pm.dir.path().join("image.tar");
        let _ = std::fs::remove_file(&archive);
        let saved = pm.run(&[
            "save",
            "--format",
            "docker-archive",
            "-o",
            archive.to_str().unwrap(),
            image,
        ]);
        assert!(saved.status.success(), "{}", text(&saved.stderr));
        let imported = ctd.ctr(&["images", "import", archive.to_str().unwrap()]);
        assert!(imported.status.success(), "{}", text(&imported.stderr));
    }
}

fn log_lines(path: &Path) -> Vec<String> {
    // CRI's log format: "<time> <stream> <F|P> <text>".
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3).map(str::to_owned))
        .collect()
}

#[test]
fn kubernetes_pod_lifecycle_through_containerd_cri() {
    let cri = Cri::start();
    let logdir = cri.logs.to_str().unwrap();
    let v: Value = serde_json::from_str(&cri.ok(&["version"])).unwrap();
    assert_eq!(v["runtime_name"], "containerd");

    // A pod sandbox on the strata handler: its pause container is ours.
    let pod = cri.ok(&["runp", "web", "strata", logdir]);
    assert_eq!(
        cri.runtime_ids(),
        vec![pod.clone()],
        "the sandbox runs on strata-runtime"
    );

    // A container that prints and exits 3, in the pod's PID namespace.
    let once = cri.ok(&[
        "create",
        &pod,
        "web",
        logdir,
        "once",
        BUSYBOX,
        "once.log",
        "sh",
        "-c",
        "echo hello from strata-runtime; echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' '); exit 3",
    ]);
    cri.ok(&["start", &once]);
    let st = cri.wait_state(&once, 2);
    assert_eq!(st["exit_code"], 3, "{st}");
    assert_eq!(st["reason"], "Error", "{st}");
    let log = log_lines(&cri.logs.join("once.log"));
    assert_eq!(log[0], "hello from strata-runtime", "{log:?}");
    assert_eq!(
        log[1], "pid1=sleep 1000000",
        "the pod's pause is PID 1: {log:?}"
    );

    // A long-running one: ExecSync in it, then StopContainer.
    let svc = cri.ok(&[
        "create", &pod, "web", logdir, "svc", BUSYBOX, "svc.log", "sleep", "1000",
    ]);
    cri.ok(&["start", &svc]);
    cri.wait_state(&svc, 1);
    assert!(cri.runtime_ids().contains(&svc), "{:?}", cri.runtime_ids());
    let ex: Value = serde_json::from_str(&cri.ok(&[
        "exec",
        &svc,
        "sh",
        "-c",
        "echo exec-ok; echo to-stderr >&2; exit 5",
    ]))
    .unwrap();
    assert_eq!(ex["stdout"], "exec-ok\n", "{ex}");
    assert_eq!(ex["stderr"], "to-stderr\n", "{ex}");
    assert_eq!(ex["exit_code"], 5, "{ex}");
    cri.ok(&["stop", &svc, "2"]);
    let st = cri.wait_state(&svc, 2);
    assert_eq!(st["exit_code"], 143, "SIGTERM: {st}");

    // Teardown as the kubelet does it: nothing is left in strata's state.
    for c in [&once, &svc] {
        cri.ok(&["rm", c]);
    }
    cri.ok(&["stopp", &pod]);
    cri.ok(&["rmp", &pod]);
    assert!(cri.runtime_ids().is_empty(), "{:?}", cri.runtime_ids());
    let gone = cri.client(&["status", &once]);
    assert!(
        text(&gone.stderr).starts_with("NOT_FOUND"),
        "{}",
        text(&gone.stderr)
    );

    // An unknown handler is refused, as a RuntimeClass typo would be.
    let bad = cri.client(&["runp", "bad", "no-such-handler", logdir]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("no-such-handler"),
        "{}",
        text(&bad.stderr)
    );
}
