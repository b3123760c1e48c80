//! `strata`: a Docker-style CLI. Exit codes as Docker: 125 when strata
//! itself fails.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use strata::images;
use strata_imagestore::Store;

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
    let cli = Cli::parse();
    if cli.debug {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .try_init();
    }
    if let Err(e) = run(cli) {
        eprintln!("Error: {e:#}");
        std::process::exit(125);
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

fn run(cli: Cli) -> Result<()> {
    let root = cli.root.clone().unwrap_or_else(strata::paths::default_root);
    let config = strata::config::load(cli.config.as_deref())?;
    let mut store =
        Store::open(&root).with_context(|| format!("open store at {}", root.display()))?;
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
    }
    Ok(())
}
