//! Unstable internals for fuzzing and testing (feature `_internal`). Not
//! covered by semver.
#![allow(missing_docs, clippy::missing_panics_doc)]

pub mod fuzz;
pub mod fuzz_endpoint;
pub mod fuzz_link;
pub mod fuzz_rd;
pub mod fuzz_uri;
pub mod sim;
