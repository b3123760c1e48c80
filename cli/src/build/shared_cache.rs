//! `--cache-from` / `--cache-to`: the build cache shared between stores
//! (CI runners), through an OCI layout directory (`type=local`) or a
//! registry (`type=registry`). An export is one OCI manifest whose config
//! is the list of step records (key -> layer) and whose layers are those
//! layers' blobs (`strata_imagestore::cache::CacheConfig`). Imports are
//! lazy: the records are read when the build starts, a layer's blob only
//! when one of its steps would otherwise run. Everything read is checked
//! against its digest; a cache that cannot be read is a warning and a
//! miss, as with BuildKit, never a failed build.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use strata_imagestore::Store;
use strata_imagestore::cache::{CacheConfig, CacheExport, CacheLayer, Cached};
use strata_imagestore::digest::Digest;

/// Where a shared cache lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An OCI layout directory.
    Local(PathBuf),
    /// A registry reference (`host/repo:tag`).
    Registry(String),
}

/// One `--cache-from` or `--cache-to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub at: Location,
    /// `mode=max`: every stage's steps, not only the target's lineage.
    pub max: bool,
}

/// Parse `type=local,src=DIR` / `type=local,dest=DIR` /
/// `type=registry,ref=REF[,mode=min|max]`, or a bare reference (registry).
pub fn parse(s: &str, export: bool) -> Result<Spec> {
    let flag = if export { "--cache-to" } else { "--cache-from" };
    if !s.contains('=') {
        return Ok(Spec {
            at: Location::Registry(s.to_string()),
            max: false,
        });
    }
    let mut kv = HashMap::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid {flag} {s:?}: {part:?} is not key=value"))?;
        kv.insert(k.trim(), v.trim());
    }
    let max = match kv.get("mode").copied() {
        None | Some("min") => false,
        Some("max") => true,
        Some(m) => bail!("invalid {flag} {s:?}: mode={m} (min or max)"),
    };
    let at = match kv.get("type").copied() {
        Some("local") => {
            let key = if export { "dest" } else { "src" };
            let dir = kv
                .get(key)
                .ok_or_else(|| anyhow!("{flag} type=local needs {key}=DIR"))?;
            Location::Local(PathBuf::from(dir))
        }
        Some("registry") => {
            let r = kv
                .get("ref")
                .ok_or_else(|| anyhow!("{flag} type=registry needs ref=NAME"))?;
            strata_imagestore::reference::Reference::parse(r)
                .map_err(|e| anyhow!("{flag} ref={r}: {e}"))?;
            Location::Registry(r.to_string())
        }
        Some(t) => bail!("unsupported {flag} type {t:?}: local or registry"),
        None => bail!("invalid {flag} {s:?}: type=local or type=registry is required"),
    };
    Ok(Spec { at, max })
}

/// Reads a registry's manifests and blobs (the CLI makes it, with the
/// user's registry configuration and credentials).
pub trait RegistryAccess: Sync {
    fn manifest(&self, reference: &str) -> Result<(Vec<u8>, Digest)>;
    fn blob(&self, reference: &str, d: &Digest) -> Result<Box<dyn Read + Send>>;
    fn push(
        &self,
        store: &mut Store,
        reference: &str,
        export: &CacheExport,
        manifest_type: &str,
    ) -> Result<()>;
}

/// One imported cache: its records and where its blobs are.
struct Import {
    config: CacheConfig,
    at: Location,
}

/// The caches of every `--cache-from`, looked up in order.
#[derive(Default)]
pub struct Imports<'r> {
    caches: Vec<Import>,
    registry: Option<&'r dyn RegistryAccess>,
}

fn local_blob(dir: &Path, d: &Digest) -> Result<std::fs::File> {
    let p = dir.join("blobs/sha256").join(d.hex());
    std::fs::File::open(&p).with_context(|| format!("open {}", p.display()))
}

