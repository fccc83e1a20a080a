//! Thin binary: parse the arguments, make them one validated plan, run it,
//! render the report, exit with its code. Everything else is the library's
//! (`plan`, `run`, `report`).

use std::process::ExitCode;

use clap::Parser;

use airgap_verify::cli::Cli;
use airgap_verify::plan::Plan;
use airgap_verify::run::{self, Done};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = Plan::from_cli(cli)
        .map_err(anyhow::Error::from)
        .and_then(run::execute)
        .and_then(|done| match done {
            Done::Exit(code) => Ok(code),
            Done::Report(report, outputs) => outputs.emit(&report),
        });
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line, the whole chain, printed once; exit 2 for every
            // usage, input or configuration error.
            eprintln!("airgap-verify: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
