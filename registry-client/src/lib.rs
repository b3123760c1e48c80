//! strata-registry: OCI distribution client (issue 4; not built yet).
