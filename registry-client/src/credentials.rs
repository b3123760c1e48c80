//! Credentials the Docker way: `$DOCKER_CONFIG/config.json` (default
//! `~/.docker/config.json`) with `auths`, `credHelpers` and `credsStore`
//! (`docker-credential-NAME get`), so existing Docker logins work.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{Value, json};

use crate::error::{Error, Result};

pub fn config_path() -> PathBuf {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/root"))
                .join(".docker")
        });
    dir.join("config.json")
}

fn read_config() -> Result<Value> {
    match std::fs::read(config_path()) {
        Ok(d) => serde_json::from_slice(&d)
            .map_err(|e| Error::Credentials(format!("{}: {e}", config_path().display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(Error::Credentials(format!(
            "read {}: {e}",
            config_path().display()
        ))),
    }
}

/// Keys Docker uses for a host (Docker Hub has a legacy URL key).
fn keys_for(host: &str) -> Vec<String> {
    let mut k = vec![
        host.to_string(),
        format!("https://{host}"),
        format!("http://{host}"),
    ];
    if host == "docker.io" || host == "registry-1.docker.io" {
        k.push("https://index.docker.io/v1/".into());
    }
    k
}

/// (user, password) for `host`, if any.
pub fn lookup(host: &str) -> Result<Option<(String, String)>> {
    let cfg = read_config()?;
    for key in keys_for(host) {
        if let Some(helper) = cfg["credHelpers"][&key].as_str() {
            return helper_get(helper, &key);
        }
    }
    for key in keys_for(host) {
        if let Some(auth) = cfg["auths"][&key]["auth"].as_str() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| Error::Credentials(format!("auth for {key} is not base64: {e}")))?;
            let s = String::from_utf8(raw)
                .map_err(|_| Error::Credentials(format!("auth for {key} is not UTF-8")))?;
            let (u, p) = s.split_once(':').ok_or_else(|| {
                Error::Credentials(format!("auth for {key} is not user:password"))
            })?;
            return Ok(Some((u.to_string(), p.to_string())));
        }
    }
    if let Some(store) = cfg["credsStore"].as_str() {
        return helper_get(store, host);
    }
    Ok(None)
}

fn helper_get(helper: &str, server: &str) -> Result<Option<(String, String)>> {
    let bin = format!("docker-credential-{helper}");
    let mut child = Command::new(&bin)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Credentials(format!("run {bin}: {e}")))?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Credentials(format!("{bin}: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if msg.contains("credentials not found") {
            return Ok(None);
        }
        return Err(Error::Credentials(format!("{bin} get failed: {msg}")));
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Credentials(format!("{bin}: {e}")))?;
    Ok(Some((
        v["Username"].as_str().unwrap_or_default().to_string(),
        v["Secret"].as_str().unwrap_or_default().to_string(),
    )))
}

fn write_config(cfg: &Value) -> Result<()> {
    let path = config_path();
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)
            .map_err(|e| Error::Credentials(format!("create {}: {e}", d.display())))?;
    }
    let tmp = path.with_extension("json.tmp");
    let data = serde_json::to_vec_pretty(cfg).map_err(|e| Error::Credentials(e.to_string()))?;
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::Credentials(format!("write {}: {e}", tmp.display())))?;
        f.write_all(&data)
            .map_err(|e| Error::Credentials(format!("write {}: {e}", tmp.display())))?;
    }
    std::fs::rename(&tmp, &path)
        .map_err(|e| Error::Credentials(format!("rename {}: {e}", path.display())))
}

pub fn store(host: &str, user: &str, password: &str) -> Result<()> {
    let mut cfg = read_config()?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    if !cfg["auths"].is_object() {
        cfg["auths"] = json!({});
    }
    cfg["auths"][host] = json!({"auth": auth});
    write_config(&cfg)
}

/// Remove stored credentials; false if there were none.
pub fn erase(host: &str) -> Result<bool> {
    let mut cfg = read_config()?;
    let mut found = false;
    if let Some(auths) = cfg["auths"].as_object_mut() {
        for k in keys_for(host) {
            found |= auths.remove(&k).is_some();
        }
    }
    if found {
        write_config(&cfg)?;
    }
    Ok(found)
}
