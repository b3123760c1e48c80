//! strata: the engine library behind the `strata` CLI (issue 5; not built yet).
