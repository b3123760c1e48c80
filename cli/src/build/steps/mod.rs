//! The build's step kinds: RUN in a container, COPY/ADD into a snapshot,
//! and the config-only instructions.

pub mod copy;
pub mod meta;
pub mod run;
