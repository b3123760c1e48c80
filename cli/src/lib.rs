//! strata: the engine behind the `strata` CLI. Image verbs are here now
//! (issue 3); containers, build, network and the registry come with
//! issues 4 and 5.

pub mod build;
pub mod config;
pub mod containers;
pub mod events;
pub mod filters;
pub mod format;
pub mod images;
pub mod network;
pub mod paths;
pub mod rootless;
pub mod volumes;
