//! The solver: stages as a graph, each stage's steps in order with the
//! cache in front of every step that makes a layer.
//!
//! - A stage is built once (a `OnceLock` per stage), when the target needs
//!   it: its dependencies (`FROM stage`, `COPY --from`, `RUN --mount
//!   from=`) are started in parallel threads before its own steps, so
//!   independent stages build side by side and stages the target does not
//!   need never run.
//! - A step's cache key is its parent's key, the expanded instruction, the
//!   build args it sees and the content digests of its inputs (see
//!   [`super::cache_key`]). A hit reuses the layer and its snapshot; a miss
//!   runs the step on an overlay of the stage's snapshots, writes the
//!   upper dir as the layer (one pass) and publishes that same dir as the
//!   next snapshot.

use std::collections::{BTreeMap, HashSet};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use strata_imagestore::Store;
use strata_imagestore::cache::Cached;
use strata_imagestore::digest::Digest;
use strata_imagestore::layer::LayerOptions;
use strata_imagestore::metadata::LayerRow;
use strata_imagestore::unpack::Compression;

use super::cache_key;
use super::context::{self, BuildContext, Ignore};
use super::dockerfile::{Instruction, Stage, expand, parse};
use super::fsops;
use super::progress::Progress;
use super::shared_cache::{Imports, Record};
use super::steps::copy::{Copier, CopyOptions, write_file};
use super::steps::meta;
use super::steps::run::{self, Host, RunSpec};

/// Pulls an image into the store at `root` (the registry lives in the CLI).
pub type Puller<'p> = dyn Fn(&str) -> Result<()> + Sync + 'p;

/// `--secret id=ID,src=FILE` or `env=VAR`.
#[derive(Clone, Debug)]
pub struct Secret {
    pub id: String,
    pub data: Vec<u8>,
}

pub struct BuildOptions {
    pub dockerfile: String,
    /// How the Dockerfile is named in errors.
    pub dockerfile_name: String,
    pub build_args: BTreeMap<String, String>,
    pub labels: Vec<(String, String)>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    pub compression: Compression,
    /// SOURCE_DATE_EPOCH / --timestamp.
    pub timestamp: Option<i64>,
    /// `RUN --network` default.
    pub network: String,
    pub secrets: Vec<Secret>,
    /// `--ssh ID=SOCKET`.
    pub ssh: Vec<(String, PathBuf)>,
    pub platform: Option<String>,
}

/// What a stage produced.
#[derive(Clone, Debug)]
pub struct StageOut {
    pub image: Value,
    pub layers: Vec<LayerRow>,
    pub key: String,
}

pub struct Solver<'a> {
    pub o: &'a BuildOptions,
    pub host: Host,
    pub ctx: &'a BuildContext,
    pub progress: &'a Progress,
    pub puller: &'a Puller<'a>,
    escape: char,
    stages: Vec<Stage>,
    /// Global ARGs (before the first FROM) with their values.
    globals: Vec<(String, Option<String>)>,
    results: Vec<OnceLock<std::result::Result<Arc<StageOut>, String>>>,
    used_args: Mutex<HashSet<String>>,
    /// `--cache-from`: consulted when the store's own cache misses.
    pub imports: Option<&'a Imports<'a>>,
    /// Every step resolved, in order, for `--cache-to`.
    records: Mutex<Vec<Record>>,
}

/// The host platform as `os/arch`.
pub fn host_platform() -> String {
    format!("linux/{}", strata_imagestore::store::host_arch())
}

fn predefined(name: &str) -> Option<String> {
    let arch = strata_imagestore::store::host_arch().to_string();
    Some(match name {
        "TARGETPLATFORM" | "BUILDPLATFORM" => host_platform(),
        "TARGETOS" | "BUILDOS" => "linux".into(),
        "TARGETARCH" | "BUILDARCH" => arch,
        "TARGETVARIANT" | "BUILDVARIANT" => String::new(),
        _ => return None,
    })
}

fn now_rfc3339(ts: Option<i64>) -> String {
    let t = match ts {
        Some(s) => chrono::DateTime::<chrono::Utc>::from_timestamp(s, 0).unwrap_or_default(),
        None => chrono::Utc::now(),
    };
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        .replace(".000000000Z", "Z")
}

/// The per-stage state while its steps run.
struct State {
    image: Value,
    layers: Vec<LayerRow>,
    key: String,
    /// ARGs in scope: name -> value (None: declared, no value).
    args: Vec<(String, Option<String>)>,
    /// CMD set in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
    /// Where in the stage we are, for `[stage i/n]`.
    index: usize,
    total: usize,
}

impl State {
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = meta::env_pairs(&self.image)
            .into_iter()
            .find(|(k, _)| k == name)
        {
            return Some(v);
        }
        self.args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
    }

    /// Build args in scope that the image Env does not shadow, for RUN.
    fn run_env(&self) -> Vec<String> {
        let env = meta::env_pairs(&self.image);
        let mut out: Vec<String> = Vec::new();
        for (k, v) in &self.args {
            if let Some(v) = v
                && !env.iter().any(|(ek, _)| ek == k)
            {
                out.retain(|e| !e.starts_with(&format!("{k}=")));
                out.push(format!("{k}={v}"));
            }
        }
        out
    }

    fn workdir(&self) -> String {
        self.image["config"]["WorkingDir"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string()
    }
}

/// `base` joined with `p` (absolute `p` replaces it), cleaned.
fn resolve_path(base: &str, p: &str) -> String {
    let joined = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{}/{p}", base.trim_end_matches('/'))
    };
    let mut out: Vec<&str> = Vec::new();
    for s in joined.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// A mounted read-only view of some layers (COPY --from, RUN --mount).
struct View {
    path: PathBuf,
    fd: OwnedFd,
    mounted: bool,
    _tmp: Option<tempfile::TempDir>,
}

