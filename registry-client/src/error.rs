//! Registry errors in the user's terms.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("registry {host}: {msg}")]
    Registry { host: String, msg: String },
    #[error("credentials: {0}")]
    Credentials(String),
    #[error(transparent)]
    Store(#[from] strata_imagestore::Error),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Classify an oci-client error for a host.
pub fn from_oci(host: &str, what: &str, e: oci_client::errors::OciDistributionError) -> Error {
    use oci_client::errors::OciDistributionError as E;
    let text = e.to_string();
    match e {
        E::AuthenticationFailure(m) => Error::Unauthorized(format!("{host}: {m}")),
        E::UnauthorizedError { .. } => {
            Error::Unauthorized(format!("authentication required for {host}"))
        }
        E::ImageManifestNotFoundError(_) => Error::NotFound(what.to_string()),
        E::RegistryError { envelope, .. } => {
            let codes: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}", e.code))
                .collect();
            let joined = codes.join(",");
            // The registry's own words, without the URL and envelope dump.
            let said: Vec<String> = envelope.errors.iter().map(|e| e.message.clone()).collect();
            let said = said.join("; ");
            if joined.contains("Unauthorized") || joined.contains("Denied") {
                Error::Unauthorized(format!("{host}: {said}"))
            } else if joined.contains("Unknown") {
                Error::NotFound(format!("{what}: {said}"))
            } else {
                Error::Registry {
                    host: host.to_string(),
                    msg: said,
                }
            }
        }
        _ if text.contains("401") => {
            Error::Unauthorized(format!("authentication required for {host}"))
        }
        _ if text.contains("404") => Error::NotFound(what.to_string()),
        // HTTPS to a host that does not answer it: say how to allow HTTP.
        _ if text.contains("error sending request") && text.contains("https://") => {
            Error::Registry {
                host: host.to_string(),
                msg: format!(
                    "{text}: no HTTPS there (a plain-HTTP registry must be listed in insecure_registries in strata.toml, or use --tls-verify=false)"
                ),
            }
        }
        _ => Error::Registry {
            host: host.to_string(),
            msg: text,
        },
    }
}
