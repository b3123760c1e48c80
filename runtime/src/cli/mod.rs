//! runc's command line: global flags, one subcommand each. Parsing and
//! printing only; the work is in [`crate::container`].

mod exec;
mod list;
pub mod update;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::container::{self, create::CreateOptions};
use crate::error::{Context, Error, Result};
use crate::logging::LogFormat;
use crate::state::Root;

#[derive(Parser, Debug)]
#[command(
    name = "strata-runtime",
    about = "Open Container Initiative runtime (strata, with runc's command line)",
    disable_version_flag = true,
    subcommand_required = false,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Print the version (runc's format: version, commit, spec, libseccomp).
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// Root directory for container state.
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Log file (errors and, with --debug, debug lines).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: LogFormatArg,
    /// Debug lines (`level=debug`) in the log, or on stderr without --log.
    #[arg(long, global = true)]
    pub debug: bool,
    /// systemd cgroup driver: the cgroup (cgroupsPath slice:prefix:name) is
    /// a transient scope made through systemd's D-Bus API.
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility (rootless is detected).
    #[arg(long, global = true, value_name = "true|false|auto", num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Path to the criu binary for checkpoint and restore.
    #[arg(long, global = true, default_value = "criu")]
    pub criu: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Help in runc's layout (urfave/cli): a `NAME:` line, then
/// `PROGRAM COMMAND - about`, where PROGRAM is the name we were invoked by
/// (`runc` when installed in runc's place). Scripts and runc's own tests
/// read the second line.
fn help_template(title: &str) -> String {
    format!("NAME:\n   {title} - {{about}}\n\nUSAGE:\n   {{usage}}\n\n{{all-args}}{{after-help}}")
}

/// The parser, with runc's help layout on every command; `program` is the
/// name shown in help (argv[0]'s file name).
pub fn command(program: &str) -> clap::Command {
    fn with_template(cmd: clap::Command, title: String) -> clap::Command {
        cmd.help_template(help_template(&title))
            .mut_subcommands(|sub| {
                let title = format!("{title} {}", sub.get_name());
                with_template(sub, title)
            })
    }
    with_template(
        <Cli as clap::CommandFactory>::command(),
        program.to_string(),
    )
}

/// Parse argv. `runc foo -h` answers "No help topic for 'foo'" (exit 3),
/// as runc does; other errors are clap's (exit 2 for usage, 0 for help).
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let program = args
        .first()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "strata-runtime".into());
    let parsed = command(&program)
        .try_get_matches_from(&args)
        .and_then(|m| Cli::from_arg_matches(&m));
    match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let asks_help = args.iter().skip(1).any(|a| a == "-h" || a == "--help");
            if asks_help
                && e.kind() == ErrorKind::InvalidSubcommand
                && let Some(ContextValue::String(topic)) = e.get(ContextKind::InvalidSubcommand)
            {
                eprintln!("No help topic for '{topic}'");
                std::process::exit(3);
            }
            e.exit()
        }
    }
}

/// The runc release whose command line and behaviour we follow (its
/// integration tests are what we measure against).
pub const RUNC_COMPAT: &str = "1.1.15";

/// `--version`, as runc prints it.
pub fn version_text() -> String {
    let seccomp = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "strata-runtime version {} (runc version {RUNC_COMPAT} compatible)\ncommit: {}\nspec: {}\nlibseccomp: {seccomp}\n",
        env!("CARGO_PKG_VERSION"),
        env!("STRATA_COMMIT"),
        crate::OCI_VERSION,
    )
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(a: LogFormatArg) -> Self {
        match a {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    pub id: String,
    /// Path to the bundle (default: current directory).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3..3+N) to the container process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container (the process waits for `start`).
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Create and start a container; wait for it unless --detach.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short, long)]
        detach: bool,
        /// Do not delete the container after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Print the state of a container as JSON.
    State { id: String },
    /// Send a signal to the container's init (or all its processes).
    Kill {
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container's resources.
    Delete {
        id: String,
        #[arg(short, long)]
        force: bool,
    },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run a process in a running container.
    Exec(exec::ExecArgs),
    /// Display a container's cgroup statistics and OOM events (JSON lines).
    Events {
        id: String,
        /// Stats collection interval (Go duration syntax: 5s, 100ms).
        #[arg(long, default_value = "5s")]
        interval: String,
        /// Display the container's stats once, then exit.
        #[arg(long)]
        stats: bool,
    },
    /// Suspend all processes of a container.
    Pause { id: String },
    /// Resume a paused container.
    Resume { id: String },
    /// List a container's processes.
    Ps {
        id: String,
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Options passed to ps(1).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Update a container's resources (runc's flags, or -r JSON; "-" for stdin).
    Update(update::UpdateArgs),
    /// Write a default config.json (rootless with the global --rootless).
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Print the runtime's features document.
    Features,
    /// Checkpoint a running container (CRIU).
    Checkpoint(CheckpointArgs),
    /// Restore a container from a checkpoint (CRIU).
    Restore(RestoreArgs),
}

/// Options checkpoint and restore share (runc's names).
#[derive(Args, Debug, Clone)]
pub struct CriuArgs {
    /// Where the images go (default: ./checkpoint).
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Where CRIU's log and work files go (default: the image path).
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Checkpoint and restore established TCP connections.
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs (a process with a controlling terminal).
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// cgroups mode: soft, full, strict or ignore (default: ignore; the
    /// restored container is in the cgroup its config names).
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
}

