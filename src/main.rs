//! Thin binary: parse args -> validated plan -> run -> render -> exit code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use airgap_verify::bundle::{
    checksum::ChecksumSource, BundleOptions, Limits, NoProgress, Progress,
};
use airgap_verify::cli::{Cli, ColorChoice, Command, FailOn, ManifestCommand, ReportArgs};
use airgap_verify::error::InputError;
use airgap_verify::finding::{Finding, Policy, Status};
use airgap_verify::report::{self, Format, Report};
use airgap_verify::{codes, run, sample};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line, the whole chain, printed once.
            eprintln!("airgap-verify: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Bundle(a) => {
            let checksum = match (a.checksum, a.sha256) {
                (Some(f), _) => ChecksumSource::File(f),
                (None, Some(h)) => ChecksumSource::Hex(h),
                (None, None) => ChecksumSource::Auto,
            };
            let mut opts = BundleOptions {
                path: a.path,
                checksum,
                limits: Limits {
                    deep: a.deep,
                    perimeter: std::sync::Arc::new(airgap_verify::bundle::refscan::Perimeter {
                        hosts: a.allow_host,
                        domains: a.allow_domain,
                        deny_external: a.deny_external,
                    }),
                    ..Limits::default()
                },
                signatures: airgap_verify::bundle::signing::SignatureOptions {
                    minisign_key: a.pubkey,
                    cosign_key: a.cosign_key,
                },
            };
            a.limits.apply(&mut opts.limits, a.no_content);
            let policy = policy(&a.report);
            let bar = progress_for(&a.report);
            let report = run::bundle(&opts, &policy, bar.as_ref())?;
            emit(&report, &a.report)
        }
        Command::Services(a) => services(a),
        Command::Check(a) => check(a),
        Command::Init(a) => init(a),
        Command::Manifest(ManifestCommand::Create(a)) => manifest_create(a),
        Command::Explain(a) => explain(a),
        Command::Sample(a) => {
            let written = sample::write_release(&a.dir, a.size, a.gzip)
                .with_context(|| format!("writing the sample release into {}", a.dir.display()))?;
            for p in written {
                println!("{}", p.display());
            }
            Ok(0)
        }
    }
}

fn policy(r: &ReportArgs) -> Policy {
    Policy {
        fail_on_warn: r.fail_on == FailOn::Warn,
        ..Default::default()
    }
}

/// Renders the report where asked; the exit code comes from findings alone.
fn emit(report: &Report, r: &ReportArgs) -> anyhow::Result<u8> {
    let code = report.exit_code() as u8;
    let result = match &r.output {
        Some(path) => {
            let mut f = std::fs::File::create(path)
                .map_err(|e| InputError::unreadable(path, "output file", e))?;
            report::render(report, r.format, false, &mut f)
                .and_then(|_| f.flush())
                .with_context(|| format!("writing {}", path.display()))
        }
        None => {
            let stdout = std::io::stdout();
            let color = match r.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => {
                    stdout.is_terminal()
                        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                }
            };
            let mut lock = stdout.lock();
            match report::render(report, r.format, color, &mut lock).and_then(|_| lock.flush()) {
                // A closed pipe (`| head`) is the reader's choice, not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => other.context("writing the report"),
            }
        }
    };
    result.map(|_| code)
}

fn services(a: airgap_verify::cli::ServicesArgs) -> anyhow::Result<u8> {
    let opts = airgap_verify::config::LoadOptions {
        perimeter: a.config,
        sekoia: a.sekoia_config,
        ca_bundle: a.ca_bundle,
        timeout: a.timeout,
        system_roots: a.system_roots,
        strict_airgap: a.strict_airgap,
        send_test_mail: a.send_test_mail,
        write_probe: a.write_probe,
    };
    let plan = airgap_verify::config::load(&opts)?;
    if a.dry_run {
        let mut out = std::io::stdout().lock();
        for line in airgap_verify::probe::describe(&plan) {
            if writeln!(out, "{line}").is_err() {
                break; // a closed pipe ends the listing
            }
        }
        return Ok(0);
    }
    let policy = policy(&a.report);
    let progress = probe_progress_for(&a.report);
    let report = run::services(plan, &policy, progress)?;
    emit(&report, &a.report)
}

fn check(a: airgap_verify::cli::CheckArgs) -> anyhow::Result<u8> {
    let s = a.services;
    let opts = airgap_verify::config::LoadOptions {
        perimeter: s.config,
        sekoia: s.sekoia_config,
        ca_bundle: s.ca_bundle,
        timeout: s.timeout,
        system_roots: s.system_roots,
        strict_airgap: s.strict_airgap,
        send_test_mail: s.send_test_mail,
        write_probe: s.write_probe,
    };
    let plan = airgap_verify::config::load(&opts)?;
    let bundle_opts = a.bundle.map(|path| {
        let mut limits = Limits {
            perimeter: std::sync::Arc::new(airgap_verify::bundle::refscan::Perimeter {
                hosts: a.allow_host,
                domains: Vec::new(),
                deny_external: false,
            }),
            ..Limits::default()
        };
        a.limits.apply(&mut limits, false);
        BundleOptions {
            path,
            checksum: match a.checksum {
                Some(f) => ChecksumSource::File(f),
                None => ChecksumSource::Auto,
            },
            limits,
            signatures: airgap_verify::bundle::signing::SignatureOptions {
                minisign_key: a.pubkey,
                cosign_key: None,
            },
        }
    });
    let policy = policy(&s.report);
    let bar = progress_for(&s.report);
    let report = run::check(
        bundle_opts.as_ref(),
        plan,
        &policy,
        bar.as_ref(),
        probe_progress_for(&s.report),
    )?;
    emit(&report, &s.report)
}

