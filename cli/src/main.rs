//! `strata`: a Docker-style CLI. Exit codes as Docker: 125 when strata
//! itself fails. Parsing and dispatch are in [`commands`].

use clap::Parser;

mod commands;

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
    let cli = match commands::Cli::try_parse() {
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
    // A user other than root works in their own user namespace; joined
    // here, while the process has a single thread.
    if !matches!(cli.cmd, commands::Cmd::Version { .. })
        && let Err(e) = strata::rootless::enter()
    {
        eprintln!("Error: rootless: {e:#}");
        std::process::exit(125);
    }
    match commands::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::exit(commands::containers::start_error_code(&e));
        }
    }
}
