//! What a person at a terminal sees while a run goes on: a progress bar for
//! the archive pass and one line per probe, both on standard error and
//! only when it is a terminal (and `--no-progress` is not given), so that
//! pipes, files and CI logs get nothing but the report.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::bundle::{NoProgress, Progress};
use crate::cli::ColorChoice;
use crate::finding::Status;
use crate::probe::ProbeProgress;

/// Colour for a stream: `--color`, or a terminal without NO_COLOR.
pub fn colored(choice: ColorChoice, terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

/// The archive pass's progress: a bar on a terminal's standard error.
pub fn bundle_progress(wanted: bool) -> Box<dyn Progress> {
    if !wanted || !std::io::stderr().is_terminal() {
        return Box::new(NoProgress);
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        None,
        indicatif::ProgressDrawTarget::stderr_with_hz(10),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} {bar:30} {bytes_per_sec} ETA {eta}",
        )
        .expect("static template"),
    );
    Box::new(Bar(bar))
}

/// The probes' progress: one line each on a terminal's standard error.
pub fn probe_progress(wanted: bool) -> Arc<dyn ProbeProgress> {
    if !wanted || !std::io::stderr().is_terminal() {
        return Arc::new(crate::probe::Quiet);
    }
    Arc::new(ProbeLines {
        multi: indicatif::MultiProgress::with_draw_target(
            indicatif::ProgressDrawTarget::stderr_with_hz(10),
        ),
        bars: Default::default(),
    })
}

struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn start(&self, total: u64) {
        if total > 0 {
            self.0.set_length(total);
        }
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// One line per probe: a spinner while it runs, its verdict when it ends.
struct ProbeLines {
    multi: indicatif::MultiProgress,
    bars: Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>,
}

impl ProbeProgress for ProbeLines {
    fn started(&self, probe: &str) {
        let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("static template"),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        bar.set_message(probe.to_string());
        if let Ok(mut b) = self.bars.lock() {
            b.insert(probe.to_string(), bar);
        }
    }
    fn finished(&self, probe: &str, worst: Status, elapsed: Duration) {
        if let Some(bar) = self.bars.lock().ok().and_then(|mut b| b.remove(probe)) {
            bar.set_style(
                indicatif::ProgressStyle::with_template("  {msg}").expect("static template"),
            );
            bar.finish_with_message(format!("{probe}: {worst} ({} ms)", elapsed.as_millis()));
        }
    }
}
