//! strata-registry: pull images from OCI/Docker registries into the image
//! store (layers streamed, several at once, verified, unpacked as they
//! arrive) and push them back; credentials the Docker way.
//!
//! Built on oci-client for the protocol and auth challenges (anonymous,
//! basic, bearer tokens from `WWW-Authenticate`, cached per scope). The
//! store's verified ingest path does the rest.

pub mod credentials;
pub mod error;
pub mod http;
pub mod progress;
mod stream;

use std::io::Read;
use std::net::IpAddr;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference as OciRef, RegistryOperation};
use strata_imagestore::reference::Reference;
use strata_imagestore::{Digest, Store};

use error::from_oci;
pub use error::{Error, Result};

const ACCEPT: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MAX_MANIFEST: usize = 4 << 20;
const CHUNKED_ABOVE: u64 = 256 << 20;
const UPLOAD_CHUNK: usize = 16 << 20;
/// Attempts for one request on connection errors and 5xx.
const ATTEMPTS: u32 = 4;

/// 200 ms, 400 ms, 800 ms, ...
pub(crate) fn backoff(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis(200 << attempt.saturating_sub(1).min(5))
}

/// Worth trying again: the connection failed or the server had a 5xx.
fn transient(e: &oci_client::errors::OciDistributionError) -> bool {
    let t = format!("{e:?} {e}");
    [
        "error sending request",
        "connection",
        "Connection",
        "timed out",
        "TimedOut",
        "code: 50",
        "status 50",
        " 500",
        " 502",
        " 503",
        " 504",
        "ServerError",
    ]
    .iter()
    .any(|p| t.contains(p))
}

/// Docker's certs.d convention: extra CAs per registry host.
pub const CERTS_D: &str = "/etc/strata/certs.d";

/// How to talk to registries.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Directory with `HOST/*.crt` CA files (default /etc/strata/certs.d).
    pub certs_dir: Option<std::path::PathBuf>,
    /// `--tls-verify=false`: plain HTTP allowed and certificates unchecked.
    pub insecure: bool,
    /// Hosts configured insecure (plain HTTP).
    pub insecure_hosts: Vec<String>,
    /// `os/arch[/variant]`, default the host's.
    pub platform: Option<String>,
    /// Mirrors of the pulled reference's registry, tried in order before it.
    pub mirrors: Vec<String>,
    pub progress: progress::Mode,
    /// Blobs larger than this go up in chunks (PATCH per piece); smaller
    /// ones in one streamed request. Default 256 MiB.
    pub chunked_above: Option<u64>,
    /// A read that waits longer than this for bytes fails, and the blob
    /// download resumes on a new connection (default 60 s).
    pub read_timeout: Option<std::time::Duration>,
}

/// Docker's rule: localhost and 127.0.0.0/8 speak plain HTTP.
pub fn is_local(host: &str) -> bool {
    let name = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

pub struct Registry {
    rt: tokio::runtime::Runtime,
    client: Client,
    opts: Options,
}

fn oci_ref(r: &Reference) -> Result<OciRef> {
    // docker.io is spelled the way oci-client resolves it.
    r.to_string()
        .parse()
        .map_err(|e| Error::Other(format!("reference {r}: {e}")))
}

fn auth_for(host: &str) -> Result<RegistryAuth> {
    Ok(match credentials::lookup(host)? {
        Some((u, p)) => RegistryAuth::Basic(u, p),
        None => RegistryAuth::Anonymous,
    })
}

/// PEM CA files for `host` under the certs.d directory.
fn host_cas(dir: &std::path::Path, host: &str) -> Vec<Vec<u8>> {
    let Ok(rd) = std::fs::read_dir(dir.join(host)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        if e.path().extension().is_some_and(|x| x == "crt")
            && let Ok(d) = std::fs::read(e.path())
        {
            out.push(d);
        }
    }
    out
}

/// Does `host` answer TLS on /v2/? Ok(true) if it does (verified with
/// `cas` unless `insecure`), Ok(false) if nothing speaks TLS there, Err
/// for a TLS failure a user must fix.
fn speaks_tls(host: &str, cas: &[Vec<u8>], insecure: bool) -> Result<bool> {
    let mut b = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(5));
    for pem in cas {
        if let Ok(c) = reqwest::Certificate::from_pem(pem) {
            b = b.add_root_certificate(c);
        }
    }
    if insecure {
        b = b.danger_accept_invalid_certs(true);
    }
    let client = b
        .build()
        .map_err(|e| Error::Other(format!("TLS client: {e}")))?;
    match client.get(format!("https://{host}/v2/")).send() {
        Ok(_) => Ok(true),
        Err(e) => {
            let chain = format!("{e:?}");
            if chain.contains("certificate")
                || chain.contains("Certificate")
                || chain.contains("UnknownIssuer")
            {
                Err(Error::Registry {
                    host: host.to_string(),
                    msg: format!(
                        "TLS failure: certificate not trusted (put its CA in {CERTS_D}/{host}/ca.crt, or use --tls-verify=false)"
                    ),
                })
            } else {
                Ok(false)
            }
        }
    }
}

