//! The `strata` command line: the clap tree and the dispatch to one file
//! per verb group (containers, images, registry, build, system). Output
//! (tables, JSON, Go templates) is in [`crate::format`].

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use strata_imagestore::Store;

pub mod build;
pub mod containers;
pub mod events;
pub mod images;
pub mod networks;
pub mod registry;
pub mod system;
pub mod volumes;

use containers::{ContainerCmd, CreateArgs, ExecArgs, LogsArgs, PsArgs};

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    disable_version_flag = false,
    about = "Build, ship and run containers"
)]
pub(crate) struct Cli {
    /// Storage root (default /var/lib/strata, or $XDG_DATA_HOME/strata).
    #[arg(long, global = true)]
    pub(crate) root: Option<PathBuf>,
    #[arg(long, global = true)]
    pub(crate) debug: bool,
    /// Config file (default /etc/strata/strata.toml, or $STRATA_CONFIG).
    #[arg(long, global = true)]
    pub(crate) config: Option<PathBuf>,
    /// Storage options, as podman's: overlay.mount_program=PATH mounts
    /// overlays with a FUSE program (fuse-overlayfs).
    #[arg(long = "storage-opt", global = true, value_name = "KEY=VALUE")]
    pub(crate) storage_opt: Vec<String>,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
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
        /// stopped (also exited), running, paused or removed.
        #[arg(long, default_value = "stopped")]
        condition: String,
        /// How often to look, in milliseconds.
        #[arg(short, long, default_value_t = 250)]
        interval: u64,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Attach to a running container's input and output; its exit code.
    Attach(containers::AttachArgs),
    /// Show containers or images as JSON.
    Inspect {
        /// A Go template for each object (`{{.State.Status}}`), or json.
        #[arg(short, long)]
        format: Option<String>,
        /// container or image: look only among those.
        #[arg(long = "type")]
        kind: Option<String>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show a container's processes.
    Top { container: String },
    /// Give a container a new name.
    Rename { container: String, new_name: String },
    /// Live CPU, memory, network, block I/O and pids of containers.
    Stats(containers::StatsArgs),
    /// Change the resource limits of containers.
    Update(containers::UpdateArgs),
    /// Freeze every process of containers.
    Pause(containers::Names),
    /// Thaw paused containers.
    Unpause(containers::Names),
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
    Build(Box<build::BuildArgs>),
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
    Commit(images::CommitArgs),
    /// Show a container's changed files (A added, C changed, D deleted).
    Diff { container: String },
    /// Write a container's filesystem as a tar archive.
    Export {
        #[arg(short, long)]
        output: Option<PathBuf>,
        container: String,
    },
    /// Show an image's history.
    History(images::HistoryArgs),
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
    /// Search a registry's index (its v1 search API) for images.
    Search {
        /// Most results to show.
        #[arg(long, default_value_t = 25)]
        limit: u32,
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// stars=N, is-official=true|false, is-automated=true|false.
        #[arg(short, long)]
        filter: Vec<String>,
        #[arg(long, default_value = "table")]
        format: String,
        #[arg(long = "tls-verify", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        tls_verify: bool,
        /// TERM, or REGISTRY/TERM for another registry than docker.io.
        term: String,
    },
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
    /// Volume commands.
    #[command(subcommand)]
    Volume(volumes::VolumeCmd),
    /// Network commands.
    #[command(subcommand)]
    Network(networks::NetworkCmd),
    /// Healthcheck commands.
    #[command(subcommand)]
    Healthcheck(HealthcheckCmd),
    /// One healthcheck probe in a container (internal).
    #[command(hide = true, name = "healthcheck-probe")]
    HealthcheckProbe {
        #[arg(long = "run-dir")]
        run_dir: PathBuf,
        id: String,
    },
    /// A user network's DNS server (internal).
    #[command(hide = true, name = "network-dns")]
    NetworkDns {
        dir: PathBuf,
        listen: std::net::Ipv4Addr,
    },
    /// A rootless container's published ports on a user network (internal).
    #[command(hide = true, name = "port-proxy")]
    PortProxy {
        netns: PathBuf,
        ip: std::net::Ipv4Addr,
        forwards: Vec<String>,
    },
    /// Show events: past ones with --since, then new ones as they happen.
    Events(events::EventsArgs),
    /// Show the version.
    Version {
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Show engine-wide information.
    Info {
        #[arg(short, long)]
        format: Option<String>,
    },
}

#[derive(clap::Args)]
pub(crate) struct ImagesArgs {
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// table, json, or a Go template (`{{.Repository}}:{{.Tag}}`).
    #[arg(long, default_value = "table")]
    pub(crate) format: String,
    /// dangling=, label=, reference=, before=, since= (repeatable).
    #[arg(short, long)]
    pub(crate) filter: Vec<String>,
}

#[derive(Subcommand)]
pub(crate) enum ImageCmd {
    /// Show image details as JSON, or through a Go template.
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
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
    History(images::HistoryArgs),
    /// Build an image from a Dockerfile.
    Build(Box<build::BuildArgs>),
}

#[derive(Subcommand)]
pub(crate) enum BuilderCmd {
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
pub(crate) enum SystemCmd {
    /// Disk usage.
    Df,
    /// Re-verify every blob and snapshot; clean debris of interrupted loads.
    Check,
    /// Show engine-wide information.
    Info {
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Show events.
    Events(events::EventsArgs),
    /// Remove stopped containers, dangling images and the build cache
    /// (`-a`: every unused image; `--volumes`: unused volumes too).
    Prune(system::PruneArgs),
}

#[derive(Subcommand)]
pub(crate) enum HealthcheckCmd {
    /// Run a container's healthcheck now: exit 0 healthy, 1 not.
    Run { container: String },
}

/// `--storage-opt` over strata.toml's `[storage]`: the mount program,
/// passed on to this process's mounts and the monitors it starts.
fn use_storage_options(opts: &[String], config: &strata::config::Config) -> Result<()> {
    let mut program = config.storage.mount_program.clone();
    for o in opts {
        match o.split_once('=') {
            Some(("overlay.mount_program", p)) => program = Some(PathBuf::from(p)),
            _ => anyhow::bail!("invalid --storage-opt {o:?}: want overlay.mount_program=PATH"),
        }
    }
    if let Some(p) = program.filter(|p| !p.as_os_str().is_empty()) {
        if !p.is_file() {
            anyhow::bail!("mount program {} not found", p.display());
        }
        // SAFETY: set before this command starts any thread.
        unsafe { std::env::set_var(strata_imagestore::mounts::MOUNT_PROGRAM_ENV, &p) };
    }
    Ok(())
}

/// Run one parsed command line; the exit code.
pub(crate) fn run(cli: Cli) -> Result<i32> {
    // The version needs no store: nothing is opened or made for it.
    if let Cmd::Version { format } = &cli.cmd {
        return system::version(format.as_deref());
    }
    if let Cmd::HealthcheckProbe { run_dir, id } = &cli.cmd {
        let root = cli.root.clone().unwrap_or_else(strata::paths::default_root);
        return Ok(strata::containers::health::probe_main(&root, run_dir, id));
    }
    if let Cmd::NetworkDns { dir, listen } = &cli.cmd {
        strata::network::dns::serve(dir, *listen)?;
        return Ok(0);
    }
    if let Cmd::PortProxy {
        netns,
        ip,
        forwards,
    } = &cli.cmd
    {
        use strata::network::port_proxy::{Forward, serve};
        let forwards: Vec<Forward> = forwards
            .iter()
            .map(|f| Forward::parse(f))
            .collect::<Result<_>>()?;
        serve(netns, *ip, &forwards)?;
        return Ok(0);
    }
    let default_root = cli.root.is_none();
    let root = cli.root.clone().unwrap_or_else(strata::paths::default_root);
    let config = strata::config::load(cli.config.as_deref())?;
    use_storage_options(&cli.storage_opt, &config)?;
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
        return Ok(build::step_run(state, bundle, id, result));
    }
    if let Cmd::Build(a) | Cmd::Image(ImageCmd::Build(a)) = &cli.cmd {
        drop(store);
        let run_dir = if default_root {
            strata::paths::default_run_dir()
        } else {
            root.join("run")
        };
        let cfg = &config;
        let puller = |name: &str| -> Result<()> {
            let mut s = Store::open(&root)?;
            registry::pull_quietly(&mut s, cfg, name, true)
        };
        let pusher = |name: &str| -> Result<()> {
            let mut s = Store::open(&root)?;
            registry::push_quietly(&mut s, cfg, name)
        };
        // A failed build exits 1, as docker build does.
        return match build::run(&root, run_dir, a, &puller, &pusher, cfg) {
            Ok(code) => Ok(code),
            Err(e) => {
                eprintln!("Error: {e:#}");
                Ok(1)
            }
        };
    }
    if let Cmd::Events(a) | Cmd::System(SystemCmd::Events(a)) = &cli.cmd {
        drop(store);
        return events::run(&root, a);
    }
    // Verbs that need the container engine: one engine, one dispatch.
    let engine_verb = matches!(
        cli.cmd,
        Cmd::Info { .. }
            | Cmd::System(SystemCmd::Info { .. } | SystemCmd::Prune(_))
            | Cmd::Volume(_)
            | Cmd::Network(_)
            | Cmd::Healthcheck(_)
    ) || is_container_cmd(&cli.cmd);
    if engine_verb {
        let mut engine = strata::containers::Engine::new(root, store, default_root);
        return match cli.cmd {
            Cmd::Info { format } | Cmd::System(SystemCmd::Info { format }) => {
                system::info(&engine, format.as_deref())
            }
            Cmd::System(SystemCmd::Prune(a)) => system::prune(&mut engine, &a),
            Cmd::Volume(v) => volumes::run(v, &engine),
            Cmd::Network(n) => networks::run(n, &engine),
            Cmd::Healthcheck(HealthcheckCmd::Run { container }) => {
                containers::healthcheck_run(&engine, &container)
            }
            other => containers::run(other, engine, &config),
        };
    }
    match cli.cmd {
        Cmd::Pull { .. }
        | Cmd::Push { .. }
        | Cmd::Login { .. }
        | Cmd::Logout { .. }
        | Cmd::Search { .. } => registry::run(cli.cmd, &mut store, &config),
        Cmd::Builder(_) | Cmd::System(_) => system::run(cli.cmd, &mut store),
        _ => images::run(cli.cmd, &mut store),
    }
}

pub(crate) fn is_container_cmd(c: &Cmd) -> bool {
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
            | Cmd::Rename { .. }
            | Cmd::Pause(_)
            | Cmd::Stats(_)
            | Cmd::Update(_)
            | Cmd::Unpause(_)
            | Cmd::Port { .. }
            | Cmd::Container(_)
            | Cmd::ContainerMonitor { .. }
            | Cmd::Commit(_)
            | Cmd::Diff { .. }
            | Cmd::Export { .. }
            | Cmd::Cp { .. }
    )
}
