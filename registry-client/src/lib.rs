//! strata-registry (issue 4, in progress).
