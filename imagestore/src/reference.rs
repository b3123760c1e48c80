//! Image references, normalised the Docker way:
//! `busybox` -> `docker.io/library/busybox:latest`,
//! `user/app` -> `docker.io/user/app:latest`,
//! `host:5000/a/b@sha256:...` kept as given. Names made locally (import,
//! tag of a bare name, commit, build) live under `localhost/`, as podman
//! does.

use std::fmt;

use crate::digest::Digest;
use crate::error::{Error, Result};

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const LOCAL_DOMAIN: &str = "localhost";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

fn bad(s: &str, why: &str) -> Error {
    Error::InvalidReference(s.to_string(), why.to_string())
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+ separated by one of . _ __ or runs of -
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && c.as_bytes()[0].is_ascii_alphanumeric()
        && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        && !c.contains("...")
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl Reference {
    /// Parse and normalise with docker.io as the default domain.
    pub fn parse(s: &str) -> Result<Reference> {
        Self::parse_with_domain(s, DEFAULT_DOMAIN)
    }

    /// Parse a name given to a local verb: bare names go under localhost/.
    pub fn parse_local(s: &str) -> Result<Reference> {
        Self::parse_with_domain(s, LOCAL_DOMAIN)
    }

    fn parse_with_domain(s: &str, default_domain: &str) -> Result<Reference> {
        if s.is_empty() || s.len() > 4096 {
            return Err(bad(s, "empty or too long"));
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (
                &name[..last_slash + i],
                Some(name[last_slash + i + 1..].to_string()),
            ),
            None => (name, None),
        };
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(bad(s, "invalid tag"));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (default_domain.to_string(), name.to_string()),
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if domain.bytes().any(|b| b.is_ascii_uppercase()) && domain != domain.to_ascii_lowercase() {
            // Registry hosts are case-insensitive; keep them as given.
        }
        if path.is_empty() || !path.split('/').all(valid_component) {
            return Err(bad(
                s,
                "repository names must be lowercase letters, digits and separators",
            ));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path` without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short forms a user may type for this name, most specific first:
    /// `busybox:latest` for docker.io/library/busybox:latest and
    /// localhost/busybox:latest.
    pub fn familiar(&self) -> String {
        let path = match self.domain.as_str() {
            DEFAULT_DOMAIN => self
                .path
                .strip_prefix("library/")
                .unwrap_or(&self.path)
                .to_string(),
            LOCAL_DOMAIN => self.path.clone(),
            _ => self.repository(),
        };
        match (&self.tag, &self.digest) {
            (Some(t), _) => format!("{path}:{t}"),
            (None, Some(d)) => format!("{path}@{d}"),
            (None, None) => path,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_normalisation() {
        assert_eq!(n("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(n("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(n("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            n("docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(n("localhost/foo"), "localhost/foo:latest");
        assert_eq!(n("127.0.0.1:5000/a/b:v1"), "127.0.0.1:5000/a/b:v1");
        let d = Digest::of(b"x");
        assert_eq!(
            n(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            Reference::parse_local("myimg").unwrap().to_string(),
            "localhost/myimg:latest"
        );
        assert_eq!(
            Reference::parse_local("quay.io/x/y:1").unwrap().to_string(),
            "quay.io/x/y:1"
        );
    }

    #[test]
    fn invalid_names() {
        for s in [
            "",
            "UPPER",
            "a//b",
            "-lead",
            "busybox:",
            "busybox:bad tag",
            "x@sha256:zz",
            "a/../b",
        ] {
            assert!(Reference::parse(s).is_err(), "{s} should be invalid");
        }
    }

    #[test]
    fn familiar_names() {
        assert_eq!(
            Reference::parse("busybox").unwrap().familiar(),
            "busybox:latest"
        );
        assert_eq!(Reference::parse("localhost/x:1").unwrap().familiar(), "x:1");
        assert_eq!(
            Reference::parse("quay.io/a/b:2").unwrap().familiar(),
            "quay.io/a/b:2"
        );
    }
}