/// A resuming reader of blob `d` of `oref`'s repository. Not verified
/// here: the store checks the digest of what it ingests.
fn blob_reader(
    handle: &tokio::runtime::Handle,
    client: &Client,
    oref: &OciRef,
    host: &str,
    d: &Digest,
) -> Box<dyn Read + Send> {
    let desc = oci_client::manifest::OciDescriptor {
        digest: d.to_string(),
        ..Default::default()
    };
    let (h, client, oref, host, d) = (
        handle.clone(),
        client.clone(),
        oref.clone(),
        host.to_string(),
        d.clone(),
    );
    // (Re)open the blob from an offset, retrying transient failures.
    let reopen = move |offset: u64| -> std::io::Result<(stream::ByteStream, u64)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Always a ranged request: a 206 stream is not verified by
            // oci-client, so a bad byte is reported by the store as a
            // digest mismatch rather than as a body decoding error.
            let res = h
                .block_on(client.pull_blob_stream_partial(&oref, &desc, offset, None))
                .map(|r| match r {
                    oci_client::client::BlobResponse::Partial(s) => (s.stream, 0),
                    // No Range support: skip what we have.
                    oci_client::client::BlobResponse::Full(s) => (s.stream, offset),
                });
            match res {
                Ok(v) => return Ok(v),
                Err(e) if attempt < ATTEMPTS && transient(&e) => {
                    tracing::warn!("blob {d}: {e}; retrying");
                    std::thread::sleep(backoff(attempt));
                }
                Err(e) => {
                    return Err(std::io::Error::other(
                        from_oci(&host, &format!("blob {d}"), e).to_string(),
                    ));
                }
            }
        }
    };
    Box::new(stream::ResumingReader::new(
        handle.clone(),
        Box::new(reopen),
    ))
}