impl CriuArgs {
    fn common(&self) -> Result<crate::criu::Common> {
        let image_path = match &self.image_path {
            Some(p) => p.clone(),
            None => std::env::current_dir()
                .ctx(|| "current directory".into())?
                .join("checkpoint"),
        };
        Ok(crate::criu::Common {
            image_path: std::path::absolute(&image_path)
                .ctx(|| format!("image path {}", image_path.display()))?,
            work_path: self
                .work_path
                .as_ref()
                .map(std::path::absolute)
                .transpose()
                .ctx(|| "work path".into())?,
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            file_locks: self.file_locks,
            cgroup_mode: match &self.manage_cgroups_mode {
                Some(m) => crate::criu::CgroupMode::parse(m)?,
                None => crate::criu::CgroupMode::default(),
            },
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct CheckpointArgs {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuArgs,
    /// A previous pre-dump's images (relative to the image path).
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint.
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Dump memory only, for a later checkpoint with --parent-path.
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Path to the bundle (default: current directory).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Do not wait for the restored container.
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
}

impl Cli {
    pub fn root(&self) -> Root {
        Root::new(self.root.clone().unwrap_or_else(crate::default_root))
    }
}

fn create_options(a: &CreateArgs, systemd: bool) -> CreateOptions {
    CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        console_fd: None,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        systemd_cgroup: systemd,
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| Error::Container(format!("encode JSON: {e}")))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}").ctx(|| "write stdout".into())
}

/// Run the command; Ok(exit code).
pub fn dispatch(cli: &Cli) -> Result<i32> {
    let root = cli.root();
    let Some(command) = &cli.command else {
        if cli.version {
            print!("{}", version_text());
            return Ok(0);
        }
        return Err(Error::Container(
            "a command is required (see strata-runtime --help)".into(),
        ));
    };
    tracing::debug!(
        "strata-runtime {} (root {})",
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        root.dir("").display()
    );
    match command {
        Command::Create(a) => {
            container::create::create(&root, &create_options(a, cli.systemd_cgroup)).map(|_| 0)
        }
        Command::Start { id } => container::start::start(&root, id).map(|_| 0),
        Command::Run {
            create,
            detach,
            keep,
        } => container::run::run(
            &root,
            &create_options(create, cli.systemd_cgroup),
            *detach,
            *keep,
        ),
        Command::State { id } => print_json(&container::state::state(&root, id)?).map(|_| 0),
        Command::Kill { id, signal, all } => {
            // 0 only checks that the processes exist, as runc takes it.
            let sig = if signal == "0" {
                0
            } else {
                crate::signals::parse(signal)?
            };
            container::kill::kill(&root, id, sig, *all).map(|_| 0)
        }
        Command::Delete { id, force } => container::delete::delete(&root, id, *force).map(|_| 0),
        Command::List { format, quiet } => list::list(&root, format, *quiet).map(|_| 0),
        Command::Exec(a) => {
            // runc: an exec that fails before the process runs exits 255,
            // which callers tell from the process's own exit codes.
            match a
                .options(&root)
                .and_then(|o| container::exec::exec(&root, &o))
            {
                Ok(code) => Ok(code),
                Err(e) => {
                    tracing::error!("exec failed: {e}");
                    eprintln!("{e}");
                    Ok(255)
                }
            }
        }
        Command::Events {
            id,
            interval,
            stats,
        } => {
            let interval = container::events::parse_interval(interval)?;
            let mut out = std::io::stdout().lock();
            container::events::events(&root, id, interval, *stats, &mut out).map(|_| 0)
        }
        Command::Pause { id } => container::pause::set_paused(&root, id, true).map(|_| 0),
        Command::Resume { id } => container::pause::set_paused(&root, id, false).map(|_| 0),
        Command::Ps {
            id,
            format,
            ps_args,
        } => list::ps(&root, id, format, ps_args).map(|_| 0),
        Command::Update(a) => update::update(&root, a).map(|_| 0),
        Command::Spec { bundle } => {
            let rootless = cli.rootless.as_deref() == Some("true");
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(Error::Container(format!(
                    "File {} exists. Remove it first",
                    path.display()
                )));
            }
            let data = serde_json::to_string_pretty(&crate::template::default_spec(rootless))
                .map_err(|e| Error::Container(e.to_string()))?;
            std::fs::write(&path, data).ctx(|| format!("write {}", path.display()))?;
            Ok(0)
        }
        Command::Features => print_json(&crate::template::features()).map(|_| 0),
        Command::Checkpoint(a) => {
            let opts = container::checkpoint::CheckpointOptions {
                common: a.criu.common()?,
                leave_running: a.leave_running,
                pre_dump: a.pre_dump,
                parent_path: a.parent_path.clone(),
                criu: Some(cli.criu.clone()),
            };
            container::checkpoint::checkpoint(&root, &a.id, &opts).map(|_| 0)
        }
        Command::Restore(a) => {
            let opts = container::checkpoint::RestoreOptions {
                id: a.id.clone(),
                bundle: a.bundle.clone(),
                common: a.criu.common()?,
                pid_file: a.pid_file.clone(),
                detach: a.detach,
                criu: Some(cli.criu.clone()),
                systemd_cgroup: cli.systemd_cgroup,
            };
            container::checkpoint::restore(&root, &opts)
        }
    }
}
