//! A throwaway VM for what this host's kernel cannot show: Debian's kernel
//! (fetched by scripts/fetch-test-kernel.sh) booted under qemu with an
//! initramfs holding busybox, the binaries a test adds (with their
//! libraries) and its bundles. The guest's test script reports on the
//! serial console as `@@key=value` lines and powers off.
// Each VM test file uses a part of this.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn kernel_dir() -> PathBuf {
    std::env::var_os("STRATA_TEST_KERNEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/strata-test/kernel"))
}

pub fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "{cmd}");
}

/// The initramfs's /init: pivot_root cannot leave the initramfs, so the
/// tree moves to a tmpfs first.
const GUEST_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /newroot
/bin/busybox mount -t tmpfs tmpfs /newroot
for d in /bin /sbin /lib /lib64 /usr /etc /modules /bundles /test.sh; do
  [ -e $d ] && /bin/busybox cp -a $d /newroot/
done
/bin/busybox mkdir -p /newroot/proc /newroot/sys /newroot/dev
exec /bin/busybox switch_root /newroot /test.sh
"#;

/// The guest's tree, built in a temp dir.
pub struct Guest {
    work: tempfile::TempDir,
    pub root: PathBuf,
}

impl Guest {
    /// busybox with every applet; the kernel's files must be there.
    pub fn new(modules: &[&str]) -> Guest {
        let kdir = kernel_dir();
        for f in std::iter::once("vmlinuz").chain(modules.iter().copied()) {
            assert!(
                kdir.join(f).exists(),
                "{} missing: run scripts/fetch-test-kernel.sh",
                kdir.join(f).display()
            );
        }
        let work = tempfile::Builder::new()
            .prefix("strata-vm-")
            .tempdir()
            .unwrap();
        let root = work.path().join("root");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        let applets = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for a in String::from_utf8_lossy(&applets.stdout).split_whitespace() {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(a));
        }
        std::fs::create_dir_all(root.join("modules")).unwrap();
        for m in modules {
            std::fs::copy(kdir.join(m), root.join("modules").join(m)).unwrap();
        }
        // The load order, for the guest's script.
        std::fs::write(root.join("modules/MODULES"), modules.join("\n")).unwrap();
        Guest { work, root }
    }

    /// Copy a dynamically linked binary and the libraries ldd names.
    pub fn add_binary(&self, bin: &Path, dest: &str) {
        let out = Command::new("ldd").arg(bin).output().unwrap();
        for lib in String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
        {
            let to = self.root.join(lib.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(lib, &to).unwrap();
        }
        let to = self.root.join(dest.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        // Without debug info: the guest has the initramfs in RAM twice.
        let st = Command::new("objcopy")
            .arg("--strip-debug")
            .arg(bin)
            .arg(&to)
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// A bundle made by the host's harness, moved into the guest's tree
    /// at /bundles/NAME.
    pub fn add_bundle(&self, name: &str, bundle: &Path) {
        let to = self.root.join("bundles").join(name);
        std::fs::create_dir_all(&to).unwrap();
        sh(&format!(
            "cp -a {}/config.json {}/rootfs {}/",
            bundle.display(),
            bundle.display(),
            to.display()
        ));
    }

    /// Packs the tree with `script` as the guest's test, boots it with
    /// `memory_mb`, and returns the console once the guest powers off.
    pub fn boot(&self, script: &str, memory_mb: u32) -> Console {
        self.boot_with(script, memory_mb, "")
    }

    /// `boot`, with more words on the kernel's command line.
    pub fn boot_with(&self, script: &str, memory_mb: u32, cmdline: &str) -> Console {
        for (name, text) in [("init", GUEST_INIT), ("test.sh", script)] {
            std::fs::write(self.root.join(name), text).unwrap();
            sh(&format!("chmod 755 {}", self.root.join(name).display()));
        }
        let initrd = self.work.path().join("initrd");
        sh(&format!(
            "cd {} && find . | /bin/busybox cpio -o -H newc > {} 2>/dev/null",
            self.root.display(),
            initrd.display()
        ));
        let console = self.work.path().join("console");
        // A guest whose vCPUs the emulator starved (the kernel's soft
        // lockup watchdog fires, seen under TCG on a loaded 2-core host)
        // is booted once more; a second lockup fails the test.
        let text = match boot(&initrd, &console, memory_mb, cmdline) {
            Ok(text) => text,
            Err(first) => {
                eprintln!("the guest locked up (emulation starved); booting it again:\n{first}");
                boot(&initrd, &console, memory_mb, cmdline)
                    .unwrap_or_else(|again| panic!("the guest locked up twice; console:\n{again}"))
            }
        };
        Console::new(text)
    }
}

/// The console once the guest powers off; Err(console) when the guest
/// kernel reports a soft lockup (its vCPUs starved), the VM killed.
fn boot(initrd: &Path, console: &Path, memory_mb: u32, cmdline: &str) -> Result<String, String> {
    let kernel = kernel_dir().join("vmlinuz");
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "2"])
        .arg("-m")
        .arg(memory_mb.to_string())
        .args(["-nodefaults", "-display", "none", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(format!("console=ttyS0 quiet panic=-1 {cmdline}"))
        .stdin(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 (scripts/install-deps.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        let seen =
            String::from_utf8_lossy(&std::fs::read(console).unwrap_or_default()).into_owned();
        if seen.contains("watchdog: BUG: soft lockup") {
            let _ = child.kill();
            let _ = child.wait();
            return Err(seen);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the VM did not power off in 300 s; console:\n{}",
                std::fs::read_to_string(console).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(String::from_utf8_lossy(&std::fs::read(console).unwrap()).into_owned())
}

/// What the guest printed, with its `@@key=value` lines.
pub struct Console {
    pub text: String,
    seen: HashMap<String, String>,
}

impl Console {
    fn new(text: String) -> Console {
        let seen = text
            .lines()
            .filter_map(|l| l.trim_end_matches('\r').strip_prefix("@@"))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();
        Console { text, seen }
    }

    /// The value of `key`; fails the test (with the console) when the
    /// guest did not print it.
    pub fn get(&self, key: &str) -> &str {
        self.seen
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("the guest printed no {key}; console:\n{}", self.text))
    }
}
