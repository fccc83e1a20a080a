//! Running a validated plan: every producer hands its findings to one
//! [`Sink`] (capped, sorted, the user's policy applied once); the report is
//! built from what it holds.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;

use crate::bundle::{self, BundleOptions, Progress};
use crate::error::InputError;
use crate::finding::{Code, Finding, Policy, Status};
use crate::output::OutputFile;
use crate::plan::{HostPlan, ListenPlan, ManifestPlan, OutputPlan, Plan, RunPlan};
use crate::report::{Format, Report};
use crate::sink::Sink;

/// `airgap-verify bundle`: verify one archive or folder.
pub fn bundle(
    opts: &BundleOptions,
    policy: &Policy,
    progress: &dyn Progress,
) -> Result<Report, InputError> {
    let started = Instant::now();
    let context = crate::report::RunContext::begin(policy);
    let mut sink = Sink::new();
    let verified = sink.collect(|tx| bundle::verify(opts, progress, tx))?;
    sink.extend(what_the_pass_did_not_verify(opts, &verified, &sink));
    sink.extend(nothing_verified(&sink, "bundle"));
    Ok(Report {
        command: "bundle".into(),
        findings: sink.finish(&verified.input.path, policy),
        inputs: vec![verified.input],
        duration_ms: started.elapsed().as_millis() as u64,
        interrupted: None,
        context,
    })
}

/// `airgap-verify check` (and the probe commands, with no archive): the
/// archive when given and every selected probe, in one report. The
/// release's images found by the archive pass are looked up in the
/// configured registry.
pub fn check(
    command: &str,
    bundle_opts: Option<&BundleOptions>,
    mut plan: crate::config::Perimeter,
    select: crate::probe::Selection,
    policy: &Policy,
    bundle_progress: &dyn Progress,
    progress: std::sync::Arc<dyn crate::probe::ProbeProgress>,
) -> Result<Report, InputError> {
    let started = Instant::now();
    let context = crate::report::RunContext::begin(policy);
    let mut inputs = Vec::new();
    let mut sink = Sink::new();
    if let Some(opts) = bundle_opts {
        let verified = sink.collect(|tx| bundle::verify(opts, bundle_progress, tx))?;
        sink.extend(what_the_pass_did_not_verify(opts, &verified, &sink));
        if let Some(reg) = plan.registry.as_mut() {
            // From the pass's typed result, not from the findings: those are
            // capped per code, and an image past the cap would go unchecked.
            let mut known: std::collections::HashSet<(String, String)> = reg
                .images
                .iter()
                .map(|i| (i.repo.clone(), i.tag.clone()))
                .collect();
            for image in release_images(&verified.images) {
                if known.insert((image.repo.clone(), image.tag.clone())) {
                    reg.images.push(image);
                }
            }
        }
        inputs.push(verified.input);
    }
    for p in &plan.sources {
        inputs.push(config_input(p)?);
    }
    if bundle_opts.is_none() && command == "check" {
        sink.push(Finding::new(
            Code::RunArchiveNotChecked,
            "check",
            "no --bundle: the release archive was not verified",
        ));
    }
    let outcome = crate::probe::run(plan, select, progress)?;
    sink.extend(outcome.findings);
    if outcome.interrupted.is_none() {
        sink.extend(nothing_verified(&sink, command));
    }
    // Capped findings are counted on one finding naming the archive when
    // there is one, else the command.
    let marker = inputs
        .first()
        .filter(|_| bundle_opts.is_some())
        .map(|i| i.path.clone())
        .unwrap_or_else(|| command.to_string());
    Ok(Report {
        command: command.into(),
        inputs,
        findings: sink.finish(&marker, policy),
        duration_ms: started.elapsed().as_millis() as u64,
        interrupted: outcome.interrupted,
        context,
    })
}

/// Findings for what an archive pass did not verify although a user would
/// assume it did: an input with no file at all, content not opened, and
/// nothing (checksum, manifest, signature) tying it to the vendor.
fn what_the_pass_did_not_verify(
    opts: &BundleOptions,
    verified: &bundle::Verified,
    found: &Sink,
) -> Vec<Finding> {
    let target = &verified.input.path;
    let mut out = Vec::new();
    // Only when nothing else failed: a damaged or hostile archive whose
    // pass stopped early has said what is wrong already.
    let failed = found.any(|f| f.status == Status::Fail);
    if verified.files.is_empty() && !failed {
        out.push(Finding::new(
            Code::BundleEmpty,
            target.clone(),
            if verified.input.kind == "directory" {
                "the folder holds no file: nothing was verified (is the staging volume mounted?)"
            } else {
                "the archive holds no file: nothing was verified"
            },
        ));
    }
    if opts.limits.max_depth == 0 {
        out.push(Finding::new(
            Code::BundleContentNotChecked,
            target.clone(),
            "nested archives (images, charts, content and Git bundles) were not opened and text files not scanned for external references (--no-content): their content was not verified",
        ));
    }
    // A Sigstore bundle vouches for the release only when it signs the
    // archive itself (PATH.sigstore.json); one beside a member signs that
    // member only.
    let vouched = found.any(|f| {
        f.status == Status::Pass
            && (matches!(
                f.code,
                Code::BundleChecksumVerified | Code::BundleManifestVerified | Code::SignatureValid
            ) || (f.code == Code::SigstoreVerified && f.target == *target))
    });
    if !vouched && !verified.files.is_empty() {
        out.push(Finding::new(
            Code::BundleUnauthenticated,
            target.clone(),
            "no checksum matched, no manifest was verified and no signature of the archive was checked: nothing ties this release to what the vendor shipped",
        ));
    }
    out
}

