//! strata-imagestore: content store, metadata, unpack, snapshots (issue 3; not built yet).
