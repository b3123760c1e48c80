//! `strata build` and `strata builder prune`: flags as `docker build`
//! (BuildKit) takes them, output on stderr, the image id on stdout only
//! with `-q` (and in `--iidfile`).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use strata::build::shared_cache::{self, Spec};
use strata::build::{self, BuildOptions, Secret, context::BuildContext, progress};
use strata_imagestore::Store;
use strata_imagestore::commit::ManifestFormat;
use strata_imagestore::unpack::Compression;

#[derive(clap::Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`); may be given several times.
    #[arg(short, long = "tag")]
    pub tag: Vec<String>,
    /// The Dockerfile (default PATH/Dockerfile); `-` reads it from stdin.
    #[arg(short, long)]
    pub file: Option<String>,
    /// Build-time variables (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg")]
    pub build_arg: Vec<String>,
    /// Labels for the image.
    #[arg(long)]
    pub label: Vec<String>,
    /// The stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use the cache.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always pull the base images.
    #[arg(long)]
    pub pull: bool,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image id to this file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// auto, plain, tty or quiet.
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Manifest and config media types: oci or docker.
    #[arg(long, default_value = "oci")]
    pub format: String,
    /// Layer compression: gzip, zstd or uncompressed.
    #[arg(long, default_value = "gzip")]
    pub compression: String,
    /// Seconds since the epoch for every timestamp (SOURCE_DATE_EPOCH).
    #[arg(long)]
    pub timestamp: Option<i64>,
    /// RUN's network: default, none or host.
    #[arg(long, default_value = "default")]
    pub network: String,
    /// `id=ID,src=FILE` or `id=ID,env=VAR`.
    #[arg(long)]
    pub secret: Vec<String>,
    /// `default` or `ID=SOCKET`: an SSH agent for `RUN --mount=type=ssh`.
    #[arg(long)]
    pub ssh: Vec<String>,
    /// Target platform (this host's only).
    #[arg(long)]
    pub platform: Option<String>,
    /// `type=image|oci|docker|tar|local,dest=PATH`.
    #[arg(short, long)]
    pub output: Vec<String>,
    /// Push the image after the build (`--output type=image,push=true`).
    #[arg(long)]
    pub push: bool,
    /// Import a cache (`type=registry,ref=...` or `type=local,src=...`).
    #[arg(long = "cache-from")]
    pub cache_from: Vec<String>,
    /// Export the cache (`type=registry,ref=...` or `type=local,dest=...`).
    #[arg(long = "cache-to")]
    pub cache_to: Vec<String>,
    /// The build context: a directory, or `-` for a tar on stdin.
    pub context: String,
}

fn kv_list(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (p.trim().to_string(), String::new()),
        })
        .collect()
}

/// Where the built image goes besides the store.
enum Output {
    Image,
    Archive(strata_imagestore::archive::Format, PathBuf),
    Tar(PathBuf),
    Local(PathBuf),
}

fn outputs(specs: &[String]) -> Result<Vec<Output>> {
    let mut out = Vec::new();
    for s in specs {
        let kv = kv_list(s);
        // `-o DIR` alone means type=local.
        let (kind, dest) = match (kv.get("type"), kv.get("dest")) {
            (Some(t), d) => (t.clone(), d.cloned()),
            (None, _) if !s.contains('=') => ("local".into(), Some(s.clone())),
            _ => bail!("invalid --output {s:?}: type=image|oci|docker|tar|local,dest=PATH"),
        };
        let need = || {
            dest.clone()
                .map(PathBuf::from)
                .ok_or_else(|| anyhow!("--output type={kind} needs dest=PATH"))
        };
        out.push(match kind.as_str() {
            "image" | "registry" => Output::Image,
            "oci" => Output::Archive(strata_imagestore::archive::Format::OciArchive, need()?),
            "docker" => Output::Archive(strata_imagestore::archive::Format::DockerArchive, need()?),
            "tar" => Output::Tar(need()?),
            "local" => Output::Local(need()?),
            other => bail!("unsupported --output type {other:?}: image, oci, docker, tar or local"),
        });
    }
    Ok(out)
}

/// Registries for `--cache-from`/`--cache-to`, one client per host (its
/// auth tokens are kept between the manifest and the blobs).
struct Registries<'c> {
    config: &'c strata::config::Config,
    open: Mutex<HashMap<String, Arc<strata_registry::Registry>>>,
}