/// `run:nothing-verified` when no check ran: every finding (if any) is
/// about the configuration or a skipped part. Such a report says nothing,
/// and must not read as ready.
fn nothing_verified(findings: &Sink, command: &str) -> Option<Finding> {
    if findings.any(|f| f.status != Status::Skip && !matches!(f.family(), "config" | "run")) {
        return None;
    }
    Some(Finding::new(
        Code::RunNothingVerified,
        command,
        format!(
            "{command} verified nothing: no check ran ({} finding(s), all about the configuration or skipped parts)",
            findings.len()
        ),
    ))
}

/// The images a verified release carries (the references of its intact
/// images), as registry paths: the registry host of the reference is
/// dropped, since the images are pushed to the perimeter's registry under
/// the same path.
fn release_images(refs: &[String]) -> Vec<crate::config::ImageRef> {
    refs.iter()
        .filter_map(|r| {
            // `host[:port]/path:tag`: the first segment is a host when it has
            // a dot or a port, or is `localhost`.
            let path = match r.split_once('/') {
                Some((first, rest))
                    if first.contains('.') || first.contains(':') || first == "localhost" =>
                {
                    rest
                }
                _ => r,
            };
            crate::config::ImageRef::parse(path).ok()
        })
        .collect()
}

/// A configuration file as the report's `inputs` describes it.
fn config_input(path: &std::path::Path) -> Result<bundle::InputSummary, InputError> {
    use sha2::Digest;
    let bytes =
        std::fs::read(path).map_err(|e| InputError::unreadable(path, "configuration", e))?;
    Ok(bundle::InputSummary {
        path: path.display().to_string(),
        kind: "config",
        size: bytes.len() as u64,
        sha256: Some(hex::encode(sha2::Sha256::digest(&bytes))),
    })
}

/// What a run leaves for `main` to do: exit with a code, or render a
/// report to the outputs opened for it and exit with the report's code.
pub enum Done {
    Exit(u8),
    Report(Box<Report>, Outputs),
}

/// Runs a validated plan. Report files are created (as temporary files
/// beside their place) before the run, so an unwritable one fails before
/// the archive is read or a server contacted.
pub fn execute(plan: Plan) -> anyhow::Result<Done> {
    // Temporary report files and scratch folders go on SIGINT and SIGTERM
    // too; `listen` handles both its own way for its whole length, and the
    // other commands write no temporary file.
    if plan.writes_temporary_files() {
        crate::scratch::watch_signals();
    }
    match plan {
        Plan::Run(p) => run_plan(*p),
        Plan::Listen(p) => listen(*p).map(Done::Exit),
        Plan::Host(p) => host(*p),
        Plan::Merge(p) => {
            let outputs = Outputs::open(&p.output)?;
            let report = crate::merge::merge_files(&p.reports, &p.policy)?;
            Ok(Done::Report(Box::new(report), outputs))
        }
        Plan::Cluster(p) => cluster(*p),
        Plan::Manifest(p) => manifest_create(p).map(Done::Exit),
        Plan::VerifyBundle(a) => sigstore_verify_bundle(a).map(Done::Exit),
        Plan::Print(text) => {
            print_text(&text)?;
            Ok(Done::Exit(0))
        }
        Plan::WriteNew { path, text } => {
            write_new(&path, &text)?;
            eprintln!("airgap-verify: wrote {}", path.display());
            Ok(Done::Exit(0))
        }
        Plan::Sample(a) => {
            let written = crate::sample::write_release(&a.dir, a.size, a.gzip)
                .with_context(|| format!("writing the sample release into {}", a.dir.display()))?;
            print_text(
                &written
                    .iter()
                    .map(|p| format!("{}\n", p.display()))
                    .collect::<String>(),
            )?;
            Ok(Done::Exit(0))
        }
    }
}