/// The manifest an OCI layout's index.json names first, verified.
fn local_manifest(dir: &Path) -> Result<Vec<u8>> {
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("index.json"))
            .with_context(|| format!("read {}/index.json", dir.display()))?,
    )
    .with_context(|| format!("{}/index.json", dir.display()))?;
    let d: Digest = index["manifests"][0]["digest"]
        .as_str()
        .ok_or_else(|| anyhow!("{}/index.json names no manifest", dir.display()))?
        .parse()?;
    let mut bytes = Vec::new();
    local_blob(dir, &d)?
        .take(4 << 20)
        .read_to_end(&mut bytes)
        .with_context(|| format!("read manifest {d}"))?;
    if Digest::of(&bytes) != d {
        bail!(
            "manifest {d} in {} does not match its digest",
            dir.display()
        );
    }
    Ok(bytes)
}

impl<'r> Imports<'r> {
    /// Read every `--cache-from`'s records. A cache that cannot be read is
    /// reported through `warn` and skipped.
    pub fn open(
        specs: &[Spec],
        registry: Option<&'r dyn RegistryAccess>,
        warn: &dyn Fn(&str),
    ) -> Imports<'r> {
        let mut caches = Vec::new();
        for s in specs {
            let read = || -> Result<CacheConfig> {
                Ok(match &s.at {
                    Location::Local(dir) => {
                        let m = local_manifest(dir)?;
                        strata_imagestore::cache::read_export(&m, &|d| {
                            local_blob(dir, d)
                                .map(|f| Box::new(f) as Box<dyn Read + Send>)
                                .map_err(|e| strata_imagestore::Error::BadImage(format!("{e:#}")))
                        })?
                    }
                    Location::Registry(r) => {
                        let reg = registry
                            .ok_or_else(|| anyhow!("no registry access for --cache-from {r}"))?;
                        let (m, _) = reg.manifest(r)?;
                        strata_imagestore::cache::read_export(&m, &|d| {
                            reg.blob(r, d)
                                .map_err(|e| strata_imagestore::Error::BadImage(format!("{e:#}")))
                        })?
                    }
                })
            };
            match read() {
                Ok(config) => caches.push(Import {
                    config,
                    at: s.at.clone(),
                }),
                Err(e) => warn(&format!("importing cache {}: {e:#}", describe(&s.at))),
            }
        }
        Imports { caches, registry }
    }

    pub fn is_empty(&self) -> bool {
        self.caches.is_empty()
    }

    /// The step `key` from an imported cache, brought into `store` as a
    /// local cache entry (its layer on the chain `parent`). None if no
    /// cache has it, or its blob cannot be had (reported via `warn`).
    pub fn adopt(
        &self,
        store: &mut Store,
        key: &str,
        parent: Option<&Digest>,
        warn: &dyn Fn(&str),
    ) -> Option<Cached> {
        for c in &self.caches {
            let Some(layer) = c.config.lookup(key) else {
                continue;
            };
            match self.adopt_from(store, c, key, layer, parent) {
                Ok(hit) => return Some(hit),
                Err(e) => warn(&format!(
                    "cache {}: step {}: {e:#}",
                    describe(&c.at),
                    &key[..key.len().min(12)]
                )),
            }
        }
        None
    }

    fn adopt_from(
        &self,
        store: &mut Store,
        c: &Import,
        key: &str,
        layer: Option<&CacheLayer>,
        parent: Option<&Digest>,
    ) -> Result<Cached> {
        let Some(l) = layer else {
            store.cache_put(key, &Cached::Empty)?;
            return Ok(Cached::Empty);
        };
        let chain = strata_imagestore::digest::chain_next(parent, &l.diff_id);
        let source = |d: &Digest| -> strata_imagestore::Result<Box<dyn Read + Send>> {
            let r: Result<Box<dyn Read + Send>> = match &c.at {
                Location::Local(dir) => {
                    local_blob(dir, d).map(|f| Box::new(f) as Box<dyn Read + Send>)
                }
                Location::Registry(r) => match self.registry {
                    Some(reg) => reg.blob(r, d),
                    None => Err(anyhow!("no registry access")),
                },
            };
            r.map_err(|e| strata_imagestore::Error::BadImage(format!("{e:#}")))
        };
        Ok(store.cache_adopt(key, l, &chain, &source)?)
    }
}

