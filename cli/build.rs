//! Links `strata-monitor` as a position-dependent executable: one idle
//! monitor stays beside every detached container, and a PIE's relocated
//! tables (`.data.rel.ro`, ~300 kB here) become private dirty pages in
//! each of them. Without PIE the linker resolves them once, into clean
//! pages shared with every other monitor.
fn main() {
    println!("cargo:rustc-link-arg-bin=strata-monitor=-no-pie");
}
