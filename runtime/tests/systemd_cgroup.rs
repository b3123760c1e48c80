//! The systemd cgroup driver (`--systemd-cgroup`).
//!
//! This host runs no systemd, so the driver is tested in the qemu guest
//! the other VM tests boot, with Debian's systemd as its init (a pure
//! cgroup v2 host, as systemd sets it up); Debian's runc, given the same
//! bundle, is the reference for the scope's properties. Here, the test
//! checks the refusal on a host without systemd.

mod common;
#[path = "common/vm.rs"]
mod vm;

use std::path::Path;

use common::*;
use serde_json::json;

#[test]
fn without_systemd_the_driver_is_refused_cleanly() {
    if Path::new("/run/systemd/system").exists() {
        panic!("this test is for hosts without systemd; the VM test covers systemd");
    }
    let mut b = Bundle::new("true");
    b.config["linux"]["cgroupsPath"] = json!("system.slice:strata:sd-host");
    b.save();
    let out = b.rt(&[
        "--systemd-cgroup",
        "run",
        "--bundle",
        b.path().to_str().unwrap(),
        "sd-host",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("systemd is not running on this host") && err.contains("--systemd-cgroup"),
        "{err}"
    );
    assert!(!b.root.join("sd-host").exists(), "state left behind");
    assert!(!Path::new("/sys/fs/cgroup/pids/system.slice/strata-sd-host.scope").exists());
}

/// Stage 1 (PID 1 from the initramfs) hands over to systemd; systemd runs
/// stage 2 as a service (`strata-test.service`), whose output goes to the
/// serial console.
const GUEST_TEST: &str = r#"#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
if [ $$ = 1 ]; then
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev
  mkdir -p /run /tmp
  exec /lib/systemd/systemd
fi
exec > /dev/ttyS0 2>&1
echo "@@init=$(cat /proc/1/comm) $(stat -f -c %t /sys/fs/cgroup)"
show() { systemctl show -p Slice,Delegate,MemoryMax,TasksMax,CPUWeight,CPUQuotaPerSecUSec --value "$1" | tr '\n' ' '; }

for rt in strata runc; do
  bin=/bin/strata-runtime; [ $rt = runc ] && bin=/usr/sbin/runc
  r="$bin --systemd-cgroup --root /run/$rt"
  $r run -d --bundle /bundles/$rt c < /dev/null > /tmp/$rt.run 2>&1
  echo "@@${rt}_run=$? $(cat /tmp/$rt.run)"
  unit=$rt-c.scope
  echo "@@${rt}_active=$(systemctl is-active $unit)"
  echo "@@${rt}_props=$(show $unit)"
  pid=$($r state c | grep '"pid"' | tr -dc 0-9)
  echo "@@${rt}_cgroup=$(cat /proc/$pid/cgroup)"
  d=/sys/fs/cgroup/system.slice/$unit
  echo "@@${rt}_files=$(cat $d/memory.max) $(cat $d/pids.max) $(cat $d/cpu.weight) $(cat $d/cpu.max)"
  echo "@@${rt}_exec=$($r exec c cat /proc/self/cgroup)"
  $r kill c KILL
  for i in $(seq 50); do $r state c | grep -q stopped && break; sleep 0.1; done
  $r delete c
  echo "@@${rt}_deleted=$? $(systemctl is-active $unit) $([ -e $d ] && echo dir || echo nodir)"
done

r="strata-runtime --systemd-cgroup --root /run/strata"
# The same name again (a killed scope is reset, not left failed), and
# delete -f of a running container.
$r run -d --bundle /bundles/strata c < /dev/null > /dev/null 2>&1; echo "@@again=$?"
$r delete -f c > /tmp/force 2>&1; echo "@@force=$? $(systemctl is-active strata-c.scope) $(cat /tmp/force)"
# Bad input: a cgroupsPath that names no scope; nothing is left.
$r run --bundle /bundles/plain p < /dev/null > /tmp/plain 2>&1
echo "@@plain=$? $(cat /tmp/plain) $(ls /run/strata | grep -c '^p$')"
echo "@@end=1"
poweroff -f
"#;

#[test]
fn systemd_driver_in_a_vm_with_systemd_as_init() {
    let guest = vm::Guest::new(&[]);
    guest.add_binary(Path::new(BIN), "/bin/strata-runtime");
    for (bin, dest) in [
        ("/lib/systemd/systemd", "/lib/systemd/systemd"),
        ("/usr/bin/systemctl", "/usr/bin/systemctl"),
        ("/usr/sbin/runc", "/usr/sbin/runc"),
    ] {
        assert!(
            Path::new(bin).exists(),
            "{bin} (scripts/install-deps.sh installs it)"
        );
        guest.add_binary(Path::new(bin), dest);
    }
    vm::sh(&format!(
        "cp -a /lib/systemd/system {}/lib/systemd/",
        guest.root.display()
    ));
    let etc = guest.root.join("etc");
    std::fs::create_dir_all(etc.join("systemd/system")).unwrap();
    std::fs::write(etc.join("machine-id"), "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::write(etc.join("os-release"), "ID=debian\nNAME=strata-guest\n").unwrap();
    std::fs::write(
        etc.join("systemd/system/strata-test.service"),
        "[Unit]\nDefaultDependencies=no\n[Service]\nType=oneshot\nExecStart=/test.sh\n",
    )
    .unwrap();
    for (name, cgroups_path) in [
        ("strata", "system.slice:strata:c"),
        ("runc", "system.slice:runc:c"),
        ("plain", "/not/a/scope"),
    ] {
        let mut b = Bundle::new("sleep 1000");
        b.config["linux"]["cgroupsPath"] = json!(cgroups_path);
        b.config["linux"]["resources"] = json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 20},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000}
        });
        b.save();
        guest.add_bundle(name, b.path());
    }
    let console = guest.boot_with(
        GUEST_TEST,
        1024,
        "systemd.unit=strata-test.service systemd.log_level=warning",
    );
    // Shown when the test fails (cargo keeps a passing test's stdout).
    println!("{}", console.text);
    let get = |k: &str| console.get(k);
    assert_eq!(get("end"), "1");
    assert_eq!(get("init"), "systemd 63677270", "CGROUP2_SUPER_MAGIC");
    // The scope as systemd sees it, for us and for runc alike: in the
    // slice, delegated, with the limits as unit properties (Slice,
    // Delegate, CPUWeight, CPUQuotaPerSecUSec, MemoryMax, TasksMax). One
    // difference: cpu shares 512 are CPUWeight 59 for us (the mapping of
    // crun, runc 1.3 and our cgroup files), 20 for runc 1.1's linear one.
    for (rt, weight) in [("strata", "59"), ("runc", "20")] {
        let k = |s: &str| format!("{rt}_{s}");
        assert_eq!(get(&k("run")).split(' ').next(), Some("0"), "{rt}");
        assert_eq!(get(&k("active")), "active", "{rt}");
        assert_eq!(
            get(&k("props")),
            format!("system.slice yes {weight} 500ms 67108864 20"),
            "{rt}"
        );
        let cg = format!("0::/system.slice/{rt}-c.scope");
        assert_eq!(get(&k("cgroup")), cg, "{rt}: the container's process");
        assert_eq!(
            get(&k("files")),
            format!("67108864 20 {weight} 50000 100000"),
            "{rt}: the unit's cgroup files"
        );
        // exec joins the scope (the bundles come from this host's `spec`,
        // with no cgroup namespace on cgroup v1, as runc's).
        assert_eq!(get(&k("exec")), cg, "{rt}");
        // delete stops the scope and its cgroup is gone.
        assert_eq!(get(&k("deleted")), "0 inactive nodir", "{rt}");
    }
    assert_eq!(get("again"), "0");
    assert!(
        get("force").starts_with("0 ") && !get("force").ends_with(" active"),
        "{}",
        get("force")
    );
    let plain = get("plain");
    assert!(
        plain.starts_with("1 ")
            && plain.contains("must be slice:prefix:name with --systemd-cgroup")
            && plain.ends_with(" 0"),
        "{plain}"
    );
}