impl Drop for View {
    fn drop(&mut self) {
        if self.mounted {
            let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

impl<'a> Solver<'a> {
    pub fn new(
        o: &'a BuildOptions,
        host: Host,
        ctx: &'a BuildContext,
        progress: &'a Progress,
        puller: &'a Puller<'a>,
    ) -> Result<Solver<'a>> {
        let df = parse::parse(&o.dockerfile)
            .map_err(|e| anyhow!("{}:{}: {}", o.dockerfile_name, e.line, e.msg))?;
        if let Some(s) = &df.syntax {
            tracing::info!("# syntax={s} noted; the built-in frontend is used");
        }
        let (global_ins, stages) = super::dockerfile::stages(&df)
            .map_err(|e| anyhow!("{}:{}: {}", o.dockerfile_name, e.line, e.msg))?;
        let mut globals: Vec<(String, Option<String>)> = Vec::new();
        for g in &global_ins {
            let lookup = |n: &str| -> Option<String> {
                globals
                    .iter()
                    .rev()
                    .find(|(k, _)| k == n)
                    .and_then(|(_, v)| v.clone())
                    .or_else(|| predefined(n))
            };
            let kvs = expand::key_values(&g.args, df.escape, &lookup, true, "ARG")
                .map_err(|e| anyhow!("{}:{}: {e}", o.dockerfile_name, g.line))?;
            for (k, v) in kvs {
                let v = o.build_args.get(&k).cloned().or(v);
                globals.push((k, v));
            }
        }
        let results = stages.iter().map(|_| OnceLock::new()).collect();
        Ok(Solver {
            o,
            host,
            ctx,
            progress,
            puller,
            escape: df.escape,
            stages,
            globals,
            results,
            used_args: Mutex::new(HashSet::new()),
            imports: None,
            records: Mutex::new(Vec::new()),
        })
    }

    /// The steps this build resolved (built or from a cache), in order.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// A step that made (or found) `result` under the cache entry `entry`
    /// and moved the stage from key `parent` to `key`.
    fn record(&self, parent: &str, key: &str, entry: &str, result: &Cached) {
        self.push_record(parent, key, Some((entry.to_string(), result.clone())));
    }

    /// A key that follows `parent` with no cache entry (ARG, config-only
    /// steps, FROM a stage), so `--cache-to` can walk a lineage.
    fn link(&self, parent: &str, key: &str) {
        self.push_record(parent, key, None);
    }

    fn push_record(&self, parent: &str, key: &str, result: Option<(String, Cached)>) {
        if let Ok(mut r) = self.records.lock() {
            r.push(Record {
                parent: parent.to_string(),
                key: key.to_string(),
                result,
            });
        }
    }

    /// The store's cache entry for `key`, else an imported cache's.
    fn cached(&self, store: &mut Store, st: &State, key: &str) -> Result<Option<Cached>> {
        if let Some(hit) = store.cache_get(key)? {
            return Ok(Some(hit));
        }
        Ok(self.imports.and_then(|i| {
            i.adopt(store, key, st.layers.last().map(|l| &l.chain_id), &|m| {
                self.progress.warn(m)
            })
        }))
    }

    fn global(&self, name: &str) -> Option<String> {
        self.globals
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
            .or_else(|| predefined(name))
    }

    /// The stage `--target` names (the last one by default).
    pub fn target(&self) -> Result<usize> {
        match &self.o.target {
            None => Ok(self.stages.len() - 1),
            Some(t) => self
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(&t.to_ascii_lowercase()))
                .ok_or_else(|| anyhow!("target stage {t:?} could not be found")),
        }
    }

    /// Build args given but used nowhere (Docker warns about them).
    pub fn unused_args(&self) -> Vec<String> {
        let used = self.used_args.lock().map(|u| u.clone()).unwrap_or_default();
        self.o
            .build_args
            .keys()
            .filter(|k| !used.contains(*k) && predefined(k).is_none())
            .cloned()
            .collect()
    }

    /// A stage by name or index, as `FROM` and `--from` name them.
    fn stage_ref(&self, name: &str, before: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(i) = self.stages[..before]
            .iter()
            .position(|s| s.name.as_deref() == Some(&lower))
        {
            return Some(i);
        }
        name.parse::<usize>().ok().filter(|i| *i < before)
    }

    fn err(&self, ins: &Instruction, e: impl std::fmt::Display) -> anyhow::Error {
        anyhow!(
            "{}:{}: {}: {e}",
            self.o.dockerfile_name,
            ins.line,
            ins.original.chars().take(80).collect::<String>()
        )
    }

    /// The stages `idx` needs first (FROM, COPY --from, RUN --mount from=).
    fn deps(&self, idx: usize) -> Vec<usize> {
        let s = &self.stages[idx];
        let g = |n: &str| self.global(n);
        let mut out = Vec::new();
        if let Some(base) = expand::split_raw(&s.from.args, self.escape).first()
            && let Ok(b) = expand::word(base, self.escape, &g)
            && let Some(i) = self.stage_ref(&b, idx)
        {
            out.push(i);
        }
        for ins in &s.instructions {
            let mut names: Vec<String> = ins
                .flag_values("from")
                .iter()
                .map(|s| s.to_string())
                .collect();
            for m in ins.flag_values("mount") {
                for kv in m.split(',') {
                    if let Some(v) = kv.strip_prefix("from=") {
                        names.push(v.to_string());
                    }
                }
            }
            for n in names {
                if let Ok(w) = expand::word(&n, self.escape, &g)
                    && let Some(i) = self.stage_ref(&w, idx)
                    && !out.contains(&i)
                {
                    out.push(i);
                }
            }
        }
        out
    }

    /// Build stage `idx` (once; concurrent callers wait for the first).
    pub fn stage(&self, idx: usize) -> Result<Arc<StageOut>> {
        let cell = &self.results[idx];
        let r = cell.get_or_init(|| {
            let deps = self.deps(idx);
            let dep_results: Vec<Result<Arc<StageOut>>> = std::thread::scope(|s| {
                let hs: Vec<_> = deps
                    .iter()
                    .map(|d| s.spawn(move || self.stage(*d)))
                    .collect();
                hs.into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(anyhow!("stage thread panicked")))
                    })
                    .collect()
            });
            for r in dep_results {
                if let Err(e) = r {
                    return Err(format!("{e:#}"));
                }
            }
            self.build_stage(idx)
                .map(Arc::new)
                .map_err(|e| format!("{e:#}"))
        });
        r.clone().map_err(|e| anyhow!("{e}"))
    }

    fn stage_label(&self, idx: usize) -> String {
        match &self.stages[idx].name {
            Some(n) => n.clone(),
            None => format!("stage-{idx}"),
        }
    }

    fn title(&self, idx: usize, st: &State, text: &str) -> String {
        let t: String = text.chars().take(120).collect();
        if self.stages.len() == 1 {
            format!("[{}/{}] {t}", st.index, st.total)
        } else {
            format!("[{} {}/{}] {t}", self.stage_label(idx), st.index, st.total)
        }
    }

    fn build_stage(&self, idx: usize) -> Result<StageOut> {
        let stage = &self.stages[idx];
        let mut store = Store::open(&self.host.root)?;
        let from = &stage.from;
        let g = |n: &str| self.global(n);
        let words = expand::split_raw(&from.args, self.escape);
        let base = expand::word(
            words.first().map(String::as_str).unwrap_or(""),
            self.escape,
            &g,
        )
        .map_err(|e| self.err(from, e))?;
        if base.is_empty() {
            return Err(self.err(from, "base name (empty) should not be blank"));
        }
        if let Some(p) = from.flag("platform").and_then(|f| f.value.as_deref()) {
            let p = expand::word(p, self.escape, &g).map_err(|e| self.err(from, e))?;
            check_platform(&p).map_err(|e| self.err(from, e))?;
        }
        let total = stage.instructions.len() + 1;
        let mut st = State {
            image: json!({"architecture": strata_imagestore::store::host_arch(), "os": "linux", "config": {}, "history": []}),
            layers: Vec::new(),
            key: String::new(),
            args: Vec::new(),
            cmd_set: false,
            index: 1,
            total,
        };
        let n = self
            .progress
            .step(&self.title(idx, &st, &format!("FROM {base}")));
        if let Some(dep) = self.stage_ref(&base, idx) {
            let out = self.stage(dep)?;
            st.image = out.image.clone();
            st.layers = out.layers.clone();
            st.key = cache_key(&out.key, &["FROM-STAGE"]);
            self.link(&out.key, &st.key);
        } else if base.eq_ignore_ascii_case("scratch") {
            st.key = cache_key("", &["FROM scratch"]);
            st.image["config"] = json!({"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]});
        } else {
            let id = self
                .image_id(&mut store, &base)
                .map_err(|e| self.err(from, format!("{e:#}")))?;
            let cfg: Value = serde_json::from_slice(&store.content.read(&id)?)
                .with_context(|| format!("parse the config of {base}"))?;
            st.layers = store.layers(&id)?;
            st.image = json!({
                "architecture": cfg["architecture"], "os": cfg["os"],
                "config": cfg["config"].clone(), "history": cfg["history"].clone(),
            });
            if !st.image["history"].is_array() {
                st.image["history"] = json!([]);
            }
            if !st.image["config"].is_object() {
                st.image["config"] = json!({});
            }
            st.key = cache_key("", &["FROM", &id.to_string()]);
        }
        self.progress.done(n);
        // The base's ONBUILD triggers run first; the new image has none of them.
        let triggers: Vec<String> = st.image["config"]["OnBuild"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(String::from))
            .collect();
        if let Some(c) = st.image["config"].as_object_mut() {
            c.remove("OnBuild");
        }
        for t in triggers {
            let df = parse::parse(&t)
                .map_err(|e| self.err(from, format!("ONBUILD trigger {t:?}: {}", e.msg)))?;
            for ins in &df.instructions {
                st.total += 1;
                self.step(idx, &mut st, &mut store, ins)?;
            }
        }
        for ins in &stage.instructions {
            st.index += 1;
            self.step(idx, &mut st, &mut store, ins)?;
        }
        Ok(StageOut {
            image: st.image,
            layers: st.layers,
            key: st.key,
        })
    }

    /// An image by name or id, pulled when absent or with `--pull`.
    fn image_id(&self, store: &mut Store, name: &str) -> Result<Digest> {
        if self.o.pull {
            (self.puller)(name)?;
            return Ok(store.resolve(name)?);
        }
        match store.resolve(name) {
            Ok(id) => Ok(id),
            Err(_) => {
                (self.puller)(name).with_context(|| {
                    format!("{name}: image not known locally, and the pull failed")
                })?;
                Ok(store.resolve(name)?)
            }
        }
    }

    fn history(&self, st: &mut State, created_by: &str, empty: bool) {
        let mut h = json!({
            "created": now_rfc3339(self.o.timestamp),
            "created_by": created_by,
            "comment": "buildkit.dockerfile.v0",
        });
        if empty {
            h["empty_layer"] = json!(true);
        }
        if let Some(a) = st.image["history"].as_array_mut() {
            a.push(h);
        }
    }

    fn step(&self, idx: usize, st: &mut State, store: &mut Store, ins: &Instruction) -> Result<()> {
        let e = self.escape;
        let kw = ins.keyword.as_str();
        // Expansion with the stage's env and args, noting which args count.
        let expand_word = |st: &State, s: &str| -> Result<String> {
            let (w, used) =
                expand::word_used(s, e, &|n| st.lookup(n)).map_err(|err| self.err(ins, err))?;
            self.note_used(&used);
            Ok(w)
        };
        match kw {
            "ARG" => {
                let kvs = expand::key_values(&ins.args, e, &|n| st.lookup(n), true, "ARG")
                    .map_err(|err| self.err(ins, err))?;
                for (k, default) in kvs {
                    self.note_used(std::slice::from_ref(&k));
                    let v = self
                        .o
                        .build_args
                        .get(&k)
                        .cloned()
                        .or(default)
                        .or_else(|| self.global(&k));
                    // The value is no part of the chain's key: only the
                    // steps that see it (RUN's env, an expanded word) do.
                    let next = cache_key(&st.key, &["ARG", &k]);
                    self.link(&st.key, &next);
                    st.key = next;
                    st.args.push((k, v));
                }
                Ok(())
            }
            "ENV" | "LABEL" => {
                let kvs = expand::key_values(&ins.args, e, &|n| st.lookup(n), false, kw)
                    .map_err(|err| self.err(ins, err))?;
                let mut shown = Vec::new();
                for (k, v) in kvs {
                    let v = v.unwrap_or_default();
                    if kw == "ENV" {
                        meta::set_env(&mut st.image, &k, &v);
                    } else {
                        meta::add_label(&mut st.image, &k, &v);
                    }
                    shown.push(format!("{k}={v}"));
                }
                self.meta_step(idx, st, &format!("{kw} {}", shown.join(" ")))
            }
            "MAINTAINER" => {
                let a = expand_word(st, ins.args.trim())?;
                st.image["author"] = json!(a);
                self.meta_step(idx, st, &format!("MAINTAINER {a}"))
            }
            "EXPOSE" => {
                let ws = expand::words(&ins.args, e, &|n| st.lookup(n))
                    .map_err(|err| self.err(ins, err))?;
                if ws.is_empty() {
                    return Err(self.err(ins, "EXPOSE requires at least one argument"));
                }
                for w in &ws {
                    meta::expose(&mut st.image, w).map_err(|err| self.err(ins, err))?;
                }
                self.meta_step(idx, st, &format!("EXPOSE {}", ws.join(" ")))
            }
            "VOLUME" => {
                let ws = match &ins.json {
                    Some(j) => j
                        .iter()
                        .map(|w| expand_word(st, w))
                        .collect::<Result<Vec<_>>>()?,
                    None => expand::words(&ins.args, e, &|n| st.lookup(n))
                        .map_err(|err| self.err(ins, err))?,
                };
                if ws.is_empty() || ws.iter().any(|w| w.trim().is_empty()) {
                    return Err(self.err(ins, "VOLUME specified can not be an empty string"));
                }
                for w in &ws {
                    meta::add_volume(&mut st.image, w);
                }
                self.meta_step(idx, st, &format!("VOLUME [{}]", ws.join(" ")))
            }
            "USER" => {
                let u = expand_word(st, ins.args.trim())?;
                if u.is_empty() {
                    return Err(self.err(ins, "USER requires an argument"));
                }
                meta::cfg(&mut st.image).insert("User".into(), json!(u));
                self.meta_step(idx, st, &format!("USER {u}"))
            }
            "STOPSIGNAL" => {
                let s = expand_word(st, ins.args.trim())?;
                strata_runtime::signals::parse(&s)
                    .map_err(|_| self.err(ins, format!("invalid signal {s:?}")))?;
                meta::cfg(&mut st.image).insert("StopSignal".into(), json!(s));
                self.meta_step(idx, st, &format!("STOPSIGNAL {s}"))
            }
            "SHELL" => {
                let j = ins.json.clone().unwrap_or_default();
                if j.is_empty() {
                    return Err(self.err(ins, "SHELL requires at least one argument"));
                }
                meta::cfg(&mut st.image).insert("Shell".into(), json!(j));
                self.meta_step(idx, st, &format!("SHELL {}", serde_json::to_string(&j)?))
            }
            "CMD" | "ENTRYPOINT" => {
                let v = match &ins.json {
                    Some(j) => j.clone(),
                    None => {
                        let mut s = self.shell(st);
                        s.push(ins.args.clone());
                        s
                    }
                };
                let field = if kw == "CMD" { "Cmd" } else { "Entrypoint" };
                meta::cfg(&mut st.image).insert(field.into(), json!(v));
                if kw == "CMD" {
                    st.cmd_set = true;
                } else if !st.cmd_set {
                    // A base image's CMD does not outlive a new ENTRYPOINT.
                    meta::cfg(&mut st.image).insert("Cmd".into(), Value::Null);
                }
                self.meta_step(idx, st, &format!("{kw} {}", serde_json::to_string(&v)?))
            }
            "HEALTHCHECK" => {
                let flags: Vec<(String, String)> = ins
                    .flags
                    .iter()
                    .map(|f| (f.name.clone(), f.value.clone().unwrap_or_default()))
                    .collect();
                let h = meta::healthcheck(&ins.args, &flags).map_err(|err| self.err(ins, err))?;
                meta::cfg(&mut st.image).insert("Healthcheck".into(), h);
                self.meta_step(idx, st, &format!("HEALTHCHECK {}", ins.args))
            }
            "ONBUILD" => {
                let t = ins.args.trim();
                let first = t
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                if matches!(first.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                    return Err(
                        self.err(ins, format!("{first} isn't allowed as an ONBUILD trigger"))
                    );
                }
                parse::parse(t).map_err(|err| self.err(ins, err.msg))?;
                let c = meta::cfg(&mut st.image);
                let mut list: Vec<Value> = c
                    .get("OnBuild")
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default();
                list.push(json!(t));
                c.insert("OnBuild".into(), json!(list));
                self.meta_step(idx, st, &format!("ONBUILD {t}"))
            }
            "WORKDIR" => {
                let w = expand_word(st, ins.args.trim())?;
                if w.is_empty() {
                    return Err(self.err(ins, "WORKDIR requires exactly one argument"));
                }
                let dir = resolve_path(&st.workdir(), &w);
                meta::cfg(&mut st.image).insert("WorkingDir".into(), json!(dir));
                let user = st.image["config"]["User"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let key = cache_key(&st.key, &["WORKDIR", &dir, &user]);
                let text = format!("WORKDIR {dir}");
                self.layer_step_on(idx, st, store, ins, &text, key, false, |rootfs, _, _| {
                    let root = fsops::open_dir(rootfs)?;
                    let owner = if user.is_empty() {
                        (0, 0)
                    } else {
                        let u = crate::containers::users::resolve(rootfs, &user)?;
                        (u.uid, u.gid)
                    };
                    fsops::mkdir_all_in(
                        &root,
                        Path::new(dir.trim_start_matches('/')),
                        0o755,
                        owner,
                    )?;
                    Ok(())
                })
            }
            "RUN" => self.run_step(idx, st, store, ins),
            "COPY" | "ADD" => self.copy_step(idx, st, store, ins),
            other => Err(self.err(ins, format!("unknown instruction: {other}"))),
        }
    }

    fn note_used(&self, names: &[String]) {
        if let Ok(mut u) = self.used_args.lock() {
            u.extend(names.iter().cloned());
        }
    }

    fn shell(&self, st: &State) -> Vec<String> {
        match st.image["config"]["Shell"].as_array() {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect(),
            _ => vec!["/bin/sh".into(), "-c".into()],
        }
    }

    /// A config-only step: a history entry without a layer.
    fn meta_step(&self, idx: usize, st: &mut State, text: &str) -> Result<()> {
        let next = cache_key(&st.key, &[text]);
        self.link(&st.key, &next);
        st.key = next;
        let n = self.progress.step(&self.title(idx, st, text));
        self.history(st, text, true);
        self.progress.done(n);
        Ok(())
    }

    /// The snapshot dirs of the stage's layers, lowest first.
    fn dirs(&self, store: &Store, layers: &[LayerRow]) -> Result<Vec<PathBuf>> {
        layers
            .iter()
            .map(|l| {
                store
                    .chain_dir(&l.chain_id)?
                    .ok_or_else(|| anyhow!("the snapshot of layer {} is missing", l.diff_id))
            })
            .collect()
    }

    /// A step that may make a layer: from the cache, or by running `f` on
    /// the stage's rootfs (an overlay over a fresh upper dir, or with
    /// `detached` the bare upper dir: COPY --link), then writing and
    /// publishing what changed. `f` gets the rootfs, the upper dir and the
    /// step's progress number.
    ///
    /// A detached step's layer does not depend on what is below it, so its
    /// cache entry is `key` alone, found again on any parent (the layer is
    /// rebased: its snapshot is made for the new chain); the stage's key
    /// still chains on, through `key`.
    #[allow(clippy::too_many_arguments)]
    fn layer_step_on(
        &self,
        idx: usize,
        st: &mut State,
        store: &mut Store,
        ins: &Instruction,
        text: &str,
        key: String,
        detached: bool,
        f: impl FnOnce(&Path, &Path, usize) -> Result<()>,
    ) -> Result<()> {
        let n = self.progress.step(&self.title(idx, st, text));
        let next = if detached {
            cache_key(&st.key, &["link", &key])
        } else {
            key.clone()
        };
        if !self.o.no_cache
            && let Some(hit) = self.cached(store, st, &key)?
        {
            let parent = st.layers.last().map(|l| &l.chain_id);
            let hit = match hit {
                Cached::Layer(l) if detached => Cached::Layer(
                    store
                        .layer_on_chain(&l, parent)
                        .map_err(|e| self.err(ins, format!("rebase the cached layer: {e:#}")))?,
                ),
                other => other,
            };
            self.record(&st.key, &next, &key, &hit);
            match hit {
                Cached::Empty => self.history(st, text, true),
                Cached::Layer(l) => {
                    st.layers.push(l);
                    self.history(st, text, false);
                }
            }
            st.key = next;
            self.progress.cached(n);
            return Ok(());
        }
        let result = (|| -> Result<Cached> {
            let draft = store.snapshot_draft()?;
            let upper = draft.fs();
            let merged = draft.path().join("merged");
            std::fs::create_dir_all(&merged)?;
            let lower = self.dirs(store, &st.layers)?;
            let rootfs: PathBuf = if lower.is_empty() || detached {
                upper.clone()
            } else {
                let mut newest_first = lower.clone();
                newest_first.reverse();
                strata_imagestore::mounts::mount_overlay(
                    &newest_first,
                    Some(strata_imagestore::mounts::Upper {
                        upper: &upper,
                        work: &draft.work(),
                    }),
                    &merged,
                )?;
                merged.clone()
            };
            let ran = f(&rootfs, &upper, n);
            if rootfs == merged {
                unmount(&merged);
            }
            ran?;
            let _ = std::fs::remove_dir(&merged);
            if strata_imagestore::layer::is_empty(&upper)? {
                return Ok(Cached::Empty);
            }
            let written = strata_imagestore::layer::write(
                &upper,
                &store.content,
                &LayerOptions {
                    compression: self.o.compression,
                    clamp_mtime: self.o.timestamp,
                    skip: Vec::new(),
                },
            )?;
            let chain = strata_imagestore::digest::chain_next(
                st.layers.last().map(|l| &l.chain_id),
                &written.diff_id,
            );
            store.publish_snapshot(draft, &chain, &written.diff_id, written.content_size)?;
            Ok(Cached::Layer(LayerRow {
                blob: written.blob,
                media_type: written.media_type,
                diff_id: written.diff_id,
                chain_id: chain,
            }))
        })();
        let out = match result {
            Ok(o) => o,
            Err(e) => {
                self.progress.error(n, &format!("{e:#}"));
                return Err(self.err(ins, format!("{e:#}")));
            }
        };
        store.cache_put(&key, &out)?;
        self.record(&st.key, &next, &key, &out);
        match out {
            Cached::Empty => self.history(st, text, true),
            Cached::Layer(l) => {
                st.layers.push(l);
                self.history(st, text, false);
            }
        }
        st.key = next;
        self.progress.done(n);
        Ok(())
    }

    /// A read-only view of layers (a stage's or an image's rootfs).
    fn view(&self, store: &Store, layers: &[LayerRow]) -> Result<View> {
        let dirs = self.dirs(store, layers)?;
        match dirs.len() {
            0 => {
                let t = tempfile::tempdir()?;
                let fd = fsops::open_dir(t.path())?;
                Ok(View {
                    path: t.path().to_path_buf(),
                    fd,
                    mounted: false,
                    _tmp: Some(t),
                })
            }
            1 => Ok(View {
                path: dirs[0].clone(),
                fd: fsops::open_dir(&dirs[0])?,
                mounted: false,
                _tmp: None,
            }),
            _ => {
                let t = tempfile::Builder::new()
                    .prefix("strata-view")
                    .tempdir_in(store.root().join("tmp"))?;
                let mut newest_first = dirs.clone();
                newest_first.reverse();
                strata_imagestore::mounts::mount_overlay(&newest_first, None, t.path())?;
                let fd = fsops::open_dir(t.path())?;
                Ok(View {
                    path: t.path().to_path_buf(),
                    fd,
                    mounted: true,
                    _tmp: Some(t),
                })
            }
        }
    }

    /// The layers and cache identity of `--from` / `from=`: a stage or an image.
    fn source_of(
        &self,
        idx: usize,
        store: &mut Store,
        name: &str,
    ) -> Result<(Vec<LayerRow>, String)> {
        if let Some(i) = self.stage_ref(name, idx) {
            // A stage's files are its layers: their chain names them, so a
            // stage that ran again and made other bytes is another source.
            let out = self.stage(i)?;
            let identity = match out.layers.last() {
                Some(l) => format!("chain {}", l.chain_id),
                None => "chain none".to_string(),
            };
            return Ok((out.layers.clone(), identity));
        }
        if name.parse::<usize>().is_ok() {
            bail!("invalid stage index {name}: only earlier stages can be named");
        }
        let id = self.image_id(store, name)?;
        Ok((store.layers(&id)?, id.to_string()))
    }

    fn run_step(
        &self,
        idx: usize,
        st: &mut State,
        store: &mut Store,
        ins: &Instruction,
    ) -> Result<()> {
        let mut extra_files: Vec<(String, String)> = Vec::new();
        let args: Vec<String> = match (&ins.json, ins.heredocs.as_slice()) {
            (Some(j), _) => j.clone(),
            (None, []) => {
                let mut s = self.shell(st);
                s.push(ins.args.clone());
                s
            }
            (None, [h]) if is_lone_heredoc(&ins.args) => {
                if h.content.starts_with("#!") {
                    // A script with its own interpreter runs as a file.
                    let path = format!("/dev/pipes/{}", h.name);
                    extra_files.push((path.clone(), h.content.clone()));
                    vec![path]
                } else {
                    let mut s = self.shell(st);
                    s.push(h.content.clone());
                    s
                }
            }
            (None, hs) => {
                // The shell reads the heredocs itself.
                let mut script = ins.args.clone();
                for h in hs {
                    script.push('\n');
                    script.push_str(&h.content);
                    script.push_str(&h.name);
                }
                let mut s = self.shell(st);
                s.push(script);
                s
            }
        };
        let network = match ins.flag("network").and_then(|f| f.value.clone()) {
            Some(n) => n,
            None => self.o.network.clone(),
        };
        if !matches!(network.as_str(), "default" | "none" | "host") {
            return Err(self.err(
                ins,
                format!("unsupported network mode {network:?}: default, none or host"),
            ));
        }
        if let Some(s) = ins.flag("security").and_then(|f| f.value.as_deref())
            && s != "sandbox"
        {
            return Err(self.err(
                ins,
                format!("--security={s} is not allowed: this builder runs every step sandboxed"),
            ));
        }
        let mut mounts = Vec::new();
        let mut key_parts: Vec<String> =
            vec!["RUN".into(), serde_json::to_string(&args)?, network.clone()];
        key_parts.extend(st.run_env());
        let mut views = Vec::new();
        let mut locks = Vec::new();
        let work = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(store.root().join("tmp"))?;
        for (path, content) in &extra_files {
            let f = work
                .path()
                .join(path.rsplit('/').next().unwrap_or("script"));
            std::fs::write(&f, content)?;
            std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
            mounts.push(json!({"destination": path, "type": "bind", "source": f, "options": ["rbind", "ro"]}));
            key_parts.push(content.clone());
        }
        let mut run_env = st.run_env();
        for m in ins.flag_values("mount") {
            let m = expand::word(m, self.escape, &|n| st.lookup(n))
                .map_err(|err| self.err(ins, err))?;
            let (mount, key) = self
                .run_mount(
                    idx,
                    st,
                    store,
                    &m,
                    work.path(),
                    &mut views,
                    &mut locks,
                    &mut run_env,
                )
                .map_err(|err| self.err(ins, format!("--mount={m}: {err:#}")))?;
            mounts.push(mount);
            key_parts.push(key);
        }
        let refs: Vec<&str> = key_parts.iter().map(String::as_str).collect();
        let key = cache_key(&st.key, &refs);
        let text = match &ins.json {
            Some(_) => format!("RUN {}", args.join(" ")),
            None => format!("RUN {}", ins.args),
        };
        let created_by = if ins.json.is_some() {
            format!("RUN {} # buildkit", serde_json::to_string(&args)?)
        } else {
            format!("RUN {} # buildkit", args.join(" "))
        };
        let image = st.image.clone();
        let host = self.host.clone();
        let progress = self.progress;
        let spec = RunSpec {
            image: &image,
            args: args.clone(),
            env: run_env,
            network: &network,
            mounts,
            privileged: false,
        };
        let before = st.image["history"].as_array().map(|a| a.len()).unwrap_or(0);
        let r = self.layer_step_on(
            idx,
            st,
            store,
            ins,
            &text,
            key,
            false,
            |rootfs, upper, n| run::run(&host, rootfs, upper, &spec, progress, n),
        );
        drop(views);
        drop(locks);
        r?;
        // History says what ran, as BuildKit writes it.
        if let Some(h) = st.image["history"].as_array_mut()
            && h.len() > before
            && let Some(last) = h.last_mut()
        {
            last["created_by"] = json!(created_by);
        }
        Ok(())
    }

    /// One `RUN --mount=...`: the OCI mount and its part of the cache key.
    #[allow(clippy::too_many_arguments)]
    fn run_mount(
        &self,
        idx: usize,
        st: &State,
        store: &mut Store,
        spec: &str,
        work: &Path,
        views: &mut Vec<View>,
        locks: &mut Vec<nix::fcntl::Flock<std::fs::File>>,
        env: &mut Vec<String>,
    ) -> Result<(Value, String)> {
        let mut kv: BTreeMap<String, String> = BTreeMap::new();
        for part in spec.split(',') {
            let (k, v) = part.split_once('=').unwrap_or((part, "true"));
            kv.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let kind = kv.get("type").cloned().unwrap_or_else(|| "bind".into());
        let target = kv
            .get("target")
            .or_else(|| kv.get("dst"))
            .or_else(|| kv.get("destination"))
            .cloned();
        let abs = |t: &str| resolve_path(&st.workdir(), t);
        let flag = |k: &str| kv.get(k).is_some_and(|v| v != "false");
        match kind.as_str() {
            "bind" => {
                let target = abs(&target.ok_or_else(|| anyhow!("a bind mount needs a target"))?);
                let source = kv
                    .get("source")
                    .or_else(|| kv.get("src"))
                    .cloned()
                    .unwrap_or_default();
                let rel = source.trim_start_matches('/').to_string();
                let (root_fd, root_path, key): (&OwnedFd, PathBuf, String) = match kv.get("from") {
                    None => {
                        let vis =
                            |p: &str| self.ctx.contains(p) || self.ctx.below(p).next().is_some();
                        let rels = if rel.is_empty() {
                            vec![String::new()]
                        } else {
                            vec![rel.clone()]
                        };
                        let d = context::digest_tree(&self.ctx.fd, &rels, &vis)?;
                        (
                            &self.ctx.fd,
                            self.ctx.root.clone(),
                            format!("bind ctx {rel} {target} {d}"),
                        )
                    }
                    Some(from) => {
                        let (layers, k) = self.source_of(idx, store, from)?;
                        views.push(self.view(store, &layers)?);
                        let v = views.last().ok_or_else(|| anyhow!("view"))?;
                        (&v.fd, v.path.clone(), format!("bind {k} {rel} {target}"))
                    }
                };
                // Resolved inside its root: a symlink cannot point it out.
                let fd = fsops::open_in(root_fd, Path::new(&rel), nix::fcntl::OFlag::O_PATH)
                    .map_err(|e| anyhow!("source {source:?}: {e}"))?;
                let real = std::fs::read_link(format!(
                    "/proc/self/fd/{}",
                    std::os::fd::AsRawFd::as_raw_fd(&fd)
                ))?;
                if !real.starts_with(root_path.canonicalize().unwrap_or(root_path.clone())) {
                    bail!("source {source:?} is outside its root");
                }
                let rw = flag("rw") || flag("readwrite");
                let source_path = if rw {
                    // Writes go to a scratch overlay and are dropped.
                    let up = work.join(format!("rw-{}", views.len()));
                    let (u, w, m) = (up.join("upper"), up.join("work"), up.join("merged"));
                    for d in [&u, &w, &m] {
                        std::fs::create_dir_all(d)?;
                    }
                    strata_imagestore::mounts::mount_overlay(
                        std::slice::from_ref(&real),
                        Some(strata_imagestore::mounts::Upper {
                            upper: &u,
                            work: &w,
                        }),
                        &m,
                    )?;
                    views.push(View {
                        fd: fsops::open_dir(&m)?,
                        path: m.clone(),
                        mounted: true,
                        _tmp: None,
                    });
                    m
                } else {
                    real
                };
                let mut opts = vec![json!("rbind")];
                if !rw {
                    opts.push(json!("ro"));
                }
                Ok((
                    json!({"destination": target, "type": "bind", "source": source_path, "options": opts}),
                    key,
                ))
            }
            "cache" => {
                let target = abs(&target.ok_or_else(|| anyhow!("a cache mount needs a target"))?);
                let id = kv.get("id").cloned().unwrap_or_else(|| target.clone());
                // The id names a directory only through its hash: it
                // cannot climb out of the cache dir.
                let dir = store.root().join("cache-mounts").join(hex::encode(
                    <sha2::Sha256 as sha2::Digest>::digest(id.as_bytes()),
                ));
                let fresh = !dir.exists();
                std::fs::create_dir_all(&dir)?;
                if fresh {
                    let mode = match kv.get("mode") {
                        Some(m) => {
                            u32::from_str_radix(m, 8).map_err(|_| anyhow!("invalid mode {m:?}"))?
                        }
                        None => 0o755,
                    };
                    let uid = kv
                        .get("uid")
                        .map(|u| u.parse::<u32>())
                        .transpose()
                        .map_err(|_| anyhow!("invalid uid"))?
                        .unwrap_or(0);
                    let gid = kv
                        .get("gid")
                        .map(|u| u.parse::<u32>())
                        .transpose()
                        .map_err(|_| anyhow!("invalid gid"))?
                        .unwrap_or(0);
                    nix::unistd::chown(&dir, Some(uid.into()), Some(gid.into()))?;
                    std::fs::set_permissions(
                        &dir,
                        std::os::unix::fs::PermissionsExt::from_mode(mode),
                    )?;
                }
                if kv.get("sharing").map(String::as_str) == Some("locked") {
                    let f = std::fs::File::create(dir.with_extension("lock"))?;
                    let l = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
                        .map_err(|(_, e)| anyhow!("lock cache {id}: {e}"))?;
                    locks.push(l);
                }
                let ro = flag("ro") || flag("readonly");
                let mut opts = vec![json!("rbind")];
                if ro {
                    opts.push(json!("ro"));
                }
                // Contents are not part of the key: a cache mount is a cache.
                Ok((
                    json!({"destination": target, "type": "bind", "source": dir, "options": opts}),
                    format!("cache {id} {target}"),
                ))
            }
            "tmpfs" => {
                let target = abs(&target.ok_or_else(|| anyhow!("a tmpfs mount needs a target"))?);
                // The kernel's tmpfs default, whatever the directory under
                // it (the runtime keeps that directory's mode otherwise).
                let mut opts = vec![json!("nosuid"), json!("nodev"), json!("mode=1777")];
                if let Some(sz) = kv.get("size") {
                    opts.push(json!(format!(
                        "size={}",
                        crate::containers::spec::parse_bytes(sz)?
                    )));
                }
                Ok((
                    json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": opts}),
                    format!("tmpfs {target}"),
                ))
            }
            "secret" => {
                let id = kv
                    .get("id")
                    .cloned()
                    .or_else(|| {
                        target
                            .as_ref()
                            .and_then(|t| t.rsplit('/').next().map(String::from))
                    })
                    .ok_or_else(|| anyhow!("a secret mount needs an id"))?;
                let target = abs(&target.unwrap_or_else(|| format!("/run/secrets/{id}")));
                let Some(secret) = self.o.secrets.iter().find(|s| s.id == id) else {
                    if flag("required") {
                        bail!("secret {id} not found: give it with --secret id={id},src=FILE");
                    }
                    return Ok((
                        json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=4k"]}),
                        format!("secret {id} {target} absent"),
                    ));
                };
                let f = work.join(format!("secret-{}", hex::encode(id.as_bytes())));
                std::fs::write(&f, &secret.data)?;
                let mode = match kv.get("mode") {
                    Some(m) => {
                        u32::from_str_radix(m, 8).map_err(|_| anyhow!("invalid mode {m:?}"))?
                    }
                    None => 0o400,
                };
                let uid = kv
                    .get("uid")
                    .and_then(|u| u.parse::<u32>().ok())
                    .unwrap_or(0);
                let gid = kv
                    .get("gid")
                    .and_then(|u| u.parse::<u32>().ok())
                    .unwrap_or(0);
                nix::unistd::chown(&f, Some(uid.into()), Some(gid.into()))?;
                std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
                // The secret's value is never part of the key.
                Ok((
                    json!({"destination": target, "type": "bind", "source": f, "options": ["rbind", "ro"]}),
                    format!("secret {id} {target}"),
                ))
            }
            "ssh" => {
                let id = kv.get("id").cloned().unwrap_or_else(|| "default".into());
                let target = abs(&target.unwrap_or_else(|| "/run/buildkit/ssh_agent.0".into()));
                let Some((_, sock)) = self.o.ssh.iter().find(|(i, _)| *i == id) else {
                    bail!("no SSH agent socket for id {id:?}: give it with --ssh {id}=SOCKET");
                };
                env.push(format!("SSH_AUTH_SOCK={target}"));
                Ok((
                    json!({"destination": target, "type": "bind", "source": sock, "options": ["rbind"]}),
                    format!("ssh {id} {target}"),
                ))
            }
            other => bail!("unsupported mount type {other:?} (bind, cache, tmpfs, secret or ssh)"),
        }
    }

    fn copy_step(
        &self,
        idx: usize,
        st: &mut State,
        store: &mut Store,
        ins: &Instruction,
    ) -> Result<()> {
        let add = ins.keyword == "ADD";
        let e = self.escape;
        let lookup = |n: &str| st.lookup(n);
        let mut words: Vec<String> = match &ins.json {
            Some(j) => j
                .iter()
                .map(|w| expand::word(w, e, &lookup))
                .collect::<std::result::Result<_, _>>()
                .map_err(|err| self.err(ins, err))?,
            None => expand::words(&ins.args, e, &lookup).map_err(|err| self.err(ins, err))?,
        };
        if words.len() < 2 {
            return Err(self.err(ins, format!("{} requires at least two arguments, but only one was provided. Destination could not be determined", ins.keyword)));
        }
        let dest_raw = words.pop().unwrap_or_default();
        let into_dir = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        let dest = resolve_path(&st.workdir(), &dest_raw);
        let flag = |n: &str| -> Result<Option<String>> {
            ins.flag(n)
                .and_then(|f| f.value.clone())
                .map(|v| expand::word(&v, e, &lookup).map_err(|err| self.err(ins, err)))
                .transpose()
        };
        let from = if add { None } else { flag("from")? };
        let chown = flag("chown")?;
        let chmod = flag("chmod")?
            .map(|m| {
                u32::from_str_radix(&m, 8).map_err(|_| {
                    self.err(
                        ins,
                        format!("invalid --chmod {m:?}: an octal mode like 0755"),
                    )
                })
            })
            .transpose()?;
        if chmod.is_some_and(|m| m > 0o7777) {
            return Err(self.err(ins, "invalid --chmod: more than 7777"));
        }
        let link = ins
            .flag("link")
            .is_some_and(|f| f.value.as_deref() != Some("false"));
        let parents = ins
            .flag("parents")
            .is_some_and(|f| f.value.as_deref() != Some("false"));
        let exclude: Vec<String> = ins
            .flag_values("exclude")
            .iter()
            .map(|v| expand::word(v, e, &lookup).map_err(|err| self.err(ins, err)))
            .collect::<Result<_>>()?;
        if let Some(c) = ins.flag("checksum").and_then(|f| f.value.clone())
            && !words
                .iter()
                .all(|w| w.starts_with("http://") || w.starts_with("https://"))
        {
            return Err(self.err(
                ins,
                format!("--checksum={c} can only be used with an http(s) source"),
            ));
        }
        let is_url = |w: &str| w.starts_with("http://") || w.starts_with("https://");
        if let Some(w) = words
            .iter()
            .find(|w| w.starts_with("git@") || w.ends_with(".git"))
        {
            return Err(self.err(
                ins,
                format!(
                    "{} of a git repository ({w}) is not supported by this builder yet",
                    ins.keyword
                ),
            ));
        }
        if !add && let Some(w) = words.iter().find(|w| is_url(w)) {
            return Err(self.err(
                ins,
                format!("source can't be a URL for COPY: {w} (use ADD)"),
            ));
        }
        // ADD of a URL: downloaded (and checked) before the step, so its
        // digest is part of the key; each file waits in a dir of its own.
        let checksum = flag("checksum")?;
        let mut remote: Vec<(tempfile::TempDir, String, String)> = Vec::new();
        for w in words.iter().filter(|w| is_url(w)) {
            let (dir, name, digest) = download(store, w, checksum.as_deref())
                .map_err(|err| self.err(ins, format!("{err:#}")))?;
            remote.push((dir, name, digest));
        }
        words.retain(|w| !is_url(w));
        // Heredoc sources become files named after their marker.
        let mut heredocs = Vec::new();
        words.retain(|w| {
            let name = w
                .trim_start_matches("<<")
                .trim_start_matches('-')
                .trim_matches(|c| c == '"' || c == '\'');
            match ins
                .heredocs
                .iter()
                .find(|h| w.starts_with("<<") && h.name == name)
            {
                Some(h) => {
                    heredocs.push(h.clone());
                    false
                }
                None => true,
            }
        });
        // The sources and their content identity.
        let (src_layers, src_key) = match &from {
            Some(f) => {
                let (l, k) = self
                    .source_of(idx, store, f)
                    .map_err(|err| self.err(ins, format!("{err:#}")))?;
                (Some(l), k)
            }
            None => (None, String::new()),
        };
        let view = match &src_layers {
            Some(l) => Some(self.view(store, l)?),
            None => None,
        };
        let src_fd: &OwnedFd = match &view {
            Some(v) => &v.fd,
            None => &self.ctx.fd,
        };
        let in_ctx = view.is_none();
        let visible =
            |p: &str| !in_ctx || self.ctx.contains(p) || self.ctx.below(p).next().is_some();
        let mut sources: Vec<String> = Vec::new();
        for w in &words {
            let clean = resolve_path("/", w).trim_start_matches('/').to_string();
            if context::has_glob(w) {
                let found: Vec<String> = if in_ctx {
                    self.ctx.matches(&clean)
                } else {
                    glob_in(src_fd, &clean)?
                };
                sources.extend(found);
            } else {
                if in_ctx && !clean.is_empty() && !visible(&clean) {
                    return Err(self.err(ins, format!("failed to compute cache key: \"/{clean}\" not found: not found in the build context or excluded by .dockerignore")));
                }
                sources.push(clean);
            }
        }
        if sources.is_empty() && heredocs.is_empty() && remote.is_empty() {
            return Err(self.err(ins, "no source files were specified"));
        }
        let many = sources.len() + heredocs.len() + remote.len() > 1;
        if many && !into_dir && !parents {
            return Err(self.err(ins, format!("When using {} with more than one source file, the destination must be a directory and end with a /", ins.keyword)));
        }
        let content = if in_ctx {
            context::digest_tree(&self.ctx.fd, &sources, &visible)
                .map_err(|err| self.err(ins, format!("failed to compute cache key: {err:#}")))?
        } else {
            src_key.clone()
        };
        // Heredoc bodies expand with the args and env in scope (unless the
        // marker was quoted).
        let mut texts = Vec::new();
        for h in &heredocs {
            texts.push(if h.quoted {
                h.content.clone()
            } else {
                expand_heredoc(&h.content, e, &lookup).map_err(|err| self.err(ins, err))?
            });
        }
        let mut key_parts = vec![
            ins.keyword.clone(),
            sources.join("\0"),
            dest.clone(),
            into_dir.to_string(),
            format!("{chown:?} {chmod:?} {link} {parents} {exclude:?}"),
            content,
        ];
        for (_, name, digest) in &remote {
            key_parts.push(format!("url {name} {digest}"));
        }
        let shown = format!(
            "{} {}{} {}",
            ins.keyword,
            from.as_ref()
                .map(|f| format!("--from={f} "))
                .unwrap_or_default(),
            words
                .iter()
                .chain(heredocs.iter().map(|h| &h.name))
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            dest_raw
        );
        for (h, t) in heredocs.iter().zip(&texts) {
            key_parts.push(h.name.clone());
            key_parts.push(t.clone());
        }
        let refs: Vec<&str> = key_parts.iter().map(String::as_str).collect();
        // --link: the layer is made in an empty dir, whatever is below.
        let key = cache_key(if link { "COPY --link" } else { &st.key }, &refs);
        let exclude_rules = Ignore::parse(&exclude.join("\n"));
        let timestamp = self.o.timestamp;
        let image_user_root = !link;
        let r = self.layer_step_on(
            idx,
            st,
            store,
            ins,
            &shown,
            key,
            link,
            |rootfs, _upper, _n| {
                let dst = fsops::open_dir(rootfs)?;
                let owner = match &chown {
                    Some(c) => Some(resolve_chown(rootfs, c, image_user_root)?),
                    None => None,
                };
                let opts = CopyOptions {
                    owner,
                    keep_owner: !in_ctx,
                    chmod,
                    exclude: exclude_rules,
                };
                let mut copier = Copier::new(src_fd, &dst, &opts, &visible);
                let dest_rel = PathBuf::from(dest.trim_start_matches('/'));
                for s in &sources {
                    let target = if parents {
                        dest_rel.join(s)
                    } else {
                        dest_rel.clone()
                    };
                    let as_dir = into_dir || many;
                    if add
                        && in_ctx
                        && let Some(arch) = archive_kind(&self.ctx.fd, s)?
                    {
                        extract(&self.ctx.fd, s, arch, &dst, &target)?;
                        continue;
                    }
                    if parents {
                        let parent = target.parent().map(Path::to_path_buf).unwrap_or_default();
                        copier.copy(s, &parent, true)?;
                    } else {
                        copier.copy(s, &target, as_dir)?;
                    }
                }
                for (dir, name, _) in &remote {
                    // Mode 0600 and the Last-Modified time, as Docker's ADD.
                    let src = fsops::open_dir(dir.path())?;
                    let url_opts = CopyOptions {
                        owner,
                        keep_owner: false,
                        chmod: Some(chmod.unwrap_or(0o600)),
                        exclude: Ignore::default(),
                    };
                    let all = |_: &str| true;
                    let target = if into_dir || many {
                        dest_rel.join(name)
                    } else {
                        dest_rel.clone()
                    };
                    Copier::new(&src, &dst, &url_opts, &all).copy(name, &target, false)?;
                }
                for (h, text) in heredocs.iter().zip(&texts) {
                    let path = if into_dir || many {
                        dest_rel.join(&h.name)
                    } else {
                        dest_rel.clone()
                    };
                    let mode = chmod.unwrap_or(0o644);
                    write_file(
                        &dst,
                        &path,
                        text.as_bytes(),
                        mode,
                        owner.unwrap_or((0, 0)),
                        timestamp,
                    )?;
                }
                Ok(())
            },
        );
        drop(view);
        r
    }
}

/// A heredoc body with `$VAR` expanded and quotes kept as they are.
fn expand_heredoc(text: &str, e: char, lookup: &expand::Lookup) -> Result<String> {
    let mut out = String::new();
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        // Quotes are text here: escape them so only variables change.
        let protected = line
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\'', "\\'");
        out.push_str(&expand::word(&protected, e, lookup).map_err(|err| anyhow!("{err}"))?);
    }
    Ok(out)
}

/// `ADD URL`: the file, in a temp dir of its own under the store's tmp,
/// named as the URL's last path segment, with the Last-Modified time;
/// `--checksum` (`sha256:HEX`) must match. Returns (dir, name, digest).
fn download(
    store: &Store,
    url: &str,
    checksum: Option<&str>,
) -> Result<(tempfile::TempDir, String, String)> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && !path.ends_with("//") && path.matches('/').count() > 2)
        .unwrap_or("__unnamed__")
        .to_string();
    let dir = tempfile::Builder::new()
        .prefix("add-")
        .tempdir_in(store.root().join("tmp"))?;
    let file = dir.path().join(&name);
    let mut f = std::fs::File::create(&file)?;
    let got = strata_registry::http::download(url, &mut f, 8 << 30).map_err(|e| anyhow!("{e}"))?;
    drop(f);
    let data_digest = {
        let mut h = <sha2::Sha256 as sha2::Digest>::new();
        let mut r = std::fs::File::open(&file)?;
        std::io::copy(&mut r, &mut h)?;
        format!("sha256:{}", hex::encode(sha2::Digest::finalize(h)))
    };
    if let Some(want) = checksum {
        if !want.starts_with("sha256:") {
            bail!("unsupported --checksum {want:?}: sha256:<hex>");
        }
        if want != data_digest {
            bail!("digest mismatch for {url}: expected {want}, got {data_digest}");
        }
    }
    if let Some(t) = got.last_modified {
        let ft = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64);
        std::fs::File::options()
            .write(true)
            .open(&file)?
            .set_modified(ft)?;
    }
    Ok((dir, name, data_digest))
}