fn run_plan(p: RunPlan) -> anyhow::Result<Done> {
    if p.dry_run {
        let lines = p.describe()?;
        print_text(&lines.iter().map(|l| format!("{l}\n")).collect::<String>())?;
        return Ok(Done::Exit(0));
    }
    let outputs = Outputs::open(&p.output)?;
    let bar = crate::terminal::bundle_progress(p.output.progress && p.bundle.is_some());
    let mut report = match p.perimeter {
        None => {
            let opts = p
                .bundle
                .as_ref()
                .expect("a run plan has an archive or a perimeter");
            bundle(opts, &p.policy, bar.as_ref())?
        }
        Some(perimeter) => check(
            p.command,
            p.bundle.as_ref(),
            perimeter,
            p.select,
            &p.policy,
            bar.as_ref(),
            crate::terminal::probe_progress(p.output.progress),
        )?,
    };
    report.context.settings = p.settings;
    Ok(Done::Report(Box::new(report), outputs))
}

/// Text on standard output; a closed pipe (`| head`) is the reader's
/// choice, not an error.
fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to standard output"),
    }
}

/// `init PATH`: never over an existing file.
fn write_new(p: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(p)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                InputError::Usage(format!(
                    "{} already exists; remove it or choose another path (init never overwrites)",
                    p.display()
                ))
            } else {
                InputError::unreadable(p, "output file", e)
            }
        })?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", p.display()))
}

/// Where the reports go, all opened before the run: standard output (in
/// `--format`, unless a plain `--output FILE` took it) and each file.
pub struct Outputs {
    plan: OutputPlan,
    files: Vec<(Format, OutputFile)>,
}

impl Outputs {
    /// Every output file created (as a temporary file beside it), so an
    /// unwritable one fails now rather than after the pass.
    pub fn open(plan: &OutputPlan) -> anyhow::Result<Outputs> {
        let mut files = Vec::new();
        for (format, path) in &plan.files {
            files.push((*format, OutputFile::create(path)?));
        }
        Ok(Outputs {
            plan: plan.clone(),
            files,
        })
    }

    /// Renders the report where asked; the exit code comes from findings
    /// alone.
    pub fn emit(self, report: &Report) -> anyhow::Result<u8> {
        use std::io::IsTerminal;
        let code = report.exit_code() as u8;
        let plan = &self.plan;
        if plan.stdout {
            let stdout = std::io::stdout();
            let color = crate::terminal::colored(plan.color, stdout.is_terminal());
            let mut lock = stdout.lock();
            match crate::report::render(report, plan.format, color, plan.verbosity, &mut lock)
                .and_then(|_| lock.flush())
            {
                // A closed pipe (`| head`) is the reader's choice, not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.context("writing the report")?,
            }
        }
        for (format, file) in self.files {
            file.commit(|out| crate::report::render(report, format, false, plan.verbosity, out))?;
        }
        // Someone watches a terminal but the human report went elsewhere (a
        // machine format on standard output, or only files): the failures
        // and the verdict go to standard error, so the run does not end in
        // silence.
        let stderr = std::io::stderr();
        let human_on_stdout = plan.stdout && plan.format == Format::Human;
        if !human_on_stdout && stderr.is_terminal() {
            let color = crate::terminal::colored(plan.color, true);
            let mut lock = stderr.lock();
            let _ = crate::report::render(
                report,
                Format::Human,
                color,
                crate::report::human::Verbosity::Quiet,
                &mut lock,
            );
        }
        Ok(code)
    }
}

/// `host`: this host's packages and ports, as findings.
fn host(p: HostPlan) -> anyhow::Result<Done> {
    if p.dry_run {
        let lines = crate::probe::host::describe(&p.profile, p.role, &p.dpkg_status);
        print_text(&lines.iter().map(|l| format!("{l}\n")).collect::<String>())?;
        return Ok(Done::Exit(0));
    }
    let outputs = Outputs::open(&p.output)?;
    let started = Instant::now();
    let context = crate::report::RunContext::begin(&p.policy);
    let mut sink = Sink::new();
    sink.extend(crate::probe::host::check(
        &p.profile,
        p.role,
        &p.dpkg_status,
    ));
    let report = Report {
        command: "host".into(),
        inputs: Vec::new(),
        findings: sink.finish("host", &p.policy),
        duration_ms: started.elapsed().as_millis() as u64,
        interrupted: None,
        context,
    };
    Ok(Done::Report(Box::new(report), outputs))
}

/// `cluster`: the playbook on every host, the release archive (if any)
/// verified here, one merged report.
fn cluster(p: crate::plan::ClusterPlan) -> anyhow::Result<Done> {
    if p.dry_run {
        let mut lines = crate::cluster::describe(&p.cluster);
        if let Some(o) = &p.bundle {
            lines.extend(crate::bundle::describe(o)?);
        }
        print_text(&lines.iter().map(|l| format!("{l}\n")).collect::<String>())?;
        return Ok(Done::Exit(0));
    }
    let outputs = Outputs::open(&p.output)?;
    let mut local = Vec::new();
    if let Some(o) = &p.bundle {
        let bar = crate::terminal::bundle_progress(p.output.progress);
        local.push((
            crate::report::hostname(),
            bundle(o, &p.policy, bar.as_ref())?,
        ));
    }
    let report = crate::cluster::run(&p.cluster, &p.policy, local)?;
    Ok(Done::Report(Box::new(report), outputs))
}

