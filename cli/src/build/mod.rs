//! `strata build`: Dockerfile builds, daemonless. The frontend
//! ([`dockerfile`]) turns the text into stages of instructions; the solver
//! ([`solve`]) runs them as a graph with a content-addressed cache in the
//! store's database; the steps ([`steps`]) are RUN (a container on the
//! stage's overlay), COPY/ADD (straight into a new snapshot) and the
//! config-only instructions. The layer writer and the cache rows are the
//! image store's (`strata_imagestore::{layer, cache, commit}`), shared
//! with `commit`.

pub mod context;
pub mod dockerfile;
pub mod fsops;
pub mod progress;
pub mod shared_cache;
pub mod solve;
pub mod steps;

use anyhow::{Context as _, Result};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use strata_imagestore::Store;
use strata_imagestore::commit::{ManifestFormat, NewImage};
use strata_imagestore::digest::Digest;

pub use solve::{BuildOptions, Puller, Secret, StageOut};

/// A step's cache key: its parent's key and its own parts, hashed.
pub fn cache_key(parent: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// What a finished build wrote.
pub struct Built {
    pub id: Digest,
    pub stage: StageOut,
}

/// `--cache-from` and `--cache-to`, and how to reach registries for them.
#[derive(Default)]
pub struct Sharing<'r> {
    pub from: Vec<shared_cache::Spec>,
    pub to: Vec<shared_cache::Spec>,
    pub registry: Option<&'r dyn shared_cache::RegistryAccess>,
}

/// Run a build and write its image (named `tags`) into the store.
#[allow(clippy::too_many_arguments)]
pub fn build(
    o: &BuildOptions,
    host: steps::run::Host,
    ctx: &context::BuildContext,
    progress: &progress::Progress,
    puller: &Puller<'_>,
    tags: &[String],
    format: ManifestFormat,
    sharing: &Sharing<'_>,
) -> Result<Built> {
    let store = Store::open(&host.root)?;
    // gc and check wait while we publish snapshots and blobs.
    let _guard = store.lock_shared()?;
    let imports =
        shared_cache::Imports::open(&sharing.from, sharing.registry, &|m| progress.warn(m));
    let mut solver = solve::Solver::new(o, host.clone(), ctx, progress, puller)?;
    if !imports.is_empty() {
        solver.imports = Some(&imports);
    }
    let target = solver.target()?;
    let out = solver.stage(target)?;
    let unused = solver.unused_args();
    if !unused.is_empty() {
        progress.warn(&format!(
            "One or more build-args [{}] were not consumed",
            unused.join(" ")
        ));
    }
    let mut store = store;
    let n = progress.step("exporting to image");
    let mut image = out.image.clone();
    for (k, v) in &o.labels {
        steps::meta::add_label(&mut image, k, v);
    }
    let created = match o.timestamp {
        Some(t) => chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    };
    image["created"] = json!(created);
    image["rootfs"] = json!({
        "type": "layers",
        "diff_ids": out.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
    });
    let config = serde_json::to_vec(&image)?;
    let id = store
        .create_image(&NewImage {
            config: &config,
            layers: &out.layers,
            format,
            names: tags,
        })
        .context("write the image")?;
    progress.note(n, &format!("writing image {id}"));
    for t in tags {
        progress.note(n, &format!("naming to {t}"));
    }
    progress.done(n);
    if !sharing.to.is_empty() {
        let records = solver.records();
        for spec in &sharing.to {
            let n = progress.step("exporting cache");
            let picked = shared_cache::select(&records, &out.key, spec.max);
            shared_cache::export(&mut store, spec, &picked, sharing.registry)?;
            progress.note(n, &format!("{} steps", picked.len()));
            progress.done(n);
        }
    }
    Ok(Built {
        id,
        stage: (*out).clone(),
    })
}
