//! One integration-test binary; modules below share the harness.

mod harness;

mod bundle;
mod cli;
mod content;
mod docs;
mod fuzz_regressions;
mod git;
mod registry;
mod s3;
mod services;
mod signing;
mod smtp;