/// `listen`: the report of what could be bound goes out once every port is
/// answering, before the wait; then a line says how it ended.
fn listen(p: ListenPlan) -> anyhow::Result<u8> {
    let started = Instant::now();
    let context = crate::report::RunContext::begin(&p.policy);
    let mut outputs = Some(Outputs::open(&p.output)?);
    let mut code = 0u8;
    let mut emitted: anyhow::Result<()> = Ok(());
    let deadline = p.options.deadline;
    let profile = p.profile;
    let (answered, stopped) = crate::probe::listen::run(&profile, p.options, |findings| {
        let report = Report {
            command: "listen".into(),
            inputs: Vec::new(),
            findings: findings.to_vec(),
            duration_ms: started.elapsed().as_millis() as u64,
            interrupted: None,
            context: context.clone(),
        };
        if let Some(outputs) = outputs.take() {
            match outputs.emit(&report) {
                Ok(c) => code = c,
                Err(e) => emitted = Err(e),
            }
        }
        // Tests and scripts wait for this line before they test.
        eprintln!(
            "airgap-verify listen: ready, profile {}; answering until {} or Ctrl-C",
            profile.name,
            humantime::format_duration(deadline)
        );
    })?;
    emitted?;
    eprintln!(
        "airgap-verify listen: stopped{}; answered {answered} challenge(s)",
        stopped
            .map(|s| format!(" by {}", s.name()))
            .unwrap_or_default()
    );
    Ok(code)
}

/// `manifest create`: a baseline only from a copy whose pass found nothing
/// failing.
fn manifest_create(p: ManifestPlan) -> anyhow::Result<u8> {
    // Created before the pass: an unwritable spot fails now.
    let output = match &p.output {
        Some(path) => Some(OutputFile::create(path)?),
        None => None,
    };
    let mut sink = Sink::new();
    let verified = sink.collect(|tx| bundle::verify(&p.bundle, &bundle::NoProgress, tx))?;
    let failures: Vec<Finding> = sink
        .finish_unjudged(&verified.input.path)
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
    let doc = bundle::create::build(&verified.files, &p.root, &p.product, &p.release_version);
    if doc.files.is_empty() {
        return Err(InputError::Usage(format!(
            "--root {:?}: no file of {} is inside that folder",
            p.root,
            p.bundle.path.display()
        ))
        .into());
    }
    let text = serde_json::to_string_pretty(&doc)? + "\n";
    match output {
        Some(file) => file.commit(|out| out.write_all(text.as_bytes()))?,
        None => print_text(&text)?,
    }
    Ok(0)
}

/// `sigstore verify-bundle` (Sigstore conformance CLI protocol): one line on
/// stdout when the bundle verifies (exit 0), one reason line on stderr when
/// it does not (exit 1); unusable input is exit 2.
fn sigstore_verify_bundle(a: crate::cli::VerifyBundleArgs) -> anyhow::Result<u8> {
    use crate::sigstore::{self, Outcome, RootChoice, SignerPolicy, Subject};
    let subject = Subject::parse(&a.artifact)?;
    let policy: SignerPolicy = crate::cli::signer_policy(
        a.key.as_ref(),
        a.certificate_identity.as_ref(),
        a.certificate_identity_regexp.as_ref(),
        a.certificate_oidc_issuer.as_ref(),
    )?
    .ok_or_else(|| {
        InputError::Usage(
            "give --certificate-identity (or --certificate-identity-regexp) with --certificate-oidc-issuer, or --key".into(),
        )
    })?;
    let root = match (&a.trusted_root, a.staging) {
        (Some(p), _) => RootChoice::File(p),
        (None, true) => RootChoice::Staging,
        (None, false) => RootChoice::PublicGood,
    };
    let trust = sigstore::Trust::load(root)?;
    let bundle = std::fs::read_to_string(&a.bundle)
        .map_err(|e| InputError::unreadable(&a.bundle, "Sigstore bundle", e))?;
    match sigstore::verify(&bundle, &subject, &policy, &trust) {
        Ok(v) => {
            println!("OK: {}: {}", a.bundle.display(), v.summary());
            Ok(0)
        }
        Err(Outcome::Rejected(reason)) => {
            eprintln!(
                "airgap-verify: sigstore: {} does not verify: {reason}",
                a.bundle.display()
            );
            Ok(1)
        }
        Err(Outcome::Input(e)) => Err(e.into()),
    }
}