impl Registry {
    pub fn new(opts: Options, hosts: &[&str]) -> Result<Registry> {
        let certs_dir = opts.certs_dir.clone().unwrap_or_else(|| CERTS_D.into());
        let mut plain = Vec::new();
        let mut extra = Vec::new();
        for h in hosts {
            let cas = host_cas(&certs_dir, h);
            if opts.insecure_hosts.iter().any(|i| i == *h) {
                plain.push(h.to_string());
            } else if is_local(h) || opts.insecure {
                // Docker's rule for local and insecure registries: HTTPS
                // if something speaks it there, plain HTTP otherwise.
                if !speaks_tls(h, &cas, opts.insecure)? {
                    plain.push(h.to_string());
                }
            }
            extra.extend(cas.into_iter().map(|data| oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data,
            }));
        }
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain),
            extra_root_certificates: extra,
            accept_invalid_certificates: opts.insecure,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(
                opts.read_timeout
                    .unwrap_or(std::time::Duration::from_secs(60)),
            ),
            // One streamed PUT per blob; chunked PATCHes of the stream's
            // 1 MiB items cost a round trip each.
            use_monolithic_push: true,
            ..Default::default()
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Other(format!("start async runtime: {e}")))?;
        Ok(Registry {
            rt,
            client: Client::new(config),
            opts,
        })
    }

    /// Check credentials against `host` (for `login`).
    pub fn check_login(&self, host: &str, user: &str, password: &str) -> Result<()> {
        let r: OciRef = format!("{host}/strata/login-check:latest")
            .parse()
            .map_err(|e| Error::Other(format!("{e}")))?;
        let auth = RegistryAuth::Basic(user.to_string(), password.to_string());
        // A real authenticated request: a manifest that does not exist
        // answers 404 to good credentials and 401 to bad ones (auth()
        // alone only fetches tokens for bearer challenges).
        match self
            .rt
            .block_on(self.client.pull_manifest_raw(&r, &auth, ACCEPT))
        {
            Ok(_) => Ok(()),
            Err(e) => match from_oci(host, "login", e) {
                Error::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    fn manifest(&self, r: &OciRef, auth: &RegistryAuth, what: &str) -> Result<(Vec<u8>, Digest)> {
        let host = r.resolve_registry().to_string();
        let mut attempt = 0;
        let (bytes, digest) = loop {
            attempt += 1;
            match self
                .rt
                .block_on(self.client.pull_manifest_raw(r, auth, ACCEPT))
            {
                Ok(v) => break v,
                Err(e) if attempt < ATTEMPTS && transient(&e) => {
                    tracing::warn!("manifest of {what}: {e}; retrying");
                    std::thread::sleep(backoff(attempt));
                }
                Err(e) => return Err(from_oci(&host, what, e)),
            }
        };
        if bytes.len() > MAX_MANIFEST {
            return Err(Error::Registry {
                host,
                msg: format!("manifest of {what} is larger than 4 MiB"),
            });
        }
        let actual = Digest::of(&bytes);
        let claimed = if let Some(d) = r.digest() {
            d.to_string()
        } else {
            digest
        };
        if !claimed.is_empty() && claimed != actual.to_string() {
            return Err(Error::DigestMismatch {
                what: format!("manifest of {what}"),
                expected: claimed,
                actual: actual.to_string(),
            });
        }
        Ok((bytes.to_vec(), actual))
    }

    /// `pull`: returns the image id.
    /// Hosts every client of these options may talk to (for `new`).
    pub fn hosts_for(opts: &Options, domain: &str) -> Vec<String> {
        let mut v = opts.mirrors.clone();
        v.push(domain.to_string());
        v
    }

    /// `pull` through the configured mirrors first (in order), then the
    /// registry itself; the image keeps the name the user asked for.
    pub fn pull(&self, store: &mut Store, reference: &str) -> Result<Digest> {
        let r = Reference::parse(reference)?;
        let mut last = None;
        for m in &self.opts.mirrors {
            let mut via = r.clone();
            via.domain = m.clone();
            match self.pull_from(store, &r, &via) {
                Ok(id) => return Ok(id),
                Err(e) => {
                    tracing::warn!("mirror {m} for {reference}: {e}");
                    last = Some(e);
                }
            }
        }
        match self.pull_from(store, &r, &r) {
            Ok(id) => Ok(id),
            Err(e) => Err(match last {
                Some(m) => Error::Other(format!("{e} (mirrors failed too: {m})")),
                None => e,
            }),
        }
    }

    fn pull_from(&self, store: &mut Store, r: &Reference, via: &Reference) -> Result<Digest> {
        let reference = &r.to_string();
        let oref = oci_ref(via)?;
        let host = oref.resolve_registry().to_string();
        let auth = auth_for(&via.domain)?;
        let (mut bytes, mut digest) = self.manifest(&oref, &auth, reference)?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::Registry {
            host: host.clone(),
            msg: format!("bad manifest: {e}"),
        })?;
        let mt = v["mediaType"].as_str().unwrap_or_default().to_string();
        if mt.ends_with("index.v1+json")
            || mt.ends_with("list.v2+json")
            || v["manifests"].is_array()
        {
            let (os, arch) = self.platform();
            let pick = v["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| {
                    m["platform"]["os"] == os.as_str()
                        && m["platform"]["architecture"] == arch.as_str()
                })
                .and_then(|m| m["digest"].as_str())
                .ok_or_else(|| Error::NotFound(format!("{reference}: no image for {os}/{arch}")))?
                .to_string();
            let by_digest: OciRef = format!("{}@{pick}", r.repository())
                .parse()
                .map_err(|e| Error::Other(format!("{e}")))?;
            (bytes, digest) = self.manifest(&by_digest, &auth, reference)?;
        } else if !mt.is_empty()
            && !mt.ends_with("manifest.v1+json")
            && !mt.ends_with("manifest.v2+json")
        {
            return Err(Error::UnsupportedMediaType(mt));
        }
        let names = if r.tag.is_some() {
            vec![r.to_string()]
        } else {
            Vec::new()
        };
        // Sizes and roles for progress reporting.
        let picked: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let mut sizes = std::collections::HashMap::new();
        if let Some(c) = picked["config"]["digest"].as_str() {
            sizes.insert(
                c.to_string(),
                ("config".to_string(), picked["config"]["size"].as_u64()),
            );
        }
        for l in picked["layers"].as_array().into_iter().flatten() {
            if let Some(d) = l["digest"].as_str() {
                let short = d.get(7..19).unwrap_or(d);
                sizes.insert(d.to_string(), (format!("blob {short}"), l["size"].as_u64()));
            }
        }
        let progress = progress::Progress::new(self.opts.progress);
        let (progress, sizes) = (&progress, &sizes);
        let handle = self.rt.handle().clone();
        let client = &self.client;
        let source = move |d: &Digest| -> strata_imagestore::Result<Box<dyn Read + Send>> {
            let key = d.to_string();
            let reader = blob_reader(&handle, client, &oref, &host, d);
            let (what, size) = sizes
                .get(&key)
                .cloned()
                .unwrap_or_else(|| (format!("blob {key}"), None));
            Ok(progress.wrap(what, size, reader))
        };
        // The first request authenticates; layers then go in parallel.
        let id = store.store_manifest(&bytes, &digest, names, &source)?;
        progress.event("Writing manifest to image destination");
        let mut blobs: Vec<Digest> = store.layers(&id)?.into_iter().map(|l| l.blob).collect();
        blobs.push(id.clone());
        store.record_blob_sources(&blobs, &via.domain, &via.path)?;
        Ok(id)
    }

    fn platform(&self) -> (String, String) {
        match self
            .opts
            .platform
            .as_deref()
            .map(|p| p.split('/').collect::<Vec<_>>())
        {
            Some(parts) if parts.len() >= 2 => (parts[0].to_string(), parts[1].to_string()),
            _ => ("linux".into(), strata_imagestore::store::host_arch().into()),
        }
    }

    /// `push IMAGE [DEST]`: blobs the registry lacks (HEAD check), config,
    /// manifest last. Returns the manifest digest.
    pub fn push(&self, store: &mut Store, image: &str, dest: Option<&str>) -> Result<Digest> {
        let id = store.resolve(image)?;
        let target = match dest {
            Some(d) => Reference::parse(d)?,
            None => Reference::parse(image)?,
        };
        let img = store.image(&id)?;
        let mut blobs: Vec<Digest> = store.layers(&id)?.into_iter().map(|l| l.blob).collect();
        blobs.push(id.clone());
        let manifest = store.content.read(&img.manifest)?;
        let ct = if img.media_type.is_empty() {
            ACCEPT[0].to_string()
        } else {
            img.media_type.clone()
        };
        self.push_manifest(store, &target, &blobs, &id, manifest, &ct)?;
        Ok(img.manifest)
    }

    /// Push `manifest` (of media type `ct`) as `target`, after the blobs
    /// it names, which the store holds (`config` is the one called so in
    /// progress lines). Returns the manifest's digest.
    pub fn push_manifest(
        &self,
        store: &mut Store,
        target: &Reference,
        blobs: &[Digest],
        config: &Digest,
        manifest: Vec<u8>,
        ct: &str,
    ) -> Result<Digest> {
        let oref = oci_ref(target)?;
        let host = oref.resolve_registry().to_string();
        let auth = auth_for(&target.domain)?;
        self.rt
            .block_on(self.client.auth(&oref, &auth, RegistryOperation::Push))
            .map_err(|e| from_oci(&host, "push", e))?;
        let digest = Digest::of(&manifest);
        // HEAD-check every blob, then upload the missing ones at once.
        let progress = progress::Progress::new(self.opts.progress);
        let mut uploads = Vec::new();
        for d in blobs {
            let exists = self
                .rt
                .block_on(self.client.blob_exists(&oref, &d.to_string()))
                .map_err(|e| from_oci(&host, &format!("blob {d}"), e))?;
            if exists {
                progress.event(&format!(
                    "Copying blob {} skipped: already exists",
                    d.short()
                ));
                continue;
            }
            // Another repository of this registry has it: mount, don't upload.
            let mut mounted = false;
            for repo in store
                .blob_sources(d, &target.domain)?
                .into_iter()
                .filter(|r| *r != target.path)
            {
                let Ok(from) = format!("{}/{repo}:latest", target.domain).parse::<OciRef>() else {
                    continue;
                };
                match self
                    .rt
                    .block_on(self.client.mount_blob(&oref, &from, &d.to_string()))
                {
                    Ok(()) => {
                        progress.event(&format!(
                            "Copying blob {} skipped: mounted from {repo}",
                            d.short()
                        ));
                        mounted = true;
                        break;
                    }
                    Err(e) => tracing::debug!("mount of {} from {repo} refused: {e}", d.short()),
                }
            }
            if mounted {
                continue;
            }
            let size = store.content.size(d)?;
            let chunked = size > self.opts.chunked_above.unwrap_or(CHUNKED_ABOVE);
            let piece = if chunked { UPLOAD_CHUNK } else { 1 << 20 };
            let what = if d == config { "config" } else { "blob" };
            let blob = progress.wrap(
                format!("{what} {}", d.short()),
                Some(size),
                Box::new(store.content.open_blob(d)?),
            );
            let body = stream::file_stream(blob, piece);
            let (client, oref, digest) = (&self.client, &oref, d.to_string());
            uploads.push(async move {
                if chunked {
                    // oci-client computes the digest while sending; the
                    // registry checks it against what it received.
                    let r = client
                        .push_blob_stream_chunked(oref, body)
                        .await
                        .map_err(|e| (digest.clone(), e))?;
                    if r.blob_digest != digest {
                        let msg = format!("registry stored {} for blob {digest}", r.blob_digest);
                        return Err((
                            digest,
                            oci_client::errors::OciDistributionError::GenericError(Some(msg)),
                        ));
                    }
                    Ok(r.blob_url)
                } else {
                    client
                        .push_blob_stream(oref, body, &digest, Some(size))
                        .await
                        .map_err(|e| (digest, e))
                }
            });
        }
        for r in self.rt.block_on(futures_util::future::join_all(uploads)) {
            r.map_err(|(d, e)| from_oci(&host, &format!("blob {d}"), e))?;
        }
        let header = ct
            .parse()
            .map_err(|_| Error::UnsupportedMediaType(ct.to_string()))?;
        progress.event("Writing manifest to image destination");
        self.rt
            .block_on(self.client.push_manifest_raw(&oref, manifest, header))
            .map_err(|e| from_oci(&host, "manifest", e))?;
        store.record_blob_sources(blobs, &target.domain, &target.path)?;
        Ok(digest)
    }

    /// The manifest `reference` names, as the registry sent it (verified
    /// against its digest), and that digest. Indexes are not resolved.
    pub fn fetch_manifest(&self, reference: &str) -> Result<(Vec<u8>, Digest)> {
        let r = Reference::parse(reference)?;
        let oref = oci_ref(&r)?;
        let auth = auth_for(&r.domain)?;
        self.manifest(&oref, &auth, reference)
    }

    /// A reader of blob `d` of `reference`'s repository (after a
    /// `fetch_manifest` of it, which authenticates). The caller verifies
    /// the digest.
    pub fn blob(&self, reference: &str, d: &Digest) -> Result<Box<dyn Read + Send>> {
        let r = Reference::parse(reference)?;
        let oref = oci_ref(&r)?;
        let host = oref.resolve_registry().to_string();
        Ok(blob_reader(self.rt.handle(), &self.client, &oref, &host, d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts_are_plain_http() {
        assert!(is_local("localhost:5000"));
        assert!(is_local("127.0.0.1:5000"));
        assert!(is_local("127.8.9.1"));
        assert!(is_local("[::1]:5000"));
        assert!(!is_local("registry.example.com"));
        assert!(!is_local("10.0.0.1:5000"));
    }
}
