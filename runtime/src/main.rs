//! `strata-runtime`: runc's command line over the strata runtime library.

use strata_runtime::cli::{self, dispatch};

fn main() {
    let cli = cli::parse();
    let format = cli.log_format.into();
    if let Err(e) = strata_runtime::logging::init(cli.log.as_deref(), format, cli.debug) {
        eprintln!("open log file: {e}");
        std::process::exit(1);
    }
    // A bug (ours or a library's) still ends as one error line on stderr
    // and in the log, where containerd's shim looks for it.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!("internal error: {info}");
        eprintln!("strata-runtime: internal error: {info}");
    }));
    match dispatch(&cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // One error: in the log (JSON for containerd's shim) and on stderr.
            tracing::error!("{e}");
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
