//! One integration-test binary; modules below share the harness.

mod harness;

mod bundle;
mod cli;
mod cluster;
mod content;
mod docs;
mod dryrun;
mod egress;
mod faults;
mod flows;
mod folder_images;
mod fuzz_regressions;
mod git;
mod hostile;
mod html;
mod layers;
mod merge;
mod outputs;
mod promises;
mod registry;
mod reports;
mod s3;
mod scratch;
mod secrets;
mod services;
mod severity;
mod signing;
mod sigstore;
mod smtp;
mod split;
mod static_binary;
mod tarread;
mod terminal;
mod vendor;
mod verdicts;
