//! airgap-verify: verify a vendor's release archive and the services inside
//! a closed network before installing a self-hosted platform.
//!
//! Data flows one way: input -> plan -> validators/probes -> findings ->
//! renderer. Validators never print and never decide the exit code; they
//! send [`finding::Finding`]s. The binary (`main.rs`) is a thin shell over
//! [`run`].

pub mod bundle;
pub mod cli;
pub mod cluster;
pub mod codes;
pub mod config;
pub mod error;
pub mod finding;
pub mod merge;
pub mod output;
pub mod plan;
pub mod probe;
pub mod profiles;
pub mod report;
pub mod run;
pub mod sample;
pub mod scratch;
pub mod sigstore;
pub mod sink;
pub mod terminal;
pub mod timefmt;
pub mod trust;

/// Entry points for the cargo-fuzz targets in `fuzz/` (issue #7). Thin
/// wrappers over the real code paths, taking raw bytes; not part of the
/// supported API.
#[doc(hidden)]
pub mod fuzzing;
