//! Named and anonymous volumes, Docker's `local` driver: a directory
//! `ROOT/volumes/NAME/_data` with its metadata beside it in
//! `volume.json` (written to a temp file, then renamed). A volume made
//! with `-o type=tmpfs` or `-o type=none,o=bind,device=PATH` is mounted as
//! that when a container uses it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What `volume create` records.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Meta {
    pub created: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Driver options (`-o type=tmpfs`, `-o o=size=10m`, `-o device=...`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Made for a container (image VOLUME or `-v /dst`), not by name.
    #[serde(default)]
    pub anonymous: bool,
}

pub struct Volumes {
    dir: PathBuf,
}

/// Docker's rule for volume names.
pub fn check_name(name: &str) -> Result<()> {
    let ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        bail!(
            "create {name}: {name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
        );
    }
    Ok(())
}

impl Volumes {
    pub fn new(root: &Path) -> Volumes {
        Volumes {
            dir: root.join("volumes"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Where containers see the volume's files.
    pub fn data(&self, name: &str) -> PathBuf {
        self.path(name).join("_data")
    }

    pub fn exists(&self, name: &str) -> bool {
        self.data(name).is_dir()
    }

    /// The recorded metadata; a volume from before metadata existed gets
    /// its directory's time.
    pub fn meta(&self, name: &str) -> Result<Meta> {
        match std::fs::read(self.path(name).join("volume.json")) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("volume {name}: metadata")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let created = std::fs::metadata(self.path(name))
                    .and_then(|m| m.modified())
                    .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339())
                    .with_context(|| format!("no such volume: {name}"))?;
                Ok(Meta {
                    created,
                    ..Meta::default()
                })
            }
            Err(e) => Err(e).with_context(|| format!("volume {name}: metadata")),
        }
    }

    /// Make the volume (or find it: creating an existing name is not an
    /// error, as Docker's). The metadata is in place before the data dir,
    /// so a volume is never seen half-made.
    pub fn create(&self, name: &str, meta: Meta) -> Result<()> {
        check_name(name)?;
        for k in meta.options.keys() {
            if !["type", "o", "device"].contains(&k.as_str()) {
                bail!("invalid option {k:?} for the local volume driver: want type, o or device");
            }
        }
        match meta.options.get("type").map(String::as_str) {
            None | Some("tmpfs") => {}
            Some("none") => {
                let dev = meta.options.get("device").map(String::as_str).unwrap_or("");
                if !meta
                    .options
                    .get("o")
                    .is_some_and(|o| o.split(',').any(|x| x == "bind"))
                {
                    bail!("type=none needs o=bind (a bind of device=PATH)");
                }
                if !Path::new(dev).is_absolute() || !Path::new(dev).is_dir() {
                    bail!("invalid device {dev:?}: want an existing absolute directory");
                }
            }
            Some(t) => bail!("unsupported volume type {t:?}: want tmpfs or none (with o=bind)"),
        }
        if self.exists(name) {
            return Ok(());
        }
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("create volume {name}"))?;
        let tmp = dir.join(".volume.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&meta)?)
            .and_then(|_| std::fs::rename(&tmp, dir.join("volume.json")))
            .with_context(|| format!("create volume {name}"))?;
        std::fs::create_dir_all(self.data(name)).with_context(|| format!("create volume {name}"))
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(e).context("list volumes"),
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if self.exists(&name) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The mount a container gets for this volume at `dst`.
    pub fn mount(&self, name: &str, dst: &str, ro: bool) -> Result<Value> {
        let meta = self.meta(name)?;
        let mut opts = vec![json!("rbind"), json!("rprivate")];
        if ro {
            opts.push(json!("ro"));
        }
        match meta.options.get("type").map(String::as_str) {
            Some("tmpfs") => {
                let mut o = vec![json!("nosuid"), json!("nodev")];
                o.extend(
                    meta.options
                        .get("o")
                        .into_iter()
                        .flat_map(|s| s.split(','))
                        .filter(|s| !s.is_empty())
                        .map(|s| json!(s)),
                );
                if ro {
                    o.push(json!("ro"));
                }
                Ok(json!({"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": o}))
            }
            Some("none") => {
                let dev = meta.options.get("device").cloned().unwrap_or_default();
                Ok(json!({"destination": dst, "type": "bind", "source": dev, "options": opts}))
            }
            _ => Ok(
                json!({"destination": dst, "type": "bind", "source": self.data(name), "options": opts}),
            ),
        }
    }

    /// Remove the volume and its data (the caller checked it is unused).
    pub fn remove(&self, name: &str) -> Result<()> {
        if !self.exists(name) {
            bail!("get {name}: no such volume");
        }
        // The data dir goes first: a crash halfway leaves no volume listed.
        std::fs::remove_dir_all(self.data(name))
            .and_then(|_| std::fs::remove_dir_all(self.path(name)))
            .with_context(|| format!("remove volume {name}"))
    }

    /// Bytes under the volume's data.
    pub fn size(&self, name: &str) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = std::fs::read_dir(p) else {
                return 0;
            };
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.data(name))
    }

    /// Docker's `volume inspect` document.
    pub fn inspect(&self, name: &str) -> Result<Value> {
        if !self.exists(name) {
            bail!("get {name}: no such volume");
        }
        let m = self.meta(name)?;
        Ok(json!({
            "CreatedAt": m.created,
            "Driver": "local",
            "Labels": m.labels,
            "Mountpoint": self.data(name),
            "Name": name,
            "Options": m.options,
            "Scope": "local",
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_is_idempotent_and_checks_names_and_options() {
        let d = tempfile::tempdir().unwrap();
        let v = Volumes::new(d.path());
        v.create("data", Meta::default()).unwrap();
        std::fs::write(v.data("data").join("f"), "x").unwrap();
        v.create("data", Meta::default()).unwrap();
        assert!(
            v.data("data").join("f").exists(),
            "a second create keeps the data"
        );
        assert!(v.create("bad name", Meta::default()).is_err());
        assert!(
            v.create("x", Meta::default()).is_err(),
            "one character is too short"
        );
        let mut m = Meta::default();
        m.options.insert("colour".into(), "red".into());
        assert!(v.create("opt", m).is_err());
        assert!(!v.exists("opt"), "a refused create leaves nothing");
        assert_eq!(v.list().unwrap(), ["data"]);
        assert_eq!(v.size("data"), 1);
        v.remove("data").unwrap();
        assert!(v.list().unwrap().is_empty());
        assert!(v.remove("data").is_err());
    }
}
