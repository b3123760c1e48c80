//! `load`: images in from an OCI layout directory, an oci-archive or a
//! docker-archive (the formats `save` writes), through the store's
//! verified manifest path ([`Store::store_manifest`]).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageIndex;
use serde_json::json;

use crate::content::unique;
use crate::digest::Digest;
use crate::error::{Context, Error, Result};
use crate::reference::Reference;
use crate::store::{
    DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, REF_NAME, Store, file_source, host_arch, store_lock,
};
use crate::unpack::{Compression, unpack};

impl Store {
    /// `strata load -i PATH`: an OCI layout directory, an oci-archive tar
    /// or a docker-archive tar. Returns (image id, names) per image.
    pub fn load(&mut self, path: &Path) -> Result<Vec<(Digest, Vec<String>)>> {
        let _lock = store_lock(&self.root, false)?;
        if path.is_dir() {
            return self.load_oci_dir(path);
        }
        let tmp = self.root.join("tmp").join(format!("load-{}", unique()));
        std::fs::create_dir_all(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        let result = (|| {
            let f = File::open(path).ctx(|| format!("open {}", path.display()))?;
            // The safe unpacker extracts the archive too: a hostile archive
            // cannot write outside the temp dir.
            unpack(f, &tmp, &path.display().to_string())?;
            if tmp.join("oci-layout").is_file() {
                self.load_oci_dir(&tmp)
            } else if tmp.join("manifest.json").is_file() {
                self.load_docker_dir(&tmp)
            } else {
                Err(Error::BadImage(format!(
                    "{} is neither an OCI layout nor a docker archive",
                    path.display()
                )))
            }
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        result
    }

    fn read_layout_blob(dir: &Path, d: &Digest, what: &str) -> Result<Vec<u8>> {
        let p = dir.join("blobs/sha256").join(d.hex());
        let meta = std::fs::metadata(&p).ctx(|| format!("{what} {d}"))?;
        if meta.len() > 16 << 20 {
            return Err(Error::BadImage(format!("{what} {d} is larger than 16 MiB")));
        }
        let data = std::fs::read(&p).ctx(|| format!("read {what} {d}"))?;
        let actual = Digest::of(&data);
        if &actual != d {
            return Err(Error::DigestMismatch {
                what: what.into(),
                expected: d.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(data)
    }

    fn load_oci_dir(&mut self, dir: &Path) -> Result<Vec<(Digest, Vec<String>)>> {
        let layout: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join("oci-layout"))
                .ctx(|| format!("{}: not an OCI layout (no oci-layout file)", dir.display()))?,
        )
        .map_err(|e| Error::BadImage(format!("oci-layout: {e}")))?;
        if layout["imageLayoutVersion"] != "1.0.0" {
            return Err(Error::BadImage(format!(
                "unsupported imageLayoutVersion {}",
                layout["imageLayoutVersion"]
            )));
        }
        let index: ImageIndex = serde_json::from_slice(
            &std::fs::read(dir.join("index.json")).ctx(|| "read index.json".into())?,
        )
        .map_err(|e| Error::BadImage(format!("index.json: {e}")))?;
        let mut out = Vec::new();
        for desc in index.manifests() {
            let name = desc
                .annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .cloned();
            let mut mdigest: Digest = desc.digest().to_string().parse()?;
            let mut data = Self::read_layout_blob(dir, &mdigest, "manifest")?;
            let mt = desc.media_type().to_string();
            if mt == OCI_INDEX || mt == DOCKER_LIST {
                let nested: ImageIndex = serde_json::from_slice(&data)
                    .map_err(|e| Error::BadImage(format!("index: {e}")))?;
                let pick = nested
                    .manifests()
                    .iter()
                    .find(|m| {
                        m.platform().as_ref().is_none_or(|p| {
                            p.os().to_string() == "linux"
                                && p.architecture().to_string() == host_arch()
                        })
                    })
                    .ok_or_else(|| {
                        Error::BadImage(format!(
                            "no manifest for linux/{} in the index",
                            host_arch()
                        ))
                    })?;
                mdigest = pick.digest().to_string().parse()?;
                data = Self::read_layout_blob(dir, &mdigest, "manifest")?;
            }
            // A full reference names the image; a bare tag ("latest", as
            // umoci and skopeo write it) does not say which repository.
            let names = match name
                .as_deref()
                .filter(|n| n.contains('/') || n.contains(':'))
                .map(Reference::parse)
            {
                Some(Ok(r)) => vec![r.to_string()],
                _ => Vec::new(),
            };
            let source = file_source(|d: &Digest| dir.join("blobs/sha256").join(d.hex()));
            let id = self.store_manifest(&data, &mdigest, names.clone(), &source)?;
            out.push((id, names));
        }
        Ok(out)
    }

    /// docker-archive (`docker save`): manifest.json, config files, layer tars.
    fn load_docker_dir(&mut self, dir: &Path) -> Result<Vec<(Digest, Vec<String>)>> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let entries: Vec<Entry> = serde_json::from_slice(
            &std::fs::read(dir.join("manifest.json")).ctx(|| "read manifest.json".into())?,
        )
        .map_err(|e| Error::BadImage(format!("manifest.json: {e}")))?;
        let inside = |rel: &str| -> Result<PathBuf> {
            let clean = crate::unpack::clean_path(Path::new(rel))
                .map_err(|why| Error::BadImage(format!("archive path {rel:?} {why}")))?;
            Ok(dir.join(clean))
        };
        let mut out = Vec::new();
        for e in entries {
            let cbytes = std::fs::read(inside(&e.config)?).ctx(|| format!("read {}", e.config))?;
            let cdigest = Digest::of(&cbytes);
            let mut layers = Vec::new();
            for l in &e.layers {
                let p = inside(l)?;
                let mut h =
                    crate::digest::HashingReader::new(File::open(&p).ctx(|| format!("open {l}"))?);
                h.drain().ctx(|| format!("read {l}"))?;
                let (d, size) = h.finish();
                let mut magic = [0u8; 4];
                let n = File::open(&p)
                    .and_then(|mut f| f.read(&mut magic))
                    .unwrap_or(0);
                let mt = match crate::unpack::detect(&magic[..n]) {
                    Compression::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    _ => "application/vnd.docker.image.rootfs.diff.tar",
                };
                layers.push(
                    json!({"mediaType": mt, "digest": d.to_string(), "size": size, "_path": p}),
                );
            }
            let paths: Vec<(Digest, PathBuf)> = layers
                .iter()
                .map(|l| {
                    Ok((
                        l["digest"].as_str().unwrap_or_default().parse()?,
                        PathBuf::from(l["_path"].as_str().unwrap_or_default()),
                    ))
                })
                .collect::<Result<_>>()?;
            for l in layers.iter_mut() {
                if let Some(o) = l.as_object_mut() {
                    o.remove("_path");
                }
            }
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cdigest.to_string(), "size": cbytes.len()},
                "layers": layers
            });
            let mbytes =
                serde_json::to_vec(&manifest).map_err(|e| Error::BadImage(e.to_string()))?;
            let mdigest = Digest::of(&mbytes);
            let cfg_path = inside(&e.config)?;
            let names: Vec<String> = e
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| Reference::parse(t).map(|r| r.to_string()))
                .collect::<Result<_>>()?;
            let source = file_source(|d: &Digest| {
                if d == &cdigest {
                    return cfg_path.clone();
                }
                paths
                    .iter()
                    .find(|(pd, _)| pd == d)
                    .map(|(_, p)| p.clone())
                    .unwrap_or_default()
            });
            let id = self.store_manifest(&mbytes, &mdigest, names.clone(), &source)?;
            out.push((id, names));
        }
        Ok(out)
    }
}