impl Registries<'_> {
    fn for_ref(&self, reference: &str) -> Result<Arc<strata_registry::Registry>> {
        let r = strata_imagestore::reference::Reference::parse(reference)?;
        let mut open = self
            .open
            .lock()
            .map_err(|_| anyhow!("registry lock poisoned"))?;
        if let Some(reg) = open.get(&r.domain) {
            return Ok(reg.clone());
        }
        let mut opts = self.config.registry_options(true, &r.domain);
        opts.mirrors.clear();
        opts.progress = strata_registry::progress::Mode::Quiet;
        let reg = Arc::new(strata_registry::Registry::new(opts, &[r.domain.as_str()])?);
        open.insert(r.domain.clone(), reg.clone());
        Ok(reg)
    }
}

impl shared_cache::RegistryAccess for Registries<'_> {
    fn manifest(&self, reference: &str) -> Result<(Vec<u8>, strata_imagestore::Digest)> {
        Ok(self.for_ref(reference)?.fetch_manifest(reference)?)
    }

    fn blob(&self, reference: &str, d: &strata_imagestore::Digest) -> Result<Box<dyn Read + Send>> {
        Ok(self.for_ref(reference)?.blob(reference, d)?)
    }

    fn push(
        &self,
        store: &mut Store,
        reference: &str,
        export: &strata_imagestore::cache::CacheExport,
        manifest_type: &str,
    ) -> Result<()> {
        let target = strata_imagestore::reference::Reference::parse(reference)?;
        self.for_ref(reference)?.push_manifest(
            store,
            &target,
            &export.blobs,
            &export.config,
            export.manifest.clone(),
            manifest_type,
        )?;
        Ok(())
    }
}

