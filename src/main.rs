//! Thin binary: parse args -> validated plan -> run -> render -> exit code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use airgap_verify::bundle::{
    checksum::ChecksumSource, BundleOptions, Limits, NoProgress, Progress,
};
use airgap_verify::cli::{
    Cli, ColorChoice, Command, FailOn, FlowRole, ManifestCommand, ReportArgs, SigstoreCommand,
};
use airgap_verify::error::InputError;
use airgap_verify::finding::{Finding, Policy, Status};
use airgap_verify::output::{Input, OutputFile};
use airgap_verify::report::{self, Format, Report};
use airgap_verify::{codes, run, sample};

/// Effective settings, by flag name, for a report's `policy.settings`.
type Settings = std::collections::BTreeMap<String, serde_json::Value>;

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
    // Temporary report files and scratch folders go on SIGINT and SIGTERM
    // too; `listen` handles both its own way for its whole length, and the
    // other commands write no temporary file.
    if matches!(
        cli.command,
        Command::Bundle(_)
            | Command::Services(_)
            | Command::Egress(_)
            | Command::Check(_)
            | Command::Flows(_)
            | Command::Manifest(_)
            | Command::Merge(_)
    ) {
        airgap_verify::scratch::watch_signals();
    }
    match cli.command {
        Command::Bundle(a) => {
            let opts = a.archive.options(a.path)?;
            let inputs = bundle_inputs(&opts);
            if a.dry_run {
                check_outputs(&a.report, &inputs)?;
                print_plan(&airgap_verify::bundle::describe(&opts)?);
                return Ok(0);
            }
            let sinks = open_sinks(&a.report, &inputs)?;
            let policy = policy(&a.report, None)?;
            let bar = progress_for(&a.report);
            let mut report = run::bundle(&opts, &policy, bar.as_ref())?;
            report.context.settings = bundle_settings(&opts);
            emit(&report, sinks)
        }
        Command::Services(a) => services(a),
        Command::Egress(a) => egress(a),
        Command::Check(a) => check(a),
        Command::Flows(a) => flows(a),
        Command::Listen(a) => listen(a),
        Command::Host(a) => host(a),
        Command::Init(a) => init(a),
        Command::Merge(a) => merge(a),
        Command::Manifest(ManifestCommand::Create(a)) => manifest_create(a),
        Command::Explain(a) => explain(a),
        Command::Sigstore(SigstoreCommand::VerifyBundle(a)) => sigstore_verify_bundle(a),
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

/// A dry run's plan, one line per check, on standard output.
fn print_plan(lines: &[String]) {
    let mut out = std::io::stdout().lock();
    for line in lines {
        if writeln!(out, "{line}").is_err() {
            break; // a closed pipe ends the listing
        }
    }
}

/// The user's policy: perimeter.yml `severity:` first, then `--warn`,
/// `--fail`, `--allow` (one code in two of them is a usage error), then
/// `--fail-on`.
fn policy(
    r: &ReportArgs,
    plan: Option<&airgap_verify::config::Perimeter>,
) -> Result<Policy, InputError> {
    let mut overrides = plan.map(|p| p.severity.clone()).unwrap_or_default();
    let mut from_cli = std::collections::BTreeMap::new();
    for (codes, status, flag) in [
        (&r.warn_codes, Status::Warn, "--warn"),
        (&r.fail_codes, Status::Fail, "--fail"),
        (&r.allow_codes, Status::Pass, "--allow"),
    ] {
        for c in codes {
            if let Some((_, other)) = from_cli.insert(*c, (status, flag)) {
                if other != flag {
                    return Err(InputError::Usage(format!(
                        "{c} is given to both {other} and {flag}; keep one"
                    )));
                }
            }
        }
    }
    overrides.extend(from_cli.into_iter().map(|(c, (s, _))| (c, s)));
    Ok(Policy {
        fail_on_warn: r.fail_on == FailOn::Warn,
        overrides,
    })
}

/// Where the reports go, all opened before the run: standard output (in
/// `--format`, unless a plain `--output FILE` took it) and each file.
struct Sinks {
    stdout: Option<Format>,
    files: Vec<(Format, OutputFile)>,
    color: ColorChoice,
    verbosity: report::human::Verbosity,
}

/// `-q`/`-v`, for the human format.
fn verbosity(r: &ReportArgs) -> report::human::Verbosity {
    use report::human::Verbosity;
    match (r.quiet, r.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    }
}

/// Colour for a stream: `--color`, or a terminal without NO_COLOR.
fn colored(choice: ColorChoice, terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

/// The `--output` files, checked against the run's inputs (a usage error
/// when one names an input, or two name the same file); nothing is created.
fn check_outputs(r: &ReportArgs, inputs: &[Input]) -> anyhow::Result<()> {
    if r.output.iter().filter(|o| o.format.is_none()).count() > 1 {
        return Err(InputError::Usage(
            "--output: several plain FILEs; write the others as FORMAT=FILE (json=r.json)".into(),
        )
        .into());
    }
    let paths: Vec<&std::path::Path> = r.output.iter().map(|o| o.path.as_path()).collect();
    airgap_verify::output::refuse_inputs(&paths, inputs)?;
    Ok(())
}

/// [`check_outputs`], then every output file created (as a temporary file
/// beside it), so an unwritable one fails now rather than after the pass.
fn open_sinks(r: &ReportArgs, inputs: &[Input]) -> anyhow::Result<Sinks> {
    check_outputs(r, inputs)?;
    let mut files = Vec::new();
    for o in &r.output {
        files.push((o.format.unwrap_or(r.format), OutputFile::create(&o.path)?));
    }
    Ok(Sinks {
        stdout: if r.output.iter().any(|o| o.format.is_none()) {
            None
        } else {
            Some(r.format)
        },
        files,
        color: r.color,
        verbosity: verbosity(r),
    })
}

/// Renders the report where asked; the exit code comes from findings alone.
fn emit(report: &Report, sinks: Sinks) -> anyhow::Result<u8> {
    let code = report.exit_code() as u8;
    if let Some(format) = sinks.stdout {
        let stdout = std::io::stdout();
        let color = colored(sinks.color, stdout.is_terminal());
        let mut lock = stdout.lock();
        match report::render(report, format, color, sinks.verbosity, &mut lock)
            .and_then(|_| lock.flush())
        {
            // A closed pipe (`| head`) is the reader's choice, not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.context("writing the report")?,
        }
    }
    for (format, file) in sinks.files {
        file.commit(|out| report::render(report, format, false, sinks.verbosity, out))?;
    }
    // Someone watches a terminal but the human report went elsewhere (a
    // machine format on standard output, or only files): the failures and
    // the verdict go to standard error, so the run does not end in silence.
    let stderr = std::io::stderr();
    if sinks.stdout != Some(Format::Human) && stderr.is_terminal() {
        let color = colored(sinks.color, true);
        let mut lock = stderr.lock();
        let _ = report::render(
            report,
            Format::Human,
            color,
            report::human::Verbosity::Quiet,
            &mut lock,
        );
    }
    Ok(code)
}

/// What `--output` must never name, for an archive pass: the archive or
/// folder, its checksum, signatures and keys.
fn bundle_inputs(o: &BundleOptions) -> Vec<Input> {
    let beside = |ext: &str| {
        let mut p = o.path.as_os_str().to_owned();
        p.push(ext);
        std::path::PathBuf::from(p)
    };
    let mut v = vec![Input::new(
        if o.path.is_dir() {
            "folder being verified"
        } else {
            "archive"
        },
        &o.path,
    )];
    match &o.checksum {
        ChecksumSource::File(f) => v.push(Input::new("checksum file", f)),
        ChecksumSource::Auto => {
            for f in airgap_verify::bundle::checksum::beside(&o.path) {
                v.push(Input::new("checksum file", f));
            }
        }
        ChecksumSource::Hex(_) => {}
    }
    v.push(Input::new("signature", beside(".minisig")));
    v.push(Input::new("signature", beside(".sig")));
    if let Some(k) = &o.signatures.minisign_key {
        if std::path::Path::new(k).exists() {
            v.push(Input::new("--pubkey file", k));
        }
    }
    if let Some(k) = &o.signatures.cosign_key {
        v.push(Input::new("--cosign-key file", k));
    }
    v.push(Input::new("Sigstore bundle", beside(".sigstore.json")));
    if let Some(airgap_verify::sigstore::SignerPolicy::Key(k)) = &o.signatures.sigstore.signer {
        v.push(Input::new("--sigstore-key file", k));
    }
    if let Some(r) = &o.signatures.sigstore.trusted_root {
        v.push(Input::new("--trusted-root file", r));
    }
    v
}

/// The configuration files a plan was read from, and its CA bundle.
fn config_inputs(plan: &airgap_verify::config::Perimeter) -> Vec<Input> {
    let mut v: Vec<Input> = plan
        .sources
        .iter()
        .map(|p| Input::new("configuration", p))
        .collect();
    if let Some(ca) = &plan.ca_bundle {
        v.push(Input::new("CA bundle", ca));
    }
    v
}

/// The flags `services` and `check` share, as configuration-loading options.
fn load_options(a: &airgap_verify::cli::ServicesArgs) -> airgap_verify::config::LoadOptions {
    airgap_verify::config::LoadOptions {
        perimeter: a.config.clone(),
        sekoia: a.sekoia_config.clone(),
        ca_bundle: a.ca_bundle.clone(),
        timeout: a.timeout,
        system_roots: a.system_roots,
        strict_airgap: a.strict_airgap,
        send_test_mail: a.send_test_mail,
        write_probe: a.write_probe,
        s3_benchmark: a.s3_benchmark,
        egress: false,
        probe_internet: false,
        no_services: false,
    }
}

fn egress(a: airgap_verify::cli::EgressArgs) -> anyhow::Result<u8> {
    let plan = airgap_verify::config::load(&airgap_verify::config::LoadOptions {
        perimeter: a.config,
        sekoia: a.sekoia_config,
        timeout: a.timeout,
        strict_airgap: a.strict_airgap,
        egress: true,
        probe_internet: a.probe_internet,
        no_services: true,
        ..Default::default()
    })?;
    let inputs = config_inputs(&plan);
    if a.dry_run {
        check_outputs(&a.report, &inputs)?;
        print_plan(&airgap_verify::probe::describe(&plan));
        return Ok(0);
    }
    let sinks = open_sinks(&a.report, &inputs)?;
    let policy = policy(&a.report, Some(&plan))?;
    let progress = probe_progress_for(&a.report);
    let settings = probe_settings(&plan);
    let mut report = run::egress(plan, &policy, progress)?;
    report.context.settings = settings;
    emit(&report, sinks)
}

fn services(a: airgap_verify::cli::ServicesArgs) -> anyhow::Result<u8> {
    let plan = airgap_verify::config::load(&load_options(&a))?;
    let inputs = config_inputs(&plan);
    if a.dry_run {
        check_outputs(&a.report, &inputs)?;
        print_plan(&airgap_verify::probe::describe(&plan));
        return Ok(0);
    }
    let sinks = open_sinks(&a.report, &inputs)?;
    let policy = policy(&a.report, Some(&plan))?;
    let progress = probe_progress_for(&a.report);
    let settings = probe_settings(&plan);
    let mut report = run::services(
        "services",
        plan,
        airgap_verify::probe::Selection::SERVICES,
        &policy,
        progress,
    )?;
    report.context.settings = settings;
    emit(&report, sinks)
}

fn source_role(r: FlowRole) -> airgap_verify::probe::flows::SourceRole {
    use airgap_verify::probe::flows::SourceRole;
    match r {
        FlowRole::Orchestration => SourceRole::Orchestration,
        FlowRole::Node => SourceRole::Node,
        FlowRole::Client => SourceRole::Client,
    }
}

/// The profile: the flag, else what the configuration says (its section,
/// else the vendor's version), else the default.
fn choose_profile(
    plan: &mut airgap_verify::config::Perimeter,
    flag: Option<String>,
) -> anyhow::Result<airgap_verify::profiles::Profile> {
    if let Some(p) = flag {
        let fp = plan.flows_mut();
        fp.profile = Some(p);
        fp.profile_source = "--profile".into();
    }
    let name = plan
        .flows
        .as_ref()
        .map(|f| f.profile_name().to_string())
        .unwrap_or_else(|| airgap_verify::profiles::DEFAULT.to_string());
    airgap_verify::profiles::get(&name)
        .map_err(|m| InputError::Usage(format!("--profile: {m}")).into())
}

fn flows(a: airgap_verify::cli::FlowsArgs) -> anyhow::Result<u8> {
    if a.profiles_markdown {
        print!("{}", airgap_verify::profiles::markdown());
        return Ok(0);
    }
    let opts = airgap_verify::config::LoadOptions {
        perimeter: a.config,
        sekoia: a.sekoia_config,
        ca_bundle: a.ca_bundle,
        timeout: a.timeout,
        ..Default::default()
    };
    let mut plan = airgap_verify::config::load(&opts)?;
    // That no service is configured is no news to a flow test.
    plan.findings
        .retain(|f| f.code != airgap_verify::finding::Code::ConfigNothingToCheck);
    let profile = choose_profile(&mut plan, a.profile)?;
    if plan.flows.is_none() {
        return Err(InputError::Config(
            "no cluster hosts: add a `flows:` section to perimeter.yml (load_balancer, managers, workers) or give --sekoia-config with its inventory; see docs/flows.md".into(),
        )
        .into());
    }
    let role = source_role(a.role.unwrap_or(FlowRole::Orchestration));
    let inputs = config_inputs(&plan);
    if a.dry_run {
        check_outputs(&a.report, &inputs)?;
        print_plan(&airgap_verify::probe::flows::describe(
            &plan, role, &profile,
        ));
        return Ok(0);
    }
    let sinks = open_sinks(&a.report, &inputs)?;
    let policy = policy(&a.report, Some(&plan))?;
    let settings = probe_settings(&plan);
    let mut report = run::services(
        "flows",
        plan,
        airgap_verify::probe::Selection {
            services: false,
            flows_as: Some(role),
        },
        &policy,
        probe_progress_for(&a.report),
    )?;
    report.context.settings = settings;
    emit(&report, sinks)
}

fn listen(a: airgap_verify::cli::ListenArgs) -> anyhow::Result<u8> {
    use airgap_verify::probe::listen::{ListenOptions, ListenRole as LR};
    // The configuration is optional here: it only names the profile.
    let (profile, io, inputs) = if a.config.is_some() || a.sekoia_config.is_some() {
        let opts = airgap_verify::config::LoadOptions {
            perimeter: a.config,
            sekoia: a.sekoia_config,
            ..Default::default()
        };
        let mut plan = airgap_verify::config::load(&opts)?;
        let inputs = config_inputs(&plan);
        (
            choose_profile(&mut plan, a.profile)?,
            plan.deadlines.io,
            inputs,
        )
    } else {
        let name = a
            .profile
            .unwrap_or_else(|| airgap_verify::profiles::DEFAULT.to_string());
        (
            airgap_verify::profiles::get(&name)
                .map_err(|m| InputError::Usage(format!("--profile: {m}")))?,
            std::time::Duration::from_secs(3),
            Vec::new(),
        )
    };
    let host = a.name.unwrap_or_else(airgap_verify::report::hostname);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(InputError::Usage(format!("--name: `{host}` must be one word")).into());
    }
    let options = ListenOptions {
        role: match a.role {
            airgap_verify::cli::ListenRole::Node => LR::Node,
            airgap_verify::cli::ListenRole::LbBackend => LR::LbBackend,
        },
        bind: a.bind,
        host,
        deadline: a.deadline,
        clock_offset_ns: a.clock_offset,
        io,
    };
    let started = std::time::Instant::now();
    let context = airgap_verify::report::RunContext::begin(&policy(&a.report, None)?);
    let mut sinks = Some(open_sinks(&a.report, &inputs)?);
    let mut code = 0u8;
    let mut emitted: anyhow::Result<()> = Ok(());
    let (answered, stopped) = airgap_verify::probe::listen::run(&profile, options, |findings| {
        let report = Report {
            command: "listen".into(),
            inputs: Vec::new(),
            findings: findings.to_vec(),
            duration_ms: started.elapsed().as_millis() as u64,
            interrupted: None,
            context: context.clone(),
        };
        if let Some(sinks) = sinks.take() {
            match emit(&report, sinks) {
                Ok(c) => code = c,
                Err(e) => emitted = Err(e),
            }
        }
        // Tests and scripts wait for this line before they test.
        eprintln!(
            "airgap-verify listen: ready, profile {}; answering until {} or Ctrl-C",
            profile.name,
            humantime::format_duration(a.deadline)
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

fn host(a: airgap_verify::cli::HostArgs) -> anyhow::Result<u8> {
    use airgap_verify::probe::host::{self, HostRole as HR};
    // The configuration is optional here, as for `listen`: it only names
    // the profile (and the severity overrides).
    let (plan, profile, inputs) = if a.config.is_some() || a.sekoia_config.is_some() {
        let mut plan = airgap_verify::config::load(&airgap_verify::config::LoadOptions {
            perimeter: a.config,
            sekoia: a.sekoia_config,
            ..Default::default()
        })?;
        let inputs = config_inputs(&plan);
        let profile = choose_profile(&mut plan, a.profile)?;
        (Some(plan), profile, inputs)
    } else {
        let name = a
            .profile
            .unwrap_or_else(|| airgap_verify::profiles::DEFAULT.to_string());
        let profile = airgap_verify::profiles::get(&name)
            .map_err(|m| InputError::Usage(format!("--profile: {m}")))?;
        (None, profile, Vec::new())
    };
    let role = match a.role {
        airgap_verify::cli::HostRole::Node => HR::Node,
        airgap_verify::cli::HostRole::Lb => HR::Lb,
        airgap_verify::cli::HostRole::Orchestration => HR::Orchestration,
    };
    if a.dry_run {
        check_outputs(&a.report, &inputs)?;
        print_plan(&host::describe(&profile, role, &a.dpkg_status));
        return Ok(0);
    }
    let sinks = open_sinks(&a.report, &inputs)?;
    let policy = policy(&a.report, plan.as_ref())?;
    let started = std::time::Instant::now();
    let mut findings = host::check(&profile, role, &a.dpkg_status);
    policy.apply(&mut findings);
    let report = Report {
        command: "host".into(),
        inputs: Vec::new(),
        findings,
        duration_ms: started.elapsed().as_millis() as u64,
        interrupted: None,
        context: airgap_verify::report::RunContext::begin(&policy),
    };
    emit(&report, sinks)
}

fn check(a: airgap_verify::cli::CheckArgs) -> anyhow::Result<u8> {
    let s = a.services;
    // The static egress checks are cheap and always part of `check`.
    let mut plan = airgap_verify::config::load(&airgap_verify::config::LoadOptions {
        egress: true,
        probe_internet: a.probe_internet,
        ..load_options(&s)
    })?;
    // Flows join the run when the configuration names the cluster's hosts.
    let flows_as = match plan.flows {
        Some(_) => Some((source_role(a.role), choose_profile(&mut plan, None)?)),
        None => None,
    };
    let bundle_opts = match a.bundle {
        Some(path) => Some(a.archive.options(path)?),
        None => None,
    };
    let mut inputs = bundle_opts.as_ref().map(bundle_inputs).unwrap_or_default();
    inputs.extend(config_inputs(&plan));
    if s.dry_run {
        check_outputs(&s.report, &inputs)?;
        // The plan only: no connection, no read of the archive, no write.
        let mut lines = match &bundle_opts {
            Some(o) => airgap_verify::bundle::describe(o)?,
            None => vec!["bundle: none (no --bundle): no archive is verified".into()],
        };
        if let (Some(o), Some(r)) = (&bundle_opts, &plan.registry) {
            if o.limits.max_depth > 0 {
                lines.push(format!(
                    "bundle images: each image the archive holds is looked up in {}",
                    r.url
                ));
            }
        }
        lines.extend(airgap_verify::probe::describe(&plan));
        if let Some((role, profile)) = &flows_as {
            lines.extend(airgap_verify::probe::flows::describe(&plan, *role, profile));
        }
        print_plan(&lines);
        return Ok(0);
    }
    let sinks = open_sinks(&s.report, &inputs)?;
    let policy = policy(&s.report, Some(&plan))?;
    let bar = progress_for(&s.report);
    let mut settings = probe_settings(&plan);
    if let Some(o) = &bundle_opts {
        settings.extend(bundle_settings(o));
    }
    let mut report = run::check(
        bundle_opts.as_ref(),
        plan,
        airgap_verify::probe::Selection {
            services: true,
            flows_as: flows_as.map(|(role, _)| role),
        },
        &policy,
        bar.as_ref(),
        probe_progress_for(&s.report),
    )?;
    report.context.settings = settings;
    emit(&report, sinks)
}

/// `merge`: the hosts' reports read back (exit 2 on one that is not a
/// report), merged, rendered.
fn merge(a: airgap_verify::cli::MergeArgs) -> anyhow::Result<u8> {
    let inputs: Vec<Input> = a
        .reports
        .iter()
        .map(|r| Input::new("report", &r.path))
        .collect();
    let sinks = open_sinks(&a.report, &inputs)?;
    let policy = policy(&a.report, None)?;
    let report = airgap_verify::merge::merge_files(&a.reports, &policy)?;
    emit(&report, sinks)
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
    if r.no_progress || !std::io::stderr().is_terminal() {
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
    if r.no_progress || !std::io::stderr().is_terminal() {
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
    // Checked and created before the pass: the manifest never replaces
    // the input, and an unwritable spot fails now.
    let output = match &a.output {
        Some(p) => {
            airgap_verify::output::refuse_inputs(&[p.as_path()], &bundle_inputs(&opts))?;
            Some(OutputFile::create(p)?)
        }
        None => None,
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
    match output {
        Some(file) => file.commit(|out| out.write_all(text.as_bytes()))?,
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
    let code = airgap_verify::finding::parse_code(&id).map_err(InputError::Usage)?;
    print!("{}", codes::explain_text(code));
    Ok(0)
}

/// `sigstore verify-bundle` (Sigstore conformance CLI protocol): one line on
/// stdout when the bundle verifies (exit 0), one reason line on stderr when
/// it does not (exit 1); unusable input is exit 2 through `dispatch`.
fn sigstore_verify_bundle(a: airgap_verify::cli::VerifyBundleArgs) -> anyhow::Result<u8> {
    use airgap_verify::sigstore::{self, Outcome, RootChoice, SignerPolicy, Subject};
    let subject = Subject::parse(&a.artifact)?;
    let policy: SignerPolicy = airgap_verify::cli::signer_policy(
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

/// The settings an archive pass's verdict depends on, defaults included,
/// for the report's `policy.settings`.
fn bundle_settings(o: &BundleOptions) -> Settings {
    let l = &o.limits;
    let mut s = Settings::new();
    let mut set = |k: &str, v: serde_json::Value| {
        s.insert(k.to_string(), v);
    };
    set(
        "checksum",
        match &o.checksum {
            ChecksumSource::File(f) => format!("--checksum {}", f.display()),
            ChecksumSource::Hex(_) => "--sha256".into(),
            ChecksumSource::Auto => {
                "beside the archive (ARCHIVE.sha256, or a SHA256SUMS that names it)".into()
            }
        }
        .into(),
    );
    set("content", (l.max_depth > 0).into());
    set("deep", l.deep.into());
    set("max_depth", l.max_depth.into());
    set("max_entries", l.max_entries.into());
    set("max_nested_bytes", l.max_nested_bytes.into());
    set("max_nested_entries", l.max_nested_entries.into());
    set("max_expansion_ratio", l.max_expansion_ratio.into());
    set("max_manifest_size", l.max_manifest_size.into());
    set("pubkey", o.signatures.minisign_key.is_some().into());
    set("cosign_key", o.signatures.cosign_key.is_some().into());
    set("allow_host", l.perimeter.hosts.clone().into());
    set("allow_domain", l.perimeter.domains.clone().into());
    set("deny_external", l.perimeter.deny_external.into());
    s
}

/// The settings a probe run's verdict depends on, defaults included.
fn probe_settings(plan: &airgap_verify::config::Perimeter) -> Settings {
    let ms = |d: std::time::Duration| serde_json::Value::from(d.as_millis() as u64);
    let mut s = Settings::new();
    let mut set = |k: &str, v: serde_json::Value| {
        s.insert(k.to_string(), v);
    };
    set(
        "allowed_networks",
        plan.allowed_networks
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .into(),
    );
    set("connect_timeout_ms", ms(plan.deadlines.connect));
    set("handshake_timeout_ms", ms(plan.deadlines.handshake));
    set("io_timeout_ms", ms(plan.deadlines.io));
    set("system_roots", plan.system_roots.into());
    set("strict_airgap", plan.strict_airgap.into());
    set("send_test_mail", plan.send_test_mail.into());
    set("write_probe", plan.write_probe.into());
    set("s3_benchmark", plan.s3_benchmark.into());
    set("probe_internet", plan.egress.probe_internet.into());
    s
}