fn init(a: airgap_verify::cli::InitArgs) -> anyhow::Result<u8> {
    let text = if a.schema {
        airgap_verify::config::file::json_schema()
    } else {
        airgap_verify::config::file::TEMPLATE.to_string()
    };
    match a.path {
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.context("writing the template")?,
            }
        }
        Some(p) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&p)
                .map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        InputError::Usage(format!(
                            "{} already exists; remove it or choose another path (init never overwrites)",
                            p.display()
                        ))
                    } else {
                        InputError::unreadable(&p, "output file", e)
                    }
                })?;
            f.write_all(text.as_bytes())
                .with_context(|| format!("writing {}", p.display()))?;
            eprintln!("airgap-verify: wrote {}", p.display());
        }
    }
    Ok(0)
}

/// One line per probe on a terminal: a spinner while it runs, its verdict
/// when it ends.
struct ProbeLines {
    multi: indicatif::MultiProgress,
    bars: std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>,
}

impl airgap_verify::probe::ProbeProgress for ProbeLines {
    fn started(&self, probe: &str) {
        let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("static template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        bar.set_message(probe.to_string());
        if let Ok(mut b) = self.bars.lock() {
            b.insert(probe.to_string(), bar);
        }
    }
    fn finished(&self, probe: &str, worst: Status, elapsed: std::time::Duration) {
        if let Some(bar) = self.bars.lock().ok().and_then(|mut b| b.remove(probe)) {
            bar.set_style(
                indicatif::ProgressStyle::with_template("  {msg}").expect("static template"),
            );
            bar.finish_with_message(format!("{probe}: {worst} ({} ms)", elapsed.as_millis()));
        }
    }
}

fn probe_progress_for(r: &ReportArgs) -> std::sync::Arc<dyn airgap_verify::probe::ProbeProgress> {
    if r.no_progress || r.format != Format::Human || !std::io::stderr().is_terminal() {
        return std::sync::Arc::new(airgap_verify::probe::Quiet);
    }
    std::sync::Arc::new(ProbeLines {
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

fn progress_for(r: &ReportArgs) -> Box<dyn Progress> {
    if r.no_progress || r.format != Format::Human || !std::io::stderr().is_terminal() {
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

fn manifest_create(a: airgap_verify::cli::ManifestCreateArgs) -> anyhow::Result<u8> {
    let opts = BundleOptions {
        path: a.path.clone(),
        checksum: ChecksumSource::Auto,
        limits: Limits::default(),
        signatures: Default::default(),
    };
    let (tx, rx) = crossbeam_channel::unbounded::<Finding>();
    let verified = airgap_verify::bundle::verify(&opts, &NoProgress, &tx)?;
    drop(tx);
    let failures: Vec<Finding> = rx
        .into_iter()
        .filter(|f| f.status == Status::Fail)
        .collect();
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("airgap-verify: {}: {}", f.code, f.message);
        }
        eprintln!(
            "airgap-verify: no manifest written: {} failing finding(s); a baseline must come from an intact copy",
            failures.len()
        );
        return Ok(1);
    }
    let product = a.product.unwrap_or_else(|| {
        let name = a
            .path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        name.split(".tar").next().unwrap_or(&name).to_string()
    });
    let doc = airgap_verify::bundle::create::build(
        &verified.files,
        &a.root,
        &product,
        &a.release_version,
    );
    if doc.files.is_empty() {
        return Err(InputError::Usage(format!(
            "--root {:?}: no file of {} is inside that folder",
            a.root,
            a.path.display()
        ))
        .into());
    }
    let text = serde_json::to_string_pretty(&doc)? + "\n";
    match a.output {
        Some(p) => {
            std::fs::write(&p, text).map_err(|e| InputError::unreadable(&p, "output file", e))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes()) {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(e.into());
                }
            }
        }
    }
    Ok(0)
}

fn explain(a: airgap_verify::cli::ExplainArgs) -> anyhow::Result<u8> {
    if a.markdown {
        print!("{}", codes::markdown());
        return Ok(0);
    }
    if a.list {
        for c in codes::ALL {
            println!("{:<36} {}", c.id, c.default_status);
        }
        return Ok(0);
    }
    let id = a.code.unwrap_or_default();
    let Some(code) = codes::Code::from_id(&id) else {
        return Err(InputError::Usage(format!(
            "unknown code {id:?}; `airgap-verify explain --list` shows every code"
        ))
        .into());
    };
    print!("{}", codes::explain_text(code));
    Ok(0)
}