/// Run `strata build`; returns the exit code.
pub fn run(
    root: &Path,
    run_dir: PathBuf,
    a: &BuildArgs,
    puller: &build::Puller<'_>,
    pusher: &dyn Fn(&str) -> Result<()>,
    config: &strata::config::Config,
) -> Result<i32> {
    let cache_from: Vec<Spec> = a
        .cache_from
        .iter()
        .map(|s| shared_cache::parse(s, false))
        .collect::<Result<_>>()?;
    let cache_to: Vec<Spec> = a
        .cache_to
        .iter()
        .map(|s| shared_cache::parse(s, true))
        .collect::<Result<_>>()?;
    let format: ManifestFormat = a.format.parse()?;
    let compression = match a.compression.as_str() {
        "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        "uncompressed" | "none" => Compression::None,
        other => bail!("invalid --compression {other:?}: gzip, zstd or uncompressed"),
    };
    if compression == Compression::Zstd && format == ManifestFormat::Docker {
        bail!("--compression zstd needs --format oci: Docker manifests have no zstd layers");
    }
    let mut build_args = BTreeMap::new();
    for b in &a.build_arg {
        match b.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(b) {
                    build_args.insert(b.clone(), v);
                }
            }
        }
    }
    let timestamp = match a.timestamp {
        Some(t) => Some(t),
        None => match build_args
            .get("SOURCE_DATE_EPOCH")
            .cloned()
            .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        {
            Some(s) if !s.is_empty() => Some(s.parse::<i64>().map_err(|_| {
                anyhow!("invalid SOURCE_DATE_EPOCH {s:?}: seconds since the epoch")
            })?),
            _ => None,
        },
    };
    let mut labels = Vec::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.push((k.to_string(), v.to_string()));
    }
    let mut secrets = Vec::new();
    for s in &a.secret {
        let kv = kv_list(s);
        let id = kv
            .get("id")
            .cloned()
            .ok_or_else(|| anyhow!("--secret {s:?}: id= is required"))?;
        let data = match (kv.get("src").or_else(|| kv.get("source")), kv.get("env")) {
            (Some(f), _) => std::fs::read(f).with_context(|| format!("--secret {id}: read {f}"))?,
            (None, Some(e)) => std::env::var(e)
                .with_context(|| format!("--secret {id}: environment variable {e} is not set"))?
                .into_bytes(),
            (None, None) => std::env::var(&id)
                .with_context(|| format!("--secret {id}: give src=FILE or env=VAR"))?
                .into_bytes(),
        };
        secrets.push(Secret { id, data });
    }
    let mut ssh = Vec::new();
    for s in &a.ssh {
        let (id, path) = match s.split_once('=') {
            Some((i, p)) => (i.to_string(), PathBuf::from(p)),
            None => (
                s.clone(),
                std::env::var_os("SSH_AUTH_SOCK")
                    .map(PathBuf::from)
                    .ok_or_else(|| anyhow!("--ssh {s}: SSH_AUTH_SOCK is not set"))?,
            ),
        };
        ssh.push((id, path));
    }
    let outs = outputs(&a.output)?;
    for t in &a.tag {
        strata_imagestore::reference::Reference::parse_local(t)
            .map_err(|e| anyhow!("invalid tag {t:?}: {e}"))?;
    }
    if a.push && a.tag.is_empty() {
        bail!("--push needs a name: give one with -t");
    }
    // The context, and the Dockerfile.
    let mut stdin_used = false;
    let (ctx_dir, tmp) = if a.context == "-" {
        stdin_used = true;
        let t = tempfile::Builder::new()
            .prefix("build-context-")
            .tempdir_in(root.join("tmp"))
            .context("make a dir for the context")?;
        strata_imagestore::unpack::unpack(std::io::stdin(), t.path(), "the build context (stdin)")
            .map_err(|e| anyhow!("read the build context from stdin: {e}"))?;
        (t.path().to_path_buf(), Some(t))
    } else {
        (PathBuf::from(&a.context), None)
    };
    let (dockerfile, name, df_path) = match a.file.as_deref() {
        Some("-") => {
            if stdin_used {
                bail!("cannot read both the context and the Dockerfile from stdin");
            }
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("read the Dockerfile from stdin")?;
            (s, "Dockerfile (stdin)".to_string(), None)
        }
        f => {
            let p = match f {
                Some(f) if a.context == "-" => ctx_dir.join(f),
                Some(f) => PathBuf::from(f),
                None => {
                    let d = ctx_dir.join("Dockerfile");
                    if d.exists() || !ctx_dir.join("Containerfile").exists() {
                        d
                    } else {
                        ctx_dir.join("Containerfile")
                    }
                }
            };
            let text = std::fs::read_to_string(&p).map_err(|e| {
                anyhow!(
                    "failed to read dockerfile: open {}: {}",
                    p.display(),
                    e.to_string().to_lowercase()
                )
            })?;
            (text, p.display().to_string(), Some(p))
        }
    };
    // `<Dockerfile>.dockerignore` beside the Dockerfile wins.
    let ignore = df_path
        .as_ref()
        .map(|p| PathBuf::from(format!("{}.dockerignore", p.display())))
        .filter(|p| p.is_file());
    let ctx = BuildContext::open(&ctx_dir, ignore.as_deref(), tmp)?;
    let mode = progress::Mode::pick(&a.progress, a.quiet)?;
    let progress = progress::Progress::new(mode, Box::new(std::io::stderr()));
    let o = BuildOptions {
        dockerfile,
        dockerfile_name: name,
        build_args,
        labels,
        target: a.target.clone(),
        no_cache: a.no_cache,
        pull: a.pull,
        compression,
        timestamp,
        network: a.network.clone(),
        secrets,
        ssh,
        platform: a.platform.clone(),
    };
    if let Some(p) = &o.platform {
        strata::build::solve::check_platform(p)?;
    }
    let host = strata::build::steps::run::Host {
        root: root.to_path_buf(),
        run_dir,
        exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("strata")),
    };
    let registries = Registries {
        config,
        open: Mutex::new(HashMap::new()),
    };
    let sharing = build::Sharing {
        from: cache_from,
        to: cache_to,
        registry: Some(&registries),
    };
    let built = build::build(&o, host, &ctx, &progress, puller, &a.tag, format, &sharing)?;
    let mut store = Store::open(root)?;
    for out in &outs {
        match out {
            Output::Image => {}
            Output::Archive(f, dest) => {
                strata_imagestore::archive::save(&store, &[built.id.to_string()], *f, dest)
                    .with_context(|| format!("write {}", dest.display()))?;
            }
            Output::Tar(dest) => {
                strata::containers::changes::export_image(&mut store, &built.id, dest)?
            }
            Output::Local(dest) => {
                strata::containers::changes::copy_image_to(&mut store, &built.id, dest)?
            }
        }
    }
    if a.push {
        for t in &a.tag {
            pusher(t).with_context(|| format!("push {t}"))?;
        }
    }
    if let Some(f) = &a.iidfile {
        std::fs::write(f, built.id.to_string())
            .with_context(|| format!("write {}", f.display()))?;
    }
    if a.quiet {
        println!("{}", built.id);
    }
    let _ = std::io::stderr().flush();
    Ok(0)
}

/// `build-step-run` (internal): run one build step's container in the
/// foreground with our stdio, and exit with its status. A runtime error
/// goes to the result file, so the builder tells it from the command's
/// own failure.
pub fn step_run(state: &Path, bundle: &Path, id: &str, result: &Path) -> i32 {
    let root = strata_runtime::state::Root::new(state.to_path_buf());
    let opts = strata_runtime::container::create::CreateOptions {
        id: id.to_string(),
        bundle: bundle.to_path_buf(),
        ..Default::default()
    };
    match strata_runtime::container::run::run(&root, &opts, false, false) {
        Ok(code) => code,
        Err(e) => {
            let _ = std::fs::write(result, e.to_string());
            let _ = strata_runtime::container::delete::delete(&root, id, true);
            125
        }
    }
}
