//! Registry verbs: `pull`, `push`, `login`, `logout`.

use std::io::Write;

use anyhow::{Context, Result};
use strata_imagestore::Store;

use super::Cmd;

/// Run a registry verb.
pub(crate) fn run(cmd: Cmd, store: &mut Store, config: &strata::config::Config) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    match cmd {
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
            let id = reg.pull(store, &reference)?;
            strata::events::record(
                store.root(),
                "image",
                "pull",
                &reference,
                &[("name", &reference)],
            );
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
            let digest = reg.push(store, &image, destination.as_deref())?;
            strata::events::record(
                store.root(),
                "image",
                "push",
                &r.to_string(),
                &[("name", &r.to_string())],
            );
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
        _ => unreachable!("not a registry verb"),
    }
    Ok(0)
}

/// Pull `reference` into the store (for `run --pull`).
pub(crate) fn pull_quietly(
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
pub(crate) fn push_quietly(
    store: &mut Store,
    config: &strata::config::Config,
    image: &str,
) -> Result<()> {
    let r = strata_imagestore::reference::Reference::parse(image)?;
    let mut opts = config.registry_options(true, &r.domain);
    opts.mirrors.clear();
    opts.progress = strata_registry::progress::Mode::Quiet;
    let reg = strata_registry::Registry::new(opts, &[r.domain.as_str()])?;
    reg.push(store, image, None)?;
    Ok(())
}
