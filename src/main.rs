//! Thin binary: parse the arguments, make them one validated plan, run it,
//! render the report, exit with its code. Everything else is the library's
//! (`plan`, `run`, `report`).

use std::process::ExitCode;

use clap::Parser;

use airgap_verify::cli::Cli;
use airgap_verify::plan::Plan;
use airgap_verify::run::{self, Done};

fn main() -> ExitCode {
    steady_malloc();
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

/// Fixes glibc's mmap threshold at its default, 128 KiB, which also fixes
/// its trim threshold. Left alone, glibc raises both each time it frees a
/// block it had mapped (up to 32 MiB): from then on the tables that grow
/// with the number of files (the file table, a `SHA256SUMS` listing) grow
/// inside the threads' heaps, where each doubling leaves the smaller copy
/// behind, resident. Fixed, a large block is its own mapping, grown in
/// place by `mremap` and returned whole when freed. Measured on the
/// benchmark's text-heavy release (`scripts/bench-bundle.sh`), anonymous
/// memory at twice the size: 5.2 MiB left alone, 4.9 MiB fixed; no change
/// at the base size.
fn steady_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets one of the allocator's parameters, before any
    // thread exists; a refusal (0) leaves glibc's default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}
