//! `strata`: a Docker-style CLI. Exit codes as Docker: 125 when strata
//! itself fails.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use strata::images;
use strata_imagestore::Store;

mod commands;
mod containers_cli;
use containers_cli::{ContainerCmd, CreateArgs, ExecArgs, LogsArgs, PsArgs};

#[derive(Parser)]
#[command(name = "strata", version, about = "Build, ship and run containers")]
struct Cli {
    /// Storage root (default /var/lib/strata, or $XDG_DATA_HOME/strata).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    #[arg(long, global = true)]
    debug: bool,
    /// Config file (default /etc/strata/strata.toml, or $STRATA_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create and start a container.
    #[command(disable_help_flag = true)]
    Run(Box<CreateArgs>),
    /// Create a container without starting it.
    #[command(disable_help_flag = true)]
    Create(Box<CreateArgs>),
    /// Start created or stopped containers.
    Start {
        /// Attach to the output and wait.
        #[arg(short, long)]
        attach: bool,
        /// The key sequence that detaches from a `-it` container.
        #[arg(long = "detach-keys", default_value = "ctrl-p,ctrl-q")]
        detach_keys: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop containers: the stop signal, then SIGKILL after the timeout.
    Stop {
        #[arg(short, long)]
        time: Option<u32>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to containers (default SIGKILL).
    Kill {
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop and start containers again.
    Restart {
        #[arg(short, long)]
        time: Option<u32>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers.
    Rm {
        #[arg(short, long)]
        force: bool,
        /// Also remove the container's anonymous volumes.
        #[arg(short, long)]
        volumes: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers.
    Ps(PsArgs),
    /// Show a container's output.
    Logs(LogsArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Wait for containers to stop; print their exit codes.
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Attach to a running container's input and output; its exit code.
    Attach(containers_cli::AttachArgs),
    /// Show containers or images as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show a container's processes.
    Top { container: String },
    /// Show a container's published ports.
    Port { container: String },
    /// Container commands.
    #[command(subcommand)]
    Container(ContainerCmd),
    /// The per-container monitor (internal).
    #[command(hide = true, name = "container-monitor")]
    ContainerMonitor {
        /// fds 4 and 5 are the attached CLI's stdout and stderr.
        #[arg(long)]
        attach: bool,
        /// Detach keys of a foreground `-it` run.
        #[arg(long = "detach-keys", default_value = "")]
        detach_keys: String,
        id: String,
    },
    /// Build an image from a Dockerfile.
    Build(Box<commands::build::BuildArgs>),
    /// Run one build step's container (internal).
    #[command(hide = true, name = "build-step-run")]
    BuildStepRun {
        #[arg(long)]
        state: PathBuf,
        #[arg(long)]
        bundle: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(long)]
        result: PathBuf,
    },
    /// Build cache commands.
    #[command(subcommand)]
    Builder(BuilderCmd),
    /// Create a new image from a container's changes.
    Commit(commands::images::CommitArgs),
    /// Show a container's changed files (A added, C changed, D deleted).
    Diff { container: String },
    /// Write a container's filesystem as a tar archive.
    Export {
        #[arg(short, long)]
        output: Option<PathBuf>,
        container: String,
    },
    /// Show an image's history.
    History(commands::images::HistoryArgs),
    /// Copy files between a container and the host.
    Cp {
        /// Keep the owners (uid:gid) of what is copied.
        #[arg(short, long)]
        archive: bool,
        /// Accepted for Docker compatibility (symlinks are copied as symlinks).
        #[arg(short = 'L', long = "follow-link")]
        follow_link: bool,
        source: String,
        destination: String,
    },
    /// Create an image from a rootfs tarball ("-" for stdin).
    Import {
        tarball: String,
        name: Option<String>,
    },
    /// Load images from an OCI layout dir, oci-archive or docker-archive.
    Load {
        #[arg(short, long)]
        input: Option<PathBuf>,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Pull an image from a registry.
    Pull {
        /// Directory with HOST/*.crt CA files (default /etc/strata/certs.d).
        #[arg(long = "cert-dir")]
        cert_dir: Option<PathBuf>,
        #[arg(short, long)]
        quiet: bool,
        /// os/arch[/variant] to pick from a multi-platform image.
        #[arg(long)]
        platform: Option<String>,
        #[arg(long = "tls-verify", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        tls_verify: bool,
        reference: String,
    },
    /// Push an image to a registry.
    Push {
        /// Directory with HOST/*.crt CA files (default /etc/strata/certs.d).
        #[arg(long = "cert-dir")]
        cert_dir: Option<PathBuf>,
        #[arg(long = "tls-verify", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        tls_verify: bool,
        /// No progress output.
        #[arg(short, long)]
        quiet: bool,
        image: String,
        destination: Option<String>,
    },
    /// Log in to a registry (credentials in $DOCKER_CONFIG/config.json).
    Login {
        /// Directory with HOST/*.crt CA files (default /etc/strata/certs.d).
        #[arg(long = "cert-dir")]
        cert_dir: Option<PathBuf>,
        #[arg(short, long)]
        username: Option<String>,
        #[arg(short, long)]
        password: Option<String>,
        #[arg(long = "password-stdin")]
        password_stdin: bool,
        #[arg(long = "tls-verify", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        tls_verify: bool,
        host: String,
    },
    /// Remove stored credentials for a registry.
    Logout { host: String },
    /// Save images to a tar archive.
    Save {
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, default_value = "docker-archive")]
        format: String,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// List images.
    Images(ImagesArgs),
    /// Give an image another name.
    Tag { source: String, target: String },
    /// Remove images.
    Rmi {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Image commands.
    #[command(subcommand)]
    Image(ImageCmd),
    /// Storage-wide commands.
    #[command(subcommand)]
    System(SystemCmd),
}

#[derive(clap::Args)]
struct ImagesArgs {
    #[arg(short, long)]
    quiet: bool,
    #[arg(long, default_value = "table")]
    format: String,
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Show image details as JSON.
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    #[command(alias = "list")]
    Ls(ImagesArgs),
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    Tag {
        source: String,
        target: String,
    },
    /// Remove dangling (unnamed, unused) images and unused blobs and snapshots.
    Prune,
    /// Mount an image read-only and print the path.
    Mount {
        image: String,
    },
    /// Unmount an image mounted with `image mount`.
    Unmount {
        image: String,
    },
    /// Show an image's history.
    History(commands::images::HistoryArgs),
    /// Build an image from a Dockerfile.
    Build(Box<commands::build::BuildArgs>),
}

#[derive(Subcommand)]
enum BuilderCmd {
    /// Remove the build cache (entries, and the layers only it kept).
    Prune {
        /// Everything (the default here: there are no cache filters yet).
        #[arg(short, long)]
        all: bool,
        /// Do not ask (nothing is asked: accepted for Docker scripts).
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum SystemCmd {
    /// Disk usage.
    Df,
    /// Re-verify every blob and snapshot; clean debris of interrupted loads.
    Check,
}

fn main() {
    // Die quietly on a closed pipe (`strata images | head`), like other CLIs.
    // SAFETY: restoring the default disposition installs no handler.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    // Usage errors exit 125, as Docker's do; help and version 0.
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if cli.debug {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .try_init();
    }
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::exit(containers_cli::start_error_code(&e));
        }
    }
}

fn rmi(store: &mut Store, names: &[String], force: bool, out: &mut impl Write) -> Result<()> {
    let mut failed = None;
    for n in names {
        match store.remove(n, force, &|_| false) {
            Ok(lines) => {
                for l in lines {
                    writeln!(out, "{l}")?;
                }
            }
            Err(e) => {
                eprintln!("Error: {e}");
                failed = Some(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn run(cli: Cli) -> Result<i32> {
    let default_root = cli.root.is_none();
    let root = cli.root.clone().unwrap_or_else(strata::paths::default_root);
    let config = strata::config::load(cli.config.as_deref())?;
    let mut store =
        Store::open(&root).with_context(|| format!("open store at {}", root.display()))?;
    if let Cmd::BuildStepRun {
        state,
        bundle,
        id,
        result,
    } = &cli.cmd
    {
        drop(store);
        return Ok(commands::build::step_run(state, bundle, id, result));
    }
    if let Cmd::Build(a) | Cmd::Image(ImageCmd::Build(a)) = &cli.cmd {
        drop(store);
        let run_dir = if default_root {
            PathBuf::from("/run/strata")
        } else {
            root.join("run")
        };
        let cfg = &config;
        let puller = |name: &str| -> Result<()> {
            let mut s = Store::open(&root)?;
            pull_quietly(&mut s, cfg, name, true)
        };
        let pusher = |name: &str| -> Result<()> {
            let mut s = Store::open(&root)?;
            push_quietly(&mut s, cfg, name)
        };
        // A failed build exits 1, as docker build does.
        return match commands::build::run(&root, run_dir, a, &puller, &pusher, cfg) {
            Ok(code) => Ok(code),
            Err(e) => {
                eprintln!("Error: {e:#}");
                Ok(1)
            }
        };
    }
    if is_container_cmd(&cli.cmd) {
        let engine = strata::containers::Engine::new(root, store, default_root);
        return run_container(cli.cmd, engine, &config);
    }
    let mut out = std::io::stdout().lock();
    match cli.cmd {
        Cmd::Import { tarball, name } => {
            let id = if tarball == "-" {
                store.import(std::io::stdin(), name.as_deref())?
            } else {
                let f = std::fs::File::open(&tarball).with_context(|| format!("open {tarball}"))?;
                store.import(f, name.as_deref())?
            };
            writeln!(out, "{id}")?;
        }
        Cmd::Load { input, quiet } => {
            let loaded = match input {
                Some(p) => store.load(&p)?,
                None => {
                    // From stdin: spool to the store's tmp, then load.
                    let tmp = store
                        .root()
                        .join("tmp")
                        .join(format!("stdin-{}.tar", std::process::id()));
                    let mut f = std::fs::File::create(&tmp).context("spool stdin")?;
                    std::io::copy(&mut std::io::stdin().lock(), &mut f).context("read stdin")?;
                    let r = store.load(&tmp);
                    let _ = std::fs::remove_file(&tmp);
                    r?
                }
            };
            for (id, names) in loaded {
                if quiet {
                    writeln!(out, "{id}")?;
                } else if names.is_empty() {
                    writeln!(out, "Loaded image ID: {id}")?;
                } else {
                    for n in names {
                        writeln!(out, "Loaded image: {n}")?;
                    }
                }
            }
        }
        Cmd::Images(a) | Cmd::Image(ImageCmd::Ls(a)) => {
            images::list(&store, a.quiet, &a.format, &mut out)?
        }
        Cmd::Tag { source, target } | Cmd::Image(ImageCmd::Tag { source, target }) => {
            store.tag(&source, &target)?;
        }
        Cmd::Rmi { force, images } | Cmd::Image(ImageCmd::Rm { force, images }) => {
            rmi(&mut store, &images, force, &mut out)?
        }
        Cmd::Image(ImageCmd::Inspect { images: names }) => {
            images::inspect(&store, &names, &mut out)?
        }
        Cmd::Image(ImageCmd::Prune) => {
            for id in store.prune(&|_| false)? {
                writeln!(out, "Deleted: {id}")?;
            }
        }
        Cmd::Image(ImageCmd::Mount { image }) => {
            let id = store.resolve(&image)?;
            writeln!(out, "{}", store.mount_image(&id)?.display())?;
        }
        Cmd::Image(ImageCmd::Unmount { image }) => {
            let id = store.resolve(&image)?;
            writeln!(out, "{}", store.unmount_image(&id)?.display())?;
        }
        Cmd::Pull {
            quiet,
            platform,
            tls_verify,
            reference,
            cert_dir,
        } => {
            let r = strata_imagestore::reference::Reference::parse(&reference)?;
            let mut opts = config.registry_options(tls_verify, &r.domain);
            opts.platform = platform;
            if quiet {
                opts.progress = strata_registry::progress::Mode::Quiet;
            }
            opts.certs_dir = cert_dir;
            let hosts = strata_registry::Registry::hosts_for(&opts, &r.domain);
            let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
            let reg = strata_registry::Registry::new(opts, &hosts)?;
            if !quiet {
                writeln!(out, "Trying to pull {r}...")?;
            }
            let id = reg.pull(&mut store, &reference)?;
            writeln!(out, "{id}")?;
        }
        Cmd::Push {
            tls_verify,
            image,
            destination,
            cert_dir,
            quiet,
        } => {
            let dest = destination.as_deref().unwrap_or(&image);
            let r = strata_imagestore::reference::Reference::parse(dest)?;
            let mut opts = config.registry_options(tls_verify, &r.domain);
            opts.mirrors.clear(); // pushes go to the registry itself
            opts.certs_dir = cert_dir;
            if quiet {
                opts.progress = strata_registry::progress::Mode::Quiet;
            }
            let reg = strata_registry::Registry::new(opts, &[r.domain.as_str()])?;
            let digest = reg.push(&mut store, &image, destination.as_deref())?;
            writeln!(out, "Pushed {r}: {digest}")?;
        }
        Cmd::Login {
            username,
            password,
            password_stdin,
            tls_verify,
            host,
            cert_dir,
        } => {
            let user = username.context("--username is required (non-interactive)")?;
            let pass = match (password, password_stdin) {
                (Some(p), false) => p,
                (None, true) => {
                    let mut p = String::new();
                    std::io::stdin()
                        .read_line(&mut p)
                        .context("read password from stdin")?;
                    p.trim_end_matches(['\n', '\r']).to_string()
                }
                (Some(_), true) => {
                    anyhow::bail!("--password and --password-stdin are mutually exclusive")
                }
                (None, false) => anyhow::bail!("give --password or --password-stdin"),
            };
            let mut opts = config.registry_options(tls_verify, &host);
            opts.mirrors.clear();
            opts.certs_dir = cert_dir;
            let reg = strata_registry::Registry::new(opts, &[host.as_str()])?;
            reg.check_login(&host, &user, &pass)?;
            strata_registry::credentials::store(&host, &user, &pass)?;
            writeln!(out, "Login Succeeded!")?;
        }
        Cmd::Logout { host } => {
            if strata_registry::credentials::erase(&host)? {
                writeln!(out, "Removed login credentials for {host}")?;
            } else {
                anyhow::bail!("not logged in to {host}");
            }
        }
        Cmd::Save {
            output,
            format,
            images: names,
        } => {
            let format: strata_imagestore::archive::Format = format.parse()?;
            strata_imagestore::archive::save(&store, &names, format, &output)?;
        }
        Cmd::History(a) | Cmd::Image(ImageCmd::History(a)) => {
            commands::images::history(&store, &a, &mut out)?
        }
        Cmd::Builder(BuilderCmd::Prune { .. }) => {
            let (entries, blobs, snaps) = store.cache_prune(None)?;
            writeln!(
                out,
                "Deleted build cache objects: {entries} ({blobs} blobs, {snaps} snapshots)"
            )?;
        }
        Cmd::System(SystemCmd::Df) => {
            let (n, size, blobs, snaps) = store.df()?;
            writeln!(out, "TYPE        TOTAL   SIZE")?;
            writeln!(out, "Images      {n:<7} {}", images::human_size(size))?;
            writeln!(out, "Blobs       -       {}", images::human_size(blobs))?;
            writeln!(out, "Snapshots   {snaps:<7} -")?;
        }
        Cmd::System(SystemCmd::Check) => {
            let problems = store.check()?;
            if problems.is_empty() {
                writeln!(out, "store is consistent")?;
            } else {
                for p in &problems {
                    writeln!(out, "{p}")?;
                }
                anyhow::bail!("{} problem(s) found", problems.len());
            }
        }
        _ => unreachable!("container commands are handled by run_container"),
    }
    Ok(0)
}

fn is_container_cmd(c: &Cmd) -> bool {
    matches!(
        c,
        Cmd::Run(_)
            | Cmd::Create(_)
            | Cmd::Start { .. }
            | Cmd::Stop { .. }
            | Cmd::Kill { .. }
            | Cmd::Restart { .. }
            | Cmd::Rm { .. }
            | Cmd::Ps(_)
            | Cmd::Logs(_)
            | Cmd::Exec(_)
            | Cmd::Wait { .. }
            | Cmd::Attach(_)
            | Cmd::Inspect { .. }
            | Cmd::Top { .. }
            | Cmd::Port { .. }
            | Cmd::Container(_)
            | Cmd::ContainerMonitor { .. }
            | Cmd::Commit(_)
            | Cmd::Diff { .. }
            | Cmd::Export { .. }
            | Cmd::Cp { .. }
    )
}

/// Pull `reference` into the store (for `run --pull`).
fn pull_quietly(
    store: &mut Store,
    config: &strata::config::Config,
    reference: &str,
    tls_verify: bool,
) -> Result<()> {
    let r = strata_imagestore::reference::Reference::parse(reference)?;
    let opts = config.registry_options(tls_verify, &r.domain);
    let hosts = strata_registry::Registry::hosts_for(&opts, &r.domain);
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let reg = strata_registry::Registry::new(opts, &hosts)?;
    reg.pull(store, reference)?;
    Ok(())
}

/// Push `image` to the registry its name names (for `build --push`).
fn push_quietly(store: &mut Store, config: &strata::config::Config, image: &str) -> Result<()> {
    let r = strata_imagestore::reference::Reference::parse(image)?;
    let mut opts = config.registry_options(true, &r.domain);
    opts.mirrors.clear();
    opts.progress = strata_registry::progress::Mode::Quiet;
    let reg = strata_registry::Registry::new(opts, &[r.domain.as_str()])?;
    reg.push(store, image, None)?;
    Ok(())
}

/// Create a container, pulling its image first as `--pull` says.
fn create(
    engine: &mut strata::containers::Engine,
    a: &CreateArgs,
    config: &strata::config::Config,
) -> Result<String> {
    let opts = containers_cli::create_options(a)?;
    let present = engine.store.resolve(&a.image).is_ok();
    match a.pull.as_str() {
        "always" => pull_quietly(&mut engine.store, config, &a.image, a.tls_verify)?,
        "missing" if !present => pull_quietly(&mut engine.store, config, &a.image, a.tls_verify)
            .with_context(|| {
                format!("{}: image not known locally, and the pull failed", a.image)
            })?,
        "never" if !present => anyhow::bail!("{}: image not known locally (--pull never)", a.image),
        _ => {}
    }
    engine.create(&opts)
}

fn run_container(
    cmd: Cmd,
    mut engine: strata::containers::Engine,
    config: &strata::config::Config,
) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    // Several containers: go on after a failure, exit 1 as Docker does.
    let each = |names: &[String],
                f: &mut dyn FnMut(&str) -> Result<String>,
                out: &mut dyn Write|
     -> Result<i32> {
        let mut failed = 0;
        for n in names {
            match f(n) {
                Ok(s) => writeln!(out, "{s}")?,
                Err(e) => {
                    eprintln!("Error: {e:#}");
                    failed += 1;
                }
            }
        }
        if failed > 0 && failed == names.len() && names.len() == 1 {
            return Ok(125);
        }
        Ok(if failed > 0 { 1 } else { 0 })
    };
    match cmd {
        Cmd::ContainerMonitor {
            id,
            attach,
            detach_keys,
        } => {
            drop(out);
            Ok(strata::containers::monitor::main(
                &engine,
                &id,
                attach,
                &detach_keys,
            ))
        }
        Cmd::Create(a) => {
            let id = create(&mut engine, &a, config)?;
            writeln!(out, "{id}")?;
            Ok(0)
        }
        Cmd::Run(a) => {
            let id = create(&mut engine, &a, config)?;
            let fg = match (!a.detach).then(|| containers_cli::Foreground::prepare(a.tty)) {
                Some(Err(e)) => {
                    let _ = engine.remove(&id, true, true);
                    return Err(e);
                }
                Some(Ok(fg)) => Some(fg),
                None => None,
            };
            let keys = if a.tty && a.interactive {
                a.detach_keys.as_str()
            } else {
                ""
            };
            let monitor = match engine.start_with(&id, !a.detach, keys) {
                Ok(m) => m,
                Err(e) => {
                    // As Docker: a run whose command cannot start leaves
                    // the container created, with the error and 125/126/127
                    // in its state, unless --rm asked for it to go.
                    if a.rm {
                        let _ = engine.remove(&id, true, true);
                    }
                    return Err(e);
                }
            };
            if a.detach {
                writeln!(out, "{id}")?;
                return Ok(0);
            }
            drop(out);
            match fg {
                Some(fg) => containers_cli::attach_wait(&engine, &id, monitor, fg),
                None => Ok(0),
            }
        }
        Cmd::Start {
            attach,
            detach_keys,
            containers,
        } => {
            if attach {
                let [c] = containers.as_slice() else {
                    anyhow::bail!("start --attach takes one container");
                };
                let id = engine.find(c)?.id;
                let rec = engine.dir(&id).record()?;
                let keys = if rec.tty && rec.interactive {
                    detach_keys.as_str()
                } else {
                    ""
                };
                strata::containers::attach::parse_detach_keys(keys)?;
                let fg = containers_cli::Foreground::prepare(rec.tty)?;
                let m = engine.start_with(&id, true, keys)?;
                drop(out);
                return containers_cli::attach_wait(&engine, &id, m, fg);
            }
            each(
                &containers,
                &mut |c| {
                    engine.start(c, false)?;
                    Ok(c.to_string())
                },
                &mut out,
            )
        }
        Cmd::Stop { time, containers } => each(
            &containers,
            &mut |c| {
                engine.stop(c, time)?;
                Ok(c.to_string())
            },
            &mut out,
        ),
        Cmd::Restart { time, containers } => each(
            &containers,
            &mut |c| {
                engine.stop(c, time)?;
                engine.start(c, false)?;
                Ok(c.to_string())
            },
            &mut out,
        ),
        Cmd::Kill { signal, containers } => each(
            &containers,
            &mut |c| {
                engine.kill(c, &signal)?;
                Ok(c.to_string())
            },
            &mut out,
        ),
        Cmd::Rm {
            force,
            volumes,
            containers,
        } => each(
            &containers,
            &mut |c| {
                engine.remove(c, force, volumes)?;
                Ok(c.to_string())
            },
            &mut out,
        ),
        Cmd::Wait { containers } => each(
            &containers,
            &mut |c| {
                let id = engine.find(c)?.id;
                Ok(engine.wait(&id, None)?.unwrap_or(0).to_string())
            },
            &mut out,
        ),
        Cmd::Ps(a) | Cmd::Container(ContainerCmd::Ls(a)) => {
            containers_cli::ps(&engine, &a, &mut out)?;
            Ok(0)
        }
        Cmd::Logs(a) => {
            let c = engine.find(&a.container)?;
            let tail = match a.tail.as_deref() {
                None | Some("all") => None,
                Some(n) => Some(
                    n.parse::<usize>()
                        .map_err(|_| anyhow::anyhow!("invalid --tail {n:?}"))?,
                ),
            };
            drop(out);
            let dir = engine.dir(&c.id);
            let done = || {
                engine
                    .refresh(&c.id)
                    .map(|s| s.status != strata::containers::record::Status::Running)
                    .unwrap_or(true)
            };
            strata::containers::logs::print(&dir.log(), tail, a.timestamps, a.follow, &done)?;
            Ok(0)
        }
        Cmd::Attach(a) => {
            drop(out);
            containers_cli::attach(&engine, &a)
        }
        Cmd::Exec(a) => {
            drop(out);
            containers_cli::exec(&engine, &a)
        }
        Cmd::Inspect { names } | Cmd::Container(ContainerCmd::Inspect { containers: names }) => {
            let mut all = Vec::new();
            for n in &names {
                match containers_cli::inspect_container(&engine, n) {
                    Ok(v) => all.push(v),
                    Err(_) => {
                        let id = engine
                            .store
                            .resolve(n)
                            .map_err(|_| anyhow::anyhow!("no such object: {n}"))?;
                        all.push(engine.store.inspect(&id)?);
                    }
                }
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
            Ok(0)
        }
        Cmd::Commit(a) => {
            let id = commands::images::commit(&mut engine, &a)?;
            writeln!(out, "{id}")?;
            Ok(0)
        }
        Cmd::Diff { container } => {
            for l in engine.diff(&container)? {
                writeln!(out, "{l}")?;
            }
            Ok(0)
        }
        Cmd::Export { output, container } => {
            let dest = output.unwrap_or_else(|| PathBuf::from("-"));
            if dest == std::path::Path::new("-") && nix::unistd::isatty(1).unwrap_or(false) {
                anyhow::bail!(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                );
            }
            drop(out);
            engine.export(&container, &dest)?;
            Ok(0)
        }
        Cmd::Cp {
            archive,
            source,
            destination,
            ..
        } => {
            engine.cp(&source, &destination, archive)?;
            Ok(0)
        }
        Cmd::Top { container } => {
            containers_cli::top(&engine, &container, &mut out)?;
            Ok(0)
        }
        Cmd::Port { container } => {
            let c = engine.find(&container)?;
            for p in engine.dir(&c.id).record()?.ports {
                writeln!(
                    out,
                    "{}/{} -> {}:{}",
                    p.container_port,
                    p.protocol,
                    p.host_addr(),
                    p.host_port
                )?;
            }
            Ok(0)
        }
        Cmd::Container(ContainerCmd::Prune) => {
            for c in engine.store.containers()? {
                if engine.refresh(&c.id)?.status != strata::containers::record::Status::Running {
                    engine.remove(&c.id, false, false)?;
                    writeln!(out, "{}", c.id)?;
                }
            }
            Ok(0)
        }
        _ => unreachable!("image commands are handled by run"),
    }
}