/// Is the whole RUN command one heredoc marker (`RUN <<EOF`)?
fn is_lone_heredoc(args: &str) -> bool {
    let t = args.trim();
    t.starts_with("<<") && !t.contains(char::is_whitespace)
}

fn unmount(p: &Path) {
    for _ in 0..50 {
        match nix::mount::umount2(p, nix::mount::MntFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => return,
            Err(nix::errno::Errno::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(_) => break,
        }
    }
    let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
}

/// `--platform`: only the host's (no emulation is set up here).
pub fn check_platform(p: &str) -> Result<()> {
    let want = p.trim().to_ascii_lowercase();
    let host = host_platform();
    if want == host || want == "linux" || want.starts_with(&format!("{host}/")) {
        return Ok(());
    }
    let arch = want.split('/').nth(1).unwrap_or("");
    let qemu = match arch {
        "arm64" => "aarch64",
        "amd64" => "x86_64",
        "arm" => "arm",
        "386" => "i386",
        other => other,
    };
    if Path::new(&format!("/proc/sys/fs/binfmt_misc/qemu-{qemu}")).exists() {
        bail!("platform {p}: emulation through binfmt_misc is not supported by this builder yet");
    }
    bail!(
        "platform {p} cannot run on this {host} host: no binfmt_misc emulation is registered for it"
    )
}

/// `--chown` for COPY/ADD: names from the destination's /etc/passwd and
/// /etc/group; a user without a group gets the same number as its gid
/// (Docker's rule for COPY).
fn resolve_chown(rootfs: &Path, spec: &str, lookup_names: bool) -> Result<(u32, u32)> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let read = |file: &str| -> String {
        if !lookup_names {
            return String::new();
        }
        let Ok(root) = fsops::open_dir(rootfs) else {
            return String::new();
        };
        match fsops::open_in(&root, Path::new(file), nix::fcntl::OFlag::O_RDONLY) {
            Ok(fd) => {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(
                    &mut std::io::Read::take(std::fs::File::from(fd), 4 << 20),
                    &mut s,
                );
                s
            }
            Err(_) => String::new(),
        }
    };
    let find = |text: &str, name: &str, what: &str| -> Result<u32> {
        if let Ok(n) = name.parse::<u32>() {
            return Ok(n);
        }
        text.lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 3 && f[0] == name)
            .and_then(|f| f[2].parse().ok())
            .ok_or_else(|| {
                anyhow!("unable to find {what} {name}: no matching entries in {what} file")
            })
    };
    let uid = find(&read("etc/passwd"), u, "user")?;
    let gid = match g {
        Some(g) => find(&read("etc/group"), g, "group")?,
        None => uid,
    };
    Ok((uid, gid))
}

