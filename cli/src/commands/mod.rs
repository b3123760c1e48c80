//! Verb groups of the `strata` CLI that have moved out of `main.rs`:
//! clap arguments, output and exit codes; the work is the library's.

pub mod build;
pub mod images;
