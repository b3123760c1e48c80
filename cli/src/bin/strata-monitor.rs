//! `strata-monitor`: the per-container monitor as a binary of its own.
//!
//! The engine starts it (see `containers::monitor` for its file
//! descriptors and duties) as
//! `strata-monitor --root ROOT --run-dir DIR [--attach] [--detach-keys KEYS] ID`.
//! It links only the engine, the image store and the runtime: not the
//! registry client, its TLS and async stacks, or the CLI's parser, so an
//! idle container costs less memory than a re-exec of `strata` would.

use std::path::PathBuf;

fn usage() -> ! {
    eprintln!(
        "usage: strata-monitor --root ROOT --run-dir DIR [--attach] [--detach-keys KEYS] ID\n       strata-monitor --health --root ROOT --run-dir DIR ID\n       strata-monitor --dns DIR ADDR\n       strata-monitor --port-proxy NETNS IP PROTO:HOSTIP:HOSTPORT:PORT...\n       strata-monitor --pause"
    );
    std::process::exit(125)
}

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // `--pause`: the rootless engine's pause process (rootless::userns),
    // holding the user's namespaces open.
    if argv.first().is_some_and(|a| a == "--pause") {
        let _ = nix::sys::prctl::set_name(c"strata-pause");
        strata::rootless::userns::pause_forever()
    }
    // One malloc arena: the runtime's short-lived cgroup thread would
    // otherwise leave an arena of its own behind in every idle monitor.
    // SAFETY: mallopt only tunes glibc's allocator; called before any
    // thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    // A rootless engine's monitor runs inside the user's namespace
    // already (its parent joined it): take the mode it passed on.
    if let Err(e) = strata::rootless::enter() {
        eprintln!("strata-monitor: rootless: {e:#}");
        std::process::exit(125)
    }
    // `--dns DIR ADDR`: a user network's DNS server (network::dns).
    if argv.first().is_some_and(|a| a == "--dns") {
        let (Some(dir), Some(addr)) = (argv.get(1), argv.get(2).and_then(|a| a.to_str())) else {
            usage()
        };
        let Ok(listen) = addr.parse() else { usage() };
        if let Err(e) = strata::network::dns::serve(std::path::Path::new(dir), listen) {
            eprintln!("strata-monitor: dns: {e:#}");
            std::process::exit(1)
        }
        std::process::exit(0)
    }
    // `--port-proxy NETNS IP FORWARD...`: a rootless container's
    // published ports on a user network (network::port_proxy).
    if argv.first().is_some_and(|a| a == "--port-proxy") {
        use strata::network::port_proxy::{Forward, serve};
        let (Some(netns), Some(ip)) = (
            argv.get(1),
            argv.get(2)
                .and_then(|a| a.to_str())
                .and_then(|a| a.parse().ok()),
        ) else {
            usage()
        };
        let forwards: Result<Vec<Forward>, _> = argv[3..]
            .iter()
            .map(|f| Forward::parse(&f.to_string_lossy()))
            .collect();
        let res = forwards.and_then(|f| serve(std::path::Path::new(netns), ip, &f));
        if let Err(e) = res {
            eprintln!("strata-monitor: port proxy: {e:#}");
            std::process::exit(1)
        }
        std::process::exit(0)
    }
    let mut root = None;
    let mut run_dir = None;
    let mut attach = false;
    let mut health = false;
    let mut detach_keys = String::new();
    let mut id = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--root") => root = args.next().map(PathBuf::from),
            Some("--run-dir") => run_dir = args.next().map(PathBuf::from),
            Some("--attach") => attach = true,
            Some("--health") => health = true,
            Some("--detach-keys") => {
                detach_keys = args
                    .next()
                    .and_then(|k| k.into_string().ok())
                    .unwrap_or_else(|| usage())
            }
            Some(s) if !s.starts_with('-') && id.is_none() => id = Some(s.to_string()),
            _ => usage(),
        }
    }
    let (Some(root), Some(run_dir), Some(id)) = (root, run_dir, id) else {
        usage()
    };
    // `--health`: one healthcheck probe (containers::health).
    if health {
        std::process::exit(strata::containers::health::probe_main(&root, &run_dir, &id))
    }
    let store = match strata_imagestore::Store::open(&root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("strata-monitor: open store at {}: {e}", root.display());
            std::process::exit(125)
        }
    };
    let mut engine = strata::containers::Engine::with_run_dir(root, store, run_dir);
    std::process::exit(strata::containers::monitor::main(
        &mut engine,
        &id,
        attach,
        &detach_keys,
    ))
}