fn describe(at: &Location) -> String {
    match at {
        Location::Local(d) => format!("type=local,src={}", d.display()),
        Location::Registry(r) => format!("type=registry,ref={r}"),
    }
}

/// A step the build resolved, for `--cache-to`: the stage's key before
/// and after it, and the cache entry it made or used with what that holds
/// (None: a step with no cache entry, which only links the two keys). The
/// entry is the stage key, except for COPY --link, whose entry does not
/// depend on the parent.
#[derive(Clone, Debug)]
pub struct Record {
    pub parent: String,
    pub key: String,
    pub result: Option<(String, Cached)>,
}

/// The records to export: all of them with `mode=max`, else those on the
/// final image's own lineage (walked back from `last` through parents).
pub fn select(records: &[Record], last: &str, max: bool) -> Vec<(String, Cached)> {
    if max {
        return records.iter().filter_map(|r| r.result.clone()).collect();
    }
    let mut out = Vec::new();
    let mut at = last;
    while let Some(r) = records.iter().find(|r| r.key == at) {
        if let Some(c) = &r.result {
            out.push(c.clone());
        }
        at = &r.parent;
    }
    out.reverse();
    out
}

/// Write one `--cache-to`.
pub fn export(
    store: &mut Store,
    spec: &Spec,
    records: &[(String, Cached)],
    registry: Option<&dyn RegistryAccess>,
) -> Result<()> {
    let ex = store.cache_export(records)?;
    match &spec.at {
        Location::Local(dir) => strata_imagestore::cache::write_layout(store, dir, &ex)
            .with_context(|| format!("write the cache to {}", dir.display())),
        Location::Registry(r) => {
            let reg = registry.ok_or_else(|| anyhow!("no registry access for --cache-to {r}"))?;
            reg.push(store, r, &ex, strata_imagestore::store::OCI_MANIFEST)
                .with_context(|| format!("push the cache to {r}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let s = parse("type=local,src=/tmp/c", false).unwrap();
        assert_eq!(s.at, Location::Local("/tmp/c".into()));
        assert!(!s.max);
        let s = parse("type=local,dest=/tmp/c,mode=max", true).unwrap();
        assert_eq!(s.at, Location::Local("/tmp/c".into()));
        assert!(s.max);
        let s = parse("type=registry,ref=localhost:5000/app:cache", true).unwrap();
        assert_eq!(s.at, Location::Registry("localhost:5000/app:cache".into()));
        let s = parse("localhost:5000/app:cache", false).unwrap();
        assert_eq!(s.at, Location::Registry("localhost:5000/app:cache".into()));
        for bad in [
            "type=local,dest=/x",
            "type=gha",
            "type=registry",
            "type=local,src=/x,mode=all",
            "src=/x",
        ] {
            assert!(parse(bad, false).is_err(), "{bad}");
        }
        assert!(parse("type=local,src=/x", true).is_err());
    }

    #[test]
    fn min_mode_walks_the_final_lineage() {
        let rec = |p: &str, k: &str| Record {
            parent: p.into(),
            key: k.into(),
            result: Some((k.into(), Cached::Empty)),
        };
        let link = |p: &str, k: &str| Record {
            parent: p.into(),
            key: k.into(),
            result: None,
        };
        // Stage a: a1 -> a2; stage b: b1 -> (CMD) -> b2; stage c FROM b:
        // c1 -> (CMD) the end.
        let records = vec![
            rec("a0", "a1"),
            rec("a1", "a2"),
            rec("b0", "b1"),
            link("b1", "bm"),
            rec("bm", "b2"),
            link("b2", "c0"),
            rec("c0", "c1"),
            link("c1", "end"),
        ];
        let keys = |v: Vec<(String, Cached)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(select(&records, "end", false)), ["b1", "b2", "c1"]);
        assert_eq!(
            keys(select(&records, "end", true)),
            ["a1", "a2", "b1", "b2", "c1"]
        );
    }
}