/// Paths matching a glob inside a root (COPY --from with wildcards).
fn glob_in(root: &OwnedFd, pattern: &str) -> Result<Vec<String>> {
    let segs: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let mut found = vec![String::new()];
    for seg in segs {
        let mut next = Vec::new();
        for base in &found {
            if !context::has_glob(seg) {
                let p = if base.is_empty() {
                    seg.to_string()
                } else {
                    format!("{base}/{seg}")
                };
                if fsops::stat_in(root, Path::new(&p), true).is_ok() {
                    next.push(p);
                }
                continue;
            }
            let Ok(dir) = fsops::open_in(
                root,
                Path::new(if base.is_empty() { "." } else { base }),
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
            ) else {
                continue;
            };
            for (name, _) in fsops::list(&dir)? {
                if context::glob_match(seg, &name) {
                    next.push(if base.is_empty() {
                        name
                    } else {
                        format!("{base}/{name}")
                    });
                }
            }
        }
        found = next;
    }
    Ok(found)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Archive {
    Tar,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

/// ADD extracts a local file that is a tar archive (by its bytes).
fn archive_kind(ctx: &OwnedFd, rel: &str) -> Result<Option<Archive>> {
    let Ok(st) = fsops::stat_in(ctx, Path::new(rel), false) else {
        return Ok(None);
    };
    if st.kind != fsops::Kind::File {
        return Ok(None);
    }
    let fd = fsops::open_in(ctx, Path::new(rel), nix::fcntl::OFlag::O_RDONLY)
        .map_err(|e| anyhow!("open {rel}: {e}"))?;
    let mut head = [0u8; 512];
    let mut f = std::fs::File::from(fd);
    let mut n = 0;
    while n < head.len() {
        match std::io::Read::read(&mut f, &mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let h = &head[..n];
    Ok(if h.starts_with(&[0x1f, 0x8b]) {
        Some(Archive::Gzip)
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Archive::Zstd)
    } else if h.starts_with(b"BZh") {
        Some(Archive::Bzip2)
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Archive::Xz)
    } else if n >= 262 && &h[257..262] == b"ustar" {
        Some(Archive::Tar)
    } else {
        None
    })
}

/// Extract an archive from the context into `dest` (inside `dst`),
/// through the image store's safe unpacker: nothing lands outside dest.
fn extract(ctx: &OwnedFd, rel: &str, kind: Archive, dst: &OwnedFd, dest: &Path) -> Result<()> {
    let fd = fsops::open_in(ctx, Path::new(rel), nix::fcntl::OFlag::O_RDONLY)
        .map_err(|e| anyhow!("open {rel}: {e}"))?;
    let f = std::fs::File::from(fd);
    let dir = fsops::mkdir_all_in(dst, dest, 0o755, (0, 0))?;
    let target = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&dir)
    ));
    let name = format!("ADD {rel}");
    let reader: Box<dyn std::io::Read + Send> = match kind {
        Archive::Tar | Archive::Gzip | Archive::Zstd => Box::new(f),
        Archive::Bzip2 => Box::new(decompress_with("bzip2", f)?),
        Archive::Xz => Box::new(decompress_with("xz", f)?),
    };
    strata_imagestore::unpack::unpack(reader, &target, &name)
        .map_err(|e| anyhow!("extract {rel}: {e}"))?;
    Ok(())
}

/// bzip2 and xz streams through Debian's own decompressors.
fn decompress_with(tool: &str, input: std::fs::File) -> Result<std::process::ChildStdout> {
    let mut c = std::process::Command::new(tool)
        .args(["-dc"])
        .stdin(input)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("run {tool} to decompress (Debian package {tool})"))?;
    c.stdout
        .take()
        .ok_or_else(|| anyhow!("{tool} has no stdout"))
}
