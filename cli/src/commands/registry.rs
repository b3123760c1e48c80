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
        Cmd::Search {
            limit,
            no_trunc,
            filter,
            format,
            tls_verify,
            term,
        } => return search(config, &term, limit, no_trunc, &filter, &format, tls_verify),
        _ => unreachable!("not a registry verb"),
    }
    Ok(0)
}

/// `search`: the registry's v1 search API (Docker Hub's index, or the
/// registry named before the term). A registry that cannot be reached or
/// has no such API is one clear error, exit 1.
fn search(
    config: &strata::config::Config,
    term: &str,
    limit: u32,
    no_trunc: bool,
    filter: &[String],
    format: &str,
    tls_verify: bool,
) -> Result<i32> {
    use serde_json::{Value, json};
    let filters =
        strata::filters::Filters::parse(filter, &["stars", "is-official", "is-automated"])?;
    if !(1..=100).contains(&limit) {
        anyhow::bail!("limit {limit} is outside the range of [1, 100]");
    }
    // REGISTRY/TERM when the first part looks like a host, as Docker reads it.
    let (host, q) = match term.split_once('/') {
        Some((h, rest)) if h.contains('.') || h.contains(':') || h == "localhost" => {
            (h.to_string(), rest)
        }
        _ => ("index.docker.io".to_string(), term),
    };
    let opts = config.registry_options(tls_verify, &host);
    let plain = strata_registry::is_local(&host) || opts.insecure_hosts.contains(&host);
    let scheme = if plain { "http" } else { "https" };
    let q_enc: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let url = format!("{scheme}://{host}/v1/search?q={q_enc}&n={limit}");
    let mut body = Vec::new();
    // Registry failures are the daemon's errors in Docker: exit 1.
    if let Err(e) = strata_registry::http::download(&url, &mut body, 8 << 20) {
        eprintln!(
            "Error: search: cannot search registry {host} (unreachable, or no v1 search API there): {e}"
        );
        return Ok(1);
    }
    let doc: Value = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("Error: search: registry {host} gave no search results ({e})");
            return Ok(1);
        }
    };
    let stars_min: u64 = match filters.values("stars").last() {
        Some(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid filter 'stars={v}'"))?,
        None => 0,
    };
    let official = filters.bool_value("is-official")?;
    let automated = filters.bool_value("is-automated")?;
    let mut rows = Vec::new();
    for r in doc["results"]
        .as_array()
        .into_iter()
        .flatten()
        .take(limit as usize)
    {
        let stars = r["star_count"].as_u64().unwrap_or(0);
        let (is_off, is_auto) = (
            r["is_official"].as_bool().unwrap_or(false),
            r["is_automated"].as_bool().unwrap_or(false),
        );
        if stars < stars_min
            || official.is_some_and(|o| o != is_off)
            || automated.is_some_and(|a| a != is_auto)
        {
            continue;
        }
        let mut desc = r["description"]
            .as_str()
            .unwrap_or_default()
            .replace('\n', " ");
        if !no_trunc && desc.chars().count() > 45 {
            desc = format!("{}…", desc.chars().take(44).collect::<String>());
        }
        rows.push(json!({
            "Name": r["name"].as_str().unwrap_or_default(),
            "Description": desc,
            "StarCount": stars.to_string(),
            "IsOfficial": if is_off { "[OK]" } else { "" },
            "IsAutomated": if is_auto { "[OK]" } else { "" },
        }));
    }
    let headers: &[(&str, &str)] = &[
        ("Name", "NAME"),
        ("Description", "DESCRIPTION"),
        ("StarCount", "STARS"),
        ("IsOfficial", "OFFICIAL"),
        ("IsAutomated", "AUTOMATED"),
    ];
    let table = |r: &Value| {
        [
            "Name",
            "Description",
            "StarCount",
            "IsOfficial",
            "IsAutomated",
        ]
        .map(|k| r[k].as_str().unwrap_or_default().to_string())
        .to_vec()
    };
    let format = strata::format::Format::parse(format);
    strata::format::write_rows(
        &mut std::io::stdout().lock(),
        &format,
        &rows,
        headers,
        &table,
    )?;
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
