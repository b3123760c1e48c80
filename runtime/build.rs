//! Records the git commit the runtime is built from, for `--version`
//! (runc prints `commit: ...` there too). Outside a git checkout it is
//! "unknown".
fn main() {
    let commit = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=STRATA_COMMIT={commit}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/index");
    // scripts/build-static-runtime.sh links the runtime with lld and a
    // symbol-ordering file: the functions a container's life runs, side by
    // side, so that a run maps fewer pages of text.
    println!("cargo:rerun-if-env-changed=STRATA_SYMBOL_ORDER");
    if let Ok(order) = std::env::var("STRATA_SYMBOL_ORDER")
        && !order.is_empty()
    {
        println!("cargo:rerun-if-changed={order}");
        println!("cargo:rustc-link-arg-bin=strata-runtime=-Wl,--symbol-ordering-file={order}");
        println!("cargo:rustc-link-arg-bin=strata-runtime=-Wl,--no-warn-symbol-ordering");
    }
}
